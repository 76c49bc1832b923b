// Vring against Vringh: notification suppression both ways, with VIRTIO_F_RING_EVENT_IDX and with
// the flags (VIRTIO 1.2 §2.7.7, §2.7.10).

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

// ---- notification suppression (VIRTIO 1.2 §2.7.7, §2.7.10)

class VringNotify : public VringTest {
 protected:
  void add_out(std::uint64_t token) {
    const Buf out{ep_addr(q->ep_data_off), 8};
    ASSERT_TRUE(q->drv().add({&out, 1}, {}, token));
  }
  void add_in(std::uint64_t token) {
    const Buf in{rc_addr(q->rc_data_off), 8};
    ASSERT_TRUE(q->drv().add({}, {&in, 1}, token));
  }
  void pop_all_complete() {
    for (;;) {
      auto p = q->dev().pop();
      ASSERT_TRUE(p);
      if (!*p) return;
      ASSERT_TRUE(q->dev().complete((*p)->head, 0));
    }
  }
  void get_all_used() {
    for (;;) {
      auto u = q->drv().get_used();
      ASSERT_TRUE(u);
      if (!*u) return;
    }
  }
};

TEST_F(VringNotify, EventIdxKickOnlyWhenTheDeviceAsked) {
  auto& r = make({.num = 8, .event_idx = true});
  EXPECT_TRUE(r.dev().notify_enable()) << "nothing pending yet";
  add_out(1);
  EXPECT_TRUE(r.drv().kick_prepare()) << "device asked for the next avail entry";
  add_out(2);
  EXPECT_FALSE(r.drv().kick_prepare()) << "device has not re-enabled since the last doorbell";
  add_out(3);
  EXPECT_FALSE(r.drv().kick_prepare());

  pop_all_complete();
  EXPECT_TRUE(r.dev().notify_enable());
  add_out(4);
  EXPECT_TRUE(r.drv().kick_prepare()) << "device re-enabled after catching up";

  r.dev().notify_disable();
  add_out(5);
  EXPECT_FALSE(r.drv().kick_prepare()) << "device disabled (and did not re-enable)";
}

TEST_F(VringNotify, EventIdxKickPrepareWithoutAddsIsFalse) {
  auto& r = make({.num = 8, .event_idx = true});
  EXPECT_TRUE(r.dev().notify_enable());
  EXPECT_FALSE(r.drv().kick_prepare());
}

TEST_F(VringNotify, EventIdxKickWhenTheEventIndexIsInsideABatch) {
  auto& r = make({.num = 8, .event_idx = true});
  // The device consumed one chain and asked to be told when entry 1 is published; the driver
  // then publishes entries 1..3 in one go: the batch passes the event index.
  add_out(1);
  EXPECT_TRUE(r.drv().kick_prepare());
  pop_all_complete();
  EXPECT_TRUE(r.dev().notify_enable());
  add_out(2);
  add_out(3);
  add_out(4);
  EXPECT_TRUE(r.drv().kick_prepare());
}

TEST_F(VringNotify, NotifyEnableReportsChainsThatArrivedMeanwhile) {
  for (bool event_idx : {false, true}) {
    SCOPED_TRACE(event_idx);
    LinkWindows lw;
    RingPair r(lw, {.num = 8, .event_idx = event_idx});
    r.dev().notify_disable();
    const Buf out{ep_addr(r.ep_data_off), 8};
    ASSERT_TRUE(r.drv().add({&out, 1}, {}, 1));
    (void)r.drv().kick_prepare();
    EXPECT_FALSE(r.dev().notify_enable())
        << "a chain arrived while notifications were off: poll again";
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    EXPECT_TRUE(r.dev().notify_enable()) << "caught up";
  }
}

