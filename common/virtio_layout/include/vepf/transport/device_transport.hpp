#pragma once
// Device side of the "virtio-pci-epf" layout (LAYOUT.md): serves the control region in the EP
// window. Polled, not trapped: host writes to an inbound BAR don't trap on an EP, so poll() reads
// the driver-written lines (local reads) and answers requests in the device-written lines.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/transport/link.hpp"
#include "vepf/transport/owned_line.hpp"

namespace vepf::transport {

class DeviceTransport;

/// What a device function may do with its slot (handed to it in callbacks).
class DeviceHandle {
 public:
  /// The device side of queue q, or nullptr when the driver has not enabled it (or it broke).
  ring::Vringh* queue(std::uint16_t q) noexcept;
  /// Feature bits the driver accepted (valid from FEATURES_OK on).
  std::uint64_t features() const noexcept;
  /// Raises the EP->RC interrupt (the caller decided with Vringh::need_notify()).
  void notify_driver() noexcept;
  /// Re-reads the device's config (VirtioDevice::config()), bumps config_generation, tells the
  /// driver.
  void config_changed() noexcept;
  /// The peer broke queue q's rules: stop using it, set DEVICE_NEEDS_RESET (VIRTIO 1.2 §2.1.2),
  /// tell the driver. Other queues and devices keep running.
  void queue_broken(std::uint16_t q) noexcept;
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  friend class DeviceTransport;
  DeviceHandle(DeviceTransport* t, std::uint32_t slot) noexcept : t_(t), slot_(slot) {}
  DeviceTransport* t_;
  std::uint32_t slot_;
};

/// A virtio device function (net, console, block, rpmsg) served through DeviceTransport.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual std::uint32_t device_id() const = 0;        // <linux/virtio_ids.h>
  virtual std::uint64_t device_features() const = 0;  // offered feature bits
  virtual std::uint16_t num_queues() const = 0;
  virtual std::uint16_t max_queue_size() const = 0;  // entries
  /// Current device config space (VIRTIO 1.2 §5.x "Device configuration layout"), <= 256 B.
  virtual std::span<const std::byte> config() const = 0;
  /// DRIVER_OK was set: queues are enabled, start serving.
  virtual void on_driver_ok(DeviceHandle& h) = 0;
  /// The device was reset (by the driver, or the driver went away): drop every chain and
  /// queue reference. Called before the queues are destroyed.
  virtual void on_reset() = 0;
  /// A doorbell came (or a poll tick): look at the queues.
  virtual void on_notify(DeviceHandle& h) = 0;
};

class DeviceTransport {
 public:
  /// `epoch` must be non-zero and differ from the last run's (e.g. from a random source).
  DeviceTransport(DeviceLink& link, std::uint32_t epoch);
  ~DeviceTransport();
  DeviceTransport(const DeviceTransport&) = delete;
  DeviceTransport& operator=(const DeviceTransport&) = delete;

  /// Writes the header (magic, version, sizes, epoch). Call once before the driver looks.
  /// Errors: kInvalidArgument when the EP window is smaller than the control region.
  [[nodiscard]] Result<void> init();

  /// Puts a device in the first free slot of the device table. Returns the slot.
  /// Errors: kNoSpace (table full), kInvalidArgument (too many queues, config too large).
  [[nodiscard]] Result<std::uint32_t> add_device(VirtioDevice* dev);
  /// The slot add_device() would use next, if any.
  std::optional<std::uint32_t> first_free_slot() const noexcept;
  /// Empties a slot (resetting its device first).
  void remove_device(std::uint32_t slot);

  /// Handles pending link and device requests, then lets every live device look at its queues.
  void poll();
  /// A doorbell for device `slot`'s queues alone (a platform with a doorbell per device): lets
  /// that device look at its queues, if it is live. Requests wait for poll().
  void notify(std::uint32_t slot);
  /// Bumps the RC mailbox's heartbeat (one posted write; nothing while no RC window is
  /// attached). Call every layout::kHeartbeatPeriodMs (LAYOUT.md §2.6).
  void heartbeat() noexcept;
  /// The driver went away without detaching (link down, host died): reset every device.
  void link_down();
  /// An EP reset (e.g. the board's reset GPIO): link_down(), then publish `new_epoch` (non-zero,
  /// not the current one) so that the driver sees a restarted device and attaches again. The
  /// device table stays.
  void restart(std::uint32_t new_epoch);

