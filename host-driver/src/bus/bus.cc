// The host bus (bus.hpp): what vepf-host does between its CLI and its exit.
#include "bus/bus.hpp"

#include <linux/virtio_ids.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "drivers/blk/blk_driver.hpp"
#include "drivers/console/console_driver.hpp"
#include "drivers/net/net_driver.hpp"
#include "drivers/rpmsg/rpmsg_driver.hpp"
#include "vepf/app/status.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/rpmsg/relay.hpp"

namespace vepf::host {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string describe(const Error& e) {
  std::string s = fmt::format("{} ({})", e.what, errc_name(e.code));
  if (e.sys_errno) s += fmt::format(": {}", std::strerror(e.sys_errno));
  return s;
}

}  // namespace

Bus::Bus(const config::BoardConfig& cfg, std::unique_ptr<platform::HostLinkSource> source,
         os::EventLoop& loop, Options o)
    : cfg_(cfg), source_(std::move(source)), loop_(loop), o_(o), retry_(o.first_retry) {}

Bus::~Bus() {
  if (state_ == State::kSession) end_session();
  backends_.clear();
}

std::uint32_t Bus::epoch() const noexcept { return transport_ ? transport_->epoch() : 0; }

const Driver* Bus::driver(std::uint32_t slot) const {
  for (const auto& d : drivers_) {
    if (d->slot() == slot) return d.get();
  }
  return nullptr;
}

bool Bus::while_waiting() {
  if (waiting_) return !quit_ && !link_down_;
  waiting_ = true;
  // Signals, TAPs, NBD clients, ptys, rpmsg sockets of the devices already up.
  (void)loop_.run_once(0);
  if (!quit_) {
    for (auto& n : drivers_) n->on_interrupt();  // the wait may have taken their interrupt
  }
  waiting_ = false;
  return !quit_ && !link_down_;
}

bool Bus::connect() {
  // Only what is known: a failed first open of a PCI function is one line, the error.
  if (const auto where = source_->description(); !where.empty()) {
    spdlog::get("host")->info("connecting to {}", where);
  }
  auto l = source_->open(o_.connect_timeout, [this] {
    (void)loop_.run_once(0);  // signals
    return !quit_;
  });
  if (!l) {
    if (!quit_) spdlog::get("host")->error("{}", l.error());
    return false;
  }
  link_ = *l;
  if (sessions_ == 0) spdlog::get("host")->info("reached {}", source_->description());
  return true;
}

