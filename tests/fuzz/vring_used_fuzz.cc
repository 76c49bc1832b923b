// Fuzz target: Vring (the driver side of a split virtqueue) against a hostile device that writes
// the used ring (idx and entries) as it likes, interleaved with add()/get_used()/enable_cb().
//
// Run (clang 14, libFuzzer):
//   cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++
//   -DCMAKE_BUILD_TYPE=RelWithDebInfo cmake --build build/fuzz --target vring_used_fuzz
//   build/fuzz/tests/fuzz/vring_used_fuzz tests/fuzz/corpus/vring_used_fuzz
// Replay only (any compiler; ctest fuzz.vring_used_fuzz.corpus does this):
//   build/default/tests/fuzz/vring_used_fuzz_replay tests/fuzz/corpus/vring_used_fuzz
// Seeds: tests/fuzz/gen_corpus.py.
//
// Input (little-endian; missing bytes read as zero):
//   u8 cfg   bits 0-3: log2(num) % 9 (num 1..256); bit 4 EVENT_IDX; bit 5: the driver has an
//            indirect pool
//   u8 imax  entries per indirect table: 1 + imax % 8 (with a pool)
//   then operations until the input ends: u8 opcode (mod kOps) and its arguments (see run_op).
//
// The harness keeps a model of the driver: which descriptors each chain in flight owns (read
// back from the descriptor table and avail ring Vring wrote, which the device cannot change
// here), its token and device-writable length. Checks (abort on violation): add() fails exactly
// when the model says (kInvalidArgument, kNoSpace, kBadRing) and never hands out a descriptor
// that is in flight; a direct chain's descriptors are the buffers in order with the right
// flags, an indirect one points at its own pool slot; num_free() == free descriptors of the model
// and never exceeds num; in_flight() matches; get_used() returns only tokens that were added and
// not returned yet, with len <= their writable bytes, and fails with kBadRing exactly when the
// device broke a rule (VIRTIO 1.2 §2.7.8); after kBadRing add()/get_used() always fail;
// kick_prepare()/enable_cb() follow §2.7.10; nothing outside the rings is written (EP bytes
// outside desc/avail/pool keep their fill) and no byte outside the windows is touched.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/vring.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::size_t kEpSize = 0xc000;
constexpr std::size_t kRcSize = 0x1000;
constexpr std::size_t kDescOff = 0x1000;   // EP: up to 256 x 16 B
constexpr std::size_t kAvailOff = 0x2000;  // EP: up to 6 + 512 B
constexpr std::size_t kPoolOff = 0x3000;   // EP: up to 256 x 8 x 16 B = 32 KiB
constexpr std::size_t kUsedOff = 0x100;    // RC: up to 6 + 2048 B
constexpr std::uint64_t kPoolAddr = (std::uint64_t{1} << 56) | kPoolOff;  // link address (EP)
constexpr std::byte kFill{0xCC};

struct InFlight {
  bool busy = false;
  std::uint64_t token = 0;
  std::uint32_t in_len = 0;  // device-writable bytes (fits: add() refuses chains over 2^32 - 1)
  std::vector<std::uint16_t> descs;  // descriptors of the main table the chain owns
};

struct Harness {
  Harness(GuardedMemory& ep_m, GuardedMemory& rc_m) : ep_mem(ep_m), rc_mem(rc_m) {
    ep_mem.reset(kFill);
    rc_mem.reset();
  }

  GuardedMemory& ep_mem;
  GuardedMemory& rc_mem;
  ring::LinkCounters ctr;
  ring::Window ep{layout::WindowId::kEp, ep_mem.bytes(), &ctr};  // remote for the driver
  ring::Window rc{layout::WindowId::kRc, rc_mem.bytes(), nullptr};
  std::optional<ring::Vring> vr;

  std::uint16_t num = 1;
  bool event_idx = false;
  bool pool = false;
  std::uint16_t imax = 0;
  std::size_t pool_bytes = 0;

