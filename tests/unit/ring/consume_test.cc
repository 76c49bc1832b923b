// The consume loops every device and driver uses (ring/consume.hpp): bursts published with one
// index store, held chains offered again first, retries, budgets, notifications re-enabled
// only on an empty ring, and broken rings.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/ring/consume.hpp"

namespace vepf::test {
namespace {

using End = ring::Drained::End;

// Adds `n` one-buffer chains (writable, 64 B) with tokens from `token` on, and publishes them.
void offer(RingPair& r, int n, std::uint64_t token = 0) {
  for (int k = 0; k < n; ++k) {
    const ring::Buf b{rc_addr(r.rc_data_off + 0x40 * ((token + k) % 16)), 64};
    ASSERT_TRUE(r.drv().add({}, {&b, 1}, token + k));
  }
  (void)r.drv().kick_prepare();
}

std::vector<std::uint64_t> tokens_used(RingPair& r) {
  std::vector<std::uint64_t> t;
  for (;;) {
    auto u = r.drv().get_used();
    if (!u || !*u) return t;
    t.push_back((*u)->token);
  }
}

TEST(ChainConsumer, ABurstGoesOutWithOneIndexStoreAndOneInterrupt) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 5);
  ASSERT_TRUE(r.drv().enable_cb());  // the driver sleeps: it wants an interrupt
  ring::ChainConsumer c;
  std::vector<std::uint16_t> heads;
  const auto before = w.dev_counters;
  const auto d = c.drain(r.dev(), 64, [&](ring::Chain& ch) {
    heads.push_back(ch.head);
    return ring::Handled::used(static_cast<std::uint32_t>(heads.size()));
  });
  EXPECT_EQ(d.end, End::kEmpty);
  EXPECT_EQ(d.used, 5u);
  EXPECT_TRUE(d.notify);
  EXPECT_EQ(heads.size(), 5u);
  // Five used entries and one index store into the RC window, plus the avail_event store of
  // the re-enable on the empty ring (in the device's own window).
  EXPECT_EQ((w.dev_counters - before).posted_writes, 5u + 1u + 1u);
  EXPECT_EQ(r.used_idx(), 5);
  EXPECT_EQ(tokens_used(r), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
}

TEST(ChainConsumer, AHeldChainIsOfferedFirstNextTimeAndNotCompletedMeanwhile) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 3);
  ring::ChainConsumer c;
  int calls = 0;
  std::uint16_t held_head = 0;
  auto d = c.drain(r.dev(), 64, [&](ring::Chain& ch) {
    if (++calls == 2) {
      held_head = ch.head;
      return ring::Handled::hold();  // e.g. no frame for this receive buffer yet
    }
    return ring::Handled::used();
  });
  EXPECT_EQ(d.end, End::kHeld);
  EXPECT_EQ(d.used, 1u);
  EXPECT_TRUE(c.holding());
  EXPECT_EQ(tokens_used(r), (std::vector<std::uint64_t>{0}));

  std::vector<std::uint16_t> heads;
  d = c.drain(r.dev(), 64, [&](ring::Chain& ch) {
    heads.push_back(ch.head);
    return ring::Handled::used();
  });
  EXPECT_EQ(d.end, End::kEmpty);
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0], held_head) << "the held chain was not offered first";
  EXPECT_FALSE(c.holding());
  EXPECT_EQ(tokens_used(r), (std::vector<std::uint64_t>{1, 2}));
}

TEST(ChainConsumer, RetryOffersTheSameChainAgainAndSpendsBudget) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 2);
  ring::ChainConsumer c;
  std::vector<std::uint16_t> heads;
  const auto d = c.drain(r.dev(), 3, [&](ring::Chain& ch) {
    heads.push_back(ch.head);
    return heads.size() == 1 ? ring::Handled::retry() : ring::Handled::used();  // a dropped input
  });
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_EQ(heads[0], heads[1]);
  EXPECT_NE(heads[1], heads[2]);
  EXPECT_EQ(d.used, 2u);
  EXPECT_EQ(d.end, End::kBudget) << "three handler calls spend a budget of three";
  EXPECT_EQ(tokens_used(r), (std::vector<std::uint64_t>{0, 1}));
}

TEST(ChainConsumer, TheBudgetEndsADrainAndTheRestWaits) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 6);
  ring::ChainConsumer c;
  auto used = [](ring::Chain&) { return ring::Handled::used(); };
  auto d = c.drain(r.dev(), 4, used);
  EXPECT_EQ(d.end, End::kBudget);
  EXPECT_EQ(d.used, 4u);
  EXPECT_EQ(r.dev().pending(), 2u);
  d = c.drain(r.dev(), 4, used);
  EXPECT_EQ(d.end, End::kEmpty);
  EXPECT_EQ(d.used, 2u);
}

