// log::Limit and log::limited: a peer that triggers a message in a loop gets `burst` lines per
// period into the log; the rest are counted and the next line let through says how many.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "vepf/log/limit.hpp"

namespace vepf::log {
namespace {

using namespace std::chrono_literals;
using Clock = Limit::Clock;

TEST(LogLimit, LetsABurstThroughPerPeriodAndCountsTheRest) {
  Limit lim(1000ms, 3);
  const auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) {
    const auto v = lim.admit(t0 + std::chrono::milliseconds(i));
    EXPECT_TRUE(v.emit);
    EXPECT_EQ(v.suppressed, 0u);
  }
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(lim.admit(t0 + 10ms).emit);
  EXPECT_EQ(lim.suppressed_total(), 1000u);
  // The next period: the first line says what was held back, once.
  const auto v = lim.admit(t0 + 1001ms);
  EXPECT_TRUE(v.emit);
  EXPECT_EQ(v.suppressed, 1000u);
  const auto w = lim.admit(t0 + 1002ms);
  EXPECT_TRUE(w.emit);
  EXPECT_EQ(w.suppressed, 0u);
}

/// Collects formatted lines.
class Lines : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    lines.emplace_back(m.payload.data(), m.payload.size());
  }
  void flush_() override {}
};

TEST(LogLimit, LimitedLogsAtMostTheBurstOfAFlood) {
  auto sink = std::make_shared<Lines>();
  auto logger = std::make_shared<spdlog::logger>("limit-test", sink);
  Limit lim(std::chrono::hours(1), 5);
  for (int i = 0; i < 100000; ++i)
    limited(lim, logger, spdlog::level::warn, "queue {} is broken", i);
  ASSERT_EQ(sink->lines.size(), 5u);
  EXPECT_EQ(sink->lines[0], "queue 0 is broken");
  EXPECT_EQ(lim.suppressed_total(), 99995u);
  // A level the logger does not log is neither logged nor counted.
  logger->set_level(spdlog::level::err);
  limited(lim, logger, spdlog::level::warn, "quiet {}", 1);
  EXPECT_EQ(lim.suppressed_total(), 99995u);
  // A null logger (not set up) is fine.
  limited(lim, nullptr, spdlog::level::err, "nobody {}", 2);
}

TEST(LogLimit, TheLineAfterAHeldBackRunSaysHowManyWereHeldBack) {
  auto sink = std::make_shared<Lines>();
  auto logger = std::make_shared<spdlog::logger>("limit-test-2", sink);
  Limit lim(std::chrono::milliseconds(50), 1);
  limited(lim, logger, spdlog::level::warn, "refused {}", 1);
  limited(lim, logger, spdlog::level::warn, "refused {}", 2);
  limited(lim, logger, spdlog::level::warn, "refused {}", 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  limited(lim, logger, spdlog::level::warn, "refused {}", 4);
  ASSERT_EQ(sink->lines.size(), 2u);
  EXPECT_EQ(sink->lines[1], "refused 4 (2 similar lines suppressed)");
}

}  // namespace
}  // namespace vepf::log
