// Vringh against a driver that breaks the ring rules (VIRTIO 1.2 §2.7). The driver side is
// written by hand into the EP window (or a real Vring's descriptor table is corrupted after
// add()). Every violation must break the queue with kBadRing, keep it broken, and touch nothing
// outside the windows (guard bytes around both).

#include "vepf/ring/vringh.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/error.hpp"

namespace vepf::test {
namespace {

constexpr std::uint16_t kN = VRING_DESC_F_NEXT;
constexpr std::uint16_t kW = VRING_DESC_F_WRITE;
constexpr std::uint16_t kI = VRING_DESC_F_INDIRECT;

/// Where tests put a hand-written indirect table: in the EP data area, 16-byte aligned.
std::size_t table_off(const RingPair& r) { return r.ep_data_off + 0x1000; }
/// A valid driver->device buffer and a valid device->driver buffer.
std::uint64_t rd_buf(const RingPair& r) { return ep_addr(r.ep_data_off); }
std::uint64_t wr_buf(const RingPair& r) { return rc_addr(r.rc_data_off); }

struct BadCase {
  std::string name;
  RingOptions opts;
  std::function<void(RingPair&, LinkWindows&)> write;  // plays the misbehaving driver
  std::string why;                                     // part of Vringh::why()
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class VringhBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(VringhBad, PopBreaksTheQueue) {
  const BadCase& c = GetParam();
  LinkWindows w;
  RingPair r(w, c.opts);
  c.write(r, w);
  const std::uint16_t used_before = r.used_idx();

  auto p = r.dev().pop();
  ASSERT_FALSE(p) << "accepted a chain that breaks the rules";
  EXPECT_EQ(p.error().code, Errc::kBadRing);
  EXPECT_TRUE(r.dev().broken());
  EXPECT_THAT(r.dev().why(), ::testing::HasSubstr(c.why));

  auto again = r.dev().pop();
  ASSERT_FALSE(again) << "a broken queue popped again";
  EXPECT_EQ(again.error().code, Errc::kBadRing);
  auto done = r.dev().complete(0, 0);
  ASSERT_FALSE(done) << "a broken queue completed";
  EXPECT_EQ(done.error().code, Errc::kBadRing);
  EXPECT_EQ(r.dev().pending(), 0);
  EXPECT_EQ(r.used_idx(), used_before) << "the used ring moved";
  EXPECT_TRUE(w.guards_intact()) << "bytes outside the windows changed";
}

RingOptions opts(std::uint16_t num = 8, bool indirect = false, std::uint32_t max_chain = 0) {
  RingOptions o;
  o.num = num;
  o.indirect = indirect;
  o.max_chain = max_chain;
  o.make_driver = false;  // the test is the driver
  return o;
}

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> v;
  const std::size_t win = kDefaultWindowSize;

