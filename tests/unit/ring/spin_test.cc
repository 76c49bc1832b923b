// app::Spinner: spin only after data moved, for the board's budget, then arm the group and
// sleep; a ring with work at arm() time earns one more poll.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/app/spin.hpp"

namespace vepf::test {
namespace {

using std::chrono::microseconds;

TEST(Spinner, ABudgetOfZeroNeverSpins) {
  ring::PollGroup g;
  app::Spinner s(g, microseconds(0));
  EXPECT_FALSE(s.keep_polling(1));
  EXPECT_FALSE(s.keep_polling(2));
  EXPECT_FALSE(g.polling());
}

TEST(Spinner, AnIdleLinkNeverSpins) {
  ring::PollGroup g;
  app::Spinner s(g, microseconds(1'000'000));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(s.keep_polling(0));
  EXPECT_FALSE(g.polling());
}

TEST(Spinner, SpinsAfterDataUntilTheBudgetPassesThenSleeps) {
  ring::PollGroup g;
  app::Spinner s(g, microseconds(1000));
  EXPECT_TRUE(s.keep_polling(5));
  EXPECT_TRUE(g.polling());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the budget
  EXPECT_FALSE(s.keep_polling(5));
  EXPECT_FALSE(g.polling()) << "the group was not armed before sleeping";
  EXPECT_FALSE(s.keep_polling(5));
  EXPECT_TRUE(s.keep_polling(6)) << "new data did not start a new spin";
}

TEST(Spinner, WorkFoundWhileArmingEarnsOneMorePoll) {
  LinkWindows w;
  RingPair r(w, traffic_ring());
  ring::PollGroup g;
  ring::VringhParams hp = r.device_params();
  hp.group = &g;
  ring::Vringh dev(hp);
  app::Spinner s(g, microseconds(1));
  ASSERT_TRUE(s.keep_polling(1));
  EXPECT_TRUE(dev.notify_enable());  // the device's drain found the ring empty while polling
  const ring::Buf b{rc_addr(r.rc_data_off), 64};
  ASSERT_TRUE(r.drv().add({}, {&b, 1}, 0));
  (void)r.drv().kick_prepare();  // no doorbell: the device was polling
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_TRUE(s.keep_polling(1)) << "the program would sleep with a chain on the ring";
  EXPECT_FALSE(g.polling());
}

}  // namespace
}  // namespace vepf::test
