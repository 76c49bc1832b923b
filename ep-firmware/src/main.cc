// vepf-ep: the EP side. Serves the virtio-pci-epf control region in the EP window and runs the
// virtio devices the board config names; devices can be added and removed while the link is up
// through the control socket (`vepf-ep ctl`). main() only wires: CLI -> config -> objects -> loop.

#include <grp.h>
#include <linux/virtio_config.h>
#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "control/control_server.hpp"
#include "devices/blk/blk_device.hpp"
#include "devices/console/console_device.hpp"
#include "devices/net/net_device.hpp"
#include "devices/rpmsg/rpmsg_device.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"
#include "vepf/app/spin.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/gpio/gpio.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/platform/loopback.hpp"
#include "vepf/platform/pci.hpp"
#include "vepf/platform/window_memory.hpp"
#include "vepf/transport/device_transport.hpp"

namespace {

using namespace vepf;
using nlohmann::json;

struct Options {
  app::CommonOptions common;
  std::string ctl_socket;          // --ctl-socket; default: the link socket + ".ctl"
  std::vector<std::string> ctl_device;  // ctl add: TOML lines of a [[device]] table
  std::uint32_t ctl_slot = 0;      // ctl remove
};

std::uint32_t new_epoch() {
  std::random_device rd;
  std::uint32_t e = 0;
  while (e == 0) e = rd();
  return e;
}

/// Where `vepf-ep ctl` finds vepf-ep without --ctl-socket.
inline constexpr const char* kPciCtlSocket = "/run/vepf/vepf-ep.ctl";

std::string ctl_path(const config::BoardConfig& cfg, const Options& o) {
  if (!o.ctl_socket.empty()) return o.ctl_socket;
  return cfg.platform == config::Platform::kLoopback ? cfg.loopback.socket + ".ctl" : kPciCtlSocket;
}

/// vendor:device lookup for the vfio platform: libpci, except in the static build (Debian ships
/// no libpci.a), which takes the function by its address only.
tl::expected<vfio::PciAddress, std::string> find_ep_function(const vfio::PciMatch& m) {
#ifdef VEPF_HAVE_LIBPCI
  return vfio::find_function(m);
#else
  return tl::unexpected("this vepf-ep is built without libpci (the static build): name the function " + m.str() +
                        " by its PCI address in ep.device, e.g. \"0000:01:00.0\"");
#endif
}

/// The id of group `name` as /etc/group lists it. Read with fgetgrent(3), not getgrnam(3): a
/// static vepf-ep then needs no NSS modules (whose shared libraries a static binary cannot load);
/// groups from other sources (LDAP) are not seen.
std::optional<gid_t> group_id(const std::string& name) {
  std::FILE* f = std::fopen("/etc/group", "re");
  if (f == nullptr) return std::nullopt;
  std::optional<gid_t> id;
  while (const group* g = ::fgetgrent(f)) {
    if (name == g->gr_name) {
      id = g->gr_gid;
      break;
    }
  }
  std::fclose(f);
  return id;
}

class EpProgram {
 public:
  EpProgram(const config::BoardConfig& cfg, const Options& o, os::EventLoop& loop)
      : cfg_(cfg), o_(o), loop_(loop), report_("vepf-ep") {}

  int run(int sfd);

 private:
  Result<void> setup();
  /// The link of board.platform; false (logged) when it cannot be set up.
  bool open_link();
  /// [gpio]: requests the ready and reset lines; false (logged) when that fails.
  bool open_gpio();
  /// The reset line saw an active-going edge: every device is reset under a new epoch.
  void on_reset_gpio();
  using Made = tl::expected<std::unique_ptr<ep::Device>, std::string>;
  /// A net device on its backend (TAP or socket).
  Made make_net(const config::DeviceConfig& d);
  /// An rpmsg device (channels under its runtime_dir).
  Made make_rpmsg(const config::DeviceConfig& d);
  /// A block device on its file or block device.
  Made make_block(const config::DeviceConfig& d);
  /// A console device with its ports on ptys, programs and sockets.
  Made make_console(const config::DeviceConfig& d);
  /// Creates a device from its config and puts it in the device table. Returns the slot.
  tl::expected<std::uint32_t, std::string> add_device(const config::DeviceConfig& d);
  bool backlog() const;
  std::string handle_control(std::string_view request);
  json list() const;
  /// Loopback hosts connected (0 or 1), after dropping one that never attached in
  /// kUnattachedHost when another one is waiting.
  std::size_t on_peer_waiting();
  void on_peer(os::Fd conn);
  /// Forgets the loopback host: its connection, the RC window, every device's state.
  void drop_host();
  void on_poll();
  void print_report(spdlog::level::level_enum lvl);