  // ---- avail ring
  v.push_back({"head_equal_num", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, rd_buf(r), 16, 0);
                 r.offer(r.num());
               },
               "head out of range"});
  v.push_back({"head_ffff", opts(), [](RingPair& r, LinkWindows&) { r.offer(0xffff); },
               "head out of range"});
  v.push_back({"avail_idx_jumps_past_num", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, rd_buf(r), 16, 0);
                 r.put_avail(0, 0);
                 r.put_avail_idx(static_cast<std::uint16_t>(r.num() + 1));
               },
               "more than the queue size"});
  v.push_back({"avail_idx_moves_backwards", opts(),
               [](RingPair& r, LinkWindows&) { r.put_avail_idx(0xffff); },
               "more than the queue size"});

  // ---- chain structure
  v.push_back({"next_equal_num", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, rd_buf(r), 16, kN, r.num());
                 r.offer(0);
               },
               "next out of range"});
  v.push_back({"loop_a_b_a", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, rd_buf(r), 16, kN, 1);
                 r.put_desc(1, rd_buf(r), 16, kN, 0);
                 r.offer(0);
               },
               "loops"});
  v.push_back({"loop_self", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(3, rd_buf(r), 0, kN, 3);
                 r.offer(3);
               },
               "loops"});
  v.push_back({"loop_entered_mid_chain", opts(256),
               [](RingPair& r, LinkWindows&) {
                 for (std::uint16_t i = 0; i < 10; ++i)
                   r.put_desc(i, rd_buf(r), 1, kN, static_cast<std::uint16_t>(i + 1));
                 r.put_desc(10, rd_buf(r), 1, kN, 5);
                 r.offer(0);
               },
               "loops"});
  v.push_back({"readable_after_writable", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, wr_buf(r), 16, kW | kN, 1);
                 r.put_desc(1, rd_buf(r), 16, 0);
                 r.offer(0);
               },
               "readable descriptor after a writable"});
  // VIRTIO 1.2 §2.7.4.2: the order rule holds for every descriptor, also a zero-length one.
  v.push_back({"readable_after_zero_length_writable", opts(),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, wr_buf(r), 0, kW | kN, 1);
                 r.put_desc(1, rd_buf(r), 16, 0);
                 r.offer(0);
               },
               "readable descriptor after a writable"});

  // ---- indirect tables
  v.push_back({"indirect_not_negotiated", opts(8, false),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 16, kI);
                 r.offer(0);
               },
               "without VIRTIO_F_INDIRECT_DESC"});
  v.push_back({"indirect_nested", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, ep_addr(table_off(r) + 0x100), 16, kI, 0);
                 r.put_desc_at(table_off(r) + 0x100, 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 16, kI);
                 r.offer(0);
               },
               "nested"});
  v.push_back({"indirect_with_next", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 16, kI | kN, 1);
                 r.put_desc(1, rd_buf(r), 16, 0);
                 r.offer(0);
               },
               "with NEXT"});
  v.push_back({"indirect_len_24", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 24, kI);
                 r.offer(0);
               },
               "multiple of 16"});
  v.push_back({"indirect_len_0", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, ep_addr(table_off(r)), 0, kI);
                 r.offer(0);
               },
               "multiple of 16"});
  v.push_back({"indirect_table_past_window_end", opts(8, true),
               [win](RingPair& r, LinkWindows&) {
                 r.put_desc(0, ep_addr(win - 16), 32, kI);
                 r.offer(0);
               },
               "indirect table outside"});
  v.push_back({"indirect_table_misaligned", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r) + 8, 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r) + 8), 16, kI);
                 r.offer(0);
               },
               "indirect table outside"});
  v.push_back({"indirect_table_window_0", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc(0, table_off(r), 16, kI);  // window id 0
                 r.offer(0);
               },
               "indirect table outside"});
  v.push_back({"indirect_loop", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, kN, 1);
                 r.put_desc_at(table_off(r), 1, rd_buf(r), 16, kN, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 32, kI);
                 r.offer(0);
               },
               "loops"});
  v.push_back({"indirect_next_past_table", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 // The table holds 2 entries; next = 2 points past it (still < num).
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, kN, 2);
                 r.put_desc_at(table_off(r), 2, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 32, kI);
                 r.offer(0);
               },
               "next out of range"});
  v.push_back({"indirect_readable_after_writable", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, wr_buf(r), 16, kW | kN, 1);
                 r.put_desc_at(table_off(r), 1, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 32, kI);
                 r.offer(0);
               },
               "readable descriptor after a writable"});

  // ---- limits: how long a chain may be (VIRTIO 1.2 §2.7.5.3.1 and [link] max_chain_segments)
  v.push_back({"indirect_table_longer_than_the_queue", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 // 4096 entries, the chain uses one: a table no chain may fill is refused
                 // before it is walked.
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 4096 * 16, kI);
                 r.offer(0);
               },
               "indirect table longer than a chain may be"});
  v.push_back({"indirect_table_past_max_chain", opts(64, true, 4),
               [](RingPair& r, LinkWindows&) {
                 r.put_desc_at(table_off(r), 0, rd_buf(r), 16, 0, 0);
                 r.put_desc(0, ep_addr(table_off(r)), 5 * 16, kI);
                 r.offer(0);
               },
               "indirect table longer than a chain may be"});
  v.push_back({"indirect_chain_past_the_queue_size", opts(8, true),
               [](RingPair& r, LinkWindows&) {
                 // 2 direct descriptors, then an 8-entry table filled: 10 descriptors.
                 r.put_desc(0, rd_buf(r), 16, kN, 1);
                 r.put_desc(1, ep_addr(table_off(r)), 8 * 16, kI);
                 for (std::uint16_t i = 0; i < 7; ++i)
                   r.put_desc_at(table_off(r), i, rd_buf(r), 1, kN,
                                 static_cast<std::uint16_t>(i + 1));
                 r.put_desc_at(table_off(r), 7, rd_buf(r), 1, 0, 0);
                 r.offer(0);
               },
               "descriptor chain longer than a chain may be"});
  v.push_back({"direct_chain_past_max_chain", opts(64, false, 4),
               [](RingPair& r, LinkWindows&) {
                 for (std::uint16_t i = 0; i < 4; ++i)
                   r.put_desc(i, rd_buf(r), 1, kN, static_cast<std::uint16_t>(i + 1));
                 r.put_desc(4, rd_buf(r), 1, 0);
                 r.offer(0);
               },
               "descriptor chain longer than a chain may be"});

  // ---- buffer addresses (LAYOUT.md §4: window id + offset, bounds-checked)
  auto bad_buf = [](std::string name, std::uint64_t addr, std::uint32_t len, std::uint16_t flags) {
    return BadCase{std::move(name), opts(),
                   [addr, len, flags](RingPair& r, LinkWindows&) {
                     r.put_desc(0, addr, len, flags);
                     r.offer(0);
                   },
                   "buffer outside the windows"};
  };
  v.push_back(bad_buf("buf_offset_at_window_end", ep_addr(win), 16, 0));
  v.push_back(bad_buf("buf_offset_far_beyond", ep_addr(std::uint64_t{1} << 40), 16, 0));
  v.push_back(bad_buf("buf_length_past_end", ep_addr(win - 8), 16, 0));
  v.push_back(bad_buf("buf_length_u32_max", ep_addr(16), 0xffffffffu, 0));
  v.push_back(bad_buf("buf_offset_plus_len_wraps", ep_addr(layout::kLinkAddrOffsetMask), 16, 0));
  v.push_back(bad_buf("writable_past_rc_end", rc_addr(win - 4), 8, kW));
  v.push_back(bad_buf("window_id_0", 0x1000, 16, 0));
  v.push_back(
      bad_buf("window_id_7", (std::uint64_t{7} << layout::kLinkAddrWindowShift) | 0x1000, 16, 0));
  v.push_back(bad_buf("window_id_ff", ~std::uint64_t{0}, 1, 0));
  v.push_back({"second_buffer_outside", opts(),
               [win](RingPair& r, LinkWindows&) {
                 r.put_desc(0, rd_buf(r), 16, kN, 1);
                 r.put_desc(1, ep_addr(win), 16, 0);
                 r.offer(0);
               },
               "buffer outside the windows"});

  // ---- total length (VIRTIO 1.2 §2.7.5.2: at most 2^32 bytes per chain). With 1 MiB windows
  // every single buffer is in range; 4097 buffers of 1 MiB each sum past 2^32.
  constexpr std::uint32_t kMiB = 1u << 20;
  constexpr std::uint32_t kPast4G = 4097;
  v.push_back({"total_len_past_4g_direct", opts(8192),
               [](RingPair& r, LinkWindows&) {
                 for (std::uint32_t i = 0; i + 1 < kPast4G; ++i) {
                   r.put_desc(i, ep_addr(0), kMiB, kN, static_cast<std::uint16_t>(i + 1));
                 }
                 r.put_desc(kPast4G - 1, ep_addr(0), kMiB, 0);
                 r.offer(0);
               },
               "2^32"});
  v.push_back({"total_len_past_4g_indirect", opts(8192, true),
               [](RingPair& r, LinkWindows&) {
                 // The loop cap restarts in the table (its own length); the byte cap must not.
                 // (A queue of 8192: a chain may have 4097 descriptors.)
                 const std::size_t t = r.ep_data_off;
                 for (std::uint32_t i = 0; i + 1 < kPast4G; ++i) {
                   r.put_desc_at(t, i, rc_addr(0), kMiB, kW | kN,
                                 static_cast<std::uint16_t>(i + 1));
                 }
                 r.put_desc_at(t, kPast4G - 1, rc_addr(0), kMiB, kW, 0);
                 r.put_desc(0, ep_addr(t), kPast4G * sizeof(layout::VringDesc), kI);
                 r.offer(0);
               },
               "2^32"});

  // ---- a real driver's chain, corrupted after add()
  {
    RingOptions o = opts();
    o.make_driver = true;
    v.push_back({"vring_chain_next_corrupted", o,
                 [](RingPair& r, LinkWindows& w) {
                   const ring::Buf out{rd_buf(r), 16};
                   const ring::Buf in{wr_buf(r), 16};
                   ASSERT_TRUE(r.drv().add({&out, 1}, {&in, 1}, 1));
                   (void)r.drv().kick_prepare();
                   const std::uint16_t head =
                       peek<std::uint16_t>(w.ep(), r.avail_off + layout::avail_entry_offset(0));
                   poke<std::uint16_t>(
                       w.ep(),
                       r.desc_off + layout::desc_offset(head) + offsetof(layout::VringDesc, next),
                       0x1234);
                 },
                 "next out of range"});
    v.push_back({"vring_chain_addr_corrupted", o,
                 [](RingPair& r, LinkWindows& w) {
                   const ring::Buf out{rd_buf(r), 16};
                   ASSERT_TRUE(r.drv().add({&out, 1}, {}, 1));
                   (void)r.drv().kick_prepare();
                   const std::uint16_t head =
                       peek<std::uint16_t>(w.ep(), r.avail_off + layout::avail_entry_offset(0));
                   poke<std::uint64_t>(
                       w.ep(),
                       r.desc_off + layout::desc_offset(head) + offsetof(layout::VringDesc, addr),
                       rc_addr(kDefaultWindowSize - 8));
                 },
                 "buffer outside the windows"});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, VringhBad, ::testing::ValuesIn(bad_cases()),
                         [](const auto& pi) { return pi.param.name; });

