// Fuzz target: a rogue driver against the EP's real virtio-blk device (ep::BlockDevice on a
// 256 KiB file, with its I/O thread, through the real DeviceTransport and DriverTransport over
// the fake links). The driver posts request chains of any shape: headers of any type and sector
// (in range, at the end, anywhere), readable segments with DISCARD / WRITE_ZEROES segments of its
// choosing, writable room of any size anywhere (none at all, across a window's end, at any link
// address); it scribbles on its own rings, resets the device and lets completions arrive in
// between.
//
// Input (missing bytes read as zero):
//   u8 cfg    bit 0: VIRTIO_RING_F_EVENT_IDX; bit 1: a queue of 4 entries instead of 16;
//             bit 2: a read-only file; bit 3: FLUSH, DISCARD and WRITE_ZEROES not negotiated
//   then operations until the input ends, u8 opcode % 6:
//     0 request: the header placed (rogue_driver.hpp place()), written at its start when the
//       driver allocated it: u8 type (% 8: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
//       SECURE_ERASE, else u32 raw) and a sector (u8 mode % 3: u16 in range, the last sectors,
//       u64 raw); u8 n (% 3) more readable segments, each placed, the first holding u8 k (% 4)
//       discard/write-zeroes segments (sector as above, u16 sectors, u8 flags) when allocated;
//       u8 m (% 4) writable segments placed in the RC window; kick
//     1 the driver writes a 32-bit word of its EP-window space: u32 offset, u32 value
//     2 the driver takes every used entry
//     3 doorbell
//     4 completions: the event loop runs (u8 bit 0: waits up to 2 ms for the I/O thread)
//     5 device reset, then the same bring-up again
//
// Checks (abort on violation): strict link model (the device touches the windows only as device
// memory allows, and only inside them); the file never changes size (nothing is written past
// the capacity) and a read-only file never changes; no used length exceeds the writable room the
// driver posted for that chain (while it has not scribbled on its rings); no more requests are
// in flight at once than the queue has entries.

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "devices/blk/blk_device.hpp"
#include "fuzz_support.hpp"
#include "rogue_driver.hpp"
#include "vepf/layout/blk.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vring.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 256 * 1024;  // bytes of each window
constexpr std::uint64_t kDisk = 256 * 1024;  // bytes of the file
constexpr std::uint64_t kSectors = kDisk / layout::kSectorSize;

