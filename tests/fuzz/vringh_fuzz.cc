// Fuzz target: Vringh (the device side of a split virtqueue) against a hostile driver.
//
// Run (clang 14, libFuzzer):
//   cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++
//   -DCMAKE_BUILD_TYPE=RelWithDebInfo cmake --build build/fuzz --target vringh_fuzz
//   build/fuzz/tests/fuzz/vringh_fuzz tests/fuzz/corpus/vringh_fuzz
// Replay only (any compiler; ctest fuzz.vringh_fuzz.corpus does this):
//   build/default/tests/fuzz/vringh_fuzz_replay tests/fuzz/corpus/vringh_fuzz
// Seeds: tests/fuzz/gen_corpus.py.
//
// Input (all little-endian; missing bytes read as zero):
//   u8  cfg      bits 0-3: log2(num) % 9 (num 1..256); bit 4 EVENT_IDX; bit 5 INDIRECT_DESC;
//                bit 6: EP offsets below kFloor are not translatable (the transport's control
//                region) bit 7: big EP window (kBigEpSize, 1 MiB): room for a chain of more than
//                2^32 bytes
//   u8  nd       descriptors given (table entries 0..min(nd,num)-1; the rest stay zero)
//   u8  na       avail ring entries given (0..min(na,num)-1)
//   u8  ni       descriptors of the indirect area given (at EP kIndOff, 16-aligned)
//   u16 avail_flags, u16 avail_idx, u16 used_event
//   min(nd,num) x 16 B descriptors (struct virtq_desc as on the wire; addr: a raw link address)
//   min(na,num) x u16 avail entries
//   ni x 16 B indirect-area descriptors
//   then operations until the input ends: u8 opcode (mod kOps) and its arguments (see run_op).
//
// Layout: EP window kEpSize (or kBigEpSize) bytes (desc table at kDescOff, avail ring at
// kAvailOff, indirect area at kIndOff, the rest free for buffers), RC window kRcSize bytes (used
// ring at kUsedOff).
// Both windows are "remote" so every access of Vringh is counted: that bounds the work of a pop.
//
// The avail idx is read once per burst: a driver that moves it back after the device read it
// does not take back the chains it named (the model keeps the index last read, as Vringh does).
// Checks (abort on violation): a pop ends within 2 + num + (largest window)/16 reads (one that
// never returns is a libFuzzer timeout, or a hang in the replay); a chain has at most num
// descriptors, an indirect table's included, and no table more entries than that; it agrees
// with a straightforward reference walk of the same memory (same verdict, same head, same
// segments); every segment of a chain lies inside its window (and above the floor) and
// read_len + write_len <= 2^32 - 1; after kBadRing every pop/complete fails without touching memory
// and pending() is 0; after each complete() the used idx in memory equals the number of
// completes and the entry holds (head, len); notify_enable/need_notify/pending follow
// VIRTIO 1.2 §2.7.10; no byte outside the windows is read or written (guards, ASan-poisoned).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::fuzz {
namespace {

using layout::VringDesc;

constexpr std::size_t kEpSize = 0x8000;
constexpr std::size_t kBigEpSize = 0x100000;
constexpr std::size_t kRcSize = 0x4000;
constexpr std::size_t kFloor = 0x1000;     // optional untranslatable prefix of the EP window
constexpr std::size_t kDescOff = 0x1000;   // EP: up to 256 x 16 B
constexpr std::size_t kAvailOff = 0x2000;  // EP: up to 6 + 512 B
constexpr std::size_t kIndOff = 0x2400;    // EP: up to 255 x 16 B
constexpr std::size_t kUsedOff = 0x1000;   // RC: up to 6 + 2048 B
constexpr std::size_t kMaxChains = 64;     // popped chains kept for chain_read/write and complete

// ---- reference walk (VIRTIO 1.2 §2.7.5, the rules listed in vringh.hpp), straight from memory

struct RefSeg {
  std::uint8_t win;  // layout::WindowId
  std::uint64_t off;
  std::uint32_t len;
  bool writable;
};

struct RefResult {
  enum Kind { kNone, kChain, kBad } kind = kNone;
  std::uint16_t head = 0;
  std::vector<RefSeg> segs;
};

struct Harness {
  Harness(GuardedMemory& ep_m, GuardedMemory& rc_m)
      : ep_size(ep_m.size()),
        ep_mem(ep_m),
        rc_mem(rc_m),
        ep(layout::WindowId::kEp, ep_mem.bytes(), &ctr) {
    ep_mem.reset();
    rc_mem.reset();
  }

