// Layout of the split virtqueue (VIRTIO 1.2 §2.7) and of link addresses (LAYOUT.md §4).

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vepf/layout/epf.hpp"
#include "vepf/layout/le.hpp"
#include "vepf/layout/ring.hpp"

namespace vepf::layout {
namespace {

TEST(RingLayout, DescriptorFieldOffsets) {
  EXPECT_EQ(offsetof(VringDesc, addr), 0u);
  EXPECT_EQ(offsetof(VringDesc, len), 8u);
  EXPECT_EQ(offsetof(VringDesc, flags), 12u);
  EXPECT_EQ(offsetof(VringDesc, next), 14u);
  EXPECT_EQ(sizeof(VringDesc), 16u);
  EXPECT_EQ(alignof(VringDesc), 8u);
}

TEST(RingLayout, UsedElemFieldOffsets) {
  EXPECT_EQ(offsetof(VringUsedElem, id), 0u);
  EXPECT_EQ(offsetof(VringUsedElem, len), 4u);
  EXPECT_EQ(sizeof(VringUsedElem), 8u);
}

TEST(RingLayout, PartSizesMatchTheSpecFormulas) {
  // VIRTIO 1.2 §2.7: desc 16*n; avail 6+2*n; used 6+8*n (event-idx fields included).
  for (std::uint32_t n : {1u, 2u, 8u, 256u, 32768u}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(desc_table_size(n), 16u * n);
    EXPECT_EQ(avail_ring_size(n), 6u + 2u * n);
    EXPECT_EQ(used_ring_size(n), 6u + 8u * n);
    EXPECT_EQ(used_event_offset(n), 4u + 2u * n);   // avail->ring[n]
    EXPECT_EQ(avail_event_offset(n), 4u + 8u * n);  // used->ring[n]
  }
  EXPECT_EQ(avail_entry_offset(0), 4u);
  EXPECT_EQ(avail_entry_offset(3), 10u);
  EXPECT_EQ(used_entry_offset(0), 4u);
  EXPECT_EQ(used_entry_offset(3), 28u);
  EXPECT_EQ(desc_offset(5), 80u);
}

TEST(RingLayout, QueueSizeValid) {
  EXPECT_FALSE(queue_size_valid(0));
  EXPECT_TRUE(queue_size_valid(1));
  EXPECT_TRUE(queue_size_valid(2));
  EXPECT_FALSE(queue_size_valid(3));
  EXPECT_FALSE(queue_size_valid(6));
  EXPECT_TRUE(queue_size_valid(256));
  EXPECT_TRUE(queue_size_valid(32768));
  EXPECT_FALSE(queue_size_valid(65536));
  EXPECT_FALSE(queue_size_valid(32767));
}

// VIRTIO 1.2 §2.7.10: (u16)(new - event - 1) < (u16)(new - old), i.e. notify when the event
// index is one of the entries just published: event in [old, new), modulo 2^16.
TEST(RingLayout, NeedEventTruthTable) {
  // old = 10, new = 13: entries 10, 11, 12 were published.
  EXPECT_FALSE(need_event(9, 13, 10));
  EXPECT_TRUE(need_event(10, 13, 10));
  EXPECT_TRUE(need_event(11, 13, 10));
  EXPECT_TRUE(need_event(12, 13, 10));
  EXPECT_FALSE(need_event(13, 13, 10));
  EXPECT_FALSE(need_event(14, 13, 10));
  // Nothing published: never.
  EXPECT_FALSE(need_event(10, 10, 10));
  EXPECT_FALSE(need_event(9, 10, 10));
}

TEST(RingLayout, NeedEventAcrossTheWrap) {
  // old = 0xfffe, new = 0x0002: entries 0xfffe, 0xffff, 0x0000, 0x0001.
  EXPECT_FALSE(need_event(0xfffd, 0x0002, 0xfffe));
  EXPECT_TRUE(need_event(0xfffe, 0x0002, 0xfffe));
  EXPECT_TRUE(need_event(0xffff, 0x0002, 0xfffe));
  EXPECT_TRUE(need_event(0x0000, 0x0002, 0xfffe));
  EXPECT_TRUE(need_event(0x0001, 0x0002, 0xfffe));
  EXPECT_FALSE(need_event(0x0002, 0x0002, 0xfffe));
  EXPECT_FALSE(need_event(0x8000, 0x0002, 0xfffe));
  // A full 2^16 - 1 step: every event except new itself.
  EXPECT_TRUE(need_event(0x0000, 0xffff, 0x0000));
  EXPECT_FALSE(need_event(0xffff, 0xffff, 0x0000));
}

TEST(LeValues, StoredLittleEndian) {
  const le32 v = le32::from_cpu(0x11223344);
  std::array<unsigned char, 4> b{};
  std::memcpy(b.data(), &v, 4);
  EXPECT_EQ(b[0], 0x44);
  EXPECT_EQ(b[3], 0x11);
  EXPECT_EQ(v.to_cpu(), 0x11223344u);
  const le64 w = le64::from_cpu(0x0102030405060708ull);
  std::array<unsigned char, 8> c{};
  std::memcpy(c.data(), &w, 8);
  EXPECT_EQ(c[0], 0x08);
  EXPECT_EQ(c[7], 0x01);
}

TEST(LinkAddr, RoundTripsWindowAndOffset) {
  for (WindowId w : {WindowId::kEp, WindowId::kRc}) {
    for (std::uint64_t off : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x1000},
                              std::uint64_t{0xdead'beef'1234}, kLinkAddrOffsetMask}) {
      const std::uint64_t a = link_addr(w, off);
      EXPECT_EQ(link_addr_window(a), static_cast<std::uint8_t>(w)) << std::hex << off;
      EXPECT_EQ(link_addr_offset(a), off) << std::hex << off;
    }
  }
}

