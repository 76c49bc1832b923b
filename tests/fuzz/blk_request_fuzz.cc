// Fuzz target: layout::parse_blk_request(), the device's parser of virtio-blk request chains the
// driver wrote (VIRTIO 1.2 §5.2.6).
//
// Input (little-endian; missing bytes read as zero):
//   u8  cfg        bit 0 read_only, bit 1 flush, bit 2 discard, bit 3 write_zeroes
//   u8  max_seg    max_discard_seg = max_write_zeroes_seg (0..255)
//   u32 max_sectors per segment
//   u64 capacity   sectors
//   u32 read_len   readable bytes of the chain (may exceed the bytes given)
//   u32 write_len  writable bytes of the chain
//   the rest: the readable bytes given to the parser (header, then data)
//
// Checks (abort on violation): kMalformed exactly when the header or the status byte has no
// room; a kRequest stays inside the capacity, carries sector-multiple data within max_data, is
// never a write on a read-only device, and its ranges respect the segment limits; only the
// types VIRTIO 1.2 names come through.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "vepf/layout/blk.hpp"

namespace {

template <class T>
T take(const std::uint8_t*& p, std::size_t& n) {
  T v{};
  const std::size_t k = n < sizeof(T) ? n : sizeof(T);
  std::memcpy(&v, p, k);
  p += k;
  n -= k;
  return v;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::layout;
  const std::uint8_t* p = data;
  std::size_t n = size;
  const auto cfg = take<std::uint8_t>(p, n);
  BlkLimits lim;
  lim.read_only = cfg & 1;
  lim.flush = cfg & 2;
  lim.discard = cfg & 4;
  lim.write_zeroes = cfg & 8;
  lim.max_discard_seg = lim.max_write_zeroes_seg = take<std::uint8_t>(p, n);
  lim.max_discard_sectors = lim.max_write_zeroes_sectors = take<std::uint32_t>(p, n);
  lim.capacity = take<std::uint64_t>(p, n);
  lim.max_data = 1 << 20;
  const std::uint64_t read_len = take<std::uint32_t>(p, n);
  const std::uint64_t write_len = take<std::uint32_t>(p, n);
  const std::span<const std::byte> readable{reinterpret_cast<const std::byte*>(p), n};

  const BlkParse r = parse_blk_request(readable, read_len, write_len, lim);
  const bool no_room = read_len < sizeof(VirtioBlkReqHdr) ||
                       readable.size() < sizeof(VirtioBlkReqHdr) || write_len < 1;
  check((r.kind == BlkParse::Kind::kMalformed) == no_room);
  if (r.kind == BlkParse::Kind::kStatus) {
    check(r.status == VIRTIO_BLK_S_IOERR || r.status == VIRTIO_BLK_S_UNSUPP);
  }
  if (r.kind != BlkParse::Kind::kRequest) return 0;
  const auto& q = r.request;
  const std::uint64_t cap =
      lim.capacity * kSectorSize;  // capacity < 2^55 in practice; guard the check
  switch (q.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
      check(q.length % kSectorSize == 0 && q.length <= lim.max_data);
      check(q.offset / kSectorSize <= lim.capacity &&
            q.length / kSectorSize <= lim.capacity - q.offset / kSectorSize);
      check(q.type == VIRTIO_BLK_T_IN ? q.length == write_len - 1 && read_len == 16
                                      : q.length == read_len - 16 && write_len == 1);
      check(!(q.type == VIRTIO_BLK_T_OUT && lim.read_only));
      break;
    case VIRTIO_BLK_T_FLUSH:
      check(lim.flush);
      break;
    case VIRTIO_BLK_T_GET_ID:
      check(q.length <= VIRTIO_BLK_ID_BYTES && q.length <= write_len - 1);
      break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const bool discard = q.type == VIRTIO_BLK_T_DISCARD;
      check(discard ? lim.discard : lim.write_zeroes);
      check(!lim.read_only);
      check(!q.ranges.empty() && q.ranges.size() <= lim.max_discard_seg);
      for (const auto& g : q.ranges) {
        check(g.length <= std::uint64_t{lim.max_discard_sectors} * kSectorSize);
        check(g.offset % kSectorSize == 0 && g.length % kSectorSize == 0);
        check(g.offset / kSectorSize <= lim.capacity &&
              g.length / kSectorSize <= lim.capacity - g.offset / kSectorSize);
        check(!(discard && g.unmap));
      }
      break;
    }
    default:
      check(false);
  }
  (void)cap;
  return 0;
}
