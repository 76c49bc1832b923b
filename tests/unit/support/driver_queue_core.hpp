#pragma once
// The driver's side of one split virtqueue, set up through the real DriverTransport, without
// GoogleTest (the fuzz targets use it too; support/driver_queue.hpp adds the test failure).
// Placement as vepf-host's (ARCHITECTURE.md §1, consumer-local): descriptor table and avail ring
// in the EP window, used ring in the RC window.

#include <cstddef>
#include <cstdint>
#include <string>

#include <tl/expected.hpp>

#include "support/link_windows.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {

/// Allocates a queue of `num` entries and enables it as queue `index` of device `slot`; returns
/// the parameters for the driver's ring::Vring (not movable: emplace it where it stays).
/// Errors: what failed, "no window space for queue N" or "queue N not enabled: <why>".
inline tl::expected<ring::VringParams, std::string> make_driver_queue(
    transport::DriverTransport& drv, LinkWindows& w, std::uint32_t slot, std::uint16_t index,
    std::uint16_t num) {
  const auto desc = drv.ep_alloc().alloc(layout::desc_table_size(num), layout::kDescAlign);
  const auto avail = drv.ep_alloc().alloc(layout::avail_ring_size(num), layout::kAvailAlign);
  const auto used = drv.rc_alloc().alloc(layout::used_ring_size(num), layout::kUsedAlign);
  if (!desc || !avail || !used) {
    return tl::unexpected("no window space for queue " + std::to_string(index));
  }
  if (auto r =
          drv.enable_queue(slot, index, num, desc->link_addr, avail->link_addr, used->link_addr);
      !r) {
    return tl::unexpected("queue " + std::to_string(index) + " not enabled: " + r.error().what);
  }
  ring::VringParams p;
  p.num = num;
  p.desc = {&w.drv_ep, desc->off, static_cast<std::uint32_t>(desc->len)};
  p.avail = {&w.drv_ep, avail->off, static_cast<std::uint32_t>(avail->len)};
  p.used = {&w.drv_rc, used->off, static_cast<std::uint32_t>(used->len)};
  return p;
}

}  // namespace vepf::test
