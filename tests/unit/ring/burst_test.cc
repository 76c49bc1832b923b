// The ring's burst paths: a chain longer than Chain's inline storage, used entries written in a
// burst and published once (Vringh::push_used / publish_used), and the avail and used indices
// read once per burst (Vringh::pop, Vring::get_used), counted through the link model.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::test {
namespace {

constexpr std::uint16_t kN = VRING_DESC_F_NEXT;
constexpr std::uint16_t kW = VRING_DESC_F_WRITE;

RingOptions by_hand(std::uint16_t num) {
  RingOptions o;
  o.num = num;
  o.make_driver = false;  // the test is the driver
  return o;
}

TEST(ChainStorage, ChainLongerThanTheInlineStorageKeepsEveryBufferInOrder) {
  LinkWindows w;
  RingPair r(w, by_hand(32));
  constexpr std::uint16_t kRead = 12, kWrite = 5;  // 17 > Chain::kInlineSegments
  static_assert(kRead + kWrite > ring::Chain::kInlineSegments);
  for (std::uint16_t i = 0; i < kRead + kWrite; ++i) {
    const bool writable = i >= kRead;
    const std::uint64_t addr =
        writable ? rc_addr(r.rc_data_off + 0x100 * i) : ep_addr(r.ep_data_off + 0x100 * i);
    const bool last = i + 1 == kRead + kWrite;
    r.put_desc(i, addr, 10u + i, static_cast<std::uint16_t>((writable ? kW : 0) | (last ? 0 : kN)),
               static_cast<std::uint16_t>(i + 1));
  }
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(*p);
  const ring::Chain c = std::move(**p);
  ASSERT_EQ(c.readable().size(), kRead);
  ASSERT_EQ(c.writable().size(), kWrite);
  std::uint64_t rlen = 0, wlen = 0;
  for (std::uint16_t i = 0; i < kRead; ++i) {
    EXPECT_EQ(c.readable()[i].off, r.ep_data_off + 0x100 * i);
    EXPECT_EQ(c.readable()[i].len, 10u + i);
    rlen += 10u + i;
  }
  for (std::uint16_t i = 0; i < kWrite; ++i) {
    EXPECT_EQ(c.writable()[i].window, &w.dev_rc);
    EXPECT_EQ(c.writable()[i].off, r.rc_data_off + 0x100 * (kRead + i));
    wlen += 10u + kRead + i;
  }
  EXPECT_EQ(c.read_len, rlen);
  EXPECT_EQ(c.write_len, wlen);

  ring::Chain copy = c;  // copies survive the original
  ASSERT_EQ(copy.writable().size(), kWrite);
  EXPECT_EQ(copy.writable().back().off, c.writable().back().off);
  EXPECT_NE(copy.readable().data(), c.readable().data()) << "a copy shares the original's segments";
}

TEST(ChainStorage, MoveAndCopyOfAnInlineChain) {
  ring::Chain a;
  ring::Window win;
  a.head = 3;
  a.add_readable({&win, 16, 4});
  a.add_writable({&win, 64, 8});
  ring::Chain b = a;
  ring::Chain c = std::move(a);
  for (const ring::Chain* x : {&b, &c}) {
    EXPECT_EQ(x->head, 3);
    ASSERT_EQ(x->readable().size(), 1u);
    ASSERT_EQ(x->writable().size(), 1u);
    EXPECT_EQ(x->readable()[0].off, 16u);
    EXPECT_EQ(x->writable()[0].len, 8u);
  }
  // NOLINTNEXTLINE(bugprone-use-after-move): the moved-from state is what this checks
  EXPECT_TRUE(a.readable().empty()) << "a moved-from chain still lists segments";
  c.clear();
  EXPECT_TRUE(c.readable().empty());
  EXPECT_TRUE(c.writable().empty());
}

TEST(Burst, PushedEntriesAreInvisibleUntilPublished) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  std::vector<ring::Buf> in(3);
  for (std::uint64_t k = 0; k < in.size(); ++k) {
    in[k] = {rc_addr(r.rc_data_off + 0x100 * k), 64};
    ASSERT_TRUE(r.drv().add({}, {&in[k], 1}, 100 + k));
  }
  (void)r.drv().kick_prepare();
  std::vector<std::uint16_t> heads;
  const auto at_push = w.dev_counters;
  for (int k = 0; k < 3; ++k) {
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    heads.push_back((*p)->head);
    ASSERT_TRUE(r.dev().push_used((*p)->head, static_cast<std::uint32_t>(k)));
  }
  EXPECT_EQ(r.used_idx(), 0) << "push_used() published the index";
  EXPECT_EQ((w.dev_counters - at_push).posted_writes, 0u)
      << "push_used() wrote to the driver's window";
  auto none = r.drv().get_used();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none) << "the driver saw an entry before publish_used()";

  const auto before = w.dev_counters;
  r.dev().publish_used();
  EXPECT_EQ(r.used_idx(), 3);
  EXPECT_EQ((w.dev_counters - before).posted_writes, 3u + 1u)
      << "the three entries, then one index store";
  r.dev().publish_used();
  EXPECT_EQ((w.dev_counters - before).posted_writes, 3u + 1u) << "publishing nothing wrote again";

  for (std::uint64_t k = 0; k < 3; ++k) {
    auto u = r.drv().get_used();
    ASSERT_TRUE(u && *u);
    EXPECT_EQ((*u)->token, 100 + k);
    EXPECT_EQ((*u)->len, k);
  }
}

