#pragma once
// virtio-blk wire structures (VIRTIO 1.2 §5.2). Constants come from <linux/virtio_blk.h>; the
// structs are re-declared with Le<T> fields, naturally aligned, and checked against the uapi
// layout.

#include <linux/virtio_blk.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vepf/layout/le.hpp"

namespace vepf::layout {

/// struct virtio_blk_config, VIRTIO 1.2 §5.2.4 (72 bytes).
struct VirtioBlkConfig {
  le64 capacity{};                        // 0x00 in 512-byte sectors
  le32 size_max{};                        // 0x08 VIRTIO_BLK_F_SIZE_MAX: bytes per segment
  le32 seg_max{};                         // 0x0c VIRTIO_BLK_F_SEG_MAX: data segments per request
  le16 cylinders{};                       // 0x10 VIRTIO_BLK_F_GEOMETRY (not offered)
  std::uint8_t heads{};                   // 0x12
  std::uint8_t sectors{};                 // 0x13
  le32 blk_size{};                        // 0x14 VIRTIO_BLK_F_BLK_SIZE: bytes
  std::uint8_t physical_block_exp{};      // 0x18 VIRTIO_BLK_F_TOPOLOGY (not offered)
  std::uint8_t alignment_offset{};        // 0x19
  le16 min_io_size{};                     // 0x1a
  le32 opt_io_size{};                     // 0x1c
  std::uint8_t wce{};                     // 0x20 VIRTIO_BLK_F_CONFIG_WCE (not offered)
  std::uint8_t unused{};                  // 0x21
  le16 num_queues{};                      // 0x22 VIRTIO_BLK_F_MQ (not offered)
  le32 max_discard_sectors{};             // 0x24 VIRTIO_BLK_F_DISCARD: per segment
  le32 max_discard_seg{};                 // 0x28 segments per DISCARD request
  le32 discard_sector_alignment{};        // 0x2c sectors
  le32 max_write_zeroes_sectors{};        // 0x30 VIRTIO_BLK_F_WRITE_ZEROES: per segment
  le32 max_write_zeroes_seg{};            // 0x34 segments per WRITE_ZEROES request
  std::uint8_t write_zeroes_may_unmap{};  // 0x38
  std::uint8_t unused1[3]{};              // 0x39
  le32 max_secure_erase_sectors{};        // 0x3c VIRTIO_BLK_F_SECURE_ERASE (not offered)
  le32 max_secure_erase_seg{};            // 0x40
  le32 secure_erase_sector_alignment{};   // 0x44
};
static_assert(sizeof(VirtioBlkConfig) == sizeof(virtio_blk_config) &&
              sizeof(VirtioBlkConfig) == 72);
static_assert(offsetof(VirtioBlkConfig, blk_size) == offsetof(virtio_blk_config, blk_size));
static_assert(offsetof(VirtioBlkConfig, num_queues) == offsetof(virtio_blk_config, num_queues));
static_assert(offsetof(VirtioBlkConfig, max_discard_sectors) ==
              offsetof(virtio_blk_config, max_discard_sectors));
static_assert(offsetof(VirtioBlkConfig, max_write_zeroes_seg) ==
              offsetof(virtio_blk_config, max_write_zeroes_seg));
static_assert(offsetof(VirtioBlkConfig, write_zeroes_may_unmap) ==
              offsetof(virtio_blk_config, write_zeroes_may_unmap));
static_assert(offsetof(VirtioBlkConfig, secure_erase_sector_alignment) ==
              offsetof(virtio_blk_config, secure_erase_sector_alignment));

/// struct virtio_blk_outhdr, VIRTIO 1.2 §5.2.6: the first 16 readable bytes of every request.
struct VirtioBlkReqHdr {
  le32 type{};    // 0x00 VIRTIO_BLK_T_IN, _OUT, _FLUSH, _GET_ID, _DISCARD, _WRITE_ZEROES
  le32 ioprio{};  // 0x04 (reserved)
  le64 sector{};  // 0x08 in 512-byte sectors
};
static_assert(sizeof(VirtioBlkReqHdr) == sizeof(virtio_blk_outhdr) &&
              sizeof(VirtioBlkReqHdr) == 16);
static_assert(offsetof(VirtioBlkReqHdr, sector) == offsetof(virtio_blk_outhdr, sector));

/// struct virtio_blk_discard_write_zeroes, VIRTIO 1.2 §5.2.6: the data of DISCARD and
/// WRITE_ZEROES requests is an array of these (16 bytes each).
struct VirtioBlkDiscardWz {
  le64 sector{};       // 0x00 first sector
  le32 num_sectors{};  // 0x08
  le32 flags{};        // 0x0c VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP (WRITE_ZEROES only)
};
static_assert(sizeof(VirtioBlkDiscardWz) == sizeof(virtio_blk_discard_write_zeroes));
static_assert(offsetof(VirtioBlkDiscardWz, flags) ==
              offsetof(virtio_blk_discard_write_zeroes, flags));

/// The sector of VIRTIO 1.2 §5.2: capacity, request sectors and discard ranges count these.
inline constexpr std::uint32_t kSectorSize = 512;
/// The single request queue (VIRTIO 1.2 §5.2.2; VIRTIO_BLK_F_MQ not offered).
inline constexpr std::uint16_t kBlkRequestQueue = 0;
/// The status byte a device writes last (VIRTIO 1.2 §5.2.6).
inline constexpr std::size_t kBlkStatusSize = 1;

/// What the device accepts (from its config and the negotiated features).
struct BlkLimits {
  std::uint64_t capacity = 0;  // sectors
  bool read_only = false;      // VIRTIO_BLK_F_RO negotiated
  bool flush = false;          // VIRTIO_BLK_F_FLUSH negotiated
  bool discard = false;        // VIRTIO_BLK_F_DISCARD negotiated
  bool write_zeroes = false;   // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  std::uint32_t max_discard_sectors = 0, max_discard_seg = 0;
  std::uint32_t max_write_zeroes_sectors = 0, max_write_zeroes_seg = 0;
  std::uint64_t max_data = 0;  // bytes of data one IN/OUT request may carry
};

/// One sector range of a DISCARD or WRITE_ZEROES request, in bytes.
struct BlkRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool unmap = false;  // VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
};