// ---- controls: the hand-written driver is right when it follows the rules

class VringhHandWritten : public ::testing::Test {
 protected:
  LinkWindows w;
};

TEST_F(VringhHandWritten, ValidDirectChainPops) {
  RingPair r(w, opts());
  r.put_desc(2, rd_buf(r), 16, kN, 5);
  r.put_desc(5, wr_buf(r), 32, kW | kN, 1);
  r.put_desc(1, wr_buf(r) + 64, 0, kW);  // zero-length writable: allowed, not a segment
  r.offer(2);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->head, 2);
  ASSERT_EQ((*p)->readable().size(), 1u);
  ASSERT_EQ((*p)->writable().size(), 1u);
  EXPECT_EQ((*p)->writable()[0].len, 32u);
  EXPECT_EQ((*p)->write_len, 32u);
  EXPECT_FALSE(r.dev().broken());
  ASSERT_TRUE(r.dev().complete(2, 4));
  EXPECT_EQ(r.used_idx(), 1);
  EXPECT_EQ(peek<std::uint32_t>(w.rc(), r.used_off + layout::used_entry_offset(0)), 2u);
  EXPECT_EQ(peek<std::uint32_t>(w.rc(), r.used_off + layout::used_entry_offset(0) + 4), 4u);
}

TEST_F(VringhHandWritten, ChainOfExactlyNumDescriptorsIsNotALoop) {
  RingPair r(w, opts());
  for (std::uint16_t i = 0; i < 7; ++i)
    r.put_desc(i, rd_buf(r), 1, kN, static_cast<std::uint16_t>(i + 1));
  r.put_desc(7, rd_buf(r), 1, 0);
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->readable().size(), 8u);
}