TEST(Burst, NoInterruptIsAskedForEntriesNotYetPublished) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  const ring::Buf in{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&in, 1}, 1));
  (void)r.drv().kick_prepare();
  ASSERT_TRUE(r.drv().enable_cb()) << "nothing is pending yet: the driver would sleep";
  auto p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().push_used((*p)->head, 0));
  EXPECT_FALSE(r.dev().need_notify()) << "an interrupt for an entry the driver cannot see yet";
  r.dev().publish_used();
  EXPECT_TRUE(r.dev().need_notify()) << "the published entry owes the sleeping driver an interrupt";
}

TEST(Burst, TheAvailIndexIsReadOncePerBurst) {
  // Count the device's reads through a remote view of the EP window (as a device reaching the
  // driver's rings across the link would).
  LinkWindows w;
  ring::LinkCounters c;
  ring::Window remote_ep(layout::WindowId::kEp, w.ep(), &c);
  ring::AddressSpace space(&remote_ep, &w.dev_rc);
  RingPair r(w, by_hand(8));
  ring::VringhParams hp;
  hp.num = 8;
  hp.desc = ring::Segment{&remote_ep, r.desc_off, 8 * 16};
  hp.avail = ring::Segment{&remote_ep, r.avail_off,
                           static_cast<std::uint32_t>(layout::avail_ring_size(8))};
  hp.used =
      ring::Segment{&w.dev_rc, r.used_off, static_cast<std::uint32_t>(layout::used_ring_size(8))};
  hp.space = &space;
  ring::Vringh dev(hp);
  for (std::uint16_t i = 0; i < 3; ++i) {
    r.put_desc(i, ep_addr(r.ep_data_off), 4, 0);
    r.put_avail(i, i);
  }
  r.put_avail_idx(3);
  for (std::uint16_t i = 0; i < 3; ++i) {
    auto p = dev.pop();
    ASSERT_TRUE(p && *p);
    EXPECT_EQ((*p)->head, i);
  }
  // One index read, three entries, three descriptors.
  EXPECT_EQ(c.nonposted_reads, 1u + 3u + 3u);
  auto none = dev.pop();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_EQ(c.nonposted_reads, 1u + 3u + 3u + 1u) << "an empty ring costs one index read";
}