std::unique_ptr<Driver> Bus::probe_net(const transport::DeviceInfo& info) {
  auto log = spdlog::get("host.net");
  // Slot n takes device[n]'s host backend; a slot beyond the board config gets a TAP.
  config::Backend bc =
      info.slot < cfg_.devices.size() ? cfg_.devices[info.slot].host : config::Backend{};
  if (bc.kind == config::BackendKind::kTap && bc.ifname.empty())
    bc.ifname = fmt::format("vepf-host{}", info.slot);
  auto& backend = backends_[info.slot];
  // Offloads need a backend that carries the virtio_net_hdr (a TAP, a seqpacket socket with
  // vnet_hdr) and a config that allows them.
  const auto* d = configured(info.slot, config::DeviceType::kNet);
  const bool offloads =
      (d == nullptr || d->net.offloads) &&
      (backend ? backend->carries_offloads() : bc.kind == config::BackendKind::kTap || bc.vnet_hdr);
  auto drv = std::make_unique<NetDriver>(*transport_, info, offloads);
  if (auto r = drv->probe(); !r) {
    log->error("device {}: virtio-net setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  if (!backend) {
    // The host's interface is the virtio NIC: it takes the device's MAC and MTU.
    std::array<std::uint8_t, 6> mac{};
    std::memcpy(mac.data(), drv->net_config().mac, mac.size());
    auto b = bc.kind == config::BackendKind::kTap ? netback::open_tap(bc.ifname, {drv->mtu(), &mac})
                                                  : netback::listen_seqpacket(bc.path, bc.vnet_hdr);
    if (!b) {
      log->error("device {}: cannot set up {}: {}", info.slot,
                 bc.kind == config::BackendKind::kTap ? bc.ifname : bc.path, describe(b.error()));
      return nullptr;
    }
    backend = std::move(*b);
  }
  if (auto r = drv->attach_backend(*backend, loop_); !r) {
    log->error("device {}: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  const auto& m = drv->net_config().mac;
  log->info("device {}: virtio-net up on {}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, mtu {}",
            info.slot, backend->name(), m[0], m[1], m[2], m[3], m[4], m[5], drv->mtu());
  return drv;
}

std::unique_ptr<Driver> Bus::probe_rpmsg(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s runtime_dir when the board config says it is an rpmsg device.
  const auto* d = configured(info.slot, config::DeviceType::kRpmsg);
  std::string dir = d ? d->rpmsg.runtime_dir : fmt::format("/run/vepf/rpmsg{}", info.slot);
  const std::size_t conns = d ? d->rpmsg.max_connections : config::RpmsgConfig{}.max_connections;
  // An application's own router for this slot, else socket channels.
  rpmsg::RouterFactory mine = o_.rpmsg_router ? o_.rpmsg_router(info.slot) : nullptr;
  std::string name = fmt::format("in-process router {}", info.slot);
  if (!mine && d != nullptr && d->rpmsg.host_serve == config::RpmsgServe::kApplication) {
    // Lent to an application: its relay (and the application's connection) outlives re-probes.
    auto& relay = relays_[info.slot];
    if (!relay) relay = std::make_unique<rpmsg::Relay>(dir + "/host", "host.rpmsg", dir);
    mine = relay->attachment();
    name = dir;
  }
  auto drv = mine ? std::make_unique<RpmsgDriver>(*transport_, info, mine, std::move(name), loop_)
                  : std::make_unique<RpmsgDriver>(*transport_, info, std::move(dir), loop_, conns);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.rpmsg")
        ->error("device {}: virtio-rpmsg setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<Driver> Bus::probe_block(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s NBD socket when the board config says it is a block device.
  const auto* d = configured(info.slot, config::DeviceType::kBlock);
  std::string sock = d ? d->block.nbd_socket : fmt::format("/run/vepf/block{}.sock", info.slot);
  const std::size_t clients = d ? d->block.max_nbd_clients : config::BlockConfig{}.max_nbd_clients;
  auto drv = std::make_unique<BlockDriver>(*transport_, info, std::move(sock), loop_, clients);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.blk")
        ->error("device {}: virtio-blk setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<Driver> Bus::probe_console(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s host_dir when the board config says it is a console device.
  const auto* d = configured(info.slot, config::DeviceType::kConsole);
  std::string dir = d ? d->console.host_dir : fmt::format("/run/vepf/console{}", info.slot);
  const std::size_t queued =
      d ? d->console.max_control_queued : config::ConsoleConfig{}.max_control_queued;
  auto drv = std::make_unique<ConsoleDriver>(*transport_, info, std::move(dir), loop_, queued);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.console")
        ->error("device {}: virtio-console setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<Driver> Bus::probe(const transport::DeviceInfo& info) {
  switch (info.device_id) {
    case VIRTIO_ID_NET:
      return probe_net(info);
    case VIRTIO_ID_RPMSG:
      return probe_rpmsg(info);
    case VIRTIO_ID_BLOCK:
      return probe_block(info);
    case VIRTIO_ID_CONSOLE:
      return probe_console(info);
    default:
      if (known_unsupported_.insert(info.slot).second) {
        spdlog::get("host")->warn("device {}: virtio device ID {} has no driver here; left alone",
                                  info.slot, info.device_id);
      }
      return nullptr;
  }
}

Result<void> Bus::bring_up() {
  transport_ =
      std::make_unique<transport::DriverTransport>(*link_, milliseconds(cfg_.link.ack_timeout_ms));
  transport_->set_wait_hook([this] { return while_waiting(); });
  if (auto r = transport_->attach(); !r) return r;
  table_generation_ = transport_->table_generation();
  known_unsupported_.clear();
  reprobe_.clear();
  spdlog::get("host")->info("attached: epoch {:#010x}", transport_->epoch());
  reconcile();
  // Setup's own acks moved the mailbox; what moves it from here on is news.
  mailbox_seen_ = transport_->mailbox_seq();
  report_.mark_link_up(link_->counters());
  return {};
}

// Devices came or went: bring up new slots, tear down emptied or replaced ones.
void Bus::reconcile() {
  auto devs = transport_->scan();
  if (!devs) {
    spdlog::get("host")->error("reading the device table failed: {}", describe(devs.error()));
    return;
  }
  for (auto it = drivers_.begin(); it != drivers_.end();) {
    const auto& n = **it;
    const bool present =
        std::any_of(devs->begin(), devs->end(), [&](const transport::DeviceInfo& d) {
          return d.slot == n.slot() && d.slot_generation == n.info().slot_generation &&
                 d.device_id == n.info().device_id;
        });
    if (present) {
      ++it;
      continue;
    }
    const std::uint32_t slot = n.slot();
    spdlog::get("host")->info("device {}: removed by the EP", slot);
    it = drivers_.erase(it);  // its interface, sockets or pty go with it
    backends_.erase(slot);
  }
  for (const auto& d : *devs) {
    const bool bound = std::any_of(drivers_.begin(), drivers_.end(),
                                   [&](const auto& n) { return n->slot() == d.slot; });
    if (bound) continue;
    if (auto drv = probe(d)) drivers_.push_back(std::move(drv));
  }
}

void Bus::needs_reset(std::uint32_t slot) {
  auto& r = reprobe_[slot];
  const auto now = Clock::now();
  // A device that breaks again soon after its last reset waits longer each time.
  if (r.last_reset != Clock::time_point{} && now - r.last_reset < kReprobeWindow) {
    r.delay = r.delay.count() == 0 ? o_.first_retry : std::min(r.delay * 2, o_.max_retry);
  } else {
    r.delay = milliseconds(0);
  }
  r.last_reset = now;
  r.due = now + r.delay;
  if (r.delay.count() > 0) {
    log::limited(peer_log_, spdlog::get("host"), spdlog::level::warn,
                 "device {}: needs a reset again within {} s: probing it again in {} ms", slot,
                 kReprobeWindow.count(), r.delay.count());
  }
}

void Bus::reprobe_due() {
  const auto now = Clock::now();
  bool any = false;
  for (auto& [slot, r] : reprobe_) any = any || (r.due && *r.due <= now);
  if (!any) return;
  auto devs = transport_->scan();
  if (!devs) return;  // tried again at the next tick
  for (auto& [slot, r] : reprobe_) {
    if (!r.due || *r.due > now) continue;
    r.due.reset();
    if (driver(slot) != nullptr) continue;
    for (const auto& d : *devs) {
      if (d.slot != slot) continue;
      ++reprobes_;
      if (auto drv = probe(d)) drivers_.push_back(std::move(drv));
    }
  }
}

void Bus::on_interrupt() {
  (void)link_->drain_interrupt();
  const std::uint32_t seq = transport_->mailbox_seq();  // a local read
  // During a wait (a probe in progress, maybe of this very news) only the data path runs: the
  // control path looks at the mailbox once the wait is over.
  if (seq != mailbox_seen_ && !waiting_) {
    mailbox_seen_ = seq;
    if (const auto gen = transport_->table_generation(); gen != table_generation_) {
      table_generation_ = gen;
      reconcile();
    }
    for (auto it = drivers_.begin(); it != drivers_.end();) {
      if ((*it)->on_control_event()) {
        ++it;
        continue;
      }
      // DEVICE_NEEDS_RESET: tear the driver down and bring the device up again.
      const std::uint32_t slot = (*it)->slot();
      it = drivers_.erase(it);
      needs_reset(slot);
    }
  }
  if (!waiting_) reprobe_due();
  for (auto& n : drivers_) n->on_interrupt();
}

// Recovers a lost interrupt; costs only local reads. Without interrupts (a platform with no
// doorbell) it is the only way news arrives, so it runs more often. Every heartbeat period
// (100 ms) it also looks at the device's heartbeat in our mailbox (a local read); only when the
// beat stops does it read the EP's header: a restarted or reset vepf-ep shows a new epoch, a
// stopped one no magic (LAYOUT.md §2.6).
void Bus::on_timer() {
  const auto period = link_->interrupt_fd() >= 0 ? layout::kHeartbeatPeriodMs : 2;
  if (++ticks_ * period >= layout::kHeartbeatPeriodMs) {
    ticks_ = 0;
    if (!transport_->still_alive()) {
      spdlog::get("host")->warn("the EP's header changed: vepf-ep stopped or restarted");
      link_down_ = true;
      return;
    }
    for (auto& n : drivers_) n->on_tick();
  }
  on_interrupt();
}

void Bus::start_session() {
  ++sessions_;
  if (o_.on_session) o_.on_session();
  ticks_ = 0;
  if (const int fd = link_->interrupt_fd(); fd >= 0) {
    if (loop_.add(fd, EPOLLIN, [this](std::uint32_t) { on_interrupt(); }))
      session_fds_.push_back(fd);
  }
  if (const int fd = link_->hangup_fd(); fd >= 0) {
    if (loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this](std::uint32_t) { link_down_ = true; }))
      session_fds_.push_back(fd);
  }
  const auto period = milliseconds(link_->interrupt_fd() >= 0 ? layout::kHeartbeatPeriodMs : 2);
  if (auto timer = loop_.add_timer(period, [this] { on_timer(); })) session_fds_.push_back(*timer);
  spin_.emplace(transport_->poll_group(), std::chrono::microseconds(cfg_.link.spin_us));
}

void Bus::end_session() {
  for (int fd : session_fds_) loop_.remove(fd);
  session_fds_.clear();
  for (const auto& n : drivers_) {
    tx_total_ += n->counts().sent;
    rx_total_ += n->counts().received;
  }
  spin_.reset();
  drivers_.clear();
  transport_.reset();
  source_->close();  // loopback: the EP is free for the next host; a PCI function stays open
  link_ = nullptr;
}

bool Bus::session_turn(int max_wait_ms) {
  bool backlog = false;
  std::uint64_t moved = 0;
  for (auto& n : drivers_) {
    moved += n->counts().sent + n->counts().received;
    if (n->backlog()) {
      n->on_interrupt();
      backlog = true;
    }
  }
  if (!backlog && spin_->keep_polling(moved)) {
    for (auto& n : drivers_) n->on_interrupt();
    backlog = true;
  }
  if (auto r = loop_.run_once(backlog ? 0 : max_wait_ms); !r) {
    spdlog::get("host")->error("event loop: {}", r.error().what);
    exit_code_ = app::kExitFailure;
    return false;
  }
  return true;
}

bool Bus::step(int max_wait_ms) {
  auto log = spdlog::get("host");
  switch (state_) {
    case State::kDone:
      return false;
    case State::kConnect: {
      if (quit_ || !connect()) {
        exit_code_ = quit_ ? app::kExitOk : app::kExitFailure;
        state_ = State::kDone;
        return false;
      }
      link_down_ = false;  // the last session's end; the wait hook gives up on a link that is down
      if (auto r = bring_up(); !r) {
        if (!quit_)
          log::limited(peer_log_, log, spdlog::level::err, "bringing up the link failed: {}",
                       describe(r.error()));
        end_session();  // the EP takes the next host (us, after a pause) only once this one is gone
        if (quit_ || o_.once) {
          exit_code_ = quit_ ? app::kExitOk : app::kExitFailure;
          state_ = State::kDone;
          return false;
        }
        retry_at_ = Clock::now() + retry_;
        retry_ = std::min(retry_ * 2, o_.max_retry);
        state_ = State::kRetryWait;
        return true;
      }
      start_session();
      state_ = State::kSession;
      return true;
    }
    case State::kRetryWait: {
      const auto left = std::chrono::duration_cast<milliseconds>(retry_at_ - Clock::now()).count();
      if (left > 0) (void)loop_.run_once(static_cast<int>(std::min<long long>(left, max_wait_ms)));
      if (quit_) {
        state_ = State::kDone;
        exit_code_ = app::kExitOk;
        return false;
      }
      if (Clock::now() >= retry_at_) state_ = State::kConnect;
      return true;
    }
    case State::kSession: {
      if (!quit_ && !link_down_ && session_turn(max_wait_ms)) return true;
      const bool failed = exit_code_ != app::kExitOk;
      print_report(spdlog::level::info);
      end_session();
      retry_ = o_.first_retry;
      if (quit_ || failed || o_.once) {
        if (!quit_ && o_.once) exit_code_ = app::kExitFailure;
        state_ = State::kDone;
        return false;
      }
      log->warn("link down: waiting for the EP to come back");
      state_ = State::kConnect;
      return true;
    }
  }
  return false;
}

int Bus::run() {
  while (step(1000)) {
  }
  return exit_code_;
}

std::string control_socket_path(const config::BoardConfig& cfg, const std::string& override_path) {
  if (!override_path.empty()) return override_path;
  return cfg.platform == config::Platform::kLoopback ? cfg.loopback.socket + ".host.ctl"
                                                     : "/run/vepf/vepf-host.ctl";
}

nlohmann::json Bus::status() const {
  using nlohmann::json;
  json devs = json::array();
  for (const auto& d : drivers_) {
    json queues = json::array();
    for (const QueueState& q : d->queue_states()) {
      queues.push_back(json{
          {"index", q.index}, {"size", q.size}, {"in_flight", q.in_flight}, {"broken", q.broken}});
    }
    json counters = json::object();
    for (const auto& [name, value] : d->counters()) counters[name] = value;
    devs.push_back(json{{"slot", d->slot()},
                        {"type", app::device_type_name(d->info().device_id)},
                        {"driver_ok", d->running()},
                        {"needs_reset", false},  // such a driver is dropped and probed again
                        {"features", fmt::format("{:#x}", d->features())},
                        {"feature_names", app::feature_names(d->info().device_id, d->features())},
                        {"queues", std::move(queues)},
                        {"counters", std::move(counters)}});
  }
  const bool up = state_ == State::kSession;
  return json{
      {"program", "vepf-host"},
      {"board", cfg_.name},
      {"platform", config::to_string(cfg_.platform)},
      {"link",
       {{"state", up ? "attached" : "waiting"},
        {"epoch", fmt::format("{:#010x}", up ? epoch() : 0u)},
        {"where", source_->description()},
        {"sessions", sessions_},
        {"reprobes", reprobes_}}},
      {"link_model", app::link_model_json(link_ ? link_->counters() : ring::LinkCounters{})},
      {"devices", std::move(devs)}};
}

std::string Bus::handle_control(std::string_view request) const {
  using nlohmann::json;
  const json req = json::parse(request, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return json{{"ok", false}, {"error", R"(request must be a JSON object with "op": "status")"}}
        .dump();
  }
  const std::string op = req["op"];
  if (op == "status") return json{{"ok", true}, {"status", status()}}.dump();
  return json{{"ok", false}, {"error", "unknown op '" + op + "': vepf-host answers status"}}.dump();
}

void Bus::print_report(spdlog::level::level_enum lvl) {
  std::uint64_t tx = tx_total_, rx = rx_total_;
  for (const auto& n : drivers_) {
    tx += n->counts().sent;
    rx += n->counts().received;
    n->report(lvl);
  }
  if (link_) spdlog::get("host")->log(lvl, "{}", report_.format(link_->counters(), tx, rx));
}

}  // namespace vepf::host
