// The EP server (server.hpp): what vepf-ep does between its CLI and its exit.
#include "server/server.hpp"

#include <linux/virtio_config.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>

#include <spdlog/spdlog.h>

#include "devices/blk/blk_device.hpp"
#include "devices/console/console_device.hpp"
#include "devices/net/net_device.hpp"
#include "devices/rpmsg/rpmsg_device.hpp"
#include "vepf/app/status.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/rpmsg/relay.hpp"

namespace vepf::ep {

namespace {

using nlohmann::json;

std::uint32_t new_epoch() {
  std::random_device rd;
  std::uint32_t e = 0;
  while (e == 0) e = rd();
  return e;
}

std::string sys(const Error& e) {
  return e.sys_errno ? std::string(": ") + std::strerror(e.sys_errno) : std::string();
}

}  // namespace

std::string control_socket_path(const config::BoardConfig& cfg, const std::string& override_path) {
  if (!override_path.empty()) return override_path;
  return cfg.platform == config::Platform::kLoopback ? cfg.loopback.socket + ".ctl" : kPciCtlSocket;
}

Server::Server(const config::BoardConfig& cfg, platform::EpLink link, os::EventLoop& loop,
               Options o, std::unique_ptr<gpio::Chips> chips)
    : cfg_(cfg), link_(std::move(link)), loop_(loop), o_(std::move(o)), chips_(std::move(chips)) {}

Server::~Server() {
  stop();
  for (int fd : watched_) loop_.remove(fd);
  if (link_.peers && link_.peers->peer_fd() >= 0) loop_.remove(link_.peers->peer_fd());
}

Device* Server::device(std::uint32_t slot) const {
  const auto it = devices_.find(slot);
  return it == devices_.end() ? nullptr : it->second.get();
}

const std::string& Server::control_path() const noexcept {
  static const std::string none;
  return control_ ? control_->path() : none;
}

Server::Made Server::make_net(const config::DeviceConfig& d) {
  // The EP's interface is the far end of the link: a MAC of its own, stable across restarts
  // (the device MAC with the last octet's lowest bit flipped) so the host's neighbour entry
  // stays valid when the EP firmware restarts.
  std::array<std::uint8_t, 6> ep_mac = d.net.mac;
  ep_mac[5] ^= 0x01;
  auto backend = d.ep.kind == config::BackendKind::kTap
                     ? netback::open_tap(d.ep.ifname, {d.net.mtu, &ep_mac})
                     : netback::listen_seqpacket(d.ep.path, d.ep.vnet_hdr);
  const std::string& where = d.ep.kind == config::BackendKind::kTap ? d.ep.ifname : d.ep.path;
  if (!backend) {
    return tl::unexpected(fmt::format("cannot set up backend {} {}: {}{}",
                                      config::to_string(d.ep.kind), where, backend.error().what,
                                      sys(backend.error())));
  }
  auto net = std::make_unique<NetDevice>(std::move(*backend), d.net, d.queue_size);
  if (auto r = net->start(loop_); !r)
    return tl::unexpected(std::string("cannot poll the backend: ") + r.error().what);
  spdlog::get("ep")->info("virtio-net on {}, queue size {}, mtu {}", net->backend().name(),
                          d.queue_size, d.net.mtu);
  return net;
}

Server::Made Server::make_rpmsg(const config::DeviceConfig& d) {
  const std::string& dir = d.rpmsg.runtime_dir;
  const bool lent = d.rpmsg.ep_serve == config::RpmsgServe::kApplication;
  auto dev = lent ? std::make_unique<RpmsgDevice>(
                        d.queue_size,
                        [&dir](rpmsg::Port& p) {
                          return std::make_unique<rpmsg::Relay>(dir + "/ep", p, "ep.rpmsg", dir);
                        },
                        dir)
                  : std::make_unique<RpmsgDevice>(dir, d.queue_size, d.rpmsg.max_connections);
  const std::string sock = dir + (lent ? "/ep/device.sock" : "/ep/announce.sock");
  if (auto r = dev->start(loop_); !r) {
    return tl::unexpected(
        fmt::format("cannot listen on {}: {}{}", sock, r.error().what, sys(r.error())));
  }
  spdlog::get("ep")->info("virtio-rpmsg, {} on {}, queue size {}",
                          lent ? "lent to the application that attaches" : "channels announced",
                          sock, d.queue_size);
  return dev;
}

Server::Made Server::make_block(const config::DeviceConfig& d) {
  const auto& b = d.block;
  auto file = BlockFile::open(b.path, b.size, b.read_only);
  if (!file) {
    return tl::unexpected(fmt::format("cannot open block backend {}: {}{}{}", b.path,
                                      file.error().what, sys(file.error()),
                                      b.size ? "" : " (give block.size to create it)"));
  }
  const std::uint64_t bytes = file->size();
  auto dev = std::make_unique<BlockDevice>(std::move(*file), b, d.queue_size);
  if (auto r = dev->start(loop_); !r)
    return tl::unexpected(std::string("cannot start the I/O threads: ") + r.error().what);
  spdlog::get("ep")->info("virtio-blk on {}: {} bytes{}, block size {}, queue size {}", b.path,
                          bytes, b.read_only ? " read-only" : "", b.block_size, d.queue_size);
  return dev;
}

Server::Made Server::make_console(const config::DeviceConfig& d) {
  auto dev = std::make_unique<ConsoleDevice>(d.console, d.queue_size);
  if (auto r = dev->start(loop_); !r) {
    return tl::unexpected(
        fmt::format("cannot set up the console ports: {}{}", r.error().what, sys(r.error())));
  }
  spdlog::get("ep")->info("virtio-console, {} port(s), queue size {}", d.console.ports.size(),
                          d.queue_size);
  return dev;
}

tl::expected<std::uint32_t, std::string> Server::add_device(const config::DeviceConfig& d) {
  if (!transport_->first_free_slot())
    return tl::unexpected(std::string("the device table is full"));
  Made dev;
  switch (d.type) {
    case config::DeviceType::kNet:
      dev = make_net(d);
      break;
    case config::DeviceType::kRpmsg:
      dev = make_rpmsg(d);
      break;
    case config::DeviceType::kBlock:
      dev = make_block(d);
      break;
    case config::DeviceType::kConsole:
      dev = make_console(d);
      break;
  }
  if (!dev) return tl::unexpected(dev.error());
  return add_device(std::move(*dev));
}

tl::expected<std::uint32_t, std::string> Server::add_device(std::unique_ptr<Device> dev) {
  if (!transport_) return tl::unexpected(std::string("the server has not started"));
  auto slot = transport_->add_device(dev.get());
  if (!slot) return tl::unexpected(std::string("cannot add the device: ") + slot.error().what);
  spdlog::get("ep")->info("slot {}: {} device added", *slot, dev->type_name());
  devices_.emplace(*slot, std::move(dev));
  return *slot;
}

bool Server::remove_device(std::uint32_t slot) {
  const auto it = devices_.find(slot);
  if (it == devices_.end()) return false;
  transport_->remove_device(slot);
  devices_.erase(it);
  spdlog::get("ep")->info("slot {}: device removed", slot);
  return true;
}

bool Server::backlog() const {
  return std::any_of(devices_.begin(), devices_.end(),
                     [](const auto& n) { return n.second->backlog(); });
}

Result<void> Server::open_gpio() {
  const auto& g = cfg_.gpio;
  if (!g.ready && !g.reset) return {};
  auto spec = [](const std::optional<config::GpioLine>& l) -> std::optional<gpio::LineSpec> {
    if (!l) return std::nullopt;
    return gpio::LineSpec{l->chip, l->line, l->active_low};
  };
  if (!chips_) chips_ = gpio::make_libgpiod_chips();
  sideband_ = std::make_unique<gpio::Sideband>(*chips_, spec(g.ready), spec(g.reset), "vepf-ep");
  if (auto r = sideband_->start(); !r) {
    spdlog::get("ep")->error("[gpio]: {}", r.error().message);
    sideband_.reset();
    return fail(Errc::kInvalidArgument, "the GPIO lines could not be set up");
  }
  if (const int fd = sideband_->reset_fd(); fd >= 0) {
    if (auto r = loop_.add(fd, EPOLLIN, [this](std::uint32_t) { on_reset_gpio(); }); !r) {
      spdlog::get("ep")->error("[gpio]: cannot watch the reset line: {}", r.error().what);
      return fail(Errc::kInvalidArgument, "the GPIO lines could not be set up");
    }
    watched_.push_back(fd);
  }
  return {};
}

void Server::on_reset_gpio() {
  auto got = sideband_->take_reset();
  if (!got) {
    spdlog::get("ep")->warn("[gpio] reset line: {}", got.error().message);
    return;
  }
  if (!*got) return;
  spdlog::get("ep")->info("reset line asserted: resetting every device");
  reset_all();
}

void Server::reset_all() {
  std::uint32_t e = new_epoch();
  while (e == transport_->epoch()) e = new_epoch();
  spdlog::get("ep")->info("resetting every device (epoch {:#010x})", e);
  transport_->restart(e);
}

Result<void> Server::open_control() {
  if (o_.control_socket.empty()) return {};
  auto policy = app::control_policy(cfg_.control);
  if (!policy) {
    spdlog::get("ep")->error("{}", policy.error());
    return fail(Errc::kInvalidArgument, "the control socket's group does not exist");
  }
  auto ctl = app::ControlServer::listen(
      o_.control_socket, loop_, [this](std::string_view r) { return handle_control(r); }, *policy);
  if (!ctl) return tl::unexpected(ctl.error());
  control_ = std::move(*ctl);
  return {};
}

Result<void> Server::watch_link() {
  auto& link = *link_.link;
  if (link_.peers) {
    // One host at a time; out of descriptors, a host is refused rather than the loop spinning.
    // open() first lets a host that never attached give way (on_peer_waiting()).
    os::Acceptor::Handlers h;
    h.open = [this] { return on_peer_waiting(); };
    h.take = [this](os::Fd c) { on_peer(std::move(c)); };
    h.refuse = [this](int, os::Acceptor::Refusal why) {
      log::limited(peer_log_, spdlog::get("ep"), spdlog::level::warn, "host connection refused: {}",
                   why == os::Acceptor::Refusal::kFull ? "a host is already connected"
                                                       : "out of file descriptors");
    };
    auto a = os::Acceptor::create(loop_, link_.peers->take_listener(), 1, std::move(h));
    if (!a) return tl::unexpected(a.error());
    host_acceptor_ = std::move(*a);
  }
  const int doorbell = link.doorbell_fd();
  if (doorbell >= 0) {
    if (auto r = loop_.add(doorbell, EPOLLIN,
                           [this](std::uint32_t) {
                             (void)link_.link->drain_doorbell();
                             on_poll();
                           });
        !r) {
      return r;
    }
    watched_.push_back(doorbell);
  }
  // A kick on a device's own doorbell wakes that device alone.
  for (std::uint32_t slot = 0; slot < layout::kMaxDevices; ++slot) {
    const int fd = link.device_doorbell_fd(slot);
    if (fd < 0) continue;
    if (auto r = loop_.add(fd, EPOLLIN,
                           [this, slot](std::uint32_t) {
                             (void)link_.link->drain_device_doorbell(slot);
                             transport_->notify(slot);
                           });
        !r) {
      return r;
    }
    watched_.push_back(fd);
  }
  // The heartbeat (every kHeartbeatPeriodMs, so at least that often), requests whose doorbell
  // was lost (late by up to one period, never lost), and the polled mode of platforms without a
  // doorbell IRQ. With a doorbell an idle vepf-ep wakes 20 times a second: each wake-up costs
  // about 30 µs of CPU on a 2-vCPU VM.
  const auto period = std::chrono::milliseconds(doorbell >= 0 ? layout::kHeartbeatPeriodMs / 2 : 1);
  auto timer = loop_.add_timer(period, [this] { on_poll(); });
  if (!timer) return tl::unexpected(timer.error());
  watched_.push_back(*timer);
  return {};
}

Result<void> Server::start() {
  auto log = spdlog::get("ep");
  if (started_) return fail(Errc::kInvalidArgument, "the server is already started");
  started_ = true;
  if (auto r = open_gpio(); !r) return r;
  transport_ = std::make_unique<transport::DeviceTransport>(*link_.link, new_epoch());
  transport_->set_max_chain(cfg_.link.max_chain_segments);
  if (auto r = transport_->init(); !r) return r;
  spin_.emplace(transport_->poll_group(), std::chrono::microseconds(cfg_.link.spin_us));
  for (std::size_t i = 0; i < cfg_.devices.size(); ++i) {
    const auto& d = cfg_.devices[i];
    const auto index = static_cast<std::uint32_t>(i);
    rpmsg::RouterFactory mine;  // an application's own router for this rpmsg device
    if (d.type == config::DeviceType::kRpmsg && o_.rpmsg_router) mine = o_.rpmsg_router(index);
    auto s = mine ? add_device(std::make_unique<RpmsgDevice>(
                        d.queue_size, mine, fmt::format("in-process router {}", index)))
                  : add_device(d);
    if (!s) {
      log->error("device[{}]: {}", i, s.error());
      return fail(Errc::kInvalidArgument, "a device of the board config could not be set up");
    }
  }
  if (auto r = open_control(); !r) return r;
  if (auto r = watch_link(); !r) return r;
  if (sideband_ && sideband_->has_ready()) {
    if (auto r = sideband_->set_ready(true); !r) {
      log->error("[gpio] ready line: {}", r.error().message);
      return fail(Errc::kSystem, "the ready line could not be driven");
    }
    log->info("[gpio] ready line {} line {} active", cfg_.gpio.ready->chip, cfg_.gpio.ready->line);
  }
  log->info("EP window {} KiB on {}; control socket {}; waiting for the host (epoch {:#010x})",
            cfg_.link.ep_window_size >> 10, link_.description,
            control_ ? control_->path() : std::string("none"), transport_->epoch());
  return {};
}

json Server::list() const {
  json devs = json::array();
  for (const auto& [slot, d] : devices_) {
    const std::uint8_t st = transport_->status(slot);
    json e{{"slot", slot},
           {"type", d->type_name()},
           {"status", st},
           {"driver_ok", (st & VIRTIO_CONFIG_S_DRIVER_OK) != 0},
           {"needs_reset", (st & VIRTIO_CONFIG_S_NEEDS_RESET) != 0},
           {"chain_limit_hits", transport_->chain_limit_hits(slot)}};
    d->describe(e);
    devs.push_back(std::move(e));
  }
  return devs;
}

json Server::status() const {
  json devs = list();
  for (json& e : devs) {
    const auto slot = e["slot"].get<std::uint32_t>();
    const Device* d = device(slot);
    const std::uint64_t f = transport_->features(slot);
    e["features"] = fmt::format("{:#x}", f);
    e["feature_names"] = app::feature_names(d->device_id(), f);
    json queues = json::array();
    for (const auto& q : transport_->queue_states(slot)) {
      json j{{"index", q.index}, {"size", q.size},       {"last_avail", q.last_avail},
             {"used", q.used},   {"pending", q.pending}, {"broken", q.broken}};
      if (q.why != nullptr) j["why"] = q.why;
      queues.push_back(std::move(j));
    }
    e["queues"] = std::move(queues);
    e["counters"] = json{{"to_driver", d->counts().to_driver},
                         {"from_driver", d->counts().from_driver},
                         {"chain_limit_hits", e["chain_limit_hits"]}};
    e.erase("chain_limit_hits");
  }
  return json{{"program", "vepf-ep"},
              {"board", cfg_.name},
              {"platform", config::to_string(cfg_.platform)},
              {"link",
               {{"state", transport_->attached() ? "attached" : "waiting"},
                {"epoch", fmt::format("{:#010x}", transport_->epoch())},
                {"where", link_.description},
                {"repairs", transport_->repairs()}}},
              {"link_model", app::link_model_json(link_.link->counters())},
              {"devices", std::move(devs)}};
}

std::string Server::handle_control(std::string_view request) {
  auto error = [](const std::string& what) { return json{{"ok", false}, {"error", what}}.dump(); };
  const json req = json::parse(request, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return error(R"(request must be a JSON object with "op": "list", "status", "add" or "remove")");
  }
  const std::string op = req["op"];
  if (op == "list") return json{{"ok", true}, {"devices", list()}}.dump();
  if (op == "status") return json{{"ok", true}, {"status", status()}}.dump();
  if (op == "add") {
    if (!req.contains("device") || !req["device"].is_string())
      return error(R"("add" needs "device": "<TOML>")");
    const std::uint32_t slot = transport_->first_free_slot().value_or(layout::kMaxDevices);
    auto d = config::parse_device_config(req["device"].get<std::string>(), "ctl add", slot);
    if (!d) return error(d.error().message);
    // A client may name files and programs only where the board config lets it.
    if (auto e = config::check_allowed_dirs(*d, cfg_.control.allowed_dirs,
                                            fmt::format("device[{}]", slot))) {
      return error(e->message);
    }
    auto s = add_device(*d);
    if (!s) return error(s.error());
    return json{{"ok", true}, {"slot", *s}}.dump();
  }
  if (op == "remove") {
    if (!req.contains("slot") || !req["slot"].is_number_unsigned())
      return error(R"("remove" needs "slot": N)");
    // Read whole: a narrowing read would take slot 2^32 for slot 0.
    const auto wide = req["slot"].get<std::uint64_t>();
    if (wide >= layout::kMaxDevices || !remove_device(static_cast<std::uint32_t>(wide))) {
      return error(fmt::format("no device in slot {}: see `vepf-ep ctl list`", wide));
    }
    return json{{"ok", true}}.dump();
  }
  return error("unknown op '" + op + "': use list, status, add or remove");
}

std::size_t Server::on_peer_waiting() {
  if (link_.peers->connected() && !transport_->attached() &&
      std::chrono::steady_clock::now() - host_since_ >= kUnattachedHost) {
    spdlog::get("ep")->warn(
        "the connected host has not attached in {} s: dropping it for the host now connecting",
        kUnattachedHost.count());
    drop_host();
  }
  return link_.peers->connected() ? 1 : 0;
}

void Server::on_peer(os::Fd conn) {
  auto log = spdlog::get("ep");
  if (auto r = link_.peers->accept_peer(std::move(conn)); !r) {
    log::limited(peer_log_, log, spdlog::level::warn, "host connection refused: {}",
                 r.error().what);
    return;
  }
  log->info("host connected");
  host_since_ = std::chrono::steady_clock::now();
  (void)loop_.add(link_.peers->peer_fd(), EPOLLIN | EPOLLRDHUP, [this, log](std::uint32_t) {
    log->info("host went away: resetting devices");
    drop_host();
  });
}

void Server::drop_host() {
  loop_.remove(link_.peers->peer_fd());
  transport_->link_down();
  link_.peers->drop_peer();
}

void Server::on_poll() {
  transport_->poll();
  const auto now = std::chrono::steady_clock::now();
  if (now - last_heartbeat_ >= std::chrono::milliseconds(layout::kHeartbeatPeriodMs)) {
    last_heartbeat_ = now;
    transport_->heartbeat();  // one posted write: the host watches it instead of our header
    // Local reads of our own window: whatever a host wrote over what we own is put back.
    if (const std::uint32_t n = transport_->audit()) {
      log::limited(peer_log_, spdlog::get("ep"), spdlog::level::warn,
                   "the host overwrote {} line(s) of the control region that vepf-ep writes: "
                   "re-published ({} so far)",
                   n, transport_->repairs());
    }
  }
  if (!report_.link_up_marked()) {
    for (const auto& [slot, d] : devices_) {
      if (transport_->status(slot) & VIRTIO_CONFIG_S_DRIVER_OK)
        report_.mark_link_up(link_.link->counters());
    }
  }
}

Result<void> Server::run_once(int max_wait_ms) {
  bool more = backlog();
  if (!more) {
    std::uint64_t moved = 0;
    for (const auto& [slot, d] : devices_) moved += d->counts().to_driver + d->counts().from_driver;
    more = spin_->keep_polling(moved);
  }
  if (more) transport_->poll();
  return loop_.run_once(more ? 0 : max_wait_ms);
}

void Server::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (sideband_ && sideband_->has_ready())
    (void)sideband_->set_ready(false);             // first: the host stops looking
  for (auto& [slot, d] : devices_) d->shutdown();  // the driver sees link down before the link goes
  if (transport_ && link_.link->window_outlives_process()) {
    // The EP window outlives us (BAR memory): a host must not take it for a serving EP. Every
    // earlier store before the cleared magic; pairs with load_acquire of magic in
    // DriverTransport::validate_header() and HostLinkSource::open() (platform/links.cc).
    link_.link->ep_window().store_release<std::uint32_t>(
        layout::header_off(offsetof(layout::EpfHeader, magic)), 0);
  }
}

void Server::print_report(spdlog::level::level_enum lvl) {
  std::uint64_t tx = 0, rx = 0;
  for (const auto& [slot, d] : devices_) {
    tx += d->counts().to_driver;
    rx += d->counts().from_driver;
    d->report(slot, lvl);
  }
  spdlog::get("ep")->log(lvl, "{}", report_.format(link_.link->counters(), tx, rx));
}

}  // namespace vepf::ep
