#include "vepf/os/signals.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace vepf::os {
namespace {

TEST(Signals, BlockedSignalIsReadFromTheSignalfd) {
  auto sfd = block_and_signalfd({SIGUSR1, SIGUSR2});
  ASSERT_TRUE(sfd) << sfd.error().what;
  auto none = read_signal(sfd->get());
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
  // Blocked, so raise() leaves it pending instead of killing the test.
  ASSERT_EQ(::raise(SIGUSR2), 0);
  auto sig = read_signal(sfd->get());
  ASSERT_TRUE(sig) << sig.error().what;
  EXPECT_EQ(*sig, SIGUSR2);
  auto after = read_signal(sfd->get());
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, 0);
}

TEST(Signals, BadSignalNumberIsRefused) {
  auto sfd = block_and_signalfd({100000});
  ASSERT_FALSE(sfd);
  EXPECT_EQ(sfd.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace vepf::os
