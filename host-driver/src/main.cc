// vepf-host: the RC side. Attaches to the EP's virtio-pci-epf layout, drives every device in its
// device table, and hands each to the host OS (net: a TAP interface). Survives an EP restart:
// when the link goes down it waits for the EP to come back. main() only wires.

#include <linux/virtio_ids.h>
#include <poll.h>
#include <sys/epoll.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <set>
#include <thread>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "drivers/blk/blk_driver.hpp"
#include "drivers/net/net_driver.hpp"
#include "drivers/console/console_driver.hpp"
#include "drivers/rpmsg/rpmsg_driver.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"
#include "vepf/app/spin.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/platform/loopback.hpp"
#include "vepf/platform/pci.hpp"
#include "vepf/platform/window_memory.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace {

using namespace vepf;
using std::chrono::milliseconds;

struct Options {
  app::CommonOptions common;
  unsigned connect_timeout_ms = 30000;
  bool once = false;
};

std::string describe(const Error& e) {
  std::string s = fmt::format("{} ({})", e.what, errc_name(e.code));
  if (e.sys_errno) s += fmt::format(": {}", std::strerror(e.sys_errno));
  return s;
}

class HostProgram {
 public:
  HostProgram(const config::BoardConfig& cfg, const Options& o, os::EventLoop& loop, int sfd)
      : cfg_(cfg), o_(o), loop_(loop), sfd_(sfd), report_("vepf-host") {}
  int run();

 private:
  enum class End { kQuit, kLinkDown, kFailed };
  bool connect();
  bool connect_loopback();
  bool connect_pci();
  int interrupt_fd() const { return loopback_ ? loopback_->interrupt_fd() : pci_->interrupt_fd(); }
  void drain_interrupt() { (void)(loopback_ ? loopback_->drain_interrupt() : pci_->drain_interrupt()); }
  End session();
  /// Drops the session's drivers, transport and loopback connection (the EP is free for the
  /// next host); the PCI function stays open.
  void end_session();
  Result<void> bring_up();
  /// Creates, probes and hands to the host OS the driver for one device; nullptr when the
  /// device has no driver here or its setup failed (logged).
  std::unique_ptr<host::Driver> probe(const transport::DeviceInfo& info);
  std::unique_ptr<host::Driver> probe_net(const transport::DeviceInfo& info);
  std::unique_ptr<host::Driver> probe_rpmsg(const transport::DeviceInfo& info);
  std::unique_ptr<host::Driver> probe_block(const transport::DeviceInfo& info);
  std::unique_ptr<host::Driver> probe_console(const transport::DeviceInfo& info);
  /// device[slot] of the board config when it has type `t`.
  const config::DeviceConfig* configured(std::uint32_t slot, config::DeviceType t) const {
    return slot < cfg_.devices.size() && cfg_.devices[slot].type == t ? &cfg_.devices[slot] : nullptr;
  }
  void reconcile();
  void on_interrupt();
  /// The transport's wait hook: while a request waits for the EP's ack (a probe), the other
  /// devices keep moving data and signals are seen. False once the program stops or the link
  /// went down: the wait is given up.
  bool while_waiting();
  void check_signals();
  /// Sleeps up to `d`, waking early for a signal. False when the program is to stop.
  bool pause(std::chrono::milliseconds d);
  void print_report(spdlog::level::level_enum lvl);

  const config::BoardConfig& cfg_;
  const Options& o_;
  os::EventLoop& loop_;
  int sfd_;
  std::unique_ptr<platform::LoopbackHost> loopback_;  // board.platform = "loopback"
  std::unique_ptr<platform::PciHost> pci_;            // every other platform: VFIO
  transport::DriverLink* link_ = nullptr;             // the one of the two in use
  std::unique_ptr<transport::DriverTransport> transport_;
  std::vector<std::unique_ptr<host::Driver>> drivers_;
  std::map<std::uint32_t, std::unique_ptr<netback::FrameBackend>> backends_;  // by slot; outlive sessions
  std::uint32_t mailbox_seen_ = 0;
  std::uint32_t table_generation_ = 0;
  std::set<std::uint32_t> known_unsupported_;  // slots already reported as having no driver
  app::LinkReport report_;
  std::uint64_t tx_total_ = 0, rx_total_ = 0;  // frames of ended sessions
  log::Limit peer_log_;  // what the EP can make us say again and again: failed attaches
  bool quit_ = false, link_down_ = false;
  bool waiting_ = false;  // inside while_waiting(): the control path waits for the outer wait
};