  std::size_t ep_size;
  GuardedMemory& ep_mem;
  GuardedMemory& rc_mem;
  ring::LinkCounters ctr;
  ring::Window ep;
  ring::Window rc{layout::WindowId::kRc, rc_mem.bytes(), &ctr};
  ring::AddressSpace space{&ep, &rc};

  std::uint16_t num = 1;
  bool event_idx = false;
  bool indirect = false;
  bool floor = false;
  std::optional<ring::Vringh> vh;

  // What the harness knows of the device's state.
  std::uint16_t pops = 0;       // successful pops (last_avail_idx)
  std::uint16_t seen = 0;       // the avail idx at the device's last read of it (Vringh reads it
                                // again only once the chains it named are popped)
  std::uint16_t completes = 0;  // used idx
  std::uint16_t signalled = 0;  // used idx at the last need_notify()
  bool broken = false;
  std::vector<ring::Chain> chains;

  std::span<std::byte> mem(std::uint8_t win) {
    return win == static_cast<std::uint8_t>(layout::WindowId::kEp) ? ep_mem.bytes()
                                                                   : rc_mem.bytes();
  }

  /// translate() as LAYOUT.md §4 states it: window 1 = EP, 2 = RC, the range inside the window,
  /// not below the floor of the EP window.
  bool ref_translate(std::uint64_t addr, std::uint64_t len, std::uint8_t& win,
                     std::uint64_t& off) const {
    win = static_cast<std::uint8_t>(addr >> 56);
    off = addr & ((std::uint64_t{1} << 56) - 1);
    std::uint64_t size = 0;
    if (win == 1) {
      size = ep_size;
      if (floor && off < kFloor) return false;
    } else if (win == 2) {
      size = kRcSize;
    } else {
      return false;
    }
    return off <= size && len <= size - off;
  }

  RefResult ref_pop() {
    RefResult r;
    auto ep_b = ep_mem.bytes();
    if (pops == seen) {
      const auto avail_idx = test::peek<std::uint16_t>(ep_b, kAvailOff + 2);
      const auto avail = static_cast<std::uint16_t>(avail_idx - pops);
      if (avail == 0) return r;
      r.kind = RefResult::kBad;
      if (avail > num) return r;
      seen = avail_idx;
    }
    r.kind = RefResult::kBad;
    const auto head = test::peek<std::uint16_t>(ep_b, kAvailOff + 4 + 2 * (pops & (num - 1)));
    if (head >= num) return r;
    r.head = head;

    std::uint8_t twin = 1;
    std::uint64_t toff = kDescOff;
    std::uint64_t tlen = num;
    std::uint64_t i = head, steps = 0, total = 0, descs = 0;
    bool in_ind = false, seen_w = false;
    for (;;) {
      if (++steps > tlen) return r;
      const auto t = mem(twin);
      const std::size_t d = static_cast<std::size_t>(toff + 16 * i);
      const auto addr = test::peek<std::uint64_t>(t, d);
      const auto len = test::peek<std::uint32_t>(t, d + 8);
      const auto flags = test::peek<std::uint16_t>(t, d + 12);
      const auto next = test::peek<std::uint16_t>(t, d + 14);
      if (flags & VRING_DESC_F_INDIRECT) {
        if (!indirect || in_ind || (flags & VRING_DESC_F_NEXT)) return r;
        if (len == 0 || len % 16 != 0) return r;
        std::uint8_t w;
        std::uint64_t o;
        if (!ref_translate(addr, len, w, o) || o % 16 != 0) return r;
        if (len / 16 > num) return r;  // no chain may be longer than the queue (§2.7.5.3.1)
        twin = w;
        toff = o;
        tlen = len / 16;
        i = 0;
        steps = 0;
        in_ind = true;
        continue;
      }
      if (++descs > num) return r;  // descriptors of the chain, the indirect table's included
      std::uint8_t w;
      std::uint64_t o;
      if (!ref_translate(addr, len, w, o)) return r;
      total += len;
      if (total > UINT32_MAX) return r;
      const bool wr = (flags & VRING_DESC_F_WRITE) != 0;
      if (wr) {
        seen_w = true;
      } else if (seen_w) {
        return r;
      }
      if (len) r.segs.push_back(RefSeg{w, o, len, wr});
      if (!(flags & VRING_DESC_F_NEXT)) break;
      i = next;
      if (i >= tlen) return r;
    }
    r.kind = RefResult::kChain;
    return r;
  }