TEST_F(VringhHandWritten, ChainOfExactlyMaxChainDescriptorsPops) {
  RingPair r(w, opts(64, true, 4));
  EXPECT_EQ(r.dev().chain_max(), 4u);
  r.put_desc(0, rd_buf(r), 1, kN, 1);
  r.put_desc(1, ep_addr(table_off(r)), 3 * 16, kI);
  for (std::uint16_t i = 0; i < 2; ++i)
    r.put_desc_at(table_off(r), i, rd_buf(r), 1, kN, static_cast<std::uint16_t>(i + 1));
  r.put_desc_at(table_off(r), 2, wr_buf(r), 1, kW, 0);
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->readable().size(), 3u);
  EXPECT_EQ((*p)->writable().size(), 1u);
  EXPECT_FALSE(r.dev().limit_hit());
}

TEST_F(VringhHandWritten, TheLimitIsTheSmallerOfMaxChainAndTheQueueSize) {
  EXPECT_EQ(RingPair(w, opts(8, false, 1024)).dev().chain_max(), 8u);
  EXPECT_EQ(RingPair(w, opts(8, false, 0)).dev().chain_max(), 8u);
  EXPECT_EQ(RingPair(w, opts(256, false, 19)).dev().chain_max(), 19u);
}

TEST_F(VringhHandWritten, APastLimitChainSaysSoAndOtherBreaksDoNot) {
  RingPair over(w, opts(64, false, 2));
  over.put_desc(0, rd_buf(over), 1, kN, 1);
  over.put_desc(1, rd_buf(over), 1, kN, 2);
  over.put_desc(2, rd_buf(over), 1, 0);
  over.offer(0);
  EXPECT_FALSE(over.dev().pop());
  EXPECT_TRUE(over.dev().limit_hit());

  LinkWindows w2;
  RingPair loop(w2, opts(8));
  loop.put_desc(0, rd_buf(loop), 1, kN, 0);
  loop.offer(0);
  EXPECT_FALSE(loop.dev().pop());
  EXPECT_FALSE(loop.dev().limit_hit()) << loop.dev().why();
}

