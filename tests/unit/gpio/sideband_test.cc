// Sideband over FakeChips: what vepf-ep's GPIO lines do at start, while serving and at exit, how
// reset edges reach an epoll loop, and the messages a refused request gives.

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "vepf/gpio/fake.hpp"
#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio {
namespace {

/// An epoll instance watching one descriptor, asked without waiting (no timing involved).
class Epoll {
 public:
  explicit Epoll(int fd) : ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ok_ = ep_ >= 0 && ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  ~Epoll() {
    if (ep_ >= 0) ::close(ep_);
  }
  bool ok() const { return ok_; }
  bool readable() const {
    epoll_event ev{};
    return ::epoll_wait(ep_, &ev, 1, 0) == 1 && (ev.events & EPOLLIN) != 0;
  }

 private:
  int ep_;
  bool ok_ = false;
};

LineSpec line(unsigned offset, bool active_low = false, std::string chip = "gpiochip0") {
  return LineSpec{std::move(chip), offset, active_low};
}

class SidebandTest : public ::testing::Test {
 protected:
  void SetUp() override { chips_.add_chip("gpiochip0", 32); }
  FakeChips chips_;
};

TEST_F(SidebandTest, ReadyStartsInactiveThenFollowsSetReady) {
  chips_.drive("gpiochip0", 3, true);  // whatever the line showed before, start() makes it inactive
  Sideband sb(chips_, line(3), std::nullopt);
  EXPECT_EQ(chips_.consumer("gpiochip0", 3), "");
  ASSERT_TRUE(sb.start());
  EXPECT_TRUE(chips_.is_output("gpiochip0", 3));
  EXPECT_EQ(chips_.consumer("gpiochip0", 3), "vepf-ep ready");
  EXPECT_EQ(chips_.level("gpiochip0", 3), false);
  ASSERT_TRUE(sb.set_ready(true));
  EXPECT_EQ(chips_.level("gpiochip0", 3), true);
  ASSERT_TRUE(sb.set_ready(false));
  EXPECT_EQ(chips_.level("gpiochip0", 3), false);
}

TEST_F(SidebandTest, ActiveLowReadyIsHighWhenInactive) {
  Sideband sb(chips_, line(4, /*active_low=*/true), std::nullopt, "ep0");
  ASSERT_TRUE(sb.start());
  EXPECT_EQ(chips_.consumer("gpiochip0", 4), "ep0 ready");
  EXPECT_EQ(chips_.level("gpiochip0", 4), true);
  ASSERT_TRUE(sb.set_ready(true));
  EXPECT_EQ(chips_.level("gpiochip0", 4), false);
}

TEST_F(SidebandTest, DestructorDrivesReadyInactiveThenReleases) {
  for (bool active_low : {false, true}) {
    {
      Sideband sb(chips_, line(5, active_low), line(6, active_low));
      ASSERT_TRUE(sb.start());
      ASSERT_TRUE(sb.set_ready(true));
      EXPECT_EQ(chips_.level("gpiochip0", 5), !active_low);
    }
    EXPECT_EQ(chips_.level("gpiochip0", 5), active_low) << "active_low=" << active_low;  // inactive
    EXPECT_EQ(chips_.consumer("gpiochip0", 5), "");
    EXPECT_EQ(chips_.consumer("gpiochip0", 6), "");
    EXPECT_FALSE(chips_.is_output("gpiochip0", 5));
  }
}

TEST_F(SidebandTest, ResetEdgesArriveThroughEpoll) {
  Sideband sb(chips_, std::nullopt, line(7));
  EXPECT_EQ(sb.reset_fd(), -1);  // nothing requested before start()
  ASSERT_TRUE(sb.start());
  EXPECT_EQ(chips_.consumer("gpiochip0", 7), "vepf-ep reset");
  ASSERT_GE(sb.reset_fd(), 0);
  Epoll ep(sb.reset_fd());
  ASSERT_TRUE(ep.ok());
  EXPECT_FALSE(ep.readable());

  chips_.drive("gpiochip0", 7, true);  // rising: active-going on an active-high line
  EXPECT_TRUE(ep.readable());
  auto r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  EXPECT_FALSE(ep.readable());  // consumed
  r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);