  // ---- checks on what Vringh returned

  void check_chain(const ring::Chain& c) const {
    FUZZ_CHECK(c.head < num);
    std::uint64_t rl = 0, wl = 0;
    auto seg_ok = [&](const ring::Segment& s) {
      FUZZ_CHECK(s.window == &ep || s.window == &rc);
      FUZZ_CHECK(s.len > 0);
      FUZZ_CHECK(s.window->contains(s.off, s.len));
      if (floor && s.window == &ep) FUZZ_CHECK(s.off >= kFloor);
    };
    for (const auto& s : c.readable()) {
      seg_ok(s);
      rl += s.len;
    }
    for (const auto& s : c.writable()) {
      seg_ok(s);
      wl += s.len;
    }
    FUZZ_CHECK(rl == c.read_len && wl == c.write_len);
    FUZZ_CHECK(c.read_len + c.write_len <= UINT32_MAX);
  }

  void check_same(const ring::Chain& c, const RefResult& ref) const {
    FUZZ_CHECK(c.head == ref.head);
    std::size_t r = 0, w = 0;
    for (const RefSeg& s : ref.segs) {
      const ring::Segment& got =
          s.writable ? (w < c.writable().size() ? c.writable()[w] : ring::Segment{})
                     : (r < c.readable().size() ? c.readable()[r] : ring::Segment{});
      (s.writable ? w : r)++;
      FUZZ_CHECK(got.window != nullptr);
      FUZZ_CHECK(static_cast<std::uint8_t>(got.window->id()) == s.win);
      FUZZ_CHECK(got.off == s.off && got.len == s.len);
    }
    FUZZ_CHECK(r == c.readable().size() && w == c.writable().size());
  }

  // ---- operations

  void op_pop() {
    const std::uint64_t reads_before = ctr.nonposted_reads;
    const RefResult ref = broken ? RefResult{} : ref_pop();
    auto got = vh->pop();
    const std::uint64_t reads = ctr.nonposted_reads - reads_before;
    if (broken) {
      FUZZ_CHECK(!got && got.error().code == Errc::kBadRing);
      FUZZ_CHECK(reads == 0);
      return;
    }
    // Termination: avail idx, head, then at most num + one indirect table of descriptors.
    FUZZ_CHECK(reads <= 2 + std::uint64_t{num} + (ep_size > kRcSize ? ep_size : kRcSize) / 16);
    if (!got) {
      FUZZ_CHECK(got.error().code == Errc::kBadRing);
      FUZZ_CHECK(vh->broken());
      FUZZ_CHECK(vh->why() != nullptr && vh->why()[0] != '\0');
      FUZZ_CHECK(ref.kind == RefResult::kBad);
      broken = true;
      return;
    }
    FUZZ_CHECK(!vh->broken());
    if (!*got) {
      FUZZ_CHECK(ref.kind == RefResult::kNone);
      return;
    }
    FUZZ_CHECK(ref.kind == RefResult::kChain);
    check_chain(**got);
    check_same(**got, ref);
    ++pops;
    if (chains.size() == kMaxChains) chains.erase(chains.begin());
    chains.push_back(std::move(**got));
  }