TEST_F(VringhHandWritten, ValidIndirectChainPops) {
  RingPair r(w, opts(8, true));
  r.put_desc_at(table_off(r), 0, rd_buf(r), 8, kN, 1);
  r.put_desc_at(table_off(r), 1, rd_buf(r) + 8, 8, kN, 2);
  r.put_desc_at(table_off(r), 2, wr_buf(r), 8, kW, 0);
  r.put_desc(4, ep_addr(table_off(r)), 48, kI | kW);  // WRITE on the INDIRECT descriptor is ignored
  r.offer(4);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->head, 4);
  EXPECT_EQ((*p)->readable().size(), 2u);
  EXPECT_EQ((*p)->writable().size(), 1u);
}

TEST_F(VringhHandWritten, ZeroLengthBufferAtTheWindowEndIsAccepted) {
  RingPair r(w, opts());
  r.put_desc(0, ep_addr(kDefaultWindowSize), 0, 0);
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_TRUE((*p)->readable().empty());
}

TEST_F(VringhHandWritten, BufferEndingExactlyAtTheWindowEndIsAccepted) {
  RingPair r(w, opts());
  r.put_desc(0, ep_addr(kDefaultWindowSize - 16), 16, 0);
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->readable()[0].off, kDefaultWindowSize - 16);
}

TEST_F(VringhHandWritten, DescriptorIsFetchedOnce) {
  // No double fetch (STYLE.md §4): one device-side access per descriptor. The device's own
  // window is local, so count with a remote view of the EP window instead.
  ring::LinkCounters c;
  ring::Window remote_ep(layout::WindowId::kEp, w.ep(), &c);
  ring::AddressSpace space(&remote_ep, &w.dev_rc);
  RingPair layout_only(w, opts());
  ring::VringhParams hp;
  hp.num = 8;
  hp.desc = ring::Segment{&remote_ep, layout_only.desc_off, 8 * 16};
  hp.avail = ring::Segment{&remote_ep, layout_only.avail_off,
                           static_cast<std::uint32_t>(layout::avail_ring_size(8))};
  hp.used = ring::Segment{&w.dev_rc, layout_only.used_off,
                          static_cast<std::uint32_t>(layout::used_ring_size(8))};
  hp.space = &space;
  ring::Vringh dev(hp);
  for (std::uint16_t i = 0; i < 3; ++i)
    layout_only.put_desc(i, rd_buf(layout_only), 4, kN, static_cast<std::uint16_t>(i + 1));
  layout_only.put_desc(3, rd_buf(layout_only), 4, 0);
  layout_only.offer(0);
  const auto before = c;
  auto p = dev.pop();
  ASSERT_TRUE(p && *p);
  const auto d = c - before;
  // avail idx + avail entry + 4 descriptors of 16 bytes.
  EXPECT_EQ(d.nonposted_reads, 2u + 4u);
  EXPECT_EQ(d.nonposted_read_bytes, 2u + 2u + 4u * sizeof(layout::VringDesc));
}

}  // namespace
}  // namespace vepf::test