  chips_.drive("gpiochip0", 7, false);  // falling: an event, but not a reset request
  EXPECT_TRUE(ep.readable());
  r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  EXPECT_FALSE(ep.readable());

  chips_.drive("gpiochip0", 7, false);  // no level change, no edge
  EXPECT_FALSE(ep.readable());
}

TEST_F(SidebandTest, ActiveLowResetCountsFallingEdges) {
  chips_.drive("gpiochip0", 8, true);  // idle high (pull-up, button to ground)
  Sideband sb(chips_, std::nullopt, line(8, /*active_low=*/true));
  ASSERT_TRUE(sb.start());
  Epoll ep(sb.reset_fd());
  ASSERT_TRUE(ep.ok());
  chips_.drive("gpiochip0", 8, false);  // pressed
  ASSERT_TRUE(ep.readable());
  auto r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  chips_.drive("gpiochip0", 8, true);  // released
  r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(SidebandTest, InputLineCountsOnlyActiveGoingEdgesAndReadsLogicalLevel) {
  for (bool active_low : {false, true}) {
    auto in = chips_.request_input(line(9, active_low), "test");
    ASSERT_TRUE(in) << in.error().message;
    const bool idle = active_low;  // physical level of "inactive"
    chips_.drive("gpiochip0", 9, idle);
    (void)(*in)->read_edges();
    auto v = (*in)->get();
    ASSERT_TRUE(v);
    EXPECT_FALSE(*v);
    // active, inactive, active, inactive, active: three active-going edges
    for (int i = 0; i < 5; ++i) chips_.drive("gpiochip0", 9, (i % 2 == 0) != idle);
    v = (*in)->get();
    ASSERT_TRUE(v);
    EXPECT_TRUE(*v);
    auto n = (*in)->read_edges();
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 3u) << "active_low=" << active_low;
    n = (*in)->read_edges();
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 0u);
  }
}

TEST_F(SidebandTest, WithoutLinesEverythingIsANoOp) {
  Sideband sb(chips_, std::nullopt, std::nullopt);
  EXPECT_FALSE(sb.has_ready());
  EXPECT_FALSE(sb.has_reset());
  ASSERT_TRUE(sb.start());
  EXPECT_TRUE(sb.started());
  EXPECT_TRUE(sb.set_ready(true));
  EXPECT_EQ(sb.reset_fd(), -1);
  auto r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(SidebandTest, ReadyWithoutResetLineHasNoResetFd) {
  Sideband sb(chips_, line(1), std::nullopt);
  ASSERT_TRUE(sb.start());
  EXPECT_EQ(sb.reset_fd(), -1);
  auto r = sb.take_reset();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(SidebandTest, BusyLineNamesTheHolder) {
  chips_.hold("gpiochip0", 5, "sysfs");
  Sideband sb(chips_, line(5), std::nullopt);
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kSystem);
  EXPECT_EQ(r.error().sys_errno, EBUSY);
  EXPECT_EQ(r.error().message,
            "gpiochip0 line 5 busy: another consumer holds it (\"sysfs\"; see gpioinfo gpiochip0)");
  EXPECT_FALSE(sb.started());
  EXPECT_EQ(chips_.consumer("gpiochip0", 5), "sysfs");  // untouched

  chips_.hold("gpiochip0", 5, "");  // the other process lets go
  ASSERT_TRUE(sb.start());
  EXPECT_EQ(chips_.consumer("gpiochip0", 5), "vepf-ep ready");
}

TEST_F(SidebandTest, SameLineForReadyAndResetIsBusy) {
  Sideband sb(chips_, line(2), line(2));
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno, EBUSY);
  EXPECT_NE(r.error().message.find("\"vepf-ep ready\""), std::string::npos) << r.error().message;
  EXPECT_EQ(chips_.consumer("gpiochip0", 2), "");  // the ready line was given back
}