  void op_complete(std::uint16_t head, std::uint32_t len) {
    head = static_cast<std::uint16_t>(head & (num - 1));  // complete()'s precondition
    const std::uint64_t writes_before = ctr.posted_writes;
    auto r = vh->complete(head, len);
    if (broken) {
      FUZZ_CHECK(!r && r.error().code == Errc::kBadRing);
      FUZZ_CHECK(ctr.posted_writes == writes_before);
      return;
    }
    FUZZ_CHECK(r.has_value());
    ++completes;
    auto rc_b = rc_mem.bytes();
    FUZZ_CHECK(test::peek<std::uint16_t>(rc_b, kUsedOff + 2) == completes);
    const std::size_t e =
        kUsedOff + layout::used_entry_offset(static_cast<std::uint16_t>(completes - 1) & (num - 1));
    FUZZ_CHECK(test::peek<std::uint32_t>(rc_b, e) == head);
    FUZZ_CHECK(test::peek<std::uint32_t>(rc_b, e + 4) == len);
  }

  void op_notify_enable() {
    const bool r = vh->notify_enable();
    if (broken) {
      FUZZ_CHECK(r);
      return;
    }
    if (event_idx) {
      FUZZ_CHECK(test::peek<std::uint16_t>(rc_mem.bytes(),
                                           kUsedOff + layout::avail_event_offset(num)) == pops);
    }
    FUZZ_CHECK(r == (test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff + 2) == pops));
  }