  const config::BoardConfig& cfg_;
  const Options& o_;
  os::EventLoop& loop_;
  // Destroyed in reverse: the transport resets its devices, which need the link.
  std::unique_ptr<platform::LoopbackEp> loopback_;  // board.platform = "loopback"
  std::unique_ptr<platform::PciEp> pci_;            // "vfio" and "devmem"
  transport::DeviceLink* link_ = nullptr;           // the one of the two in use
  std::map<std::uint32_t, std::unique_ptr<ep::Device>> devices_;  // by slot
  std::unique_ptr<transport::DeviceTransport> transport_;
  std::unique_ptr<ep::ControlServer> control_;
  std::unique_ptr<os::Acceptor> host_acceptor_;  // loopback: the link's listening socket
  std::unique_ptr<gpio::Chips> chips_;
  std::unique_ptr<gpio::Sideband> sideband_;  // after the transport: "ready" drops before the link goes
  app::LinkReport report_;
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::chrono::steady_clock::time_point host_since_{};  // when the loopback host connected
  log::Limit peer_log_;  // what a host can make us say: refusals, repairs
  bool quit_ = false;
};

EpProgram::Made EpProgram::make_net(const config::DeviceConfig& d) {
  // The EP's interface is the far end of the link: a MAC of its own, stable across restarts
  // (the device MAC with the last octet's lowest bit flipped) so the host's neighbour entry
  // stays valid when the EP firmware restarts.
  std::array<std::uint8_t, 6> ep_mac = d.net.mac;
  ep_mac[5] ^= 0x01;
  auto backend = netback::make_backend(d.ep, {d.net.mtu, &ep_mac});
  const std::string& where = d.ep.kind == config::BackendKind::kTap ? d.ep.ifname : d.ep.path;
  if (!backend) {
    return tl::unexpected(fmt::format("cannot set up backend {} {}: {}{}", config::to_string(d.ep.kind), where,
                                      backend.error().what,
                                      backend.error().sys_errno ? std::string(": ") + std::strerror(backend.error().sys_errno) : ""));
  }
  auto net = std::make_unique<ep::NetDevice>(std::move(*backend), d.net, d.queue_size);
  if (auto r = net->start(loop_); !r) return tl::unexpected(std::string("cannot poll the backend: ") + r.error().what);
  spdlog::get("ep")->info("virtio-net on {}, queue size {}, mtu {}", net->backend().name(), d.queue_size, d.net.mtu);
  return net;
}

EpProgram::Made EpProgram::make_rpmsg(const config::DeviceConfig& d) {
  auto dev = std::make_unique<ep::RpmsgDevice>(d.rpmsg.runtime_dir, d.queue_size, d.rpmsg.max_connections);
  if (auto r = dev->start(loop_); !r) {
    return tl::unexpected(fmt::format("cannot listen on {}/ep/announce.sock: {}{}", d.rpmsg.runtime_dir, r.error().what,
                                      r.error().sys_errno ? std::string(": ") + std::strerror(r.error().sys_errno) : ""));
  }
  spdlog::get("ep")->info("virtio-rpmsg, channels announced on {}/ep/announce.sock, queue size {}", d.rpmsg.runtime_dir,
                          d.queue_size);
  return dev;
}

EpProgram::Made EpProgram::make_block(const config::DeviceConfig& d) {
  const auto& b = d.block;
  auto file = ep::BlockFile::open(b.path, b.size, b.read_only);
  if (!file) {
    return tl::unexpected(fmt::format("cannot open block backend {}: {}{}{}{}", b.path, file.error().what,
                                      file.error().sys_errno ? ": " : "",
                                      file.error().sys_errno ? std::strerror(file.error().sys_errno) : "",
                                      b.size ? "" : " (give block.size to create it)"));
  }
  const std::uint64_t bytes = file->size();
  auto dev = std::make_unique<ep::BlockDevice>(std::move(*file), b, d.queue_size);
  if (auto r = dev->start(loop_); !r) return tl::unexpected(std::string("cannot start the I/O threads: ") + r.error().what);
  spdlog::get("ep")->info("virtio-blk on {}: {} bytes{}, block size {}, queue size {}", b.path, bytes,
                          b.read_only ? " read-only" : "", b.block_size, d.queue_size);
  return dev;
}

EpProgram::Made EpProgram::make_console(const config::DeviceConfig& d) {
  auto dev = std::make_unique<ep::ConsoleDevice>(d.console, d.queue_size);
  if (auto r = dev->start(loop_); !r) {
    return tl::unexpected(fmt::format("cannot set up the console ports: {}{}", r.error().what,
                                      r.error().sys_errno ? std::string(": ") + std::strerror(r.error().sys_errno) : ""));
  }
  spdlog::get("ep")->info("virtio-console, {} port(s), queue size {}", d.console.ports.size(), d.queue_size);
  return dev;
}

tl::expected<std::uint32_t, std::string> EpProgram::add_device(const config::DeviceConfig& d) {
  if (!transport_->first_free_slot()) return tl::unexpected(std::string("the device table is full"));
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
  auto slot = transport_->add_device(dev->get());
  if (!slot) return tl::unexpected(std::string("cannot add the device: ") + slot.error().what);
  spdlog::get("ep")->info("slot {}: {} device added", *slot, (*dev)->type_name());
  devices_.emplace(*slot, std::move(*dev));
  return *slot;
}

bool EpProgram::backlog() const {
  return std::any_of(devices_.begin(), devices_.end(), [](const auto& n) { return n.second->backlog(); });
}

bool EpProgram::open_link() {
  auto log = spdlog::get("ep");
  if (cfg_.platform == config::Platform::kLoopback) {
    auto link = platform::LoopbackEp::create(cfg_.loopback.socket, cfg_.link.ep_window_size,
                                              platform::memory_access(cfg_.loopback.memory, ring::MemoryType::kCached));
    if (!link) {
      log->error("cannot listen on {}: {}{}", cfg_.loopback.socket, link.error().what,
                 link.error().sys_errno ? std::string(": ") + std::strerror(link.error().sys_errno) : "");
      return false;
    }
    loopback_ = std::move(*link);
    link_ = loopback_.get();
    return true;
  }
  auto parts = cfg_.platform == config::Platform::kVfio
                   ? platform::open_vfio(cfg_.ep, cfg_.link, platform::PciRole::kEp, find_ep_function)
                   : platform::open_devmem(cfg_.ep, cfg_.link);
  if (!parts) {
    log->error("cannot set up the {} platform: {}", config::to_string(cfg_.platform), parts.error());
    return false;
  }
  pci_ = std::make_unique<platform::PciEp>(std::move(*parts));
  link_ = pci_.get();
  log->info("{} platform: {}", config::to_string(cfg_.platform), pci_->description());
  return true;
}

bool EpProgram::open_gpio() {
  const auto& g = cfg_.gpio;
  if (!g.ready && !g.reset) return true;
  auto spec = [](const std::optional<config::GpioLine>& l) -> std::optional<gpio::LineSpec> {
    if (!l) return std::nullopt;
    return gpio::LineSpec{l->chip, l->line, l->active_low};
  };
  chips_ = gpio::make_libgpiod_chips();
  sideband_ = std::make_unique<gpio::Sideband>(*chips_, spec(g.ready), spec(g.reset), "vepf-ep");
  if (auto r = sideband_->start(); !r) {
    spdlog::get("ep")->error("[gpio]: {}", r.error().message);
    sideband_.reset();
    return false;
  }
  if (sideband_->reset_fd() >= 0) {
    if (auto r = loop_.add(sideband_->reset_fd(), EPOLLIN, [this](std::uint32_t) { on_reset_gpio(); }); !r) {
      spdlog::get("ep")->error("[gpio]: cannot watch the reset line: {}", r.error().what);
      return false;
    }
  }
  return true;
}

void EpProgram::on_reset_gpio() {
  auto got = sideband_->take_reset();
  if (!got) {
    spdlog::get("ep")->warn("[gpio] reset line: {}", got.error().message);
    return;
  }
  if (!*got) return;
  std::uint32_t e = new_epoch();
  while (e == transport_->epoch()) e = new_epoch();
  spdlog::get("ep")->info("reset line asserted: resetting every device (epoch {:#010x})", e);
  transport_->restart(e);
}

Result<void> EpProgram::setup() {
  auto log = spdlog::get("ep");
  if (!open_link()) return fail(Errc::kInvalidArgument, "the link could not be set up");
  if (!open_gpio()) return fail(Errc::kInvalidArgument, "the GPIO lines could not be set up");
  transport_ = std::make_unique<transport::DeviceTransport>(*link_, new_epoch());
  transport_->set_max_chain(cfg_.link.max_chain_segments);
  if (auto r = transport_->init(); !r) return r;
  for (std::size_t i = 0; i < cfg_.devices.size(); ++i) {
    if (auto s = add_device(cfg_.devices[i]); !s) {
      log->error("device[{}]: {}", i, s.error());
      return fail(Errc::kInvalidArgument, "a device of the board config could not be set up");
    }
  }
  ep::ControlServer::Policy policy;
  policy.max_clients = cfg_.control.max_clients;
  if (!cfg_.control.group.empty()) {
    const auto gid = group_id(cfg_.control.group);
    if (!gid) {
      log->error("control.group = \"{}\" is not a group of this system: create it (groupadd {}) or remove the key",
                 cfg_.control.group, cfg_.control.group);
      return fail(Errc::kInvalidArgument, "the control socket's group does not exist");
    }
    policy.group = *gid;
  }
  auto ctl = ep::ControlServer::listen(ctl_path(cfg_, o_), loop_, [this](std::string_view r) { return handle_control(r); },
                                       policy);
  if (!ctl) return tl::unexpected(ctl.error());
  control_ = std::move(*ctl);
  if (loopback_) {
    // One host at a time; out of descriptors, a host is refused rather than the loop spinning.
    // open() first lets a host that never attached give way (on_peer_waiting()).
    os::Acceptor::Handlers h;
    h.open = [this] { return on_peer_waiting(); };
    h.take = [this](os::Fd c) { on_peer(std::move(c)); };
    h.refuse = [this](int, os::Acceptor::Refusal why) {
      log::limited(peer_log_, spdlog::get("ep"), spdlog::level::warn, "host connection refused: {}",
                   why == os::Acceptor::Refusal::kFull ? "a host is already connected" : "out of file descriptors");
    };
    auto a = os::Acceptor::create(loop_, loopback_->take_listener(), 1, std::move(h));
    if (!a) return tl::unexpected(a.error());
    host_acceptor_ = std::move(*a);
  }
  const int doorbell = loopback_ ? loopback_->doorbell_fd() : pci_->doorbell_fd();
  if (doorbell >= 0) {
    if (auto r = loop_.add(doorbell, EPOLLIN, [this](std::uint32_t) {
          (void)(loopback_ ? loopback_->drain_doorbell() : pci_->drain_doorbell());
          on_poll();
        });
        !r) {
      return r;
    }
  }
  if (loopback_) {
    // A kick on a device's own doorbell wakes that device alone.
    for (std::uint32_t slot = 0; slot < layout::kMaxDevices; ++slot) {
      if (auto r = loop_.add(loopback_->device_doorbell_fd(slot), EPOLLIN, [this, slot](std::uint32_t) {
            (void)loopback_->drain_device_doorbell(slot);
            transport_->notify(slot);
          });
          !r) {
        return r;
      }
    }
  }
  // The heartbeat (every kHeartbeatPeriodMs, so at least that often), requests whose doorbell
  // was lost (late by up to one period, never lost), and the polled mode of platforms without a
  // doorbell IRQ. With a doorbell an idle vepf-ep wakes 20 times a second: each wake-up costs
  // about 30 µs of CPU on a 2-vCPU VM.
  const auto period = std::chrono::milliseconds(doorbell >= 0 ? layout::kHeartbeatPeriodMs / 2 : 1);
  if (auto r = loop_.add_timer(period, [this] { on_poll(); }); !r) return tl::unexpected(r.error());
  if (sideband_ && sideband_->has_ready()) {
    if (auto r = sideband_->set_ready(true); !r) {
      log->error("[gpio] ready line: {}", r.error().message);
      return fail(Errc::kSystem, "the ready line could not be driven");
    }
    log->info("[gpio] ready line {} active", cfg_.gpio.ready->chip + " line " + std::to_string(cfg_.gpio.ready->line));
  }
  log->info("EP window {} KiB{}; control socket {}; waiting for the host (epoch {:#010x})", cfg_.link.ep_window_size >> 10,
            loopback_ ? " at " + cfg_.loopback.socket : std::string(), control_->path(), transport_->epoch());
  return {};
}

json EpProgram::list() const {
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

std::string EpProgram::handle_control(std::string_view request) {
  auto error = [](const std::string& what) { return json{{"ok", false}, {"error", what}}.dump(); };
  const json req = json::parse(request, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return error(R"(request must be a JSON object with "op": "list", "add" or "remove")");
  }
  const std::string op = req["op"];
  if (op == "list") return json{{"ok", true}, {"devices", list()}}.dump();
  if (op == "add") {
    if (!req.contains("device") || !req["device"].is_string()) return error(R"("add" needs "device": "<TOML>")");
    const std::uint32_t slot = transport_->first_free_slot().value_or(layout::kMaxDevices);
    auto d = config::parse_device_config(req["device"].get<std::string>(), "ctl add", slot);
    if (!d) return error(d.error().message);
    // A client may name files and programs only where the board config lets it.
    if (auto e = config::check_allowed_dirs(*d, cfg_.control.allowed_dirs, fmt::format("device[{}]", slot))) {
      return error(e->message);
    }
    auto s = add_device(*d);
    if (!s) return error(s.error());
    return json{{"ok", true}, {"slot", *s}}.dump();
  }
  if (op == "remove") {
    if (!req.contains("slot") || !req["slot"].is_number_unsigned()) return error(R"("remove" needs "slot": N)");
    // Read whole: a narrowing read would take slot 2^32 for slot 0.
    const auto wide = req["slot"].get<std::uint64_t>();
    const auto slot = static_cast<std::uint32_t>(wide);
    if (wide >= layout::kMaxDevices || !devices_.count(slot)) {
      return error(fmt::format("no device in slot {}: see `vepf-ep ctl list`", wide));
    }
    transport_->remove_device(slot);
    devices_.erase(slot);
    spdlog::get("ep")->info("slot {}: device removed", slot);
    return json{{"ok", true}}.dump();
  }
  return error("unknown op '" + op + "': use list, add or remove");
}

/// How long a loopback host may stay connected without attaching before the next host that
/// connects takes its place (a host that read a header it could not use, a hung one).
constexpr std::chrono::seconds kUnattachedHost{2};

std::size_t EpProgram::on_peer_waiting() {
  if (loopback_->connected() && !transport_->attached() &&
      std::chrono::steady_clock::now() - host_since_ >= kUnattachedHost) {
    spdlog::get("ep")->warn("the connected host has not attached in {} s: dropping it for the host now connecting",
                            kUnattachedHost.count());
    drop_host();
  }
  return loopback_->connected() ? 1 : 0;
}

void EpProgram::on_peer(os::Fd conn) {
  auto log = spdlog::get("ep");
  if (auto r = loopback_->accept_peer(std::move(conn)); !r) {
    log::limited(peer_log_, log, spdlog::level::warn, "host connection refused: {}", r.error().what);
    return;
  }
  log->info("host connected");
  host_since_ = std::chrono::steady_clock::now();
  (void)loop_.add(loopback_->peer_fd(), EPOLLIN | EPOLLRDHUP, [this, log](std::uint32_t) {
    log->info("host went away: resetting devices");
    drop_host();
  });
}

void EpProgram::drop_host() {
  loop_.remove(loopback_->peer_fd());
  transport_->link_down();
  loopback_->drop_peer();
}

void EpProgram::on_poll() {
  transport_->poll();
  const auto now = std::chrono::steady_clock::now();
  if (now - last_heartbeat_ >= std::chrono::milliseconds(layout::kHeartbeatPeriodMs)) {
    last_heartbeat_ = now;
    transport_->heartbeat();  // one posted write: the host watches it instead of our header
    // Local reads of our own window: whatever a host wrote over what we own is put back.
    if (const std::uint32_t n = transport_->audit()) {
      log::limited(peer_log_, spdlog::get("ep"), spdlog::level::warn,
                   "the host overwrote {} line(s) of the control region that vepf-ep writes: re-published ({} so far)",
                   n, transport_->repairs());
    }
  }
  if (!report_.link_up_marked()) {
    for (const auto& [slot, d] : devices_) {
      if (transport_->status(slot) & VIRTIO_CONFIG_S_DRIVER_OK) report_.mark_link_up(link_->counters());
    }
  }
}

void EpProgram::print_report(spdlog::level::level_enum lvl) {
  std::uint64_t tx = 0, rx = 0;
  for (const auto& [slot, d] : devices_) {
    tx += d->counts().to_driver;
    rx += d->counts().from_driver;
    d->report(slot, lvl);
  }
  spdlog::get("ep")->log(lvl, "{}", report_.format(link_->counters(), tx, rx));
}

int EpProgram::run(int sfd) {
  if (auto r = setup(); !r) {
    if (!link_) return app::kExitFailure;  // open_link() said why, in one line
    spdlog::get("ep")->error("setup failed: {} ({}{})", r.error().what, errc_name(r.error().code),
                             r.error().sys_errno ? std::string(": ") + std::strerror(r.error().sys_errno) : "");
    return app::kExitFailure;
  }
  (void)loop_.add(sfd, EPOLLIN, [this, sfd](std::uint32_t) {
    while (auto sig = os::read_signal(sfd)) {
      if (*sig == 0) break;
      if (*sig == SIGUSR1) {
        print_report(spdlog::level::info);
      } else {
        spdlog::get("ep")->info("signal {}: shutting down", *sig);
        quit_ = true;
      }
    }
  });
  app::Spinner spin(transport_->poll_group(), std::chrono::microseconds(cfg_.link.spin_us));
  while (!quit_) {
    bool backlog = this->backlog();
    if (!backlog) {
      std::uint64_t moved = 0;
      for (const auto& [slot, d] : devices_) moved += d->counts().to_driver + d->counts().from_driver;
      backlog = spin.keep_polling(moved);
    }
    if (backlog) transport_->poll();
    if (auto r = loop_.run_once(backlog ? 0 : 1000); !r) {
      spdlog::get("ep")->error("event loop: {}", r.error().what);
      return app::kExitFailure;
    }
  }
  if (sideband_ && sideband_->has_ready()) (void)sideband_->set_ready(false);  // first: the host stops looking
  for (auto& [slot, d] : devices_) d->shutdown();  // the driver sees link down before the link goes
  if (pci_) {
    // The EP window outlives us (BAR memory): a host must not take it for a serving EP. Every
    // earlier store before the cleared magic; pairs with load_acquire of magic in
    // DriverTransport::validate_header() and vepf-host's wait for the header (host main.cc).
    link_->ep_window().store_release<std::uint32_t>(layout::header_off(offsetof(layout::EpfHeader, magic)), 0);
  }
  print_report(spdlog::level::info);
  return app::kExitOk;
}

/// `vepf-ep ctl ...`: one request to a running vepf-ep, its reply printed. Exit 0 when the
/// reply says ok, 2 when vepf-ep refused the request (bad device spec, no such slot), 1 when
/// vepf-ep could not be reached.
int run_ctl(const config::BoardConfig& cfg, const Options& o, const std::string& op) {
  json req{{"op", op}};
  if (op == "add") {
    std::string toml;
    for (const auto& line : o.ctl_device) toml += line + "\n";
    req["device"] = toml;
  } else if (op == "remove") {
    req["slot"] = o.ctl_slot;
  }
  const std::string path = ctl_path(cfg, o);
  auto reply = ep::control_request(path, req.dump());
  if (!reply) {
    std::fprintf(stderr, "vepf-ep ctl: cannot reach vepf-ep at %s: %s%s%s; is it running with this board config?\n",
                 path.c_str(), reply.error().what, reply.error().sys_errno ? ": " : "",
                 reply.error().sys_errno ? std::strerror(reply.error().sys_errno) : "");
    return app::kExitFailure;
  }
  const json r = json::parse(*reply, nullptr, false);
  if (!r.is_object() || !r.value("ok", false)) {
    std::fprintf(stderr, "vepf-ep ctl %s: %s\n", op.c_str(),
                 r.is_object() ? r.value("error", std::string("malformed reply")).c_str() : "malformed reply");
    return app::kExitUsage;
  }
  std::printf("%s\n", r.dump(2).c_str());
  return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "vepf-ep: the PCIe endpoint side of virtio-epf. Serves virtio devices (net, rpmsg, console, block) behind the\n"
      "virtio-pci-epf register layout in the EP window, for vepf-host on the root complex.\n"
      "Example: vepf-ep --board board-configs/loopback.toml\n"
      "Signals: SIGUSR1 prints the link-model counters; SIGINT/SIGTERM stop cleanly.\n"
      "While it runs, `vepf-ep ctl --board FILE list|add|remove` changes its devices.",
      "vepf-ep"};
  vepf::app::add_common_options(cli, o.common);
  cli.add_option("--ctl-socket", o.ctl_socket, "Control socket path (default: the [loopback] socket + \".ctl\", or /run/vepf/vepf-ep.ctl on PCI platforms)");
  cli.fallthrough();
  auto* ctl = cli.add_subcommand("ctl", "Talk to a running vepf-ep: list, add or remove devices");
  ctl->require_subcommand(1);
  ctl->add_subcommand("list", "Print the device table as JSON");
  auto* add = ctl->add_subcommand("add", "Add a device; give the keys of a [[device]] table as TOML lines, e.g.\n"
                                         "  vepf-ep ctl --board B add 'type = \"net\"' 'net = { mac = \"02:00:00:00:00:02\" }'");
  add->add_option("device", o.ctl_device, "TOML lines of the device")->required();
  auto* rm = ctl->add_subcommand("remove", "Remove the device in a slot");
  rm->add_option("slot", o.ctl_slot, "Slot number (see ctl list)")->required();
  auto cfg = vepf::app::parse_and_load(cli, argc, argv, o.common, {"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console"});
  if (!cfg) return cfg.error();
  if (ctl->parsed()) {
    const std::string op = ctl->get_subcommands().front()->get_name();
    return run_ctl(*cfg, o, op);
  }
  if (const int rc = vepf::app::apply_affinity("vepf-ep", "affinity.ep", cfg->affinity.ep, "ep"); rc != 0) return rc;
  auto rt = vepf::app::make_runtime();
  if (!rt) {
    std::fprintf(stderr, "vepf-ep: cannot set up the event loop: %s\n", std::strerror(rt.error().sys_errno));
    return vepf::app::kExitFailure;
  }
  EpProgram p(*cfg, o, rt->loop);
  return p.run(rt->signals.get());
}
