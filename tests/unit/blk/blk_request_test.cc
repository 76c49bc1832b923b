// layout::parse_blk_request(): what the device does with each chain a driver may write
// (VIRTIO 1.2 §5.2.6).

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "vepf/layout/blk.hpp"

namespace vepf::layout {
namespace {

using Kind = BlkParse::Kind;

BlkLimits limits() {
  BlkLimits l;
  l.capacity = 2048;  // 1 MiB
  l.flush = l.discard = l.write_zeroes = true;
  l.max_discard_sectors = l.max_write_zeroes_sectors = 1024;
  l.max_discard_seg = l.max_write_zeroes_seg = 2;
  l.max_data = 64 << 10;
  return l;
}

std::vector<std::byte> hdr(std::uint32_t type, std::uint64_t sector) {
  VirtioBlkReqHdr h{};
  h.type = le32::from_cpu(type);
  h.sector = le64::from_cpu(sector);
  std::vector<std::byte> v(sizeof(h));
  std::memcpy(v.data(), &h, sizeof(h));
  return v;
}

void add_seg(std::vector<std::byte>& v, std::uint64_t sector, std::uint32_t n,
             std::uint32_t flags) {
  VirtioBlkDiscardWz s{};
  s.sector = le64::from_cpu(sector);
  s.num_sectors = le32::from_cpu(n);
  s.flags = le32::from_cpu(flags);
  const auto* p = reinterpret_cast<const std::byte*>(&s);
  v.insert(v.end(), p, p + sizeof(s));
}

TEST(BlkRequest, ReadGivesByteOffsetAndLength) {
  auto r = parse_blk_request(hdr(VIRTIO_BLK_T_IN, 8), 16, 4096 + 1, limits());
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.type, VIRTIO_BLK_T_IN);
  EXPECT_EQ(r.request.offset, 8u * 512);
  EXPECT_EQ(r.request.length, 4096u);
}

TEST(BlkRequest, WriteTakesDataAfterTheHeader) {
  auto r = parse_blk_request(hdr(VIRTIO_BLK_T_OUT, 2046), 16 + 1024, 1, limits());
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.offset, 2046u * 512);
  EXPECT_EQ(r.request.length, 1024u);
}

TEST(BlkRequest, NoRoomForHeaderOrStatusIsMalformed) {
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 0), 16, 0, limits()).kind, Kind::kMalformed);
  auto h = hdr(VIRTIO_BLK_T_IN, 0);
  EXPECT_EQ(parse_blk_request(std::span{h}.first(8), 8, 513, limits()).kind, Kind::kMalformed);
  EXPECT_EQ(parse_blk_request(std::span{h}.first(8), 16, 513, limits()).kind, Kind::kMalformed);
}

TEST(BlkRequest, RangeBeyondCapacityIsIoErr) {
  auto r = parse_blk_request(hdr(VIRTIO_BLK_T_IN, 2047), 16, 1024 + 1, limits());
  EXPECT_EQ(r.kind, Kind::kStatus);
  EXPECT_EQ(r.status, VIRTIO_BLK_S_IOERR);
  // A sector so large that sector * 512 would wrap.
  r = parse_blk_request(hdr(VIRTIO_BLK_T_IN, ~std::uint64_t{0} / 256), 16, 512 + 1, limits());
  EXPECT_EQ(r.status, VIRTIO_BLK_S_IOERR);
  // The last sector exactly is fine.
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 2047), 16, 512 + 1, limits()).kind,
            Kind::kRequest);
}

TEST(BlkRequest, DataNotASectorMultipleOrTooLargeIsIoErr) {
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 0), 16, 100 + 1, limits()).status,
            VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_OUT, 0), 16 + 513, 1, limits()).status,
            VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 0), 16, (128 << 10) + 1, limits()).status,
            VIRTIO_BLK_S_IOERR);
}

TEST(BlkRequest, DataInTheWrongDirectionIsIoErr) {
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 0), 16 + 512, 513, limits()).status,
            VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_OUT, 0), 16 + 512, 513, limits()).status,
            VIRTIO_BLK_S_IOERR);
}

