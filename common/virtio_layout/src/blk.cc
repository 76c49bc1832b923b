#include "vepf/layout/blk.hpp"

#include <algorithm>
#include <cstring>

namespace vepf::layout {

namespace {

BlkParse status(std::uint8_t s) {
  BlkParse p;
  p.kind = BlkParse::Kind::kStatus;
  p.status = s;
  return p;
}

// sector + count inside the capacity, without overflow.
bool in_range(std::uint64_t sector, std::uint64_t count, std::uint64_t capacity) {
  return sector <= capacity && count <= capacity - sector;
}

BlkParse ranges(std::uint32_t type, std::span<const std::byte> data, std::uint64_t data_len,
                const BlkLimits& lim) {
  const bool discard = type == VIRTIO_BLK_T_DISCARD;
  const std::uint32_t max_seg = discard ? lim.max_discard_seg : lim.max_write_zeroes_seg;
  const std::uint32_t max_sectors =
      discard ? lim.max_discard_sectors : lim.max_write_zeroes_sectors;
  if (data_len == 0 || data_len % sizeof(VirtioBlkDiscardWz) != 0 || data.size() != data_len) {
    return status(VIRTIO_BLK_S_IOERR);
  }
  const std::uint64_t n = data_len / sizeof(VirtioBlkDiscardWz);
  if (n > max_seg) return status(VIRTIO_BLK_S_IOERR);
  BlkParse p;
  p.kind = BlkParse::Kind::kRequest;
  p.request.type = type;
  for (std::uint64_t i = 0; i < n; ++i) {
    VirtioBlkDiscardWz seg;
    std::memcpy(&seg, data.data() + i * sizeof(seg), sizeof(seg));
    const std::uint64_t sector = seg.sector.to_cpu();
    const std::uint32_t count = seg.num_sectors.to_cpu();
    const std::uint32_t flags = seg.flags.to_cpu();
    // VIRTIO 1.2 §5.2.6.2: unknown flags, or UNMAP on DISCARD, are unsupported.
    if (discard ? flags != 0 : (flags & ~std::uint32_t{VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}) != 0) {
      return status(VIRTIO_BLK_S_UNSUPP);
    }
    if (count > max_sectors || !in_range(sector, count, lim.capacity))
      return status(VIRTIO_BLK_S_IOERR);
    p.request.ranges.push_back({sector * kSectorSize, std::uint64_t{count} * kSectorSize,
                                (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0});
  }
  return p;
}

}  // namespace

BlkParse parse_blk_request(std::span<const std::byte> readable, std::uint64_t read_len,
                           std::uint64_t write_len, const BlkLimits& lim) {
  // No header or no status byte: nothing can be answered; the driver broke the ring's contract.
  if (read_len < sizeof(VirtioBlkReqHdr) || readable.size() < sizeof(VirtioBlkReqHdr) ||
      write_len < kBlkStatusSize) {
    return {};
  }
  VirtioBlkReqHdr hdr;
  std::memcpy(&hdr, readable.data(), sizeof(hdr));
  const std::uint32_t type = hdr.type.to_cpu();
  const std::uint64_t sector = hdr.sector.to_cpu();
  const std::uint64_t in_data = write_len - kBlkStatusSize;  // writable bytes before the status
  const std::uint64_t out_data =
      read_len - sizeof(VirtioBlkReqHdr);  // readable bytes after the header

  BlkParse p;
  p.kind = BlkParse::Kind::kRequest;
  p.request.type = type;
  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const bool in = type == VIRTIO_BLK_T_IN;
      const std::uint64_t len = in ? in_data : out_data;
      // An IN request carries no readable data, an OUT request no writable data.
      if ((in ? out_data : in_data) != 0) return status(VIRTIO_BLK_S_IOERR);
      if (!in && lim.read_only) return status(VIRTIO_BLK_S_IOERR);  // §5.2.6.2: and write nothing
      if (len % kSectorSize != 0 || len > lim.max_data) return status(VIRTIO_BLK_S_IOERR);
      if (!in_range(sector, len / kSectorSize, lim.capacity)) return status(VIRTIO_BLK_S_IOERR);
      p.request.offset = sector * kSectorSize;
      p.request.length = len;
      return p;
    }
    case VIRTIO_BLK_T_FLUSH:
      if (!lim.flush) return status(VIRTIO_BLK_S_UNSUPP);
      if (out_data != 0 || in_data != 0) return status(VIRTIO_BLK_S_IOERR);
      return p;
    case VIRTIO_BLK_T_GET_ID:
      if (out_data != 0) return status(VIRTIO_BLK_S_IOERR);
      p.request.length = std::min<std::uint64_t>(in_data, VIRTIO_BLK_ID_BYTES);
      return p;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const bool discard = type == VIRTIO_BLK_T_DISCARD;
      if (!(discard ? lim.discard : lim.write_zeroes)) return status(VIRTIO_BLK_S_UNSUPP);
      if (lim.read_only) return status(VIRTIO_BLK_S_IOERR);
      if (in_data != 0) return status(VIRTIO_BLK_S_IOERR);
      return ranges(type, readable.subspan(sizeof(VirtioBlkReqHdr)), out_data, lim);
    }
    default:
      return status(VIRTIO_BLK_S_UNSUPP);
  }
}

}  // namespace vepf::layout