  /// Compares every line the device owns in the EP window (header, device lines, config spaces,
  /// queue device lines) with what it last published, with local reads only, and re-publishes
  /// what a host overwrote; then bumps the mailbox and interrupts, so that the driver re-reads.
  /// Returns the number of lines repaired (0: all intact). Call every heartbeat period.
  std::uint32_t audit();
  /// Lines audit() repaired since start.
  std::uint64_t repairs() const noexcept { return repairs_; }
  /// Descriptors a chain may have, an indirect table's included (board config [link]
  /// max_chain_segments; VringhParams::max_chain): for queues enabled from now on.
  void set_max_chain(std::uint32_t descriptors) noexcept { max_chain_ = descriptors; }
  /// Queues of device `slot` broken by a chain or indirect table past that limit, since the
  /// device was added.
  std::uint64_t chain_limit_hits(std::uint32_t slot) const noexcept;
  bool attached() const noexcept { return rc_ != nullptr; }
  std::uint32_t epoch() const noexcept { return epoch_; }
  /// Device status of a slot as the device holds it.
  std::uint8_t status(std::uint32_t slot) const noexcept;
  /// Feature bits the driver of `slot` negotiated (0 before FEATURES_OK).
  std::uint64_t features(std::uint32_t slot) const noexcept;
  /// One enabled queue of a slot, for status reports (`vepf-ep status`).
  struct QueueState {
    std::uint16_t index = 0;       // queue number
    std::uint16_t size = 0;        // entries
    std::uint16_t last_avail = 0;  // next avail entry the device takes (free-running)
    std::uint16_t used = 0;        // used index the device last wrote (free-running)
    std::uint16_t pending = 0;     // chains available and not taken yet
    bool broken = false;           // the driver broke a ring rule (DEVICE_NEEDS_RESET)
    const char* why = nullptr;     // the rule, when broken
  };
  /// The enabled queues of `slot`, in queue order (empty when none or no such slot).
  std::vector<QueueState> queue_states(std::uint32_t slot) const;
  const ring::AddressSpace& space() const noexcept { return space_; }
  /// The spin-then-sleep group of every device's queues (VringhParams::group).
  ring::PollGroup& poll_group() noexcept { return group_; }

 private:
  friend class DeviceHandle;
  struct Slot {
    VirtioDevice* dev = nullptr;
    std::uint8_t status = 0;
    std::uint64_t features = 0;
    std::uint32_t last_req_seq = 0;
    // The EP-window bytes this slot owns, as last published (OwnedBytes).
    OwnedBytes<sizeof(layout::DeviceLine)> line;
    OwnedBytes<layout::kConfigSpaceSize> config;
    std::array<OwnedBytes<sizeof(layout::QueueDeviceLine)>, layout::kMaxQueuesPerDevice>
        queue_lines;
    std::uint32_t broken_queues = 0;
    std::uint64_t chain_limit_hits = 0;
    bool started = false;  // on_driver_ok() ran and neither reset nor FAILED followed
    std::array<std::unique_ptr<ring::Vringh>, layout::kMaxQueuesPerDevice> queues;
  };

  void poll_link();
  void poll_device(std::uint32_t slot);
  struct Ack {
    layout::AckResult result = layout::AckResult::kOk;
    std::uint32_t value = 0;
  };
  Ack handle_request(std::uint32_t slot, layout::DeviceOp op, std::uint32_t arg);
  layout::AckResult set_status(std::uint32_t slot, std::uint8_t status);
  layout::AckResult enable_queue(std::uint32_t slot, std::uint32_t q);
  void reset_slot(std::uint32_t slot);
  void write_slot_header(std::uint32_t slot);
  void write_config(std::uint32_t slot);
  void write_status(std::uint32_t slot);
  /// Writes every line the device owns from its image (an attach starts from them).
  void republish();
  void bump_mailbox() noexcept;
  void interrupt() noexcept;

  DeviceLink& link_;
  ring::Window& ep_;
  ring::Window* rc_ = nullptr;
  ring::AddressSpace space_;
  ring::PollGroup group_;  // before slots_: their queues leave it when destroyed
  std::uint32_t epoch_;
  std::uint32_t last_link_seq_ = 0;
  std::uint32_t table_generation_ = 0;
  std::uint32_t mailbox_seq_ = 0;
  std::uint32_t heartbeat_ = 0;
  std::uint64_t repairs_ = 0;
  std::uint32_t max_chain_ = 0;  // 0: the queue size
  OwnedBytes<sizeof(layout::EpfHeader)> header_;
  std::array<Slot, layout::kMaxDevices> slots_{};
};

}  // namespace vepf::transport