TEST_F(SidebandTest, FailedResetRequestLeavesNothingRequested) {
  Sideband sb(chips_, line(1), line(0, false, "gpiochip7"));
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kSystem);
  EXPECT_EQ(r.error().sys_errno, ENOENT);
  EXPECT_EQ(r.error().message,
            "gpiochip7: no such GPIO chip (present: gpiochip0 (gpiodetect); is the board config's "
            "[gpio] chip right?)");
  EXPECT_EQ(chips_.consumer("gpiochip0", 1), "");
  EXPECT_EQ(chips_.level("gpiochip0", 1), false);
  EXPECT_EQ(sb.reset_fd(), -1);
  EXPECT_TRUE(sb.set_ready(true));  // not started: no-op
  EXPECT_EQ(chips_.level("gpiochip0", 1), false);
}

TEST_F(SidebandTest, OffsetPastTheLastLine) {
  Sideband sb(chips_, line(99), std::nullopt);
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "gpiochip0 line 99: chip has 32 lines (offsets 0..31; see gpioinfo gpiochip0)");
}

TEST_F(SidebandTest, NoChipAtAll) {
  FakeChips none;
  Sideband sb(none, line(0), std::nullopt);
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "gpiochip0: no such GPIO chip (this machine has no /dev/gpiochip*: is its GPIO "
            "controller's driver "
            "loaded, is the board config's [gpio] chip right?)");
}

TEST_F(SidebandTest, EmptyChipNameIsRejected) {
  Sideband sb(chips_, line(0, false, ""), std::nullopt);
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_NE(r.error().message.find("no chip given"), std::string::npos) << r.error().message;
}

TEST_F(SidebandTest, DevPathNamesTheSameChip) {
  Sideband sb(chips_, line(10, false, "/dev/gpiochip0"), std::nullopt);
  ASSERT_TRUE(sb.start());
  EXPECT_EQ(chips_.consumer("gpiochip0", 10), "vepf-ep ready");
  ASSERT_TRUE(sb.set_ready(true));
  EXPECT_EQ(chips_.level("/dev/gpiochip0", 10), true);
}

TEST_F(SidebandTest, StartTwiceIsAnError) {
  Sideband sb(chips_, line(1), line(2));
  ASSERT_TRUE(sb.start());
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(chips_.consumer("gpiochip0", 1), "vepf-ep ready");  // the first start's lines stay
}

TEST_F(SidebandTest, LineErrorsReachTheCaller) {
  Sideband sb(chips_, line(1), line(2));
  ASSERT_TRUE(sb.start());
  chips_.inject_io_error("gpiochip0", 1, EIO);
  chips_.inject_io_error("gpiochip0", 2, EIO);
  auto s = sb.set_ready(true);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().sys_errno, EIO);
  EXPECT_EQ(s.error().message.rfind("gpiochip0 line 1: set failed: ", 0), 0u) << s.error().message;
  auto t = sb.take_reset();
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message.rfind("gpiochip0 line 2: read edge events failed: ", 0), 0u)
      << t.error().message;
}

TEST(FakeChips, OutputKeepsItsLevelAfterRelease) {
  FakeChips chips;
  chips.add_chip("gpiochip1", 4);
  {
    auto out = chips.request_output(LineSpec{"gpiochip1", 2, false}, /*initial_active=*/true, "t");
    ASSERT_TRUE(out);
    EXPECT_EQ(chips.level("gpiochip1", 2), true);
    EXPECT_EQ(chips.consumer("gpiochip1", 2), "t");
  }
  EXPECT_EQ(chips.level("gpiochip1", 2), true);
  EXPECT_EQ(chips.consumer("gpiochip1", 2), "");
  EXPECT_EQ(chips.level("gpiochip1", 4), std::nullopt);  // no such line
  EXPECT_EQ(chips.level("gpiochip2", 0), std::nullopt);  // no such chip
}

TEST(FakeChips, LineTakenAwayByHoldFailsInsteadOfTouchingTheNewHolder) {
  FakeChips chips;
  chips.add_chip("gpiochip0", 1);
  auto out = chips.request_output(LineSpec{"gpiochip0", 0, false}, false, "a");
  ASSERT_TRUE(out);
  chips.hold("gpiochip0", 0, "b");
  auto s = (*out)->set(true);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().sys_errno, EBADF);
  out->reset();  // must not free b's hold
  EXPECT_EQ(chips.consumer("gpiochip0", 0), "b");
  EXPECT_EQ(chips.level("gpiochip0", 0), false);
}

}  // namespace
}  // namespace vepf::gpio
