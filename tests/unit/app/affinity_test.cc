// app::apply_affinity: board config [affinity] ep/host applied with sched_setaffinity(2).
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"

namespace vepf::app {
namespace {

/// The CPUs the calling thread may run on, in increasing order.
std::vector<std::uint32_t> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<std::uint32_t> cpus;
  for (std::uint32_t c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

/// Each test changes this process's affinity; the fixture puts the original back.
class Affinity : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::sched_getaffinity(0, sizeof saved_, &saved_), 0); }
  void TearDown() override { EXPECT_EQ(::sched_setaffinity(0, sizeof saved_, &saved_), 0); }
  cpu_set_t saved_{};
};

TEST_F(Affinity, EmptyListLeavesTheProcessWhereItWas) {
  const auto before = allowed_cpus();
  EXPECT_EQ(apply_affinity("t", "affinity.ep", {}, "t"), kExitOk);
  EXPECT_EQ(allowed_cpus(), before);
}

TEST_F(Affinity, PinsToExactlyTheListedCpus) {
  const auto before = allowed_cpus();
  ASSERT_FALSE(before.empty());
  // The last allowed CPU alone: a mask that differs from the inherited one unless it has one CPU.
  EXPECT_EQ(apply_affinity("t", "affinity.host", {before.back()}, "t"), kExitOk);
  EXPECT_EQ(allowed_cpus(), std::vector<std::uint32_t>{before.back()});
  if (before.size() >= 2) {
    EXPECT_EQ(apply_affinity("t", "affinity.host", {before[1], before[0]}, "t"), kExitOk);
    EXPECT_EQ(allowed_cpus(), (std::vector<std::uint32_t>{before[0], before[1]}));
  }
}

TEST_F(Affinity, ACpuThisMachineLacksIsAUsageErrorNamingTheField) {
  constexpr std::uint32_t kAbsent = CPU_SETSIZE - 1;
  if (::access(("/sys/devices/system/cpu/cpu" + std::to_string(kAbsent)).c_str(), F_OK) == 0) {
    GTEST_SKIP() << "this machine has CPU " << kAbsent;
  }
  const auto before = allowed_cpus();
  ::testing::internal::CaptureStderr();
  const int rc = apply_affinity("vepf-ep", "affinity.ep", {before.front(), kAbsent}, "t");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_NE(err.find("vepf-ep: affinity.ep = [" + std::to_string(before.front()) +
                     ", 1023]: this machine has no CPU 1023"),
            std::string::npos)
      << err;
  EXPECT_EQ(allowed_cpus(), before) << "a refused list must change nothing";
}

}  // namespace
}  // namespace vepf::app