TEST(ChainConsumer, AnEmptyRingLeavesDoorbellsOnSoTheDriverKicksForTheNextChain) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 1);
  ring::ChainConsumer c;
  auto d = c.drain(r.dev(), 64, [](ring::Chain&) { return ring::Handled::used(); });
  ASSERT_EQ(d.end, End::kEmpty);
  const ring::Buf b{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&b, 1}, 9));
  EXPECT_TRUE(r.drv().kick_prepare()) << "the device sleeps but the driver was not asked to kick";
}

TEST(ChainConsumer, DrainWhileTakesNothingWithoutWork) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 3);
  ring::ChainConsumer c;
  int work = 1;
  int calls = 0;
  const auto d = c.drain_while(
      r.dev(), 64, [&] { return work > 0; },
      [&](ring::Chain&) {
        --work;
        ++calls;
        return ring::Handled::used();
      });
  EXPECT_EQ(d.end, End::kHeld);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(c.holding());
  EXPECT_EQ(r.dev().pending(), 2u) << "buffers were popped with nothing to put in them";
}

TEST(ChainConsumer, StopLeavesTheChainNeitherUsedNorHeld) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 2);
  ring::ChainConsumer c;
  const auto d = c.drain(r.dev(), 64, [](ring::Chain&) { return ring::Handled::stop(); });
  EXPECT_EQ(d.end, End::kStopped);
  EXPECT_EQ(d.used, 0u);
  EXPECT_FALSE(c.holding());
  EXPECT_EQ(r.used_idx(), 0);
}

TEST(ChainConsumer, TakenChainsAreLeftToTheHandler) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 2);
  ring::ChainConsumer c;
  std::vector<ring::Chain> kept;
  const auto d = c.drain(r.dev(), 64, [&](ring::Chain& ch) {
    kept.push_back(std::move(ch));  // completed later, as a block request is
    return ring::Handled::taken();
  });
  EXPECT_EQ(d.end, End::kEmpty);
  EXPECT_EQ(d.used, 0u);
  EXPECT_EQ(r.used_idx(), 0);
  ASSERT_EQ(kept.size(), 2u);
  for (const auto& ch : kept) ASSERT_TRUE(r.dev().complete(ch.head, 0));
  EXPECT_EQ(tokens_used(r), (std::vector<std::uint64_t>{0, 1}));
}

TEST(ChainConsumer, ABrokenRingEndsTheDrainAfterPublishingWhatWasDone) {
  LinkWindows w;
  RingOptions o;
  o.num = 8;
  o.make_driver = false;
  RingPair r(w, o);
  r.put_desc(0, rc_addr(r.rc_data_off), 64, VRING_DESC_F_WRITE);
  r.put_desc(1, rc_addr(r.rc_data_off), 64, VRING_DESC_F_WRITE);
  r.put_avail(0, 0);
  r.put_avail(1, 1);
  r.put_avail_idx(2);
  ring::ChainConsumer c;
  int calls = 0;
  const auto d = c.drain(r.dev(), 64, [&](ring::Chain&) {
    if (++calls == 2) r.put_avail_idx(2 + 9);  // the driver claims 9 more chains on a queue of 8
    return ring::Handled::used();
  });
  EXPECT_EQ(d.end, End::kBroken);
  EXPECT_EQ(d.used, 2u);
  EXPECT_EQ(r.used_idx(), 2) << "the chains done before the breach were not published";
  EXPECT_TRUE(r.dev().broken());
}

TEST(UsedConsumer, HoldKeepsACompletionForTheNextDrainAndReleaseGivesItBack) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 3);
  for (int k = 0; k < 3; ++k) {
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    ASSERT_TRUE(r.dev().complete((*p)->head, 10u + k));
  }
  ring::UsedConsumer u;
  std::vector<std::uint64_t> seen;
  auto d = u.drain(r.drv(), 64, [&](const ring::Vring::Used& x) {
    seen.push_back(x.token);
    return x.token == 1 ? ring::Handled::hold() : ring::Handled::used();  // the sink is full
  });
  EXPECT_EQ(d.end, End::kHeld);
  EXPECT_EQ(d.used, 1u);
  EXPECT_TRUE(u.holding());
  d = u.drain(r.drv(), 64, [&](const ring::Vring::Used& x) {
    seen.push_back(x.token);
    EXPECT_EQ(x.len, 10u + x.token);
    return ring::Handled::used();
  });
  EXPECT_EQ(d.end, End::kEmpty);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{0, 1, 1, 2}));

  offer(r, 1, 7);
  auto p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  (void)u.drain(r.drv(), 64, [](const ring::Vring::Used&) { return ring::Handled::hold(); });
  auto given = u.release();
  ASSERT_TRUE(given);
  EXPECT_EQ(given->token, 7u);
  EXPECT_FALSE(u.holding());
}

TEST(UsedConsumer, AnEmptyUsedRingAsksForAnInterrupt) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 2);
  ring::UsedConsumer u;
  const auto d =
      u.drain(r.drv(), 64, [](const ring::Vring::Used&) { return ring::Handled::used(); });
  EXPECT_EQ(d.end, End::kEmpty);
  auto p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  EXPECT_TRUE(r.dev().need_notify())
      << "the driver sleeps but the device was not asked to interrupt";
}