TEST(Burst, AnAvailIndexTooFarAheadStillBreaksTheQueueAfterABurst) {
  LinkWindows w;
  RingPair r(w, by_hand(8));
  r.put_desc(0, ep_addr(r.ep_data_off), 4, 0);
  r.offer(0);
  auto p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  r.put_avail_idx(1 + 9);  // 9 new chains on a queue of 8
  auto bad = r.dev().pop();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kBadRing);
}

TEST(Burst, RingIndicesOnWindowsWithout16BitAccessesCostNoRead) {
  // 32-bit-only windows: the driver writes the avail entries, and the avail flags and index, in
  // whole words from its own copies, and the device the used flags and index; neither reads a
  // word back across the link. Bursts of odd and even sizes, from odd and
  // even slots, wrapping the ring: every head reaches the device in order.
  LinkWindows w(kDefaultWindowSize, kDefaultWindowSize,
                ring::MemoryAccess{ring::MemoryType::kDevice, hw::AccessWidths::from_bits(4)});
  RingOptions o;
  o.num = 8;
  RingPair r(w, o);
  const auto before = w.drv_counters;
  const auto dev_before = w.dev_counters;
  std::uint64_t token = 0, expect = 0;
  for (const int burst : {1, 2, 3, 5, 1, 4, 7, 2, 3, 8, 1, 6}) {
    for (int k = 0; k < burst; ++k) {
      const ring::Buf b{ep_addr(r.ep_data_off + 0x40 * k), 16};
      ASSERT_TRUE(r.drv().add({&b, 1}, {}, token++));
    }
    (void)r.drv().kick_prepare();
    for (int k = 0; k < burst; ++k) {
      auto p = r.dev().pop();
      ASSERT_TRUE(p && *p) << "burst of " << burst << ": chain " << k << " missing";
      ASSERT_TRUE(r.dev().complete((*p)->head, 0));
    }
    auto none = r.dev().pop();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    for (int k = 0; k < burst; ++k) {
      auto u = r.drv().get_used();
      ASSERT_TRUE(u && *u);
      EXPECT_EQ((*u)->token, expect++);
    }
  }
  EXPECT_EQ((w.drv_counters - before).nonposted_reads, 0u) << "the driver read the EP window back";
  EXPECT_EQ((w.dev_counters - dev_before).nonposted_reads, 0u)
      << "the device read the RC window back";
}

TEST(DescriptorWrites, AnUnchangedDescriptorIsNotWrittenAgain) {
  LinkWindows w;
  RingOptions o;
  o.num = 8;
  RingPair r(w, o);
  // One pass over the queue: every descriptor written once; the same buffers again, in order:
  // none written; then one buffer with a new length: that descriptor alone, and the device
  // sees the new length.
  auto round = [&](std::uint32_t len_of_3) {
    for (std::uint16_t k = 0; k < 8; ++k) {
      const ring::Buf b{ep_addr(r.ep_data_off + 0x100 * k), k == 3 ? len_of_3 : 32u};
      EXPECT_TRUE(r.drv().add({&b, 1}, {}, k));
    }
    (void)r.drv().kick_prepare();
    std::vector<std::uint32_t> lens;
    for (;;) {
      auto p = r.dev().pop();
      if (!p || !*p) break;
      lens.push_back(static_cast<std::uint32_t>((*p)->read_len));
      EXPECT_TRUE(r.dev().complete((*p)->head, 0));
    }
    while (true) {
      auto u = r.drv().get_used();
      if (!u || !*u) break;
    }
    return lens;
  };
  auto desc_writes = [&](auto&& body) {
    const auto before = w.drv_counters;
    body();
    // Every posted write here is a descriptor, an avail entry or the avail index: count the
    // 16-byte ones.
    return (w.drv_counters - before).posted_write_bytes -
           (w.drv_counters - before).posted_writes * 2;
  };
  std::vector<std::uint32_t> lens;
  EXPECT_EQ(desc_writes([&] { lens = round(32); }), 8u * 14) << "first pass: all eight descriptors";
  EXPECT_EQ(desc_writes([&] { lens = round(32); }), 0u)
      << "the same buffers again rewrote descriptors";
  EXPECT_EQ(desc_writes([&] { lens = round(48); }), 14u) << "one changed descriptor: one write";
  ASSERT_EQ(lens.size(), 8u);
  EXPECT_EQ(lens[3], 48u) << "the device did not see the changed length";
  EXPECT_EQ(lens[2], 32u);
}

}  // namespace
}  // namespace vepf::test

