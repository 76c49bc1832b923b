// Vring (driver side) against Vringh (device side) over two windows placed as ARCHITECTURE.md §1
// says: descriptors, avail ring and driver->device buffers in the EP window; used ring and
// device->driver buffers in the RC window. No mocks: both ends are the real code.

#include "vring_fixture.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace vepf::test {
namespace {

using ring::Buf;
using ring::Chain;

// Found by vring_used_fuzz: a device that completes chains the driver has not made available yet
// frees their descriptors before the kick, and the driver then added more than a queue's worth
// of chains in one burst, overwriting its own unpublished avail entries (chains lost for good).
TEST_F(VringTest, ABurstNeverHoldsMoreThanAQueueOfChains) {
  RingOptions o;
  o.num = 4;
  RingPair& r = make(o);
  const ring::Buf out{ep_addr(r.ep_data_off), 16};
  std::uint16_t used = 0;
  for (int k = 0; k < 4; ++k) {
    auto h = r.drv().add({&out, 1}, {}, 100 + k);
    ASSERT_TRUE(h) << h.error().what;
    // The hostile device returns it at once, before it was ever published.
    r.put_used(used, *h, 0);
    r.put_used_idx(++used);
    auto u = r.drv().get_used();
    ASSERT_TRUE(u && *u);
  }
  EXPECT_EQ(r.drv().num_free(), 4);
  auto fifth = r.drv().add({&out, 1}, {}, 104);
  ASSERT_FALSE(fifth) << "a fifth chain in a burst on a queue of 4";
  EXPECT_EQ(fifth.error().code, Errc::kNoSpace);
  (void)r.drv().kick_prepare();
  EXPECT_EQ(r.avail_idx(), 4);
  EXPECT_TRUE(r.drv().add({&out, 1}, {}, 105)) << "after the kick the burst starts again";
}

TEST_F(VringTest, SingleOutBufferReachesTheDevice) {
  auto& r = make({.num = 8});
  const auto data = pattern(32, 1);
  driver_fill(r.ep_data_off, data);
  const Buf out{ep_addr(r.ep_data_off), 32};
  ASSERT_TRUE(r.drv().add({&out, 1}, {}, 0x1234));
  EXPECT_EQ(r.drv().num_free(), 7);
  EXPECT_EQ(r.drv().in_flight(), 1);
  EXPECT_EQ(r.dev().pending(), 0) << "nothing is visible before kick_prepare() publishes";
  (void)r.drv().kick_prepare();
  EXPECT_EQ(r.dev().pending(), 1);

  const Chain c = pop_one();
  ASSERT_EQ(c.readable().size(), 1u);
  EXPECT_TRUE(c.writable().empty());
  EXPECT_EQ(c.read_len, 32u);
  EXPECT_EQ(c.write_len, 0u);
  EXPECT_EQ(c.readable()[0].window, &w.dev_ep);
  EXPECT_EQ(c.readable()[0].off, r.ep_data_off);
  std::vector<std::byte> got(32);
  EXPECT_EQ(ring::chain_read(c, got), 32u);
  EXPECT_EQ(got, data);

  ASSERT_TRUE(r.dev().complete(c.head, 0));
  const auto u = used_one();
  EXPECT_EQ(u.token, 0x1234u);
  EXPECT_EQ(u.len, 0u);
  EXPECT_EQ(r.drv().num_free(), 8);
  EXPECT_EQ(r.drv().in_flight(), 0);
  auto none = r.drv().get_used();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(VringTest, SingleInBufferReachesTheDriver) {
  auto& r = make({.num = 8});
  const Buf in{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&in, 1}, 77));
  (void)r.drv().kick_prepare();

  const Chain c = pop_one();
  EXPECT_TRUE(c.readable().empty());
  ASSERT_EQ(c.writable().size(), 1u);
  EXPECT_EQ(c.writable()[0].window, &w.dev_rc);
  EXPECT_EQ(c.writable()[0].off, r.rc_data_off);
  EXPECT_EQ(c.write_len, 64u);
  const auto data = pattern(40, 9);
  EXPECT_EQ(ring::chain_write(c, data), 40u);
  ASSERT_TRUE(r.dev().complete(c.head, 40));

