// Fuzz target: a rogue device against vepf-host's real virtio-blk driver (host::BlockDriver,
// through the real DeviceTransport and DriverTransport over the fake links), while the NBD side
// (played here through the driver's nbd::BlockTarget interface, as NbdSession calls it) reads,
// writes (into buffers of its own or lent by the driver), flushes, trims and zeroes. The device
// offers any features and config (capacity, block size, discard and write-zeroes limits, queue
// size), writes any bytes and status into a request's writable part, claims any used length,
// leaves requests unanswered, writes any word of the RC window (used ring, status bytes, read
// data, mailbox) and says DEVICE_NEEDS_RESET.
//
// Input (missing bytes read as zero):
//   u8 feat   offered besides VERSION_1: bit 0 RO, 1 FLUSH, 2 DISCARD, 3 WRITE_ZEROES,
//             4 BLK_SIZE, 5 EVENT_IDX, 6 SEG_MAX
//   u8 cap    the capacity: 0 none, 1 one sector, 2 ~2^63 bytes, else 1 MiB
//   u32 blk_size, u32 max_discard_sectors, u32 max_write_zeroes_sectors, u8 queue size (3..130)
//   then operations until the input ends, u8 opcode % 8:
//     0 the device answers the next request: u8 status, u16 bytes written (before the status),
//       u8 claim (bit 0: a u32 used length from the input instead of what it wrote)
//     1 the device answers every request with u8 status, claiming what it wrote
//     2 the device writes a 32-bit word of the RC window: u32 offset, u32 value
//     3 the NBD side reads: offset, u16 sectors (see `range`)
//     4 the NBD side writes: offset, u16 sectors, u8 bits (0: FUA, 1: into a lent buffer)
//     5 the NBD side flushes, trims or zeroes: u8 which (% 3), offset, u16 sectors
//     6 interrupt (the driver runs)
//     7 the device says DEVICE_NEEDS_RESET and the driver is probed again
//   offset: u8 mode % 3: u16 sectors in, the last sectors of the capacity, or a raw u64 (bytes)
//
// Checks (abort on violation): strict link model; every `done` is called at most once, and only
// while its buffer is alive; a buffer lent for a write is the length asked for and lies in the
// EP window; no more write buffers are free than exist.

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/blk/blk_driver.hpp"
#include "fuzz_support.hpp"
#include "rogue_device.hpp"
#include "vepf/layout/blk.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 2u << 20;  // bytes of each window

/// The rogue device: what it offers and writes comes from the input.
class RogueBlkDevice final : public RogueDevice {
 public:
  RogueBlkDevice(std::uint64_t features, const layout::VirtioBlkConfig& cfg, std::uint16_t qsize)
      : RogueDevice(VIRTIO_ID_BLOCK, features, 1, qsize), cfg_(cfg) {}
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }

  /// Answers the next request: `data` bytes of 0x5c, then the status byte, at the start of its
  /// writable part; claims `claimed` (or what it wrote) as the used length. False: none waits.
  bool answer(std::uint8_t status, std::size_t data, std::optional<std::uint32_t> claimed) {
    std::vector<std::byte> b(data + 1, std::byte{0x5c});
    b.back() = static_cast<std::byte>(status);
    return complete_next(layout::kBlkRequestQueue, b, claimed);
  }
  /// As a correct device would answer: the status at the last writable byte, the data before.
  void answer_all(std::uint8_t status) {
    ring::Vringh* q = queue(layout::kBlkRequestQueue);
    for (int k = 0; q != nullptr && k < 256; ++k) {
      auto c = q->pop();
      if (!c || !*c) break;
      std::vector<std::byte> b((*c)->write_len, std::byte{0x3d});
      if (!b.empty()) b.back() = static_cast<std::byte>(status);
      const auto n = static_cast<std::uint32_t>(ring::chain_write(**c, b));
      if (!q->complete((*c)->head, n)) break;
    }
    interrupt();
  }

 private:
  layout::VirtioBlkConfig cfg_;
};

/// One NBD-side request: its buffer, and whether `done` ran. Kept until the run ends, so that a
/// late `done` finds it.
struct Request {
  std::vector<std::byte> buf;
  host::nbd::LentBuffer lent;
  int calls = 0;
};