TEST_F(VringNotify, EventIdxDeviceInterruptsOnlyWhenTheDriverAsked) {
  auto& r = make({.num = 8, .event_idx = true});
  EXPECT_TRUE(r.drv().enable_cb()) << "no used entries pending";
  add_in(1);
  add_in(2);
  (void)r.drv().kick_prepare();
  auto p1 = r.dev().pop();
  ASSERT_TRUE(p1 && *p1);
  ASSERT_TRUE(r.dev().complete((*p1)->head, 0));
  EXPECT_TRUE(r.dev().need_notify()) << "used_event 0 was just passed";
  auto p2 = r.dev().pop();
  ASSERT_TRUE(p2 && *p2);
  ASSERT_TRUE(r.dev().complete((*p2)->head, 0));
  EXPECT_FALSE(r.dev().need_notify()) << "driver has not consumed and re-enabled";
  EXPECT_FALSE(r.dev().need_notify()) << "nothing new completed";

  get_all_used();
  EXPECT_TRUE(r.drv().enable_cb());
  add_in(3);
  (void)r.drv().kick_prepare();
  pop_all_complete();
  EXPECT_TRUE(r.dev().need_notify()) << "driver re-enabled at its consumed index";
}

TEST_F(VringNotify, EnableCbReportsUsedEntriesThatArrivedMeanwhile) {
  for (bool event_idx : {false, true}) {
    SCOPED_TRACE(event_idx);
    LinkWindows lw;
    RingPair r(lw, {.num = 8, .event_idx = event_idx});
    r.drv().disable_cb();
    const Buf in{rc_addr(r.rc_data_off), 8};
    ASSERT_TRUE(r.drv().add({}, {&in, 1}, 1));
    (void)r.drv().kick_prepare();
    auto p = r.dev().pop();
    ASSERT_TRUE(p && *p);
    ASSERT_TRUE(r.dev().complete((*p)->head, 0));
    EXPECT_FALSE(r.drv().enable_cb()) << "used entry pending: poll instead of waiting";
    auto u = r.drv().get_used();
    ASSERT_TRUE(u && *u);
    EXPECT_TRUE(r.drv().enable_cb());
  }
}

TEST_F(VringNotify, FlagsNoNotifySuppressesDoorbells) {
  auto& r = make({.num = 8, .event_idx = false});
  add_out(1);
  EXPECT_TRUE(r.drv().kick_prepare()) << "flags start at 0: notifications wanted";
  r.dev().notify_disable();
  EXPECT_EQ(peek<std::uint16_t>(w.rc(), r.used_off + layout::kRingFlagsOff),
            VRING_USED_F_NO_NOTIFY);
  add_out(2);
  EXPECT_FALSE(r.drv().kick_prepare()) << "VRING_USED_F_NO_NOTIFY set";
  pop_all_complete();
  EXPECT_TRUE(r.dev().notify_enable());
  EXPECT_EQ(peek<std::uint16_t>(w.rc(), r.used_off + layout::kRingFlagsOff), 0);
  add_out(3);
  EXPECT_TRUE(r.drv().kick_prepare());
}

TEST_F(VringNotify, FlagsNoInterruptSuppressesInterrupts) {
  auto& r = make({.num = 8, .event_idx = false});
  add_in(1);
  add_in(2);
  add_in(3);
  (void)r.drv().kick_prepare();
  EXPECT_FALSE(r.dev().need_notify()) << "nothing completed";
  auto p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  EXPECT_TRUE(r.dev().need_notify());

  r.drv().disable_cb();
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), r.avail_off + layout::kRingFlagsOff),
            VRING_AVAIL_F_NO_INTERRUPT);
  p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  EXPECT_FALSE(r.dev().need_notify()) << "VRING_AVAIL_F_NO_INTERRUPT set";

  get_all_used();
  EXPECT_TRUE(r.drv().enable_cb());
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), r.avail_off + layout::kRingFlagsOff), 0);
  p = r.dev().pop();
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE(r.dev().complete((*p)->head, 0));
  EXPECT_TRUE(r.dev().need_notify());
}

}  // namespace
}  // namespace vepf::test
