#pragma once
// What every virtio driver of vepf-host (net, rpmsg, console, block) has in common: a device-table
// slot, feature negotiation (VIRTIO 1.2 §3.1.1 steps 1-6), DRIVER_OK, and the reaction to
// DEVICE_NEEDS_RESET (VIRTIO 1.2 §2.1.2). host::Bus (bus/bus.hpp) holds drivers only through this
// interface.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "transport/window_space.hpp"
#include "vepf/error.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

class Driver {
 public:
  /// Units moved in each direction since probe(), for the link report: frames, messages,
  /// requests (whatever the device's unit is).
  struct Counts {
    std::uint64_t sent = 0;      // host OS -> device
    std::uint64_t received = 0;  // device -> host OS
  };

  Driver(transport::DriverTransport& t, const transport::DeviceInfo& info) : t_(t), info_(info) {}
  virtual ~Driver() = default;
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  /// Negotiates, sets up the queues, DRIVER_OK, and hands the device to the host OS.
  /// Errors: any DriverTransport error; kNoSpace when the windows cannot hold the queues and
  /// buffers; kRejected when the device's config is unusable; kSystem when the host OS side
  /// (TAP, socket, pty) cannot be set up.
  [[nodiscard]] virtual Result<void> probe() = 0;
  /// Interrupt (or a poll tick): take completions, refill, kick.
  virtual void on_interrupt() = 0;
  /// Control-path event (the mailbox moved): returns false when the device reports
  /// DEVICE_NEEDS_RESET and this driver must be torn down (the caller probes it again).
  [[nodiscard]] bool on_control_event();
  /// The poll tick (every heartbeat period): a config read that found the device rewriting
  /// its config is tried again here.
  void on_tick();
  /// A budget ran out with work left: call on_interrupt() again before sleeping.
  virtual bool backlog() const { return false; }
  virtual Counts counts() const = 0;
  /// The driver's queues, for `vepf-host status` (empty before probe()).
  virtual std::vector<QueueState> queue_states() const { return {}; }
  /// The driver's statistics by name, for `vepf-host status` (ethtool -S style): counts() as
  /// "sent" and "received", and what the driver counts besides.
  virtual std::vector<std::pair<const char*, std::uint64_t>> counters() const {
    return {{"sent", counts().sent}, {"received", counts().received}};
  }
  /// Logs this device's statistics at `lvl` (SIGUSR1, exit).
  virtual void report(spdlog::level::level_enum lvl) const = 0;

  std::uint32_t slot() const noexcept { return info_.slot; }
  const transport::DeviceInfo& info() const noexcept { return info_; }
  std::uint64_t features() const noexcept { return features_; }
  /// DRIVER_OK is set (probe() finished) and the device has not said DEVICE_NEEDS_RESET.
  bool running() const noexcept { return driver_ok_; }

 protected:
  /// Reset, then VIRTIO 1.2 §3.1.1 steps 1-6 with `wanted`; stores the result in features_.
  [[nodiscard]] Result<void> negotiate(std::uint64_t wanted);
  /// VIRTIO 1.2 §3.1.1 step 8; sets driver_ok_.
  [[nodiscard]] Result<void> set_driver_ok();
  bool has(unsigned feature_bit) const noexcept { return (features_ >> feature_bit) & 1; }
  /// The device stopped (NEEDS_RESET): mark the queues broken, tell the host OS side.
  virtual void on_needs_reset() {}
  /// The device's config may have changed (control-path event without NEEDS_RESET).
  virtual void on_config_event() {}
  /// Reads the device config into `out` without waiting (DriverTransport::read_config()).
  /// False when it could not: the device is rewriting it (tried again at the next on_tick(),
  /// which calls on_config_event() again) or another error (logged).
  bool read_config_or_retry(std::span<std::byte> out);
  /// The logger of this device type ("host.net", ...).
  virtual const char* logger() const = 0;

  transport::DriverTransport& t_;
  transport::DeviceInfo info_;
  std::uint64_t features_ = 0;
  bool driver_ok_ = false;
  /// Every message the device can trigger goes through this (log::limited): a broken or
  /// hostile device must not flood the log.
  mutable log::Limit peer_log_;

 private:
  bool config_retry_ = false;  // on_config_event() found the config being rewritten
};

}  // namespace vepf::host
