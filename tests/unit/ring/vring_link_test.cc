// Vring against Vringh: the link model (what crosses the link, and as which transaction) and a
// device that writes impossible used entries.

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

// ---- the link model (ARCHITECTURE.md §1)

TEST(LinkCounters, OnlyRemoteAccessesAreCounted) {
  LinkWindows w;
  (void)w.drv_rc.load<std::uint32_t>(0);
  w.drv_rc.store<std::uint32_t>(0, 1);
  (void)w.dev_ep.load<std::uint32_t>(0);
  w.dev_ep.store<std::uint32_t>(0, 1);
  EXPECT_EQ(w.drv_counters.nonposted_reads + w.drv_counters.posted_writes, 0u);
  EXPECT_EQ(w.dev_counters.nonposted_reads + w.dev_counters.posted_writes, 0u);
  (void)w.drv_ep.load<std::uint32_t>(0);
  w.drv_ep.store<std::uint16_t>(0, 1);
  (void)w.dev_rc.load<std::uint64_t>(0);
  w.dev_rc.store<std::uint32_t>(0, 1);
  EXPECT_EQ(w.drv_counters.nonposted_reads, 1u);
  EXPECT_EQ(w.drv_counters.nonposted_read_bytes, 4u);
  EXPECT_EQ(w.drv_counters.posted_writes, 1u);
  EXPECT_EQ(w.drv_counters.posted_write_bytes, 2u);
  EXPECT_EQ(w.dev_counters.nonposted_reads, 1u);
  EXPECT_EQ(w.dev_counters.nonposted_read_bytes, 8u);
  EXPECT_EQ(w.dev_counters.posted_writes, 1u);
}

class VringLinkModel : public ::testing::TestWithParam<bool> {};

TEST_P(VringLinkModel, SteadyStateDoesNoNonPostedReads) {
  const bool event_idx = GetParam();
  LinkWindows w;
  RingPair r(w, {.num = 8, .event_idx = event_idx});
  constexpr int kRounds = 20;
  constexpr std::size_t kPayload = 64;
  const ring::LinkCounters drv0 = w.drv_counters, dev0 = w.dev_counters;

  for (int i = 0; i < kRounds; ++i) {
    // Driver: fill a buffer, add out + in, publish.
    const auto data = pattern(kPayload, static_cast<std::uint8_t>(i));
    w.drv_ep.write(r.ep_data_off, data);
    const Buf out{ep_addr(r.ep_data_off), kPayload};
    const Buf in{rc_addr(r.rc_data_off), kPayload};
    ASSERT_TRUE(r.drv().add({&out, 1}, {&in, 1}, static_cast<std::uint64_t>(i)));
    (void)r.drv().kick_prepare();
    // Device: take it, echo, complete, decide on the interrupt, re-arm doorbells.
    r.dev().notify_disable();
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    std::vector<std::byte> buf(kPayload);
    ASSERT_EQ(ring::chain_read(**p, buf), kPayload);
    ASSERT_EQ(ring::chain_write(**p, buf), kPayload);
    ASSERT_TRUE(r.dev().complete((*p)->head, kPayload));
    (void)r.dev().need_notify();
    (void)r.dev().notify_enable();
    // Driver: take the completion, read the reply, re-arm interrupts.
    auto u = r.drv().get_used();
    ASSERT_TRUE(u && *u);
    ASSERT_EQ((*u)->token, static_cast<std::uint64_t>(i));
    std::vector<std::byte> reply(kPayload);
    w.drv_rc.read(r.rc_data_off, reply);
    ASSERT_EQ(reply, data);
    r.drv().disable_cb();
    (void)r.drv().enable_cb();
  }

  const auto drv = w.drv_counters - drv0;
  const auto dev = w.dev_counters - dev0;
  EXPECT_EQ(drv.nonposted_reads, 0u) << "the driver read the EP window";
  EXPECT_EQ(dev.nonposted_reads, 0u) << "the device read the RC window";
  // Posted writes are counted: per round at least the payload, the avail entry and index
  // (driver; descriptors only while they change: burst_test.cc), and the reply, the used entry
  // and the used index (device).
  EXPECT_GE(drv.posted_writes, kRounds * 3u);
  EXPECT_GE(drv.posted_write_bytes, kRounds * (kPayload + 2 + 2));
  EXPECT_GE(dev.posted_writes, kRounds * 3u);
  EXPECT_GE(dev.posted_write_bytes, kRounds * (kPayload + sizeof(layout::VringUsedElem) + 2));
}