  // Model of the driver.
  std::vector<InFlight> heads;  // by head
  std::vector<bool> desc_busy;  // by descriptor
  std::uint16_t free_descs = 0;
  std::uint16_t in_flight = 0;
  std::uint16_t adds = 0;       // avail idx shadow
  std::uint16_t published = 0;  // avail idx published by kick_prepare()
  std::uint16_t last_used = 0;
  std::uint16_t used_seen = 0;  // the used idx at the driver's last read (Vring reads it again
                                // only once the entries it named are taken)
  std::uint64_t next_token = 1;
  bool broken = false;
  std::vector<std::uint16_t> pending_heads;  // heads added since the last kick_prepare()
  // The honest device's cursor over the avail ring.
  std::uint16_t dev_cursor = 0;

  std::uint16_t used_idx() { return test::peek<std::uint16_t>(rc_mem.bytes(), kUsedOff + 2); }

  void check_counts() const {
    FUZZ_CHECK(vr->num_free() <= num);
    FUZZ_CHECK(vr->num_free() == free_descs);
    FUZZ_CHECK(vr->in_flight() == in_flight);
    FUZZ_CHECK(vr->broken() == broken);
  }

  /// Reads back the chain Vring wrote for `head` and records the descriptors it owns.
  void learn_chain(std::uint16_t head, const std::vector<ring::Buf>& bufs, std::size_t nout,
                   bool indirect) {
    auto ep_b = ep_mem.bytes();
    InFlight& f = heads[head];
    FUZZ_CHECK(!f.busy);
    auto desc_at = [&](std::size_t table, std::size_t i, std::uint64_t& addr, std::uint32_t& len,
                       std::uint16_t& flags, std::uint16_t& next) {
      const std::size_t d = table + 16 * i;
      addr = test::peek<std::uint64_t>(ep_b, d);
      len = test::peek<std::uint32_t>(ep_b, d + 8);
      flags = test::peek<std::uint16_t>(ep_b, d + 12);
      next = test::peek<std::uint16_t>(ep_b, d + 14);
    };
    std::uint64_t addr;
    std::uint32_t len;
    std::uint16_t flags, next;
    if (indirect) {
      FUZZ_CHECK(!desc_busy[head]);
      desc_busy[head] = true;
      f.descs = {head};
      desc_at(kDescOff, head, addr, len, flags, next);
      const std::size_t slot_bytes = std::size_t{imax} * 16;
      FUZZ_CHECK(flags == VRING_DESC_F_INDIRECT);
      FUZZ_CHECK(addr == kPoolAddr + head * slot_bytes);
      FUZZ_CHECK(len == bufs.size() * 16);
      for (std::size_t k = 0; k < bufs.size(); ++k) {
        desc_at(kPoolOff + head * slot_bytes, k, addr, len, flags, next);
        FUZZ_CHECK(addr == bufs[k].addr && len == bufs[k].len);
        const bool last = k + 1 == bufs.size();
        FUZZ_CHECK(flags ==
                   ((k >= nout ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT)));
        if (!last) FUZZ_CHECK(next == k + 1);
      }
    } else {
      std::uint16_t i = head;
      f.descs.clear();
      for (std::size_t k = 0; k < bufs.size(); ++k) {
        FUZZ_CHECK(i < num);
        FUZZ_CHECK(!desc_busy[i]);  // never a descriptor of a chain in flight
        desc_busy[i] = true;
        f.descs.push_back(i);
        desc_at(kDescOff, i, addr, len, flags, next);
        FUZZ_CHECK(addr == bufs[k].addr && len == bufs[k].len);
        const bool last = k + 1 == bufs.size();
        FUZZ_CHECK(flags ==
                   ((k >= nout ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT)));
        i = next;
      }
    }
    f.busy = true;
    free_descs = static_cast<std::uint16_t>(free_descs - f.descs.size());
  }