std::uint64_t offset(ByteReader& in, std::uint64_t capacity) {
  switch (in.u8() % 3) {
    case 0:
      return std::uint64_t{in.u16()} * layout::kSectorSize;
    case 1:
      return capacity -
             std::min<std::uint64_t>(capacity, static_cast<std::uint64_t>(in.u8() % 4) * 512);
    default:
      return in.u64();
  }
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("host.blk"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::uint8_t feat = in.u8();
  std::uint64_t features = bit(VIRTIO_F_VERSION_1);
  static constexpr unsigned kBits[] = {VIRTIO_BLK_F_RO,       VIRTIO_BLK_F_FLUSH,
                                       VIRTIO_BLK_F_DISCARD,  VIRTIO_BLK_F_WRITE_ZEROES,
                                       VIRTIO_BLK_F_BLK_SIZE, VIRTIO_RING_F_EVENT_IDX,
                                       VIRTIO_BLK_F_SEG_MAX};
  for (unsigned i = 0; i < 7; ++i) {
    if ((feat >> i) & 1) features |= bit(kBits[i]);
  }
  layout::VirtioBlkConfig cfg{};
  const std::uint8_t cap = in.u8();
  const std::uint64_t sectors = cap == 0 ? 0 : cap == 1 ? 1 : cap == 2 ? (1ull << 54) : 2048;
  cfg.capacity = layout::le64::from_cpu(sectors);
  cfg.blk_size = layout::le32::from_cpu(in.u32());
  cfg.max_discard_sectors = layout::le32::from_cpu(in.u32());
  cfg.max_write_zeroes_sectors = layout::le32::from_cpu(in.u32());
  cfg.write_zeroes_may_unmap = 1;
  const auto qsize = static_cast<std::uint16_t>(3 + in.u8() % 128);
  const std::uint64_t capacity = sectors * layout::kSectorSize;

  RogueBlkDevice rogue(features, cfg, qsize);  // before t: its DeviceTransport resets it
  // The windows are large (the driver's data buffers take 1 MiB each way at least): made once
  // and zeroed for each input, which costs a fifth of making them again.
  static test::LinkWindows windows(kWindow, kWindow);
  std::memset(windows.ep().data(), 0, windows.ep().size());
  std::memset(windows.rc().data(), 0, windows.rc().size());
  test::TransportPair t(0x5eed0009, std::chrono::milliseconds(5), windows);
  auto loop = os::EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  const auto info = attach_rogue(t, rogue);
  if (!info) return;
  const std::string sock = std::string(scratch_dir()) + "/blk_driver_fuzz.sock";
  std::vector<std::unique_ptr<Request>> reqs;  // outlive the driver: late calls find them
  std::optional<host::BlockDriver> blk;        // after the transports: its queue goes first
  auto bring_up = [&]() -> bool {
    blk.emplace(t.drv, *info, sock, *loop, 1);
    return blk->probe().has_value();
  };
  // Every request's buffer stays alive until the driver is gone (the BlockTarget contract); a
  // lent buffer goes back before the driver does, as an NBD session's would.
  auto tear_down = [&] {
    for (auto& r : reqs) r->lent = {};
    blk.reset();
  };
  auto done_for = [](Request& r) {
    return [&r](int) {
      ++r.calls;
      FUZZ_EXPECT("done-once", r.calls == 1);
    };
  };
  if (!bring_up()) return tear_down();

  while (!in.empty()) {
    switch (in.u8() % 8) {
      case 0: {
        const std::uint8_t status = in.u8();
        const std::size_t n = in.u16();
        const bool claim = (in.u8() & 1) != 0;
        (void)rogue.answer(status, n,
                           claim ? std::optional<std::uint32_t>(in.u32()) : std::nullopt);
        break;
      }
      case 1:
        rogue.answer_all(in.u8());
        break;
      case 2:
        scribble_rc(in, t.w);
        break;
      case 3: {
        const std::uint64_t off = offset(in, capacity);
        auto& r = *reqs.emplace_back(std::make_unique<Request>());
        r.buf.resize(static_cast<std::size_t>(in.u16() % 512) * layout::kSectorSize);
        blk->read(off, r.buf, done_for(r));
        break;
      }
      case 4: {
        const std::uint64_t off = offset(in, capacity);
        const std::size_t len = static_cast<std::size_t>(in.u16() % 512) * layout::kSectorSize;
        const std::uint8_t bits = in.u8();
        auto& r = *reqs.emplace_back(std::make_unique<Request>());
        std::span<std::byte> src;
        if ((bits & 2) != 0 && len != 0) r.lent = blk->lend_write_buffer(len);
        if (r.lent) {
          src = r.lent.bytes();
          const std::span<std::byte> ep = t.w.ep();
          FUZZ_CHECK(src.size() == len && src.data() >= ep.data() &&
                     src.data() + src.size() <= ep.data() + ep.size());
          std::memset(src.data(), 0x7e, src.size());  // as the session receives into it
        } else {
          r.buf.assign(len, std::byte{0x7e});
          src = r.buf;
        }
        blk->write(off, src, (bits & 1) != 0, done_for(r));
        break;
      }
      case 5: {
        const std::uint8_t which = in.u8() % 3;
        const std::uint64_t off = offset(in, capacity);
        const auto len = static_cast<std::uint32_t>(std::uint32_t{in.u16()} * layout::kSectorSize);
        auto& r = *reqs.emplace_back(std::make_unique<Request>());
        if (which == 0) {
          blk->flush(done_for(r));
        } else if (which == 1) {
          blk->trim(off, len, done_for(r));
        } else {
          blk->write_zeroes(off, len, true, done_for(r));
        }
        break;
      }
      case 6:
        blk->on_interrupt();
        break;
      default:
        rogue.needs_reset(layout::kBlkRequestQueue);
        if (!blk->on_control_event()) {
          tear_down();
          if (!bring_up()) return tear_down();
        }
        break;
    }
    FUZZ_CHECK(blk->free_write_bufs() <= blk->write_bufs());
    // Lent buffers no request holds any more (its write done) go back as the session's would.
    for (auto& r : reqs) {
      if (r->calls != 0) r->lent = {};
    }
  }
  if (verbose()) {
    const host::BlkStats& st = blk->stats();
    std::fprintf(
        stderr,
        "blk_driver_fuzz: features %#llx, %zu requests, reads %llu, writes %llu (lent "
        "%llu), flushes %llu, discards %llu, write-zeroes %llu, errors %llu\n",
        static_cast<unsigned long long>(features), reqs.size(),
        static_cast<unsigned long long>(st.reads), static_cast<unsigned long long>(st.writes),
        static_cast<unsigned long long>(st.lent_writes),
        static_cast<unsigned long long>(st.flushes), static_cast<unsigned long long>(st.discards),
        static_cast<unsigned long long>(st.write_zeroes),
        static_cast<unsigned long long>(st.errors));
  }
  tear_down();
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