  const auto u = used_one();
  EXPECT_EQ(u.token, 77u);
  EXPECT_EQ(u.len, 40u);
  EXPECT_EQ(driver_read(r.rc_data_off, 40), data);
}

TEST_F(VringTest, MultiBufferChainKeepsOrderAndData) {
  auto& r = make({.num = 8});
  const auto a = pattern(10, 1), b = pattern(300, 2);
  driver_fill(r.ep_data_off, a);
  driver_fill(r.ep_data_off + 0x100, b);
  const std::array<Buf, 2> out{Buf{ep_addr(r.ep_data_off), 10},
                               Buf{ep_addr(r.ep_data_off + 0x100), 300}};
  const std::array<Buf, 2> in{Buf{rc_addr(r.rc_data_off), 16},
                              Buf{rc_addr(r.rc_data_off + 0x100), 100}};
  ASSERT_TRUE(r.drv().add(out, in, 5));
  EXPECT_EQ(r.drv().num_free(), 4);
  (void)r.drv().kick_prepare();

  const Chain c = pop_one();
  ASSERT_EQ(c.readable().size(), 2u);
  ASSERT_EQ(c.writable().size(), 2u);
  EXPECT_EQ(c.readable()[0].off, r.ep_data_off);
  EXPECT_EQ(c.readable()[0].len, 10u);
  EXPECT_EQ(c.readable()[1].off, r.ep_data_off + 0x100);
  EXPECT_EQ(c.readable()[1].len, 300u);
  EXPECT_EQ(c.writable()[0].off, r.rc_data_off);
  EXPECT_EQ(c.writable()[0].len, 16u);
  EXPECT_EQ(c.writable()[1].off, r.rc_data_off + 0x100);
  EXPECT_EQ(c.writable()[1].len, 100u);
  EXPECT_EQ(c.read_len, 310u);
  EXPECT_EQ(c.write_len, 116u);

  // The device sees the driver's bytes, gathered in order.
  std::vector<std::byte> got(310);
  EXPECT_EQ(ring::chain_read(c, got), 310u);
  std::vector<std::byte> want(a);
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(got, want);

  // The device's bytes are scattered over both writable buffers.
  const auto reply = pattern(50, 3);
  EXPECT_EQ(ring::chain_write(c, reply), 50u);
  ASSERT_TRUE(r.dev().complete(c.head, 50));
  const auto u = used_one();
  EXPECT_EQ(u.token, 5u);
  EXPECT_EQ(u.len, 50u);
  EXPECT_EQ(driver_read(r.rc_data_off, 16),
            std::vector<std::byte>(reply.begin(), reply.begin() + 16));
  EXPECT_EQ(driver_read(r.rc_data_off + 0x100, 34),
            std::vector<std::byte>(reply.begin() + 16, reply.end()));
  EXPECT_EQ(r.drv().num_free(), 8);
}

TEST_F(VringTest, ChainWriteStopsAtTheEndOfTheWritableBuffers) {
  auto& r = make({.num = 8});
  const Buf in{rc_addr(r.rc_data_off), 8};
  ASSERT_TRUE(r.drv().add({}, {&in, 1}, 1));
  (void)r.drv().kick_prepare();
  const Chain c = pop_one();
  const auto reply = pattern(20, 4);
  EXPECT_EQ(ring::chain_write(c, reply), 8u);
  EXPECT_EQ(driver_read(r.rc_data_off + 8, 12), std::vector<std::byte>(12))
      << "wrote past the buffer";
}