  void op_add(ByteReader& in) {
    const std::size_t nout = in.u8() % 5;
    const std::size_t nin = in.u8() % 5;
    const bool many = in.u8() & 1;  // a chain as long as the whole queue (nout = num)
    std::vector<ring::Buf> bufs;
    const std::size_t n_out = many ? num : nout;
    const std::size_t total = n_out + nin;
    std::uint64_t in_len = 0, total_len = 0;
    for (std::size_t k = 0; k < total; ++k) {
      ring::Buf b;
      b.addr = (std::uint64_t{1} << 56) + 0x100000 + 0x1000 * k;  // never read by the driver
      b.len = k < n_out ? 64 : in.u32();
      if (k >= n_out) in_len += b.len;
      total_len += b.len;
      bufs.push_back(b);
    }
    const std::span<const ring::Buf> all(bufs);
    const std::uint64_t token = next_token++;
    auto r = vr->add(all.first(n_out), all.subspan(n_out), token);

    const bool indirect = pool && total > 1 && total <= imax;
    const std::size_t needed = indirect ? 1 : total;
    if (broken) {
      FUZZ_CHECK(!r && r.error().code == Errc::kBadRing);
    } else if (total == 0 || needed > num) {
      FUZZ_CHECK(!r && r.error().code == Errc::kInvalidArgument);
    } else if (needed > free_descs || static_cast<std::uint16_t>(adds - published) >= num) {
      // Out of descriptors, or a queue's worth of chains already waits for the kick (a device
      // completing chains it was never given frees descriptors early).
      FUZZ_CHECK(!r && r.error().code == Errc::kNoSpace);
    } else if (total_len > UINT32_MAX) {
      // VIRTIO 1.2 §2.7.5.2: no chain longer than 2^32 - 1 bytes.
      FUZZ_CHECK(!r && r.error().code == Errc::kInvalidArgument);
    } else {
      FUZZ_CHECK(r.has_value());
      // The avail entry reaches the ring at kick_prepare() (op_kick() checks it there).
      const std::uint16_t head = *r;
      FUZZ_CHECK(head < num);
      pending_heads.push_back(head);
      learn_chain(head, bufs, n_out, indirect);
      heads[head].token = token;
      heads[head].in_len = static_cast<std::uint32_t>(in_len);
      ++in_flight;
      ++adds;
    }
    check_counts();
  }

