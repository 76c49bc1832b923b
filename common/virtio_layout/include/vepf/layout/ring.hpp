#pragma once
// The split virtqueue as the VIRTIO spec lays it out (VIRTIO 1.2 §2.7), plus the shared free
// functions both sides use. Flag values come from <linux/virtio_ring.h>.
//
//   descriptor table: num x VringDesc (16 B each), 16-byte aligned     (§2.7.5)
//   avail ring:       le16 flags; le16 idx; le16 ring[num]; le16 used_event   2-byte aligned
//   (§2.7.6) used ring:        le16 flags; le16 idx; VringUsedElem ring[num]; le16 avail_event
//                     4-byte aligned (§2.7.8)

#include <cstddef>
#include <cstdint>

// The legacy vring_init() helpers of the uapi header are C only; we need its constants.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

#include "vepf/layout/le.hpp"

namespace vepf::layout {

/// struct virtq_desc, VIRTIO 1.2 §2.7.5. addr is a link address (LAYOUT.md §4).
struct VringDesc {
  le64 addr;   // 0x00
  le32 len;    // 0x08
  le16 flags;  // 0x0c VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT
  le16 next;   // 0x0e
};
static_assert(sizeof(VringDesc) == 16);
static_assert(offsetof(VringDesc, len) == 0x08 && offsetof(VringDesc, flags) == 0x0c &&
              offsetof(VringDesc, next) == 0x0e);

/// struct virtq_used_elem, VIRTIO 1.2 §2.7.8.
struct VringUsedElem {
  le32 id;   // 0x00 head of the completed chain
  le32 len;  // 0x04 bytes written into the device-writable part
};
static_assert(sizeof(VringUsedElem) == 8);

/// Maximum queue size of a split virtqueue (VIRTIO 1.2 §2.7: "Queue Size ... maximum 32768").
inline constexpr std::uint32_t kMaxQueueSize = 32768;
/// Alignments of the three parts (VIRTIO 1.2 §2.7 table "Virtqueue Part Alignment").
inline constexpr std::size_t kDescAlign = 16, kAvailAlign = 2, kUsedAlign = 4;

// Byte offsets inside each part; num is the queue size in entries.
constexpr std::size_t desc_offset(std::uint32_t i) noexcept {
  return std::size_t{i} * sizeof(VringDesc);
}
inline constexpr std::size_t kRingFlagsOff = 0, kRingIdxOff = 2, kRingEntriesOff = 4;
constexpr std::size_t avail_entry_offset(std::uint32_t i) noexcept {
  return kRingEntriesOff + 2 * std::size_t{i};
}
constexpr std::size_t used_event_offset(std::uint32_t num) noexcept {
  return avail_entry_offset(num);
}
constexpr std::size_t used_entry_offset(std::uint32_t i) noexcept {
  return kRingEntriesOff + sizeof(VringUsedElem) * std::size_t{i};
}
constexpr std::size_t avail_event_offset(std::uint32_t num) noexcept {
  return used_entry_offset(num);
}

/// Sizes in bytes of the three parts with VIRTIO_F_EVENT_IDX space included (§2.7).
constexpr std::size_t desc_table_size(std::uint32_t num) noexcept { return desc_offset(num); }
constexpr std::size_t avail_ring_size(std::uint32_t num) noexcept {
  return used_event_offset(num) + 2;
}
constexpr std::size_t used_ring_size(std::uint32_t num) noexcept {
  return avail_event_offset(num) + 2;
}

/// A queue size is valid when it is a power of 2 in [1, 32768] (§2.7).
constexpr bool queue_size_valid(std::uint32_t num) noexcept {
  return num != 0 && num <= kMaxQueueSize && (num & (num - 1)) == 0;
}

/// vring_need_event() of VIRTIO 1.2 §2.7.10: true when the peer's event index lies in
/// [old_idx, new_idx), i.e. the index moved past it with this batch (modulo 2^16).
constexpr bool need_event(std::uint16_t event_idx, std::uint16_t new_idx,
                          std::uint16_t old_idx) noexcept {
  return static_cast<std::uint16_t>(new_idx - event_idx - 1) <
         static_cast<std::uint16_t>(new_idx - old_idx);
}

}  // namespace vepf::layout