TEST_F(VringTest, OutOfOrderCompletionReturnsEveryTokenOnce) {
  auto& r = make({.num = 8});
  std::vector<std::uint16_t> heads;
  for (std::uint64_t t = 0; t < 3; ++t) {
    const std::array<Buf, 2> out{Buf{ep_addr(r.ep_data_off + t * 64), 8},
                                 Buf{ep_addr(r.ep_data_off + t * 64 + 8), 8}};
    ASSERT_TRUE(r.drv().add(out, {}, 100 + t));
  }
  EXPECT_EQ(r.drv().num_free(), 2);
  (void)r.drv().kick_prepare();
  for (int i = 0; i < 3; ++i) heads.push_back(pop_one().head);
  // Complete in reverse order.
  for (auto it = heads.rbegin(); it != heads.rend(); ++it) ASSERT_TRUE(r.dev().complete(*it, 0));
  EXPECT_EQ(used_one().token, 102u);
  EXPECT_EQ(used_one().token, 101u);
  EXPECT_EQ(used_one().token, 100u);
  EXPECT_EQ(r.drv().num_free(), 8);

  // The free list survived: all eight descriptors can be used again, then the ring is full.
  for (std::uint64_t t = 0; t < 8; ++t) {
    const Buf out{ep_addr(r.ep_data_off + t * 64), 8};
    ASSERT_TRUE(r.drv().add({&out, 1}, {}, t));
  }
  EXPECT_EQ(r.drv().num_free(), 0);
  const Buf one{ep_addr(r.ep_data_off), 8};
  auto full = r.drv().add({&one, 1}, {}, 99);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Errc::kNoSpace);
  (void)r.drv().kick_prepare();
  std::vector<std::uint16_t> seen;
  for (int i = 0; i < 8; ++i) seen.push_back(pop_one().head);
  std::sort(seen.begin(), seen.end());
  std::vector<std::uint16_t> all(8);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all) << "each descriptor is the head of exactly one chain";
}

TEST_F(VringTest, AddRejectsEmptyAndOverlongChains) {
  auto& r = make({.num = 8});
  auto empty = r.drv().add({}, {}, 1);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::kInvalidArgument);
  std::vector<Buf> nine(9, Buf{ep_addr(r.ep_data_off), 4});
  auto longer = r.drv().add(nine, {}, 1);
  ASSERT_FALSE(longer);
  EXPECT_EQ(longer.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(r.drv().num_free(), 8);
  EXPECT_FALSE(r.drv().kick_prepare()) << "nothing was added";
}

// VIRTIO 1.2 §2.7.5.2: a chain carries at most 2^32 - 1 bytes; the driver refuses to build one
// the device would reject (and whose writable length would not fit its 32-bit bookkeeping).
TEST_F(VringTest, AddRejectsAChainOver4GiB) {
  auto& r = make({.num = 8});
  const std::vector<Buf> big(2, Buf{ep_addr(r.ep_data_off), 0x80000000u});
  auto in = r.drv().add({}, big, 1);
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().code, Errc::kInvalidArgument);
  auto mixed = r.drv().add(std::span{big}.first(1), std::span{big}.first(1), 1);
  ASSERT_FALSE(mixed);
  EXPECT_EQ(r.drv().num_free(), 8);
}

TEST_F(VringTest, ChainOfExactlyNumDescriptorsIsAccepted) {
  auto& r = make({.num = 8});
  std::vector<Buf> out(4, Buf{ep_addr(r.ep_data_off), 4});
  std::vector<Buf> in(4, Buf{rc_addr(r.rc_data_off), 4});
  ASSERT_TRUE(r.drv().add(out, in, 1));
  EXPECT_EQ(r.drv().num_free(), 0);
  (void)r.drv().kick_prepare();
  const Chain c = pop_one();
  EXPECT_EQ(c.readable().size(), 4u);
  EXPECT_EQ(c.writable().size(), 4u);
  ASSERT_TRUE(r.dev().complete(c.head, 16));
  EXPECT_EQ(used_one().len, 16u);
  EXPECT_EQ(r.drv().num_free(), 8);
}

// ---- wrap-around of the 16-bit indices

class VringWrap : public ::testing::TestWithParam<std::tuple<std::uint16_t, bool>> {};

