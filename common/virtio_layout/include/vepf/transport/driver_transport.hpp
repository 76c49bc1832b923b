#pragma once
// Driver side of the "virtio-pci-epf" layout (LAYOUT.md): validates the header, attaches the RC
// window, reads the device table, and drives each device through the VIRTIO 1.2 §3.1.1
// initialisation as request/acknowledge pairs. Each request waits for its ack up to the
// configured timeout and fails with kTimeout, or kRejected when the device refused it.
//
// Control-path reads of the EP window are non-posted; the data path never reads it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/ring/poll_group.hpp"
#include "vepf/transport/link.hpp"
#include "vepf/transport/window_allocator.hpp"

namespace vepf::transport {

/// One occupied slot of the device table.
struct DeviceInfo {
  std::uint32_t slot = 0;
  std::uint32_t device_id = 0;  // <linux/virtio_ids.h>
  std::uint16_t num_queues = 0;
  std::uint16_t max_queue_size = 0;  // entries
  std::uint64_t device_features = 0;
  std::uint32_t slot_generation = 0;
};

class DriverTransport {
 public:
  DriverTransport(DriverLink& link, std::chrono::milliseconds ack_timeout);

  /// Validates the header (magic, version, sizes, epoch) and attaches the RC window.
  /// Errors: kBadLayout (header invalid: wrong magic/version/sizes), kTimeout, kRejected.
  [[nodiscard]] Result<void> attach();
  /// The occupied slots of the device table (non-posted reads; control path).
  [[nodiscard]] Result<std::vector<DeviceInfo>> scan();

  /// Requests a device status (VIRTIO 1.2 §2.1); returns the status the device holds after it.
  [[nodiscard]] Result<std::uint8_t> set_status(std::uint32_t slot, std::uint8_t status);
  /// Resets the device (status 0) and waits for the ack.
  [[nodiscard]] Result<void> reset(std::uint32_t slot);
  /// ACKNOWLEDGE, DRIVER, driver features = offered & wanted, FEATURES_OK, and checks the
  /// device kept FEATURES_OK (VIRTIO 1.2 §3.1.1 steps 1-6). Returns the negotiated features.
  [[nodiscard]] Result<std::uint64_t> negotiate(std::uint32_t slot, std::uint64_t offered,
                                                std::uint64_t wanted);
  /// Writes a queue line (size, link addresses lo then hi) and requests kQueueEnable.
  [[nodiscard]] Result<void> enable_queue(std::uint32_t slot, std::uint16_t q, std::uint16_t size,
                                          std::uint64_t desc, std::uint64_t avail,
                                          std::uint64_t used);
  /// Sets DRIVER_OK (VIRTIO 1.2 §3.1.1 step 8).
  [[nodiscard]] Result<void> driver_ok(std::uint32_t slot);
  /// Reads the device config under config_generation (VIRTIO 1.2 §4.1.4.3.1), a few times
  /// back to back when it changes meanwhile; never waits. Errors: kNotReady when the generation
  /// stayed odd or kept moving (the device is rewriting its config, or a broken device holds it
  /// odd: try again later), kOutOfRange when `out` exceeds the config space.
  [[nodiscard]] Result<void> read_config(std::uint32_t slot, std::span<std::byte> out);
  /// As read_config(), retrying every millisecond (through the wait hook) for up to the ack
  /// timeout: for a probe, which needs the config to go on. Errors: kTimeout, kCancelled (the
  /// wait hook gave up), kOutOfRange.
  [[nodiscard]] Result<void> read_config_wait(std::uint32_t slot, std::span<std::byte> out);
  /// Called at least every 5 ms while a request waits for its ack and while read_config_wait()
  /// waits, so that the program keeps serving its other devices and sees its signals: a
  /// device that does not answer costs the others nothing. Returning false gives the wait up
  /// (kCancelled). Without a hook the waits only sleep.
  void set_wait_hook(std::function<bool()> hook) { wait_hook_ = std::move(hook); }
  /// Device status and broken-queue mask as the device reports them (non-posted reads);
  /// 0 for a slot out of range.
  std::uint8_t device_status(std::uint32_t slot);
  std::uint32_t broken_queues(std::uint32_t slot);

  /// The mailbox event sequence the device bumps on control-path events (a local read).
  std::uint32_t mailbox_seq() const noexcept;
  /// Liveness without crossing the link (LAYOUT.md §2.6). Call every layout::kHeartbeatPeriodMs:
  /// returns true while the device's heartbeat moves (a local read); after
  /// layout::kHeartbeatMisses calls without a beat (and every kHeartbeatMisses calls after
  /// that) it checks epoch_changed() (non-posted reads) and returns false when the EP stopped or
  /// restarted.
  bool still_alive();
  /// The device table's generation (a non-posted read): it moves when devices come and go.
  std::uint32_t table_generation();
  /// Whether the EP firmware restarted or stopped (header epoch differs from the attached one,
  /// or the magic is gone). Once it said so, every request and queue line fails with kLinkDown
  /// without writing: the teardown of our drivers must not write into a new EP's control region
  /// (its slots belong to the next session). A successful attach() clears it.
  bool epoch_changed();
  std::uint32_t epoch() const noexcept { return epoch_; }

  WindowAllocator& ep_alloc() noexcept { return ep_alloc_; }
  WindowAllocator& rc_alloc() noexcept { return rc_alloc_; }
  DriverLink& link() noexcept { return link_; }
  std::chrono::milliseconds ack_timeout() const noexcept { return timeout_; }
  /// The spin-then-sleep group of the drivers' queues (VringParams::group). Queues must go
  /// before the transport.
  ring::PollGroup& poll_group() noexcept { return group_; }

 private:
  struct AckValue {
    std::uint32_t result = 0;
    std::uint32_t value = 0;
  };
  Result<AckValue> request(std::uint32_t slot, layout::DeviceOp op, std::uint32_t arg);
  Result<void> wait_ack(std::size_t ack_seq_off, std::uint32_t seq);
  Result<void> validate_header();

  DriverLink& link_;
  ring::Window& ep_;
  ring::PollGroup group_;
  std::chrono::milliseconds timeout_;
  std::uint32_t epoch_ = 0;
  std::uint32_t link_seq_ = 0;
  std::uint32_t heartbeat_seen_ = 0;
  std::uint32_t heartbeat_misses_ = 0;
  bool gone_ = false;  // epoch_changed() saw another epoch: write nothing until attach()
  std::function<bool()> wait_hook_;
  std::uint32_t req_seq_[layout::kMaxDevices] = {};
  WindowAllocator ep_alloc_;
  WindowAllocator rc_alloc_;
};

}  // namespace vepf::transport