bool HostProgram::while_waiting() {
  if (waiting_) return !quit_ && !link_down_;
  waiting_ = true;
  check_signals();
  if (!quit_) {
    (void)loop_.run_once(0);  // TAPs, NBD clients, ptys, rpmsg sockets of the devices already up
    for (auto& n : drivers_) n->on_interrupt();  // the wait may have taken their interrupt
  }
  waiting_ = false;
  return !quit_ && !link_down_;
}

bool HostProgram::pause(std::chrono::milliseconds d) {
  pollfd p{sfd_, POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(d.count()));
  check_signals();
  return !quit_;
}

void HostProgram::check_signals() {
  while (auto sig = os::read_signal(sfd_)) {
    if (*sig == 0) break;
    if (*sig == SIGUSR1) {
      print_report(spdlog::level::info);
    } else {
      spdlog::get("host")->info("signal {}: shutting down", *sig);
      quit_ = true;
    }
  }
}

bool HostProgram::connect() { return cfg_.platform == config::Platform::kLoopback ? connect_loopback() : connect_pci(); }

bool HostProgram::connect_loopback() {
  auto log = spdlog::get("host");
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(o_.connect_timeout_ms);
  log->info("connecting to the EP at {}", cfg_.loopback.socket);
  while (!quit_) {
    auto l = platform::LoopbackHost::connect(cfg_.loopback.socket, cfg_.link.rc_window_size, milliseconds(500),
                                             platform::memory_access(cfg_.loopback.memory, ring::MemoryType::kCached));
    if (l) {
      loopback_ = std::move(*l);
      link_ = loopback_.get();
      return true;
    }
    // kLinkDown: we reached an EP that was just going away (a restart); try again.
    const bool retry = l.error().code == Errc::kTimeout || l.error().code == Errc::kLinkDown;
    if (!retry || std::chrono::steady_clock::now() >= deadline) {
      log->error("cannot reach the EP at {}: {}; is vepf-ep running with the same board config?",
                 cfg_.loopback.socket, describe(l.error()));
      return false;
    }
    check_signals();
    if (l.error().code == Errc::kLinkDown) std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

// The function is opened once; the EP's control region then shows whether vepf-ep serves it.
bool HostProgram::connect_pci() {
  auto log = spdlog::get("host");
  if (!pci_) {
    auto parts = platform::open_vfio(cfg_.host, cfg_.link, platform::PciRole::kHost, vfio::find_function);
    if (!parts) {
      log->error("cannot use the EP function: {}", parts.error());
      return false;
    }
    pci_ = std::make_unique<platform::PciHost>(std::move(*parts));
    link_ = pci_.get();
    log->info("EP function: {}", pci_->description());
  }
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(o_.connect_timeout_ms);
  const auto magic_off = layout::header_off(offsetof(layout::EpfHeader, magic));
  bool said = false;
  while (!quit_) {
    // Pairs with store_release of magic in DeviceTransport::init().
    if (link_->ep_window().load_acquire<std::uint32_t>(magic_off) == layout::kEpfMagic) return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      log->error("the EP window shows no virtio-pci-epf header after {} ms: is vepf-ep running on the EP with this board?",
                 o_.connect_timeout_ms);
      return false;
    }
    if (!said) log->info("waiting for vepf-ep to serve the EP window");
    said = true;
    check_signals();
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

std::unique_ptr<host::Driver> HostProgram::probe_net(const transport::DeviceInfo& info) {
  auto log = spdlog::get("host.net");
  // Slot n takes device[n]'s host backend; a slot beyond the board config gets a TAP.
  config::Backend bc = info.slot < cfg_.devices.size() ? cfg_.devices[info.slot].host : config::Backend{};
  if (bc.kind == config::BackendKind::kTap && bc.ifname.empty()) bc.ifname = fmt::format("vepf-host{}", info.slot);
  auto& backend = backends_[info.slot];
  // Offloads need a backend that carries the virtio_net_hdr (a TAP, a seqpacket socket with
  // vnet_hdr) and a config that allows them.
  const auto* d = configured(info.slot, config::DeviceType::kNet);
  const bool offloads = (d == nullptr || d->net.offloads) &&
                        (backend ? backend->carries_offloads() : bc.kind == config::BackendKind::kTap || bc.vnet_hdr);
  auto drv = std::make_unique<host::NetDriver>(*transport_, info, offloads);
  if (auto r = drv->probe(); !r) {
    log->error("device {}: virtio-net setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  if (!backend) {
    // The host's interface is the virtio NIC: it takes the device's MAC and MTU.
    std::array<std::uint8_t, 6> mac;
    std::memcpy(mac.data(), drv->net_config().mac, mac.size());
    auto b = netback::make_backend(bc, {drv->mtu(), &mac});
    if (!b) {
      log->error("device {}: cannot set up {}: {}", info.slot, bc.kind == config::BackendKind::kTap ? bc.ifname : bc.path,
                 describe(b.error()));
      return nullptr;
    }
    backend = std::move(*b);
  }
  if (auto r = drv->attach_backend(*backend, loop_); !r) {
    log->error("device {}: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  const auto& m = drv->net_config().mac;
  log->info("device {}: virtio-net up on {}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, mtu {}", info.slot,
            backend->name(), m[0], m[1], m[2], m[3], m[4], m[5], drv->mtu());
  return drv;
}

std::unique_ptr<host::Driver> HostProgram::probe_rpmsg(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s runtime_dir when the board config says it is an rpmsg device.
  const auto* d = configured(info.slot, config::DeviceType::kRpmsg);
  std::string dir = d ? d->rpmsg.runtime_dir : fmt::format("/run/vepf/rpmsg{}", info.slot);
  const std::size_t conns = d ? d->rpmsg.max_connections : config::RpmsgConfig{}.max_connections;
  auto drv = std::make_unique<host::RpmsgDriver>(*transport_, info, std::move(dir), loop_, conns);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.rpmsg")->error("device {}: virtio-rpmsg setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<host::Driver> HostProgram::probe_block(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s NBD socket when the board config says it is a block device.
  const auto* d = configured(info.slot, config::DeviceType::kBlock);
  std::string sock = d ? d->block.nbd_socket : fmt::format("/run/vepf/block{}.sock", info.slot);
  const std::size_t clients = d ? d->block.max_nbd_clients : config::BlockConfig{}.max_nbd_clients;
  auto drv = std::make_unique<host::BlockDriver>(*transport_, info, std::move(sock), loop_, clients);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.blk")->error("device {}: virtio-blk setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<host::Driver> HostProgram::probe_console(const transport::DeviceInfo& info) {
  // Slot n takes device[n]'s host_dir when the board config says it is a console device.
  const auto* d = configured(info.slot, config::DeviceType::kConsole);
  std::string dir = d ? d->console.host_dir : fmt::format("/run/vepf/console{}", info.slot);
  auto drv = std::make_unique<host::ConsoleDriver>(*transport_, info, std::move(dir), loop_);
  if (auto r = drv->probe(); !r) {
    spdlog::get("host.console")->error("device {}: virtio-console setup failed: {}", info.slot, describe(r.error()));
    return nullptr;
  }
  return drv;
}

std::unique_ptr<host::Driver> HostProgram::probe(const transport::DeviceInfo& info) {
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
        spdlog::get("host")->warn("device {}: virtio device ID {} has no driver here; left alone", info.slot,
                                  info.device_id);
      }
      return nullptr;
  }
}

Result<void> HostProgram::bring_up() {
  transport_ = std::make_unique<transport::DriverTransport>(*link_, milliseconds(cfg_.link.ack_timeout_ms));
  transport_->set_wait_hook([this] { return while_waiting(); });
  if (auto r = transport_->attach(); !r) return r;
  table_generation_ = transport_->table_generation();
  known_unsupported_.clear();
  spdlog::get("host")->info("attached: epoch {:#010x}", transport_->epoch());
  reconcile();
  // Setup's own acks moved the mailbox; what moves it from here on is news.
  mailbox_seen_ = transport_->mailbox_seq();
  report_.mark_link_up(link_->counters());
  return {};
}

// Devices came or went: bring up new slots, tear down emptied or replaced ones.
void HostProgram::reconcile() {
  auto devs = transport_->scan();
  if (!devs) {
    spdlog::get("host")->error("reading the device table failed: {}", describe(devs.error()));
    return;
  }
  for (auto it = drivers_.begin(); it != drivers_.end();) {
    const auto& n = **it;
    const bool present = std::any_of(devs->begin(), devs->end(), [&](const transport::DeviceInfo& d) {
      return d.slot == n.slot() && d.slot_generation == n.info().slot_generation && d.device_id == n.info().device_id;
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
    const bool bound = std::any_of(drivers_.begin(), drivers_.end(), [&](const auto& n) { return n->slot() == d.slot; });
    if (bound) continue;
    if (auto drv = probe(d)) drivers_.push_back(std::move(drv));
  }
}

void HostProgram::on_interrupt() {
  drain_interrupt();
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
      if (auto devs = transport_->scan(); devs) {
        for (const auto& d : *devs) {
          if (d.slot != slot) continue;
          if (auto drv = probe(d)) drivers_.push_back(std::move(drv));
        }
      }
      break;
    }
  }
  for (auto& n : drivers_) n->on_interrupt();
}

HostProgram::End HostProgram::session() {
  auto log = spdlog::get("host");
  link_down_ = false;  // the last session's end; the wait hook gives up on a link that is down
  if (auto r = bring_up(); !r) {
    if (!quit_) log::limited(peer_log_, log, spdlog::level::err, "bringing up the link failed: {}", describe(r.error()));
    end_session();  // the EP takes the next host (us, after a pause) only once this one is gone
    return quit_ ? End::kQuit : End::kFailed;
  }
  std::vector<int> fds;
  if (interrupt_fd() >= 0) {
    fds.push_back(interrupt_fd());
    (void)loop_.add(interrupt_fd(), EPOLLIN, [this](std::uint32_t) { on_interrupt(); });
  }
  if (loopback_) {
    fds.push_back(loopback_->peer_fd());
    (void)loop_.add(loopback_->peer_fd(), EPOLLIN | EPOLLRDHUP, [this](std::uint32_t) { link_down_ = true; });
  }
  // Recovers a lost interrupt; costs only local reads. Without interrupts (a PCI platform with
  // no doorbell) it is the only way news arrives, so it runs more often. Every heartbeat period
  // (100 ms) it also looks at the device's heartbeat in our mailbox (a local read); only when
  // the beat stops does it read the EP's header: a restarted or reset vepf-ep shows a new epoch,
  // a stopped one no magic (LAYOUT.md §2.6).
  const auto period = interrupt_fd() >= 0 ? milliseconds(layout::kHeartbeatPeriodMs) : milliseconds(2);
  unsigned ticks = 0;
  auto timer = loop_.add_timer(period, [this, &ticks, period] {
    if (++ticks * period.count() >= layout::kHeartbeatPeriodMs) {
      ticks = 0;
      if (!transport_->still_alive()) {
        spdlog::get("host")->warn("the EP's header changed: vepf-ep stopped or restarted");
        link_down_ = true;
        return;
      }
      for (auto& n : drivers_) n->on_tick();
    }
    on_interrupt();
  });
  if (timer) fds.push_back(*timer);
  app::Spinner spin(transport_->poll_group(), std::chrono::microseconds(cfg_.link.spin_us));
  while (!quit_ && !link_down_) {
    bool backlog = false;
    std::uint64_t moved = 0;
    for (auto& n : drivers_) {
      moved += n->counts().sent + n->counts().received;
      if (n->backlog()) {
        n->on_interrupt();
        backlog = true;
      }
    }
    if (!backlog && spin.keep_polling(moved)) {
      for (auto& n : drivers_) n->on_interrupt();
      backlog = true;
    }
    if (auto r = loop_.run_once(backlog ? 0 : 1000); !r) {
      log->error("event loop: {}", r.error().what);
      quit_ = true;
    }
  }
  for (int fd : fds) loop_.remove(fd);
  print_report(spdlog::level::info);
  for (const auto& n : drivers_) {
    tx_total_ += n->counts().sent;
    rx_total_ += n->counts().received;
  }
  end_session();
  return quit_ ? End::kQuit : End::kLinkDown;
}

void HostProgram::end_session() {
  drivers_.clear();
  transport_.reset();
  loopback_.reset();  // the PCI function stays open for the next session
  if (!pci_) link_ = nullptr;
}

void HostProgram::print_report(spdlog::level::level_enum lvl) {
  std::uint64_t tx = tx_total_, rx = rx_total_;
  for (const auto& n : drivers_) {
    tx += n->counts().sent;
    rx += n->counts().received;
    n->report(lvl);
  }
  if (link_) spdlog::get("host")->log(lvl, "{}", report_.format(link_->counters(), tx, rx));
}

int HostProgram::run() {
  (void)loop_.add(sfd_, EPOLLIN, [this](std::uint32_t) { check_signals(); });
  // After a failed attach (an EP whose header we could not use, one that did not answer) we
  // wait before trying again, longer each time up to kMaxRetry; a session that ran resets it.
  constexpr milliseconds kFirstRetry{50}, kMaxRetry{2000};
  milliseconds retry = kFirstRetry;
  for (;;) {
    if (!connect()) return quit_ ? app::kExitOk : app::kExitFailure;
    const End end = session();
    if (end == End::kQuit || quit_) return app::kExitOk;
    if (o_.once) return app::kExitFailure;
    if (end == End::kFailed) {
      if (!pause(retry)) return app::kExitOk;
      retry = std::min(retry * 2, kMaxRetry);
      continue;
    }
    retry = kFirstRetry;
    spdlog::get("host")->warn("link down: waiting for the EP to come back");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "vepf-host: the root-complex side of virtio-epf. Attaches to the EP's virtio-pci-epf layout\n"
      "and drives its virtio devices; each virtio-net device becomes a TAP interface with the\n"
      "device's MAC and MTU; each virtio-rpmsg device's channels become unix sockets; each\n"
      "virtio-console port a pty (linked in the device's host_dir); each virtio-blk device an NBD export.\n"
      "Example: vepf-host --board board-configs/loopback.toml\n"
      "Signals: SIGUSR1 prints the link-model counters; SIGINT/SIGTERM stop cleanly.",
      "vepf-host"};
  vepf::app::add_common_options(cli, o.common);
  cli.add_option("--connect-timeout-ms", o.connect_timeout_ms, "How long to wait for the EP to appear")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600000u));
  cli.add_flag("--once", o.once, "Exit (status 1) when the link goes down instead of waiting for the EP");
  auto cfg = vepf::app::parse_and_load(cli, argc, argv, o.common, {"host", "host.net", "host.rpmsg", "host.blk", "host.console"});
  if (!cfg) return cfg.error();
  if (const int rc = vepf::app::apply_affinity("vepf-host", "affinity.host", cfg->affinity.host, "host"); rc != 0) {
    return rc;
  }
  auto rt = vepf::app::make_runtime();
  if (!rt) {
    std::fprintf(stderr, "vepf-host: cannot set up the event loop: %s\n", std::strerror(rt.error().sys_errno));
    return vepf::app::kExitFailure;
  }
  HostProgram p(*cfg, o, rt->loop, rt->signals.get());
  return p.run();
}