TEST(BlkRequest, ReadOnlyRefusesEveryWriteKind) {
  auto l = limits();
  l.read_only = true;
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_OUT, 0), 16 + 512, 1, l).status, VIRTIO_BLK_S_IOERR);
  auto d = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(d, 0, 8, 0);
  EXPECT_EQ(parse_blk_request(d, d.size(), 1, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_IN, 0), 16, 513, l).kind, Kind::kRequest);
}

TEST(BlkRequest, UnknownOrUnnegotiatedTypesAreUnsupported) {
  EXPECT_EQ(parse_blk_request(hdr(0x77, 0), 16, 1, limits()).status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_SCSI_CMD, 0), 16, 1, limits()).status,
            VIRTIO_BLK_S_UNSUPP);
  auto l = limits();
  l.flush = l.discard = false;
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_FLUSH, 0), 16, 1, l).status, VIRTIO_BLK_S_UNSUPP);
  auto d = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(d, 0, 8, 0);
  EXPECT_EQ(parse_blk_request(d, d.size(), 1, l).status, VIRTIO_BLK_S_UNSUPP);
}

TEST(BlkRequest, DiscardAndWriteZeroesRanges) {
  auto d = hdr(VIRTIO_BLK_T_WRITE_ZEROES, 0);
  add_seg(d, 10, 6, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
  add_seg(d, 2040, 8, 0);
  auto r = parse_blk_request(d, d.size(), 1, limits());
  ASSERT_EQ(r.kind, Kind::kRequest);
  ASSERT_EQ(r.request.ranges.size(), 2u);
  EXPECT_EQ(r.request.ranges[0].offset, 10u * 512);
  EXPECT_EQ(r.request.ranges[0].length, 6u * 512);
  EXPECT_TRUE(r.request.ranges[0].unmap);
  EXPECT_FALSE(r.request.ranges[1].unmap);
}

TEST(BlkRequest, DiscardRulesAreEnforced) {
  auto unmap_on_discard = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(unmap_on_discard, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
  EXPECT_EQ(parse_blk_request(unmap_on_discard, 32, 1, limits()).status, VIRTIO_BLK_S_UNSUPP);
  auto too_many = hdr(VIRTIO_BLK_T_DISCARD, 0);
  for (int i = 0; i < 3; ++i) add_seg(too_many, i, 1, 0);
  EXPECT_EQ(parse_blk_request(too_many, too_many.size(), 1, limits()).status, VIRTIO_BLK_S_IOERR);
  auto too_long = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(too_long, 0, 1025, 0);
  EXPECT_EQ(parse_blk_request(too_long, too_long.size(), 1, limits()).status, VIRTIO_BLK_S_IOERR);
  auto past_end = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(past_end, 2047, 2, 0);
  EXPECT_EQ(parse_blk_request(past_end, past_end.size(), 1, limits()).status, VIRTIO_BLK_S_IOERR);
  auto ragged = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(ragged, 0, 1, 0);
  ragged.pop_back();
  EXPECT_EQ(parse_blk_request(ragged, ragged.size(), 1, limits()).status, VIRTIO_BLK_S_IOERR);
  // The chain claims more readable bytes than were read: the segments are not all there.
  auto short_read = hdr(VIRTIO_BLK_T_DISCARD, 0);
  add_seg(short_read, 0, 1, 0);
  EXPECT_EQ(parse_blk_request(short_read, short_read.size() + 16, 1, limits()).status,
            VIRTIO_BLK_S_IOERR);
}

TEST(BlkRequest, GetIdWritesAtMost20Bytes) {
  auto r = parse_blk_request(hdr(VIRTIO_BLK_T_GET_ID, 0), 16, 64 + 1, limits());
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.length, 20u);
  EXPECT_EQ(parse_blk_request(hdr(VIRTIO_BLK_T_GET_ID, 0), 16, 9, limits()).request.length, 8u);
}

}  // namespace
}  // namespace vepf::layout