  void op_need_notify() {
    auto ep_b = ep_mem.bytes();
    bool want;
    if (event_idx) {
      const auto used_event =
          test::peek<std::uint16_t>(ep_b, kAvailOff + layout::used_event_offset(num));
      want = layout::need_event(used_event, completes, signalled);
    } else {
      want = completes != signalled &&
             !(test::peek<std::uint16_t>(ep_b, kAvailOff) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    FUZZ_CHECK(vh->need_notify() == want);
    signalled = completes;
  }

  void op_pending() {
    const auto p = vh->pending();
    if (broken) {
      FUZZ_CHECK(p == 0);
    } else {
      FUZZ_CHECK(p == static_cast<std::uint16_t>(
                          test::peek<std::uint16_t>(ep_mem.bytes(), kAvailOff + 2) - pops));
    }
  }

  void op_chain_io(std::size_t which, std::size_t max) {
    if (chains.empty()) return;
    const ring::Chain& c = chains[which % chains.size()];
    std::array<std::byte, 4096> buf{};
    const std::size_t n = max % (buf.size() + 1);
    const std::size_t got = ring::chain_read(c, std::span{buf}.first(n));
    FUZZ_CHECK(got == (c.read_len < n ? c.read_len : n));
    const std::size_t put = ring::chain_write(c, std::span<const std::byte>{buf}.first(n));
    FUZZ_CHECK(put == (c.write_len < n ? c.write_len : n));
  }

  static constexpr unsigned kOps = 12;

  void run_op(ByteReader& in) {
    switch (in.u8() % kOps) {
      case 0:
        op_pop();
        break;
      case 1: {  // complete a chain we popped: u8 which, u32 len
        const std::uint8_t which = in.u8();
        const std::uint32_t len = in.u32();
        const std::uint16_t head = chains.empty() ? which : chains[which % chains.size()].head;
        op_complete(head, len);
        break;
      }
      case 2: {  // complete any head (the device's own bookkeeping is not under test): u16, u32
        const std::uint16_t head = in.u16();
        op_complete(head, in.u32());
        break;
      }
      case 3:
        op_notify_enable();
        break;
      case 4:
        vh->notify_disable();
        break;
      case 5:
        op_need_notify();
        break;
      case 6:
        op_pending();
        break;
      case 7: {  // the driver moves the avail idx: u8 delta
        auto ep_b = ep_mem.bytes();
        const auto idx = test::peek<std::uint16_t>(ep_b, kAvailOff + 2);
        test::poke<std::uint16_t>(ep_b, kAvailOff + 2, static_cast<std::uint16_t>(idx + in.u8()));
        break;
      }
      case 8: {  // the driver rewrites ring memory: u16 offset from kDescOff, u8 length, bytes
        const std::size_t off = kDescOff + in.u16() % (ep_size - kDescOff);
        const std::size_t n = in.u8() % 33;
        put_bytes(ep_mem.bytes(), off, in.bytes(n));
        break;
      }
      case 9: {  // the driver rewrites one avail entry: u8 slot, u16 head
        const std::uint8_t slot = in.u8();
        test::poke<std::uint16_t>(ep_mem.bytes(), kAvailOff + 4 + 2 * (slot & (num - 1)), in.u16());
        break;
      }
      case 10: {  // the device copies a popped chain's bytes: u8 which, u16 max bytes
        const std::uint8_t which = in.u8();
        op_chain_io(which, in.u16());
        break;
      }
      case 11: {  // the driver fills a table: u32 offset (16-aligned), u16 count, u8 mode, 16 B
        // descriptor; mode bit 0: next = k + 1 for the k-th copy
        const std::size_t off = (in.u32() % ep_size) & ~std::size_t{15};
        const std::size_t count = in.u16();
        const bool chain = in.u8() & 1;
        std::array<std::uint8_t, 16> d{};
        const auto b = in.bytes(16);
        std::copy(b.begin(), b.end(), d.begin());
        auto ep_b = ep_mem.bytes();
        for (std::size_t k = 0; k < count && off + 16 * (k + 1) <= ep_size; ++k) {
          put_bytes(ep_b, off + 16 * k, d);
          if (chain)
            test::poke<std::uint16_t>(ep_b, off + 16 * k + 14, static_cast<std::uint16_t>(k + 1));
        }
        break;
      }
    }
  }

  void run(ByteReader& in, std::uint8_t cfg) {
    num = static_cast<std::uint16_t>(1u << ((cfg & 0x0f) % 9));
    event_idx = cfg & 0x10;
    indirect = cfg & 0x20;
    floor = cfg & 0x40;
    if (floor) space.set_ep_floor(kFloor);
    const std::size_t nd = in.u8();
    const std::size_t na = in.u8();
    const std::size_t ni = in.u8();
    const std::uint16_t avail_flags = in.u16();
    const std::uint16_t avail_idx = in.u16();
    const std::uint16_t used_event = in.u16();

    auto ep_b = ep_mem.bytes();
    put_bytes(ep_b, kDescOff, in.bytes(16 * (nd < num ? nd : num)));
    for (std::size_t k = 0; k < na && k < num; ++k)
      test::poke<std::uint16_t>(ep_b, kAvailOff + 4 + 2 * k, in.u16());
    put_bytes(ep_b, kIndOff, in.bytes(16 * ni));
    test::poke<std::uint16_t>(ep_b, kAvailOff, avail_flags);
    test::poke<std::uint16_t>(ep_b, kAvailOff + 2, avail_idx);
    test::poke<std::uint16_t>(ep_b, kAvailOff + layout::used_event_offset(num), used_event);

    ring::VringhParams p;
    p.num = num;
    p.desc = ring::Segment{&ep, kDescOff, static_cast<std::uint32_t>(layout::desc_table_size(num))};
    p.avail =
        ring::Segment{&ep, kAvailOff, static_cast<std::uint32_t>(layout::avail_ring_size(num))};
    p.used = ring::Segment{&rc, kUsedOff, static_cast<std::uint32_t>(layout::used_ring_size(num))};
    p.space = &space;
    p.event_idx = event_idx;
    p.indirect = indirect;
    vh.emplace(p);

    // Each operation consumes at least one byte: the loop ends with the input.
    while (!in.empty()) run_op(in);
    // Drain: whatever is left must pop (or break the queue) within num pops.
    for (unsigned k = 0; k <= num && !broken; ++k) op_pop();

    FUZZ_CHECK(ep_mem.guards_intact());
    FUZZ_CHECK(rc_mem.guards_intact());
    if (verbose()) {
      std::fprintf(stderr, "vringh: num %u pops %u completes %u broken %d (%s)\n", num, pops,
                   completes, broken, vh->why());
    }
  }
};

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  // Allocated once: see GuardedMemory.
  static vepf::fuzz::GuardedMemory ep(vepf::fuzz::kEpSize), big_ep(vepf::fuzz::kBigEpSize),
      rc(vepf::fuzz::kRcSize);
  vepf::fuzz::Harness h((cfg & 0x80) ? big_ep : ep, rc);
  h.run(in, cfg);
  return 0;
}