TEST(UsedConsumer, AnImpossibleUsedEntryBreaksTheDrainWithTheRingsError) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  offer(r, 1);
  r.put_used(0, 15, 0);  // an id that is not a chain in flight
  r.put_used_idx(1);
  ring::UsedConsumer u;
  Error err;
  const auto d = u.drain(
      r.drv(), 64, [](const ring::Vring::Used&) { return ring::Handled::used(); }, &err);
  EXPECT_EQ(d.end, End::kBroken);
  EXPECT_EQ(err.code, Errc::kBadRing);
  EXPECT_TRUE(r.drv().broken());
}

// ---- PollGroup: doorbells and interrupts left off while the program spins, asked at arm().

// Rings with EVENT_IDX: what the group saves is the avail_event / used_event store.
RingOptions grouped() { return traffic_ring(); }

TEST(PollGroup, WhilePollingAnEmptyRingDoesNotAskForDoorbellsUntilArm) {
  LinkWindows w;
  RingPair r(w, grouped());
  ring::PollGroup g;
  ring::VringhParams hp = r.device_params();
  hp.group = &g;
  ring::Vringh dev(hp);
  ring::ChainConsumer c;
  auto used = [](ring::Chain&) { return ring::Handled::used(); };

  offer(r, 1);
  g.start_polling();
  auto d = c.drain(dev, 64, used);
  ASSERT_EQ(d.end, End::kEmpty);
  // Without the group the drain would have asked for a doorbell at the next add (EVENT_IDX
  // avail_event = 1); polling, it did not.
  const ring::Buf b{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&b, 1}, 1));
  EXPECT_FALSE(r.drv().kick_prepare()) << "a polled ring asked the driver for a doorbell";

  EXPECT_FALSE(g.arm()) << "arm() missed a chain waiting on the ring";
  EXPECT_FALSE(g.polling());
  d = c.drain(dev, 64, used);
  EXPECT_EQ(d.end, End::kEmpty);
  EXPECT_EQ(d.used, 1u);
  ASSERT_TRUE(r.drv().add({}, {&b, 1}, 2));
  EXPECT_TRUE(r.drv().kick_prepare()) << "after arm() the sleeping device was not rung";
}

TEST(PollGroup, ArmOnQuietRingsSaysSleepAndAsksForTheSignal) {
  LinkWindows w;
  RingPair r(w, grouped());
  ring::PollGroup g;
  ring::VringhParams hp = r.device_params();
  hp.group = &g;
  ring::Vringh dev(hp);
  g.start_polling();
  EXPECT_TRUE(dev.notify_enable());
  EXPECT_TRUE(dev.notify_enable()) << "a second look while polling";
  EXPECT_TRUE(g.arm()) << "nothing is pending: the program may sleep";
  const ring::Buf b{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&b, 1}, 0));
  EXPECT_TRUE(r.drv().kick_prepare());
  EXPECT_TRUE(g.arm()) << "arm() with no ring waiting";
}

TEST(PollGroup, TheDriverSideAsksForInterruptsOnlyAtArm) {
  LinkWindows w;
  RingOptions o = grouped();
  o.make_driver = false;
  RingPair r(w, o);
  ring::PollGroup g;
  ring::VringParams vp = r.driver_params();
  vp.group = &g;
  ring::Vring drv(vp);
  const ring::Buf b[3] = {{rc_addr(r.rc_data_off), 64},
                          {rc_addr(r.rc_data_off + 64), 64},
                          {rc_addr(r.rc_data_off + 128), 64}};
  for (std::uint64_t k = 0; k < 3; ++k) ASSERT_TRUE(drv.add({}, {&b[k], 1}, k));
  (void)drv.kick_prepare();
  auto complete_one = [&] {
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  };
  complete_one();  // the first completion interrupts whatever the driver does (used_event 0)
  (void)r.dev().need_notify();
  auto u = drv.get_used();
  ASSERT_TRUE(u && *u);

  g.start_polling();
  EXPECT_TRUE(drv.enable_cb());
  complete_one();
  // Without the group enable_cb() would have set used_event = 1 and this would interrupt.
  EXPECT_FALSE(r.dev().need_notify()) << "a polling driver was interrupted";
  EXPECT_FALSE(g.arm()) << "arm() missed a completion";
  u = drv.get_used();
  ASSERT_TRUE(u && *u);
  EXPECT_TRUE(drv.enable_cb());
  complete_one();
  EXPECT_TRUE(r.dev().need_notify()) << "a sleeping driver was not interrupted";
}

TEST(PollGroup, ARingThatGoesAwayLeavesTheGroup) {
  LinkWindows w;
  RingPair r(w, grouped());
  ring::PollGroup g;
  g.start_polling();
  {
    ring::VringhParams hp = r.device_params();
    hp.group = &g;
    ring::Vringh dev(hp);
    EXPECT_TRUE(dev.notify_enable());
  }
  EXPECT_TRUE(g.arm());  // under ASan: a use after free if the ring stayed in the group
}

}  // namespace
}  // namespace vepf::test