TEST_P(VringWrap, EveryTokenComesBackOnceInOrder) {
  const auto [num, event_idx] = GetParam();
  LinkWindows w;
  RingPair r(w, {.num = num, .event_idx = event_idx});
  constexpr std::uint64_t kTotal = 200'003;  // > 3 * 2^16: the indices wrap three times
  constexpr std::size_t kSlot = 16;
  // The device takes fewer chains per round than the driver offers, so the free list and the
  // ring positions keep shifting.
  const std::size_t device_batch = num / 2 - 1;
  std::uint64_t issued = 0, returned = 0;
  while (returned < kTotal) {
    while (issued < kTotal && r.drv().num_free() >= 2) {
      const std::size_t k = issued % num;  // at most num/2 chains in flight: slots are unique
      w.drv_ep.write(r.ep_data_off + k * kSlot, std::as_bytes(std::span{&issued, 1}));
      const Buf out{ep_addr(r.ep_data_off + k * kSlot), 8};
      const Buf in{rc_addr(r.rc_data_off + k * kSlot), 8};
      ASSERT_TRUE(r.drv().add({&out, 1}, {&in, 1}, issued));
      ++issued;
    }
    (void)r.drv().kick_prepare();
    for (std::size_t n = 0; n < device_batch; ++n) {
      auto p = r.dev().pop();
      ASSERT_TRUE(p) << p.error().what;
      if (!*p) break;
      std::uint64_t v = 0;
      ASSERT_EQ(ring::chain_read(**p, std::as_writable_bytes(std::span{&v, 1})), 8u);
      v = ~v;
      ASSERT_EQ(ring::chain_write(**p, std::as_bytes(std::span{&v, 1})), 8u);
      ASSERT_TRUE(r.dev().complete((*p)->head, 8));
    }
    for (;;) {
      auto u = r.drv().get_used();
      ASSERT_TRUE(u) << u.error().what;
      if (!*u) break;
      ASSERT_EQ((*u)->token, returned) << "tokens come back once, in order";
      ASSERT_EQ((*u)->len, 8u);
      std::uint64_t v = 0;
      w.drv_rc.read(r.rc_data_off + (returned % num) * kSlot,
                    std::as_writable_bytes(std::span{&v, 1}));
      ASSERT_EQ(v, ~returned) << "data integrity at token " << returned;
      ++returned;
    }
  }
  EXPECT_EQ(issued, kTotal);
  EXPECT_EQ(r.drv().num_free(), num);
  EXPECT_EQ(r.drv().in_flight(), 0);
  EXPECT_EQ(r.used_idx(), static_cast<std::uint16_t>(kTotal));
  EXPECT_EQ(r.avail_idx(), static_cast<std::uint16_t>(kTotal));
  EXPECT_FALSE(r.drv().broken());
  EXPECT_FALSE(r.dev().broken());
  EXPECT_TRUE(w.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(Sizes, VringWrap,
                         ::testing::Combine(::testing::Values<std::uint16_t>(8, 256),
                                            ::testing::Bool()),
                         [](const auto& pi) {
                           return "num" + std::to_string(std::get<0>(pi.param)) +
                                  (std::get<1>(pi.param) ? "_event_idx" : "_flags");
                         });

// ---- indirect descriptors (VIRTIO 1.2 §2.7.5.3)

TEST_F(VringTest, IndirectChainUsesOneMainDescriptor) {
  auto& r = make({.num = 8, .indirect = true, .driver_indirect_pool = true, .indirect_max = 4});
  const auto a = pattern(24, 5), b = pattern(8, 6);
  driver_fill(r.ep_data_off, a);
  driver_fill(r.ep_data_off + 0x40, b);
  const std::array<Buf, 2> out{Buf{ep_addr(r.ep_data_off), 24},
                               Buf{ep_addr(r.ep_data_off + 0x40), 8}};
  const Buf in{rc_addr(r.rc_data_off), 32};
  ASSERT_TRUE(r.drv().add(out, {&in, 1}, 42));
  EXPECT_EQ(r.drv().num_free(), 7) << "a 3-buffer chain takes one main descriptor";
  (void)r.drv().kick_prepare();

  // The main descriptor is an INDIRECT one naming a 3-entry table.
  const std::uint16_t head =
      peek<std::uint16_t>(w.ep(), r.avail_off + layout::avail_entry_offset(0));
  const std::size_t d = r.desc_off + layout::desc_offset(head);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), d + offsetof(layout::VringDesc, flags)),
            VRING_DESC_F_INDIRECT);
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), d + offsetof(layout::VringDesc, len)),
            3 * sizeof(layout::VringDesc));

  const Chain c = pop_one();
  EXPECT_EQ(c.head, head);
  ASSERT_EQ(c.readable().size(), 2u);
  ASSERT_EQ(c.writable().size(), 1u);
  EXPECT_EQ(c.readable()[0].off, r.ep_data_off);
  EXPECT_EQ(c.readable()[0].len, 24u);
  EXPECT_EQ(c.readable()[1].off, r.ep_data_off + 0x40);
  EXPECT_EQ(c.readable()[1].len, 8u);
  EXPECT_EQ(c.writable()[0].window, &w.dev_rc);
  EXPECT_EQ(c.writable()[0].off, r.rc_data_off);
  EXPECT_EQ(c.writable()[0].len, 32u);
  std::vector<std::byte> got(32);
  EXPECT_EQ(ring::chain_read(c, got), 32u);
  std::vector<std::byte> want(a);
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(got, want);

  const auto reply = pattern(32, 7);
  EXPECT_EQ(ring::chain_write(c, reply), 32u);
  ASSERT_TRUE(r.dev().complete(c.head, 32));
  const auto u = used_one();
  EXPECT_EQ(u.token, 42u);
  EXPECT_EQ(u.len, 32u);
  EXPECT_EQ(driver_read(r.rc_data_off, 32), reply);
  EXPECT_EQ(r.drv().num_free(), 8);
}

