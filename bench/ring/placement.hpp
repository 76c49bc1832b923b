#pragma once
// Where the benchmarks put one split virtqueue and its buffers in the two windows of a link,
// consumer-local as ARCHITECTURE.md §1 places them:
//   EP window: descriptor table (16 B x num), avail ring (6 + 2 x num B), then num
//              driver->device buffers of `stride` bytes each
//   RC window: used ring (6 + 8 x num B), then num device->driver buffers of `stride` bytes
// Every part starts on a 64-byte boundary (no two writers share a cache line); window sizes are
// rounded up to 4 KiB.

#include <cstddef>
#include <cstdint>

#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::bench {

constexpr std::size_t round_up(std::size_t v, std::size_t a) noexcept {
  return (v + a - 1) / a * a;
}

struct RingPlacement {
  std::uint16_t num = 0;   // queue size, entries
  std::size_t msg = 0;     // bytes per buffer
  std::size_t stride = 0;  // bytes between buffers (msg rounded up to 64)
  std::size_t desc_off = 0, avail_off = 0, ep_buf_off = 0, ep_size = 0;  // EP window, bytes
  std::size_t used_off = 0, rc_buf_off = 0, rc_size = 0;                 // RC window, bytes

  static RingPlacement make(std::uint16_t num, std::size_t msg) noexcept {
    RingPlacement p;
    p.num = num;
    p.msg = msg;
    p.stride = round_up(msg == 0 ? 1 : msg, 64);
    p.desc_off = 0;
    p.avail_off = round_up(layout::desc_table_size(num), 64);
    p.ep_buf_off = round_up(p.avail_off + layout::avail_ring_size(num), 64);
    p.ep_size = round_up(p.ep_buf_off + num * p.stride, 4096);
    p.used_off = 0;
    p.rc_buf_off = round_up(layout::used_ring_size(num), 64);
    p.rc_size = round_up(p.rc_buf_off + num * p.stride, 4096);
    return p;
  }

  /// Byte offsets of buffer `slot` in its window, and its link address (LAYOUT.md §4).
  std::size_t ep_buf(std::uint16_t slot) const noexcept { return ep_buf_off + slot * stride; }
  std::size_t rc_buf(std::uint16_t slot) const noexcept { return rc_buf_off + slot * stride; }
  std::uint64_t ep_buf_addr(std::uint16_t slot) const noexcept {
    return layout::link_addr(layout::WindowId::kEp, ep_buf(slot));
  }
  std::uint64_t rc_buf_addr(std::uint16_t slot) const noexcept {
    return layout::link_addr(layout::WindowId::kRc, rc_buf(slot));
  }

  /// The driver's view: `ep` is the device's window (remote), `rc` its own.
  ring::VringParams driver(ring::Window& ep, ring::Window& rc, bool event_idx) const noexcept {
    ring::VringParams v;
    v.num = num;
    v.desc = {&ep, desc_off, static_cast<std::uint32_t>(layout::desc_table_size(num))};
    v.avail = {&ep, avail_off, static_cast<std::uint32_t>(layout::avail_ring_size(num))};
    v.used = {&rc, used_off, static_cast<std::uint32_t>(layout::used_ring_size(num))};
    v.event_idx = event_idx;
    return v;
  }
  /// The device's view: `space` holds its own EP window and the driver's RC window (remote).
  ring::VringhParams device(const ring::AddressSpace& space, bool event_idx) const noexcept {
    ring::VringhParams h;
    h.num = num;
    h.desc = {space.ep(), desc_off, static_cast<std::uint32_t>(layout::desc_table_size(num))};
    h.avail = {space.ep(), avail_off, static_cast<std::uint32_t>(layout::avail_ring_size(num))};
    h.used = {space.rc(), used_off, static_cast<std::uint32_t>(layout::used_ring_size(num))};
    h.space = &space;
    h.event_idx = event_idx;
    return h;
  }
};

}  // namespace vepf::bench