  void op_kick() {
    const bool k = vr->kick_prepare();
    if (published == adds) {
      FUZZ_CHECK(!k);
      return;
    }
    bool want;
    auto rc_b = rc_mem.bytes();
    if (event_idx) {
      want = layout::need_event(
          test::peek<std::uint16_t>(rc_b, kUsedOff + layout::avail_event_offset(num)), adds,
          published);
    } else {
      want = !(test::peek<std::uint16_t>(rc_b, kUsedOff) & VRING_USED_F_NO_NOTIFY);
    }
    FUZZ_CHECK(k == want);
    // Every chain added since the last kick is on the avail ring now, in order.
    for (std::uint16_t i = published, k2 = 0; i != adds; ++i, ++k2) {
      FUZZ_CHECK(test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff + 4 + 2 * (i & (num - 1))) ==
                 pending_heads[k2]);
    }
    pending_heads.clear();
    published = adds;
    FUZZ_CHECK(test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff + 2) == adds);
  }

  void op_get_used() {
    const std::uint16_t idx = used_idx();
    auto r = vr->get_used();
    if (broken) {
      FUZZ_CHECK(!r && r.error().code == Errc::kBadRing);
      return;
    }
    // The model's verdict (VIRTIO 1.2 §2.7.8 as vring.hpp states it).
    bool bad = false;
    std::uint32_t id = 0, len = 0;
    bool more = last_used != used_seen;  // entries named by the index last read
    if (!more && idx != last_used) {
      bad = static_cast<std::uint16_t>(idx - last_used) > in_flight;
      more = true;
    }
    if (more && !bad) {
      const std::size_t e = kUsedOff + layout::used_entry_offset(last_used & (num - 1));
      id = test::peek<std::uint32_t>(rc_mem.bytes(), e);
      len = test::peek<std::uint32_t>(rc_mem.bytes(), e + 4);
      bad = id >= num || !heads[id].busy || len > heads[id].in_len;
    }
    if (!r) {
      FUZZ_CHECK(r.error().code == Errc::kBadRing);
      FUZZ_CHECK(bad);
      broken = true;
      check_counts();
      return;
    }
    FUZZ_CHECK(!bad);
    if (!*r) {
      FUZZ_CHECK(!more);
    } else {
      FUZZ_CHECK(more);
      if (last_used == used_seen) used_seen = idx;
      InFlight& f = heads[id];
      FUZZ_CHECK((*r)->token == f.token);  // added, and not returned before (busy)
      FUZZ_CHECK((*r)->len == len);
      for (std::uint16_t d : f.descs) desc_busy[d] = false;
      free_descs = static_cast<std::uint16_t>(free_descs + f.descs.size());
      f.busy = false;
      --in_flight;
      ++last_used;
    }
    check_counts();
  }

  void op_enable_cb() {
    const bool r = vr->enable_cb();
    if (event_idx) {
      FUZZ_CHECK(test::peek<std::uint16_t>(
                     ep_mem.bytes(), kAvailOff + layout::used_event_offset(num)) == last_used);
    } else {
      FUZZ_CHECK(
          !(test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff) & VRING_AVAIL_F_NO_INTERRUPT));
    }
    FUZZ_CHECK(r == (used_idx() == last_used));
  }

  void put_used(std::uint16_t slot, std::uint32_t id, std::uint32_t len) {
    const std::size_t e = kUsedOff + layout::used_entry_offset(slot & (num - 1));
    test::poke<std::uint32_t>(rc_mem.bytes(), e, id);
    test::poke<std::uint32_t>(rc_mem.bytes(), e + 4, len);
  }

  static constexpr unsigned kOps = 12;

  void run_op(ByteReader& in) {
    auto rc_b = rc_mem.bytes();
    switch (in.u8() % kOps) {
      case 0:
        op_add(in);
        break;
      case 1:
        op_kick();
        break;
      case 2:
        op_get_used();
        break;
      case 3:
        op_enable_cb();
        break;
      case 4:
        vr->disable_cb();
        break;
      case 5: {  // hostile: used idx := u16
        test::poke<std::uint16_t>(rc_b, kUsedOff + 2, in.u16());
        break;
      }
      case 6: {  // hostile: used idx += u8
        test::poke<std::uint16_t>(rc_b, kUsedOff + 2,
                                  static_cast<std::uint16_t>(used_idx() + in.u8()));
        break;
      }
      case 7: {  // hostile: used entry: u8 slot, u32 id, u32 len
        const std::uint8_t slot = in.u8();
        const std::uint32_t id = in.u32();
        put_used(slot, id, in.u32());
        break;
      }
      case 8: {  // hostile: used flags, avail_event: u16, u16
        test::poke<std::uint16_t>(rc_b, kUsedOff, in.u16());
        test::poke<std::uint16_t>(rc_b, kUsedOff + layout::avail_event_offset(num), in.u16());
        break;
      }
      case 9: {  // honest device: completes the next avail entry in order: u32 len (clamped)
        const std::uint32_t len = in.u32();
        if (dev_cursor == published) break;
        const auto head =
            test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff + 4 + 2 * (dev_cursor & (num - 1)));
        ++dev_cursor;
        const std::uint32_t max = head < num ? heads[head].in_len : 0;
        const std::uint16_t u = used_idx();
        put_used(u, head, max == UINT32_MAX ? len : len % (max + 1));
        test::poke<std::uint16_t>(rc_b, kUsedOff + 2, static_cast<std::uint16_t>(u + 1));
        break;
      }
      case 10: {  // honest device, out of order: completes a chain in flight: u8 pick, u32 len
        const std::uint8_t pick = in.u8();
        const std::uint32_t len = in.u32();
        std::uint16_t n = 0;
        for (std::uint16_t h = 0; h < num; ++h) n = static_cast<std::uint16_t>(n + heads[h].busy);
        if (n == 0) break;
        std::uint16_t k = static_cast<std::uint16_t>(pick % n), h = 0;
        for (;; ++h) {
          if (heads[h].busy && k-- == 0) break;
        }
        const std::uint32_t max = heads[h].in_len;
        const std::uint16_t u = used_idx();
        put_used(u, h, max == UINT32_MAX ? len : len % (max + 1));
        test::poke<std::uint16_t>(rc_b, kUsedOff + 2, static_cast<std::uint16_t>(u + 1));
        break;
      }
      case 11: {  // hostile: the device returns a head twice (replays the last used entry)
        const std::uint16_t u = used_idx();
        const std::size_t prev =
            kUsedOff + layout::used_entry_offset(static_cast<std::uint16_t>(u - 1) & (num - 1));
        put_used(u, test::peek<std::uint32_t>(rc_b, prev),
                 test::peek<std::uint32_t>(rc_b, prev + 4));
        test::poke<std::uint16_t>(rc_b, kUsedOff + 2, static_cast<std::uint16_t>(u + 1));
        break;
      }
    }
  }

  void run(const std::uint8_t* data, std::size_t size) {
    ByteReader in(data, size);
    const std::uint8_t cfg = in.u8();
    const std::uint8_t im = in.u8();
    num = static_cast<std::uint16_t>(1u << ((cfg & 0x0f) % 9));
    event_idx = cfg & 0x10;
    pool = cfg & 0x20;
    imax = pool ? static_cast<std::uint16_t>(1 + im % 8) : 0;
    pool_bytes = pool ? std::size_t{num} * imax * 16 : 0;
    heads.assign(num, InFlight{});
    desc_busy.assign(num, false);
    free_descs = num;

    ring::VringParams p;
    p.num = num;
    p.desc = ring::Segment{&ep, kDescOff, static_cast<std::uint32_t>(layout::desc_table_size(num))};
    p.avail =
        ring::Segment{&ep, kAvailOff, static_cast<std::uint32_t>(layout::avail_ring_size(num))};
    p.used = ring::Segment{&rc, kUsedOff, static_cast<std::uint32_t>(layout::used_ring_size(num))};
    p.event_idx = event_idx;
    if (pool) {
      p.indirect = ring::Segment{&ep, kPoolOff, static_cast<std::uint32_t>(pool_bytes)};
      p.indirect_addr = kPoolAddr;
      p.indirect_max = imax;
    }
    vr.emplace(p);
    check_counts();

    // Each operation consumes at least one byte: the loop ends with the input.
    while (!in.empty()) run_op(in);

    // The driver wrote nothing outside its descriptor table, avail ring and indirect pool.
    auto ep_b = ep_mem.bytes();
    const std::size_t desc_end = kDescOff + layout::desc_table_size(num);
    const std::size_t avail_end = kAvailOff + layout::avail_ring_size(num);
    FUZZ_CHECK(all_bytes(ep_b.first(kDescOff), kFill));
    FUZZ_CHECK(all_bytes(ep_b.subspan(desc_end, kAvailOff - desc_end), kFill));
    FUZZ_CHECK(all_bytes(ep_b.subspan(avail_end, kPoolOff - avail_end), kFill));
    FUZZ_CHECK(all_bytes(ep_b.subspan(kPoolOff + pool_bytes), kFill));
    FUZZ_CHECK(ep_mem.guards_intact());
    FUZZ_CHECK(rc_mem.guards_intact());
    if (verbose()) {
      std::fprintf(stderr, "vring: num %u adds %u returned %u in flight %u free %u broken %d\n",
                   num, adds, last_used, in_flight, free_descs, broken);
    }
  }
};

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Allocated once: see GuardedMemory.
  static vepf::fuzz::GuardedMemory ep(vepf::fuzz::kEpSize), rc(vepf::fuzz::kRcSize);
  vepf::fuzz::Harness h(ep, rc);
  h.run(data, size);
  return 0;
}
