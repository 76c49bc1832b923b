#pragma once
// vepf-host as a library: the host "bus" that reaches the EP through a HostLinkSource, attaches
// to its control region, probes a driver for every device in the device table, follows hot-plug,
// probes a device again after DEVICE_NEEDS_RESET (VIRTIO 1.2 §2.1.2), and attaches again when
// the EP stops or restarts (a new epoch, LAYOUT.md §2.6). vepf-host's main() only turns the CLI
// and the board config into one of these; tests run it in-process over fake links.
//
// Threading: everything runs on the thread that calls step() or run(), from callbacks of the
// os::EventLoop it was given (shared with the drivers' TAPs, sockets and ptys).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>
#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/spin.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/rpmsg/relay.hpp"
#include "vepf/rpmsg/router.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

/// After a failed attach (an EP whose header we could not use, one that did not answer) the bus
/// waits before trying again, twice as long each time from kFirstRetry up to kMaxRetry; a
/// session that ran starts over at kFirstRetry.
inline constexpr std::chrono::milliseconds kFirstRetry{50};
inline constexpr std::chrono::milliseconds kMaxRetry{2000};
/// A device that needs a reset again within kReprobeWindow of its last reset is probed again
/// only after a wait (Options::first_retry, doubling up to Options::max_retry): a device that
/// breaks at once on every probe costs a few probes a second, not a busy loop.
inline constexpr std::chrono::seconds kReprobeWindow{10};

/// vepf-host's control socket (`vepf-host status`): `override_path` when set, else the loopback
/// socket + ".host.ctl", or /run/vepf/vepf-host.ctl on PCI platforms.
std::string control_socket_path(const config::BoardConfig& cfg, const std::string& override_path);

class Bus {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{30000};  // how long to wait for the EP each time
    bool once = false;                                 // give up (exit 1) when the link goes down
    std::chrono::milliseconds first_retry = kFirstRetry;  // back-off of attaches and re-probes
    std::chrono::milliseconds max_retry = kMaxRetry;
    /// For an application that links the library: the Router for the rpmsg device in `slot`
    /// (e.g. rpmsg::Endpoints), or an empty factory for the socket channels of the board config.
    /// Called at each probe of the slot (a new attach, a probe after NEEDS_RESET).
    std::function<rpmsg::RouterFactory(std::uint32_t slot)> rpmsg_router;
    /// Called when a session starts (the EP attached), before the devices are probed.
    std::function<void()> on_session;
  };
  enum class State { kConnect, kSession, kRetryWait, kDone };

  /// `cfg` must outlive the bus.
  Bus(const config::BoardConfig& cfg, std::unique_ptr<platform::HostLinkSource> source,
      os::EventLoop& loop, Options o);
  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  /// The whole life cycle: step() until the bus is done. Returns the program's exit code
  /// (app::kExitOk after stop(), app::kExitFailure when the EP could not be reached or, with
  /// `once`, the link went down).
  int run();
  /// One step: in kConnect, reach the EP (blocking up to connect_timeout) and attach; in
  /// kSession, one loop turn (polling while a driver has work or the spin budget runs, else
  /// waiting up to `max_wait_ms`); in kRetryWait, wait up to `max_wait_ms` for the retry time.
  /// Returns false once the bus is done.
  bool step(int max_wait_ms);
  /// Asks the bus to stop (from a signal's callback): the session ends at the next step.
  void stop() noexcept { quit_ = true; }

  State state() const noexcept { return state_; }
  int exit_code() const noexcept { return exit_code_; }
  /// Sessions attached so far (the first attach and every re-attach).
  std::uint64_t sessions() const noexcept { return sessions_; }
  /// The EP's epoch of the current session (0 outside a session).
  std::uint32_t epoch() const noexcept;
  /// The driver bound to `slot`, if any.
  const Driver* driver(std::uint32_t slot) const;
  std::size_t driver_count() const noexcept { return drivers_.size(); }
  /// Devices probed again after DEVICE_NEEDS_RESET, so far.
  std::uint64_t reprobes() const noexcept { return reprobes_; }
  /// Logs the drivers' statistics and the link-model report at `lvl`.
  void print_report(spdlog::level::level_enum lvl);
  /// `vepf-host status`: the link, the link-model counters and every driver with its device's
  /// negotiated features, queues and counters (the document of vepf/app/status.hpp). Reads
  /// nothing across the link.
  nlohmann::json status() const;
  /// One request of vepf-host's control socket ({"op": "status"}) and its reply.
  std::string handle_control(std::string_view request) const;

 private:
  bool connect();
  Result<void> bring_up();
  void start_session();
  void end_session();
  std::unique_ptr<Driver> probe(const transport::DeviceInfo& info);
  std::unique_ptr<Driver> probe_net(const transport::DeviceInfo& info);
  std::unique_ptr<Driver> probe_rpmsg(const transport::DeviceInfo& info);
  std::unique_ptr<Driver> probe_block(const transport::DeviceInfo& info);
  std::unique_ptr<Driver> probe_console(const transport::DeviceInfo& info);
  const config::DeviceConfig* configured(std::uint32_t slot, config::DeviceType t) const {
    return slot < cfg_.devices.size() && cfg_.devices[slot].type == t ? &cfg_.devices[slot]
                                                                      : nullptr;
  }
  void reconcile();
  void on_interrupt();
  void on_timer();
  /// A driver saw DEVICE_NEEDS_RESET: drops it and schedules its probe (at once, or after the
  /// back-off when it broke again soon after the last one).
  void needs_reset(std::uint32_t slot);
  void reprobe_due();
  bool while_waiting();
  bool session_turn(int max_wait_ms);

  struct Reprobe {
    std::chrono::steady_clock::time_point last_reset{};
    std::chrono::milliseconds delay{0};
    std::optional<std::chrono::steady_clock::time_point> due;  // set while a probe is pending
  };

  const config::BoardConfig& cfg_;
  std::unique_ptr<platform::HostLinkSource> source_;
  os::EventLoop& loop_;
  Options o_;
  State state_ = State::kConnect;
  int exit_code_ = app::kExitOk;
  transport::DriverLink* link_ = nullptr;
  std::unique_ptr<transport::DriverTransport> transport_;
  std::vector<std::unique_ptr<Driver>> drivers_;
  std::map<std::uint32_t, std::unique_ptr<netback::FrameBackend>>
      backends_;                                                   // by slot; outlive sessions
  std::map<std::uint32_t, Reprobe> reprobe_;                       // by slot
  std::map<std::uint32_t, std::unique_ptr<rpmsg::Relay>> relays_;  // by slot; outlive sessions
  std::optional<app::Spinner> spin_;
  std::vector<int> session_fds_;  // registered with the loop for the session
  std::uint32_t mailbox_seen_ = 0;
  std::uint32_t table_generation_ = 0;
  std::set<std::uint32_t> known_unsupported_;  // slots already reported as having no driver
  app::LinkReport report_{"vepf-host"};
  std::uint64_t tx_total_ = 0, rx_total_ = 0;  // units of ended sessions
  std::uint64_t sessions_ = 0, reprobes_ = 0;
  std::chrono::milliseconds retry_;
  std::chrono::steady_clock::time_point retry_at_{};
  unsigned ticks_ = 0;
  log::Limit peer_log_;  // what the EP can make us say again and again: failed attaches
  bool quit_ = false, link_down_ = false;
  bool waiting_ = false;  // inside while_waiting(): the control path waits for the outer wait
};

}  // namespace vepf::host