namespace vepf::test {
namespace {

// A chain built by hand over the device's windows: `read` readable segments of 100 B in the EP
// window (ours), then `write` writable ones of 100 B in the RC window (the driver's).
ring::Chain chain_over(LinkWindows& w, int read, int write) {
  ring::Chain c;
  for (int k = 0; k < read; ++k) {
    c.add_readable({&w.dev_ep, 0x1000 + 0x100 * static_cast<std::size_t>(k), 100});
    c.read_len += 100;
  }
  for (int k = 0; k < write; ++k) {
    c.add_writable({&w.dev_rc, 0x1000 + 0x100 * static_cast<std::size_t>(k), 100});
    c.write_len += 100;
  }
  return c;
}

TEST(ChainIov, GatherSkipsTheHeaderAndPointsIntoOurWindow) {
  LinkWindows w;
  const ring::Chain c = chain_over(w, 3, 0);
  std::vector<iovec> iov;
  ASSERT_TRUE(ring::chain_gather(c, 12, iov));
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(static_cast<std::byte*>(iov[0].iov_base), w.ep().data() + 0x1000 + 12);
  EXPECT_EQ(iov[0].iov_len, 88u);
  EXPECT_EQ(static_cast<std::byte*>(iov[2].iov_base), w.ep().data() + 0x1200);
  EXPECT_EQ(iov[2].iov_len, 100u);
  iov.clear();
  ASSERT_TRUE(ring::chain_gather(c, 150, iov)) << "a header spanning two segments";
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(static_cast<std::byte*>(iov[0].iov_base), w.ep().data() + 0x1100 + 50);
  EXPECT_EQ(iov[0].iov_len, 50u);
}

TEST(ChainIov, ScatterIntoTheDriversCachedWindowIsCountedWhenFilled) {
  LinkWindows w;
  const ring::Chain c = chain_over(w, 0, 2);
  std::vector<iovec> iov;
  ASSERT_TRUE(ring::chain_scatter(c, 12, iov));
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(static_cast<std::byte*>(iov[0].iov_base), w.rc().data() + 0x1000 + 12);
  EXPECT_EQ(iov[1].iov_len, 100u);
  const auto before = w.dev_counters;
  ring::chain_filled(c, 12, 120);  // 88 B in the first buffer, 32 in the second
  EXPECT_EQ((w.dev_counters - before).posted_write_bytes, 120u);
  EXPECT_EQ((w.dev_counters - before).posted_writes, 2u);
}

TEST(ChainIov, NoIovecsIntoThePeersWindowDeviceMemoryOrALongChain) {
  LinkWindows w;
  std::vector<iovec> iov;
  ring::Chain
      theirs;  // readable bytes in the driver's window: a syscall would read across the link
  theirs.add_readable({&w.dev_rc, 0x1000, 100});
  EXPECT_FALSE(ring::chain_gather(theirs, 12, iov));

  LinkWindows dev(kDefaultWindowSize, kDefaultWindowSize,
                  ring::MemoryAccess{ring::MemoryType::kDevice, hw::AccessWidths::from_bits(4)});
  iov.clear();
  EXPECT_FALSE(ring::chain_scatter(chain_over(dev, 0, 1), 12, iov))
      << "a kernel copy onto device memory";
  iov.clear();
  EXPECT_FALSE(ring::chain_gather(chain_over(dev, 1, 0), 12, iov))
      << "a kernel copy from device memory";

  iov.clear();
  EXPECT_FALSE(
      ring::chain_gather(chain_over(w, static_cast<int>(ring::kMaxChainIov) + 1, 0), 0, iov));
}

}  // namespace
}  // namespace vepf::test
