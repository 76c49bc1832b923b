// The device's heartbeat in the RC mailbox (LAYOUT.md §2.6): the driver watches the device's
// liveness with local reads, and reads the EP's header (non-posted) only when the beat stops.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint32_t kEpoch = 0x5eed0004;

class Heartbeat : public ::testing::Test {
 protected:
  Heartbeat() : dl(w), drl(w, dl), dev(dl, kEpoch), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
  }
  void SetUp() override {
    ASSERT_TRUE(dev.init());
    auto r = drv.attach();
    ASSERT_TRUE(r) << r.error().what;
  }
  std::uint64_t driver_reads() const { return w.drv_counters.nonposted_reads; }

  LinkWindows w;
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
};

TEST_F(Heartbeat, ABeatingDeviceCostsTheDriverNoRead) {
  const auto reads = driver_reads();
  for (int i = 0; i < 50; ++i) {
    dev.heartbeat();
    EXPECT_TRUE(drv.still_alive());
  }
  EXPECT_EQ(driver_reads(), reads) << "the driver read the EP window while the device beat";
}

TEST_F(Heartbeat, AMissingBeatMakesTheDriverLookAtTheHeader) {
  dev.heartbeat();
  ASSERT_TRUE(drv.still_alive());
  const auto reads = driver_reads();
  for (std::uint32_t i = 1; i < layout::kHeartbeatMisses; ++i) EXPECT_TRUE(drv.still_alive());
  EXPECT_EQ(driver_reads(), reads) << "read the header before the beat was missed long enough";
  EXPECT_TRUE(drv.still_alive()) << "the EP is still there: same epoch, same magic";
  EXPECT_GT(driver_reads(), reads) << "the header was not read after the missed beats";
  // The beat comes back: local reads only again.
  dev.heartbeat();
  const auto after = driver_reads();
  EXPECT_TRUE(drv.still_alive());
  EXPECT_EQ(driver_reads(), after);
}

TEST_F(Heartbeat, ARestartedEpIsFoundOnceTheBeatStops) {
  dev.heartbeat();
  ASSERT_TRUE(drv.still_alive());
  dev.restart(kEpoch + 1);  // a new epoch, and no RC window: no more beats
  bool alive = true;
  for (std::uint32_t i = 0; i < layout::kHeartbeatMisses && alive; ++i) alive = drv.still_alive();
  EXPECT_FALSE(alive) << "the driver did not notice the new epoch within kHeartbeatMisses periods";
  EXPECT_TRUE(drv.epoch_changed());
  EXPECT_FALSE(drv.still_alive()) << "a gone EP came back to life without an attach";
}

TEST_F(Heartbeat, TheBeatIsAPostedWriteIntoTheMailbox) {
  const auto before = w.dev_counters;
  dev.heartbeat();
  dev.heartbeat();
  const auto d = w.dev_counters - before;
  EXPECT_EQ(d.posted_writes, 2u);
  EXPECT_EQ(d.nonposted_reads, 0u);
  EXPECT_EQ(peek<std::uint32_t>(w.rc(), offsetof(layout::RcMailbox, heartbeat)) >= 2u, true);
}

}  // namespace
}  // namespace vepf::test
