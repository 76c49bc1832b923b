#pragma once
// A test playing the driver: one split virtqueue in the driver's windows, enabled on a device
// through the real DriverTransport. Placement as vepf-host's (ARCHITECTURE.md §1, consumer-
// local): descriptor table and avail ring in the EP window, used ring in the RC window.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "support/link_windows.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {

/// Allocates a queue of `num` entries and enables it as queue `index` of device `slot`; returns
/// the parameters for the driver's ring::Vring (not movable: emplace it where it stays). Empty,
/// with a GoogleTest failure recorded, when the windows are full or the device refused it.
inline std::optional<ring::VringParams> enable_driver_queue(transport::DriverTransport& drv,
                                                            LinkWindows& w, std::uint32_t slot,
                                                            std::uint16_t index,
                                                            std::uint16_t num) {
  const auto desc = drv.ep_alloc().alloc(layout::desc_table_size(num), layout::kDescAlign);
  const auto avail = drv.ep_alloc().alloc(layout::avail_ring_size(num), layout::kAvailAlign);
  const auto used = drv.rc_alloc().alloc(layout::used_ring_size(num), layout::kUsedAlign);
  if (!desc || !avail || !used) {
    ADD_FAILURE() << "no window space for queue " << index;
    return std::nullopt;
  }
  if (auto r =
          drv.enable_queue(slot, index, num, desc->link_addr, avail->link_addr, used->link_addr);
      !r) {
    ADD_FAILURE() << "queue " << index << " not enabled: " << r.error().what;
    return std::nullopt;
  }
  ring::VringParams p;
  p.num = num;
  p.desc = {&w.drv_ep, desc->off, static_cast<std::uint32_t>(desc->len)};
  p.avail = {&w.drv_ep, avail->off, static_cast<std::uint32_t>(avail->len)};
  p.used = {&w.drv_rc, used->off, static_cast<std::uint32_t>(used->len)};
  return p;
}

}  // namespace vepf::test
