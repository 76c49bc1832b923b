#include "vepf/os/fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "vepf/os/eventfd.hpp"

namespace vepf::os {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(Fd, ClosesOnDestructionAndMovesOwnership) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const int raw = p[0];
  ::close(p[1]);
  {
    Fd a(raw);
    Fd b = std::move(a);
    // The moved-from state is what this test checks.
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(a.get(), -1);   // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(b.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(Fd, ReleaseKeepsItOpenAndResetCloses) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd r(p[0]);
  Fd w(p[1]);
  const int raw = r.release();
  EXPECT_FALSE(r.valid());
  EXPECT_TRUE(is_open(raw));
  r.reset(raw);
  EXPECT_EQ(r.get(), raw);
  r.reset();
  EXPECT_FALSE(is_open(raw));
  EXPECT_FALSE(r.valid());
}

TEST(Fd, MoveAssignClosesThePreviousDescriptor) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd a(p[0]);
  Fd b(p[1]);
  a = std::move(b);
  EXPECT_FALSE(is_open(p[0]));
  EXPECT_EQ(a.get(), p[1]);
}

TEST(PollOne, ReportsReadinessAndTimeout) {
  auto ev = EventFd::create();
  ASSERT_TRUE(ev) << ev.error().what;
  auto none = poll_one(ev->fd(), POLLIN, std::chrono::milliseconds{10});
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  ASSERT_TRUE(ev->signal());
  auto ready = poll_one(ev->fd(), POLLIN, std::chrono::milliseconds{1000});
  ASSERT_TRUE(ready);
  EXPECT_TRUE(*ready & POLLIN);
}

TEST(EventFd, CountsSignalsAndDrains) {
  auto ev = EventFd::create();
  ASSERT_TRUE(ev) << ev.error().what;
  auto idle = ev->wait(std::chrono::milliseconds{0});
  ASSERT_TRUE(idle);
  EXPECT_FALSE(*idle);
  ASSERT_TRUE(ev->signal());
  ASSERT_TRUE(ev->signal());
  auto woke = ev->wait(std::chrono::milliseconds{1000});
  ASSERT_TRUE(woke);
  EXPECT_TRUE(*woke);
  auto n = ev->drain();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2u);
  auto again = ev->drain();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
}

TEST(EventFd, AdoptSharesTheCounterAndSetsNonblocking) {
  auto ev = EventFd::create();
  ASSERT_TRUE(ev);
  const int dup = ::fcntl(ev->fd(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(dup, 0);
  ASSERT_EQ(::fcntl(dup, F_SETFL, 0), 0);  // clears O_NONBLOCK on the shared file description
  auto other = EventFd::adopt(Fd(dup));
  ASSERT_TRUE(other) << other.error().what;
  EXPECT_TRUE(::fcntl(other->fd(), F_GETFL) & O_NONBLOCK);
  ASSERT_TRUE(other->signal());
  auto n = ev->drain();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  auto empty = other->drain();  // would block forever without O_NONBLOCK
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, 0u);
}

TEST(EventFd, AdoptRefusesNoDescriptor) {
  auto r = EventFd::adopt(Fd{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace vepf::os