TEST(LinkAddr, NeverProducesWindowZero) {
  // Link address 0 is null (LAYOUT.md §4): no valid window id is 0, and an offset's high bits
  // cannot leak into the window id.
  EXPECT_NE(static_cast<std::uint8_t>(WindowId::kEp), 0);
  EXPECT_NE(static_cast<std::uint8_t>(WindowId::kRc), 0);
  for (WindowId w : {WindowId::kEp, WindowId::kRc}) {
    for (std::uint64_t off :
         {std::uint64_t{0}, ~std::uint64_t{0}, std::uint64_t{1} << 56, std::uint64_t{0xff} << 56}) {
      const std::uint64_t a = link_addr(w, off);
      EXPECT_NE(a, 0u);
      EXPECT_EQ(link_addr_window(a), static_cast<std::uint8_t>(w)) << std::hex << off;
      EXPECT_EQ(link_addr_offset(a), off & kLinkAddrOffsetMask);
    }
  }
}

TEST(EpfLayout, DriverAndDeviceFieldsNeverShareALine) {
  // One writer per 64-byte line (ARCHITECTURE.md §2 principle 1).
  EXPECT_EQ(offsetof(DeviceSlot, device) / kLine, 0u);
  EXPECT_EQ(offsetof(DeviceSlot, driver) / kLine, 1u);
  EXPECT_EQ((offsetof(DeviceSlot, queues) + offsetof(QueueBlock, driver)) % kLine, 0u);
  EXPECT_EQ(offsetof(QueueBlock, device) - offsetof(QueueBlock, driver), kLine);
  EXPECT_EQ(offsetof(ControlRegion, link) / kLine, 1u);
  EXPECT_EQ(offsetof(ControlRegion, doorbell) / kLine, 2u);
  EXPECT_EQ(device_slot_off(1) - device_slot_off(0), sizeof(DeviceSlot));
  EXPECT_EQ(queue_block_off(0, 1) - queue_block_off(0, 0), sizeof(QueueBlock));
  EXPECT_LE(device_slot_off(kMaxDevices), kControlRegionSize);
}

}  // namespace
}  // namespace vepf::layout