/// A request as the device will carry it out.
struct BlkRequest {
  std::uint32_t type = 0;        // VIRTIO_BLK_T_*
  std::uint64_t offset = 0;      // bytes (IN, OUT)
  std::uint64_t length = 0;      // data bytes: IN to the driver, OUT from it, GET_ID id bytes
  std::vector<BlkRange> ranges;  // DISCARD, WRITE_ZEROES
};

/// How the device answers a descriptor chain.
struct BlkParse {
  enum class Kind {
    kRequest,    // carry out `request`, then write the status
    kStatus,     // answer at once with `status` (VIRTIO_BLK_S_IOERR or _UNSUPP), no data
    kMalformed,  // the chain has no room for the header or the status byte: break the queue
  };
  Kind kind = Kind::kMalformed;
  std::uint8_t status = VIRTIO_BLK_S_OK;
  BlkRequest request;
};

/// Checks a request chain the driver wrote (VIRTIO 1.2 §5.2.6): `readable` is the chain's
/// readable bytes (header, then OUT/DISCARD/WRITE_ZEROES data; the caller may pass only the
/// first 16 bytes for other types, with `read_len` the full count), `write_len` the writable
/// bytes (IN/GET_ID data, then the status byte). Data lengths must be sector multiples, sector
/// ranges inside the capacity, segment counts and sizes within `lim`; writes are refused on a
/// read-only device; unknown or unnegotiated types get VIRTIO_BLK_S_UNSUPP. The one parser of
/// virtio-blk requests.
BlkParse parse_blk_request(std::span<const std::byte> readable, std::uint64_t read_len,
                           std::uint64_t write_len, const BlkLimits& lim);

}  // namespace vepf::layout
