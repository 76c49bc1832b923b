#pragma once
// Test fixture: one split virtqueue with its driver side (Vring) and device side (Vringh) over
// LinkWindows, placed as ARCHITECTURE.md §1 says (consumer-local):
//   EP window: descriptor table, avail ring, indirect pool, then driver->device data
//   RC window: used ring, then device->driver data
// Also raw "hand-written peer" helpers that write ring entries straight into window memory.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "support/link_windows.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::test {

struct RingOptions {
  std::uint16_t num = 8;
  bool event_idx = false;
  bool indirect = false;              // negotiated on the device side
  bool driver_indirect_pool = false;  // the driver gets a pool and uses indirect tables
  std::uint16_t indirect_max = 4;     // entries per indirect table in the pool
  std::uint32_t max_chain = 0;        // VringhParams::max_chain (0: the queue size)
  std::size_t ep_base = 0x1000;       // where the queue starts in the EP window
  std::size_t rc_base = 0x1000;       // where the used ring starts in the RC window
  bool make_driver = true;  // construct a Vring (false: the test plays the driver by hand)
};

/// A ring of 16 entries with EVENT_IDX and indirect tables (the driver using its pool): what
/// the tests that carry real traffic over it use.
inline RingOptions traffic_ring() {
  RingOptions o;
  o.num = 16;
  o.event_idx = true;
  o.indirect = true;
  o.driver_indirect_pool = true;
  return o;
}

constexpr std::size_t align_up(std::size_t v, std::size_t a) noexcept {
  return (v + a - 1) & ~(a - 1);
}

class RingPair {
 public:
  RingPair(LinkWindows& w, const RingOptions& o) : w_(w), o_(o) {
    desc_off = align_up(o.ep_base, layout::kDescAlign);
    avail_off = align_up(desc_off + layout::desc_table_size(o.num), layout::kAvailAlign);
    pool_off = align_up(avail_off + layout::avail_ring_size(o.num), layout::kDescAlign);
    const std::size_t pool_bytes =
        o.driver_indirect_pool ? std::size_t{o.num} * o.indirect_max * sizeof(layout::VringDesc)
                               : 0;
    ep_data_off = align_up(pool_off + pool_bytes, 64);
    used_off = align_up(o.rc_base, layout::kUsedAlign);
    rc_data_off = align_up(used_off + layout::used_ring_size(o.num), 64);

    ring::VringhParams hp;
    hp.num = o.num;
    hp.desc = ring::Segment{&w.dev_ep, desc_off,
                            static_cast<std::uint32_t>(layout::desc_table_size(o.num))};
    hp.avail = ring::Segment{&w.dev_ep, avail_off,
                             static_cast<std::uint32_t>(layout::avail_ring_size(o.num))};
    hp.used = ring::Segment{&w.dev_rc, used_off,
                            static_cast<std::uint32_t>(layout::used_ring_size(o.num))};
    hp.space = &w.dev_space;
    hp.event_idx = o.event_idx;
    hp.indirect = o.indirect;
    hp.max_chain = o.max_chain;

    ring::VringParams vp;
    vp.num = o.num;
    vp.desc = ring::Segment{&w.drv_ep, desc_off, hp.desc.len};
    vp.avail = ring::Segment{&w.drv_ep, avail_off, hp.avail.len};
    vp.used = ring::Segment{&w.drv_rc, used_off, hp.used.len};
    vp.event_idx = o.event_idx;
    if (o.driver_indirect_pool) {
      vp.indirect = ring::Segment{&w.drv_ep, pool_off, static_cast<std::uint32_t>(pool_bytes)};
      vp.indirect_addr = ep_addr(pool_off);
      vp.indirect_max = o.indirect_max;
    }
    if (o.make_driver) drv_.emplace(vp);
    dev_.emplace(hp);
    hp_ = hp;
    vp_ = vp;
  }
  /// The parameters the pair's device and driver were built with (for a second one on the
  /// same rings).
  const ring::VringhParams& device_params() const { return hp_; }
  const ring::VringParams& driver_params() const { return vp_; }
  RingPair(const RingPair&) = delete;
  RingPair& operator=(const RingPair&) = delete;

  ring::Vring& drv() { return *drv_; }
  ring::Vringh& dev() { return *dev_; }
  std::uint16_t num() const { return o_.num; }

  // ---- the driver played by hand (writes into the EP window's memory directly)
  void put_desc_at(std::size_t table_off, std::uint32_t i, std::uint64_t addr, std::uint32_t len,
                   std::uint16_t flags, std::uint16_t next) {
    const std::size_t d = table_off + layout::desc_offset(i);
    poke<std::uint64_t>(w_.ep(), d + offsetof(layout::VringDesc, addr), addr);
    poke<std::uint32_t>(w_.ep(), d + offsetof(layout::VringDesc, len), len);
    poke<std::uint16_t>(w_.ep(), d + offsetof(layout::VringDesc, flags), flags);
    poke<std::uint16_t>(w_.ep(), d + offsetof(layout::VringDesc, next), next);
  }
  void put_desc(std::uint32_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                std::uint16_t next = 0) {
    put_desc_at(desc_off, i, addr, len, flags, next);
  }
  /// Writes avail ring entry `slot` (an index, taken modulo num).
  void put_avail(std::uint16_t slot, std::uint16_t head) {
    poke<std::uint16_t>(w_.ep(), avail_off + layout::avail_entry_offset(slot & (o_.num - 1)), head);
  }
  void put_avail_idx(std::uint16_t idx) {
    poke<std::uint16_t>(w_.ep(), avail_off + layout::kRingIdxOff, idx);
  }
  /// Offers chains by hand: avail entries then the index.
  void offer(std::uint16_t head, std::uint16_t at_idx = 0) {
    put_avail(at_idx, head);
    put_avail_idx(static_cast<std::uint16_t>(at_idx + 1));
  }

  // ---- the device played by hand (writes into the RC window's memory directly)
  void put_used(std::uint16_t slot, std::uint32_t id, std::uint32_t len) {
    const std::size_t e = used_off + layout::used_entry_offset(slot & (o_.num - 1));
    poke<std::uint32_t>(w_.rc(), e + offsetof(layout::VringUsedElem, id), id);
    poke<std::uint32_t>(w_.rc(), e + offsetof(layout::VringUsedElem, len), len);
  }
  void put_used_idx(std::uint16_t idx) {
    poke<std::uint16_t>(w_.rc(), used_off + layout::kRingIdxOff, idx);
  }
  std::uint16_t used_idx() const {
    return peek<std::uint16_t>(w_.rc(), used_off + layout::kRingIdxOff);
  }
  std::uint16_t avail_idx() const {
    return peek<std::uint16_t>(w_.ep(), avail_off + layout::kRingIdxOff);
  }

  // Placement (byte offsets in their windows).
  std::size_t desc_off = 0, avail_off = 0, pool_off = 0, ep_data_off = 0;  // EP window
  std::size_t used_off = 0, rc_data_off = 0;                               // RC window

 private:
  LinkWindows& w_;
  RingOptions o_;
  std::optional<ring::Vring> drv_;
  std::optional<ring::Vringh> dev_;
  ring::VringhParams hp_;
  ring::VringParams vp_;
};

}  // namespace vepf::test
