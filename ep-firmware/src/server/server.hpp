#pragma once
// vepf-ep as a library: the EP "server" that owns the link, the device table, hot-plug, the
// control socket and the GPIO sideband. vepf-ep's main() only turns the CLI and the board config
// into one of these and runs it; tests run it in-process over fake links.
//
// Threading: everything runs on the thread that calls start() and run_once(), from callbacks of
// the os::EventLoop it was given (shared with the devices).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>
#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "devices/device.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/control_server.hpp"
#include "vepf/app/spin.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/error.hpp"
#include "vepf/gpio/gpio.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/rpmsg/router.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

/// Where `vepf-ep ctl` finds vepf-ep on PCI platforms without --ctl-socket.
inline constexpr const char* kPciCtlSocket = "/run/vepf/vepf-ep.ctl";

/// The control socket of `cfg` unless `override_path` names one: the [loopback] socket +
/// ".ctl", or kPciCtlSocket.
std::string control_socket_path(const config::BoardConfig& cfg, const std::string& override_path);

/// How long a loopback host may stay connected without attaching before the next host that
/// connects takes its place (a host that read a header it could not use, a hung one).
inline constexpr std::chrono::seconds kUnattachedHost{2};

class Server {
 public:
  struct Options {
    std::string control_socket;  // path of the control socket; empty: none
    /// For an application that links the library: the Router for the rpmsg device of board
    /// config [[device]] `index` (e.g. rpmsg::Endpoints::attachment()), or an empty factory for
    /// the socket channels its config names. Called once per rpmsg device at start().
    std::function<rpmsg::RouterFactory(std::uint32_t index)> rpmsg_router;
  };

  /// `cfg` must outlive the server. `chips`: the GPIO chips for [gpio] (null: libgpiod's,
  /// opened only when the config names a line; tests pass gpio::FakeChips).
  Server(const config::BoardConfig& cfg, platform::EpLink link, os::EventLoop& loop, Options o,
         std::unique_ptr<gpio::Chips> chips = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Publishes the control region under a new epoch, creates the board config's devices, opens
  /// the control socket and the GPIO lines and registers everything with the loop. Logs what
  /// failed (naming the config field) before returning the error.
  [[nodiscard]] Result<void> start();
  /// One turn: polls the rings while a device has work left or the spin budget ([link] spin_us)
  /// runs, else waits up to `max_wait_ms` in the event loop. Errors: those of EventLoop.
  [[nodiscard]] Result<void> run_once(int max_wait_ms);
  /// Stops serving: the ready line drops, every device tells its driver (link down), and on a
  /// window that outlives us the header's magic is cleared. Idempotent; the destructor calls it.
  void stop();

  /// Creates a device from its config (a board-config [[device]] table) in the first free slot.
  /// Errors: one line saying what failed (backend, file, table full).
  tl::expected<std::uint32_t, std::string> add_device(const config::DeviceConfig& d);
  /// Puts a device built elsewhere (an application's, through the library) in the first free
  /// slot. The server owns it from here on. Errors: as add_device().
  tl::expected<std::uint32_t, std::string> add_device(std::unique_ptr<Device> dev);
  /// Removes the device in `slot`; false when the slot is empty.
  bool remove_device(std::uint32_t slot);
  /// Resets every device under a new epoch (the GPIO reset line does this).
  void reset_all();
  /// One request of the control protocol (JSON: list, status, add, remove) and its reply.
  std::string handle_control(std::string_view request);
  /// The device table as `vepf-ep ctl list` prints it.
  nlohmann::json list() const;
  /// `vepf-ep status`: the link, the link-model counters and every device with its negotiated
  /// features, queues and counters (the document of vepf/app/status.hpp).
  nlohmann::json status() const;
  /// Logs the devices' statistics and the link-model report at `lvl`.
  void print_report(spdlog::level::level_enum lvl);

  transport::DeviceTransport& transport() noexcept { return *transport_; }
  transport::DeviceLink& link() noexcept { return *link_.link; }
  Device* device(std::uint32_t slot) const;
  const std::string& control_path() const noexcept;

 private:
  using Made = tl::expected<std::unique_ptr<Device>, std::string>;
  Made make_net(const config::DeviceConfig& d);
  Made make_rpmsg(const config::DeviceConfig& d);
  Made make_block(const config::DeviceConfig& d);
  Made make_console(const config::DeviceConfig& d);
  Result<void> open_gpio();
  void on_reset_gpio();
  Result<void> open_control();
  Result<void> watch_link();
  bool backlog() const;
  std::size_t on_peer_waiting();
  void on_peer(os::Fd conn);
  void drop_host();
  void on_poll();

  const config::BoardConfig& cfg_;
  platform::EpLink link_;
  os::EventLoop& loop_;
  Options o_;
  std::unique_ptr<gpio::Chips> chips_;
  std::map<std::uint32_t, std::unique_ptr<Device>> devices_;  // by slot
  std::unique_ptr<transport::DeviceTransport> transport_;     // after the devices: it resets them
  std::unique_ptr<app::ControlServer> control_;
  std::unique_ptr<os::Acceptor> host_acceptor_;  // loopback: the link's listening socket
  std::unique_ptr<gpio::Sideband>
      sideband_;  // after the transport: "ready" drops before the link goes
  app::LinkReport report_{"vepf-ep"};
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::chrono::steady_clock::time_point host_since_{};  // when the loopback host connected
  std::optional<app::Spinner> spin_;
  log::Limit peer_log_;       // what a host can make us say: refusals, repairs
  std::vector<int> watched_;  // what start() registered with the loop (removed by stop())
  bool started_ = false, stopped_ = false;
};

}  // namespace vepf::ep