/// The backing file: a memfd (no disk, fdatasync is cheap), opened afresh by each run through
/// /proc/self/fd so that the device owns a descriptor of its own.
struct Disk {
  Disk() {
    fd = ::memfd_create("blk_device_fuzz", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0 && ::ftruncate(fd, kDisk) == 0);
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  /// An FNV-1a hash of the contents, and the size (bytes).
  std::uint64_t hash() const {
    std::vector<unsigned char> b(kDisk);
    FUZZ_CHECK(::pread(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
    return h;
  }
  std::uint64_t size() const {
    struct stat st {};
    FUZZ_CHECK(::fstat(fd, &st) == 0);
    return static_cast<std::uint64_t>(st.st_size);
  }
  int fd = -1;
  std::string path;
};

std::uint64_t sector(ByteReader& in) {
  switch (in.u8() % 3) {
    case 0:
      return in.u16() % kSectors;
    case 1:
      return kSectors - 1 - in.u8() % 4;
    default:
      return in.u64();
  }
}

std::uint32_t request_type(ByteReader& in) {
  static constexpr std::uint32_t kTypes[] = {VIRTIO_BLK_T_IN,          VIRTIO_BLK_T_OUT,
                                             VIRTIO_BLK_T_FLUSH,       VIRTIO_BLK_T_GET_ID,
                                             VIRTIO_BLK_T_DISCARD,     VIRTIO_BLK_T_WRITE_ZEROES,
                                             VIRTIO_BLK_T_SECURE_ERASE};
  const std::uint8_t t = in.u8() % 8;
  return t < 7 ? kTypes[t] : in.u32();
}

struct Rig {
  Rig(const Disk& disk, bool read_only, std::uint16_t qsize) : queue_size(qsize) {
    auto f = ep::BlockFile::open(disk.path, 0, read_only);
    FUZZ_CHECK(f.has_value());
    config::BlockConfig c;
    c.path = disk.path;
    c.read_only = read_only;
    c.max_range_bytes = 64 * 1024;  // a WRITE_ZEROES or DISCARD segment may cover this much
    dev.emplace(std::move(*f), c, qsize, 1);
  }
  bool bring_up(std::uint64_t want) {
    room.clear();
    return fuzz::bring_up(t, slot, want, queue_size, vq, features);
  }

  // Destroyed in reverse: the transports (which reset the device), the device (which joins its
  // I/O thread, still reading chains in the EP window), then the windows, as in ep::Server
  // (its link outlives its devices). The TransportPair owning the windows would free them
  // under the I/O thread (a fuzz finding: corpus/blk_device_fuzz/crash-a646fda7...).
  test::LinkWindows windows{kWindow, kWindow};
  std::optional<ep::BlockDevice> dev;
  test::TransportPair t{0x5eed0008, std::chrono::milliseconds(5), windows};
  std::uint16_t queue_size;
  std::uint32_t slot = 0;
  std::uint64_t features = 0;
  std::optional<ring::Vring> vq[1];
  std::uint64_t token = 0;
  PostedRoom room;  // what each chain let the device write
};

/// Writes `what` at `off` of the driver's view of the EP window, cut to `len` bytes.
void put(Rig& r, std::size_t off, std::size_t len, std::span<const std::byte> what) {
  r.t.w.drv_ep.write(off, what.first(what.size() < len ? what.size() : len));
}

void request(Rig& r, ByteReader& in) {
  const std::uint64_t ep_base = layout::link_addr(layout::WindowId::kEp, 0),
                      ep_size = r.t.w.drv_ep.size();
  const std::uint64_t rc_base = layout::link_addr(layout::WindowId::kRc, 0),
                      rc_size = r.t.w.drv_rc.size();
  std::vector<ring::Buf> out, wr;
  if (auto h = place(in, r.t.drv.ep_alloc(), ep_base, ep_size)) {
    out.push_back(h->buf);
    layout::VirtioBlkReqHdr hdr{};
    hdr.type = layout::le32::from_cpu(request_type(in));
    hdr.sector = layout::le64::from_cpu(sector(in));
    if (h->off) put(r, *h->off, h->buf.len, std::as_bytes(std::span{&hdr, 1}));
  }
  const unsigned n = in.u8() % 3;
  for (unsigned i = 0; i < n; ++i) {
    auto b = place(in, r.t.drv.ep_alloc(), ep_base, ep_size);
    if (!b) continue;
    out.push_back(b->buf);
    if (i != 0 || !b->off) continue;
    std::vector<layout::VirtioBlkDiscardWz> segs(in.u8() % 4);
    for (auto& s : segs) {
      s.sector = layout::le64::from_cpu(sector(in));
      s.num_sectors = layout::le32::from_cpu(in.u16());
      s.flags = layout::le32::from_cpu(in.u8());
    }
    put(r, *b->off, b->buf.len, std::as_bytes(std::span{segs}));
  }
  const unsigned m = in.u8() % 4;
  std::uint64_t writable = 0;
  for (unsigned i = 0; i < m; ++i) {
    if (auto b = place(in, r.t.drv.rc_alloc(), rc_base, rc_size)) {
      wr.push_back(b->buf);
      writable += b->buf.len;
    }
  }
  if (post(r.t, *r.vq[0], out, wr, ++r.token)) r.room.posted(r.token, writable);
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("ep.blk"), true);
  (void)quiet;
  static const Disk disk;
  ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  const bool read_only = (cfg & 4) != 0;
  std::uint64_t want = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE);
  if (cfg & 1) want |= bit(VIRTIO_RING_F_EVENT_IDX);
  if ((cfg & 8) == 0)
    want |= bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
  const std::uint64_t before = read_only ? disk.hash() : 0;
  {
    auto loop = os::EventLoop::create();  // outlives the device, which leaves it when destroyed
    FUZZ_CHECK(loop.has_value());
    Rig r(disk, read_only, (cfg & 2) != 0 ? 4 : 16);
    auto s = r.t.add(*r.dev);
    FUZZ_CHECK(s.has_value());
    r.slot = *s;
    FUZZ_CHECK(r.dev->start(*loop).has_value());
    FUZZ_CHECK(r.t.drv.attach().has_value());
    if (!r.bring_up(want)) return;

    while (!in.empty()) {
      switch (in.u8() % 6) {
        case 0:
          request(r, in);
          break;
        case 1:
          scribble(in, r.t);
          r.room.scribbled();
          break;
        case 2:
          if (r.vq[0]) r.room.take_used(*r.vq[0]);
          break;
        case 3:
          (void)r.t.drl.ring_doorbell();
          break;
        case 4:
          (void)loop->run_once((in.u8() & 1) != 0 ? 2 : 0);
          break;
        default:
          (void)r.t.drv.reset(r.slot);
          r.vq[0].reset();
          if (!r.bring_up(want)) return;
          break;
      }
      FUZZ_CHECK(r.dev->stats().max_in_flight <= 16);
    }
    (void)loop->run_once(0);
    if (r.vq[0]) r.room.take_used(*r.vq[0]);
    if (verbose()) {
      const auto& st = r.dev->stats();
      std::fprintf(
          stderr,
          "blk_device_fuzz: features %#llx, %llu posted, reads %llu, writes %llu, flushes "
          "%llu, discards %llu, write-zeroes %llu, get-ids %llu, refused %llu, I/O errors "
          "%llu, most in flight %llu, status %#x\n",
          static_cast<unsigned long long>(r.features), static_cast<unsigned long long>(r.token),
          static_cast<unsigned long long>(st.reads), static_cast<unsigned long long>(st.writes),
          static_cast<unsigned long long>(st.flushes), static_cast<unsigned long long>(st.discards),
          static_cast<unsigned long long>(st.write_zeroes),
          static_cast<unsigned long long>(st.get_ids), static_cast<unsigned long long>(st.refused),
          static_cast<unsigned long long>(st.io_errors),
          static_cast<unsigned long long>(st.max_in_flight), r.t.drv.device_status(r.slot));
    }
  }  // the device goes: its I/O thread is joined, nothing writes the file after this
  FUZZ_CHECK(disk.size() == kDisk);
  if (read_only) FUZZ_CHECK(disk.hash() == before);
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
