#pragma once
// What a platform (loopback, ivshmem, vfio, devmem) offers each side: two windows and two
// signals (ARCHITECTURE.md §1). Transports see only these interfaces; platforms know nothing of
// virtio.

#include <chrono>
#include <cstdint>

#include "vepf/error.hpp"
#include "vepf/ring/access.hpp"

namespace vepf::transport {

/// The EP side of a link.
class DeviceLink {
 public:
  virtual ~DeviceLink() = default;
  /// Our own window, holding the control region at offset 0 (local: accesses not counted).
  virtual ring::Window& ep_window() = 0;
  /// Makes the RC window reachable (program the outbound window to `bus_addr`, `size` bytes).
  /// Errors: kOutOfRange when the platform cannot reach that range; kLinkDown without a peer.
  [[nodiscard]] virtual Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr,
                                                               std::uint64_t size) = 0;
  /// Drops the RC window (driver detached or gone).
  virtual void detach_rc_window() = 0;
  /// Raises the EP->RC interrupt (MSI/MSI-X on PCIe, eventfd on loopback).
  [[nodiscard]] virtual Result<void> raise_interrupt() = 0;
  /// Link-model counters of this side.
  virtual ring::LinkCounters& counters() = 0;

  // What a program waits on (epoll). A platform without incoming signals keeps the defaults:
  // -1, and the program polls its rings on a timer instead.
  /// A file descriptor that becomes readable when the RC rings the control-path doorbell
  /// (requests, and kicks of an RC that rings one doorbell); -1 when there is none.
  virtual int doorbell_fd() const noexcept { return -1; }
  /// Reads and clears the doorbell count (0: none rung); counts signals_received when > 0.
  /// Errors: kSystem on a failed read.
  [[nodiscard]] virtual Result<std::uint64_t> drain_doorbell() { return std::uint64_t{0}; }
  /// The doorbell of device `slot`'s queues alone (slot < layout::kMaxDevices), on platforms
  /// that tell devices apart (loopback); -1 when kicks come through doorbell_fd().
  virtual int device_doorbell_fd(std::uint32_t slot) const noexcept {
    (void)slot;
    return -1;
  }
  /// As drain_doorbell(), for device `slot`'s doorbell.
  [[nodiscard]] virtual Result<std::uint64_t> drain_device_doorbell(std::uint32_t slot) {
    (void)slot;
    return std::uint64_t{0};
  }
  /// True when ep_window() outlives the process (BAR memory): a stopping EP then clears the
  /// header's magic so that no RC takes the window for a serving EP.
  virtual bool window_outlives_process() const noexcept { return false; }
};

/// The RC side of a link.
class DriverLink {
 public:
  virtual ~DriverLink() = default;
  /// The EP's window (remote: every access counted; reads are non-posted).
  virtual ring::Window& ep_window() = 0;
  /// Our own window, DMA-mapped for the EP (local).
  virtual ring::Window& rc_window() = 0;
  /// Bus address (IOVA) at which the EP reaches rc_window().
  virtual std::uint64_t rc_window_bus_addr() const = 0;
  /// Raises the RC->EP doorbell.
  [[nodiscard]] virtual Result<void> ring_doorbell() = 0;
  /// Raises the doorbell of device `slot`'s queues (a kick). A platform that can tell devices
  /// apart (loopback: an eventfd each) wakes that device alone; the others ring_doorbell().
  [[nodiscard]] virtual Result<void> ring_device_doorbell(std::uint32_t slot) {
    (void)slot;
    return ring_doorbell();
  }
  /// Waits up to `timeout` for the EP->RC interrupt and consumes it. Returns true if one came.
  /// Errors: kLinkDown when the peer went away, kSystem on a failed wait.
  [[nodiscard]] virtual Result<bool> wait_interrupt(std::chrono::milliseconds timeout) = 0;
  virtual ring::LinkCounters& counters() = 0;

  /// A file descriptor that becomes readable on the EP->RC interrupt; -1 when there is none
  /// (the program then polls its rings on a timer).
  virtual int interrupt_fd() const noexcept { return -1; }
  /// Reads and clears the interrupt count (0: none); counts signals_received when > 0.
  /// Errors: kSystem on a failed read.
  [[nodiscard]] virtual Result<std::uint64_t> drain_interrupt() { return std::uint64_t{0}; }
  /// A file descriptor that becomes readable (EPOLLIN/EPOLLRDHUP) when the EP went away, on
  /// platforms that see it (loopback: the connection); -1 elsewhere, where the EP's heartbeat
  /// and header tell (LAYOUT.md §2.6).
  virtual int hangup_fd() const noexcept { return -1; }
};

}  // namespace vepf::transport