TEST_F(VringTest, IndirectTablesOfAllHeadsDoNotOverlap) {
  auto& r = make({.num = 8, .indirect = true, .driver_indirect_pool = true, .indirect_max = 4});
  for (std::uint64_t t = 0; t < 8; ++t) {
    const std::size_t off = r.ep_data_off + t * 0x40;
    const std::array<Buf, 3> out{Buf{ep_addr(off), 1}, Buf{ep_addr(off + 1), 2},
                                 Buf{ep_addr(off + 3), 3}};
    ASSERT_TRUE(r.drv().add(out, {}, t));
  }
  EXPECT_EQ(r.drv().num_free(), 0);
  (void)r.drv().kick_prepare();
  for (std::uint64_t t = 0; t < 8; ++t) {
    const Chain c = pop_one();
    ASSERT_EQ(c.readable().size(), 3u);
    const std::size_t off = r.ep_data_off + t * 0x40;
    EXPECT_EQ(c.readable()[0].off, off);
    EXPECT_EQ(c.readable()[1].off, off + 1);
    EXPECT_EQ(c.readable()[2].off, off + 3);
    EXPECT_EQ(c.read_len, 6u);
    ASSERT_TRUE(r.dev().complete(c.head, 0));
  }
  for (std::uint64_t t = 0; t < 8; ++t) EXPECT_EQ(used_one().token, t);
  EXPECT_EQ(r.drv().num_free(), 8);
}

TEST_F(VringTest, ChainLongerThanAnIndirectTableFallsBackToDirect) {
  auto& r = make({.num = 8, .indirect = true, .driver_indirect_pool = true, .indirect_max = 4});
  std::vector<Buf> out;
  for (std::size_t k = 0; k < 5; ++k) out.push_back(Buf{ep_addr(r.ep_data_off + k * 16), 16});
  ASSERT_TRUE(r.drv().add(out, {}, 9));
  EXPECT_EQ(r.drv().num_free(), 3);
  (void)r.drv().kick_prepare();
  const Chain c = pop_one();
  ASSERT_EQ(c.readable().size(), 5u);
  for (std::size_t k = 0; k < 5; ++k) EXPECT_EQ(c.readable()[k].off, r.ep_data_off + k * 16);
  ASSERT_TRUE(r.dev().complete(c.head, 0));
  EXPECT_EQ(used_one().token, 9u);
  EXPECT_EQ(r.drv().num_free(), 8);
}

}  // namespace
}  // namespace vepf::test
