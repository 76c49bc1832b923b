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
  [[nodiscard]] virtual Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) = 0;
  /// Drops the RC window (driver detached or gone).
  virtual void detach_rc_window() = 0;
  /// Raises the EP->RC interrupt (MSI/MSI-X on PCIe, eventfd on loopback).
  [[nodiscard]] virtual Result<void> raise_interrupt() = 0;
  /// Link-model counters of this side.
  virtual ring::LinkCounters& counters() = 0;
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
};

}  // namespace vepf::transport
