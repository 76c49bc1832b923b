#pragma once
// Window space one driver owns: allocations in the EP and RC windows, freed when it goes (devices
// come and go while the link is up), and the queues built in them with consumer-local placement
// (ARCHITECTURE.md §1): descriptor table and avail ring in the EP window (the driver only writes
// them), used ring in the RC window (the driver only reads it).

#include <cstdint>
#include <memory>
#include <vector>

#include "vepf/ring/vring.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

/// One queue as the driver sees it, for `vepf-host status`.
struct QueueState {
  std::uint16_t index = 0;      // queue number
  std::uint16_t size = 0;       // entries
  std::uint16_t in_flight = 0;  // chains posted and not yet used by the device
  bool broken = false;          // the device broke a ring rule (or DEVICE_NEEDS_RESET)
};
/// `v`'s state as queue `index`.
inline QueueState queue_state(std::uint16_t index, const ring::Vring& v) noexcept {
  return {index, v.num(), v.in_flight(), v.broken()};
}

class WindowSpace {
 public:
  WindowSpace(transport::DriverTransport& t, const transport::DeviceInfo& info)
      : t_(t), info_(info) {}
  ~WindowSpace();
  WindowSpace(const WindowSpace&) = delete;
  WindowSpace& operator=(const WindowSpace&) = delete;

  /// `bytes` in window `w`, 64-byte aligned. Errors: kNoSpace.
  [[nodiscard]] Result<transport::Allocation> alloc(layout::WindowId w, std::size_t bytes);
  /// Bytes of the largest free range of window `w`: the most one alloc() can get now.
  std::size_t largest_free(layout::WindowId w);
  /// Allocates queue `index` with the device's max_queue_size entries and enables it.
  /// Errors: kNoSpace (windows too small), kRejected (device refused), DriverTransport errors.
  [[nodiscard]] Result<std::unique_ptr<ring::Vring>> make_queue(std::uint16_t index,
                                                                bool event_idx);

  transport::DriverTransport& transport() noexcept { return t_; }

 private:
  transport::DriverTransport& t_;
  const transport::DeviceInfo& info_;
  std::vector<transport::Allocation> owned_;
};

}  // namespace vepf::host