INSTANTIATE_TEST_SUITE_P(Notify, VringLinkModel, ::testing::Bool(), [](const auto& pi) {
  return pi.param ? std::string("event_idx") : std::string("flags");
});

// ---- a device that writes impossible used entries (the driver must not trust them)

struct BadUsedCase {
  const char* name;
  // Writes the used ring by hand; `head` is the one chain in flight (1 out + 1 in of 16 bytes).
  void (*write)(RingPair& r, std::uint16_t head);
};

void PrintTo(const BadUsedCase& c, std::ostream* os) { *os << c.name; }

class VringBadUsed : public ::testing::TestWithParam<BadUsedCase> {};

TEST_P(VringBadUsed, GetUsedBreaksTheQueue) {
  LinkWindows w;
  RingPair r(w, {.num = 8});
  const Buf out{ep_addr(r.ep_data_off), 16};
  const Buf in{rc_addr(r.rc_data_off), 16};
  ASSERT_TRUE(r.drv().add({&out, 1}, {&in, 1}, 7));
  (void)r.drv().kick_prepare();
  const std::uint16_t head =
      peek<std::uint16_t>(w.ep(), r.avail_off + layout::avail_entry_offset(0));
  GetParam().write(r, head);
  const std::uint16_t free_before = r.drv().num_free();
  auto u = r.drv().get_used();
  ASSERT_FALSE(u) << "accepted an impossible used entry";
  EXPECT_EQ(u.error().code, Errc::kBadRing);
  EXPECT_TRUE(r.drv().broken());
  EXPECT_EQ(r.drv().num_free(), free_before) << "the bad entry freed descriptors";
  auto again = r.drv().get_used();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kBadRing);
  auto add = r.drv().add({&out, 1}, {}, 8);
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().code, Errc::kBadRing);
  EXPECT_TRUE(w.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, VringBadUsed,
    ::testing::Values(BadUsedCase{"id_out_of_range",
                                  [](RingPair& r, std::uint16_t) {
                                    r.put_used(0, r.num(), 0);
                                    r.put_used_idx(1);
                                  }},
                      BadUsedCase{"id_far_out_of_range",
                                  [](RingPair& r, std::uint16_t) {
                                    r.put_used(0, 0xffffffffu, 0);
                                    r.put_used_idx(1);
                                  }},
                      BadUsedCase{"id_not_in_flight",
                                  [](RingPair& r, std::uint16_t head) {
                                    // The chain's second descriptor is in use but is not a head.
                                    r.put_used(0, static_cast<std::uint16_t>((head + 1) % r.num()),
                                               0);
                                    r.put_used_idx(1);
                                  }},
                      BadUsedCase{"id_returned_twice",
                                  [](RingPair& r, std::uint16_t head) {
                                    r.put_used(0, head, 0);
                                    r.put_used(1, head, 0);
                                    r.put_used_idx(1);
                                    ASSERT_TRUE(r.drv().get_used());  // the genuine completion
                                    r.put_used_idx(2);
                                  }},
                      BadUsedCase{"len_exceeds_writable",
                                  [](RingPair& r, std::uint16_t head) {
                                    r.put_used(0, head, 17);
                                    r.put_used_idx(1);
                                  }},
                      BadUsedCase{"idx_jumps_past_in_flight",
                                  [](RingPair& r, std::uint16_t head) {
                                    r.put_used(0, head, 0);
                                    r.put_used(1, head, 0);
                                    r.put_used_idx(2);
                                  }},
                      BadUsedCase{"idx_moves_backwards",
                                  [](RingPair& r, std::uint16_t) { r.put_used_idx(0xffff); }}),
    [](const auto& pi) { return std::string(pi.param.name); });

TEST(VringHandWrittenUsed, ValidEntryIsAccepted) {
  // Control for VringBadUsed: the same setup with a correct entry works.
  LinkWindows w;
  RingPair r(w, {.num = 8});
  const Buf out{ep_addr(r.ep_data_off), 16};
  const Buf in{rc_addr(r.rc_data_off), 16};
  ASSERT_TRUE(r.drv().add({&out, 1}, {&in, 1}, 7));
  (void)r.drv().kick_prepare();
  const std::uint16_t head =
      peek<std::uint16_t>(w.ep(), r.avail_off + layout::avail_entry_offset(0));
  r.put_used(0, head, 16);
  r.put_used_idx(1);
  auto u = r.drv().get_used();
  ASSERT_TRUE(u && *u);
  EXPECT_EQ((*u)->token, 7u);
  EXPECT_EQ((*u)->len, 16u);
  EXPECT_EQ(r.drv().num_free(), 8);
}

}  // namespace
}  // namespace vepf::test
