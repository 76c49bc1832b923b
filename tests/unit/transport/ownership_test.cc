// Each side owns its state (issue 14): the device keeps an image of every line it writes in the
// EP window, re-publishes it when a host attaches, and repairs what a host overwrote when it
// audits, with local reads only. A host that scribbled over the header, a device line, a
// config space or a queue's enabled flag does not keep the next host out.

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>

#include "transport_fixture.hpp"

namespace vepf::test {
namespace {

using layout::QueueBlock;
using layout::QueueDeviceLine;

class Ownership : public TransportTest {
 protected:
  /// What a hostile host can do through the BAR: any value in any device-written word.
  void scribble(std::size_t off, std::size_t len, std::uint32_t seed) {
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < len; i += 4)
      poke<std::uint32_t>(w.ep(), off + i, static_cast<std::uint32_t>(rng()));
  }
  std::size_t config_off() const {
    return layout::device_slot_off(slot) + offsetof(DeviceSlot, config);
  }
};

TEST_F(Ownership, AHeaderOverwrittenByAHostIsRepairedAndTheNextHostAttaches) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  scribble(hdr_off(0), sizeof(EpfHeader), 1);
  {
    transport::DriverTransport next(drl, kTimeout);
    auto r = next.attach();
    ASSERT_FALSE(r) << "the scribbled header validated";
    EXPECT_EQ(r.error().code, Errc::kBadLayout);
  }
  EXPECT_GE(dev.audit(), 1u);
  EXPECT_EQ(dev.repairs(), 1u);
  transport::DriverTransport next(drl, kTimeout);
  auto r = next.attach();
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(next.epoch(), kEpoch);
  auto devs = next.scan();
  ASSERT_TRUE(devs);
  ASSERT_EQ(devs->size(), 1u);
  EXPECT_EQ((*devs)[0].device_features, kFakeFeatures);
}

TEST_F(Ownership, AnAttachRepublishesDeviceLinesAndConfigWithoutWaitingForTheAudit) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  std::array<std::byte, 8> before{};
  ASSERT_TRUE(drv.read_config(slot, before));
  // Every device-written byte of the slot, and of an empty slot, but not the header.
  scribble(dev_line_off(slot, 0), sizeof(DeviceLine), 2);
  scribble(dev_line_off(slot + 1, 0), sizeof(DeviceLine), 3);
  poke<std::uint32_t>(w.ep(), dev_line_off(slot + 1, offsetof(DeviceLine, device_id)),
                      0);  // looks empty...
  poke<std::uint32_t>(w.ep(), dev_line_off(slot + 2, offsetof(DeviceLine, device_id)),
                      7);  // ...and one not
  scribble(config_off(), layout::kConfigSpaceSize, 4);

  transport::DriverTransport next(drl, kTimeout);
  auto r = next.attach();
  ASSERT_TRUE(r) << r.error().what;
  auto devs = next.scan();
  ASSERT_TRUE(devs) << devs.error().what;
  ASSERT_EQ(devs->size(), 1u) << "a slot the host made up is in the table";
  EXPECT_EQ((*devs)[0].slot, slot);
  EXPECT_EQ((*devs)[0].device_features, kFakeFeatures);
  EXPECT_EQ((*devs)[0].num_queues, fdev.num_queues());
  std::array<std::byte, 8> after{};
  ASSERT_TRUE(next.read_config(slot, after));
  EXPECT_EQ(after, before);
  EXPECT_EQ(next.device_status(slot), 0) << "the attach reset the device: status 0, as published";
}

TEST_F(Ownership, AnOverwrittenQueueFlagAndConfigAreRepairedWhileTheDeviceRuns) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  const auto gen = [&] {
    return peek<std::uint32_t>(w.ep(), dev_line_off(slot, offsetof(DeviceLine, config_generation)));
  };
  const std::uint32_t gen_before = gen();
  poke<std::uint16_t>(w.ep(), queue_enabled_off(slot, 1), 0);
  scribble(config_off(), 8, 5);
  poke<std::uint32_t>(w.ep(), dev_line_off(slot, offsetof(DeviceLine, config_generation)),
                      0x1235);  // odd: "being rewritten"
  const std::uint32_t mailbox = drv.mailbox_seq();
  EXPECT_EQ(dev.audit(), 3u) << "device line, config space and queue line";
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 1)), 1);
  EXPECT_EQ(gen() % 2, 0u) << "the repaired generation is even";
  EXPECT_NE(gen(), gen_before) << "a driver that read the overwrite sees a new generation";
  EXPECT_NE(drv.mailbox_seq(), mailbox) << "the driver was not told to look again";
  std::array<std::byte, 8> cfg{};
  ASSERT_TRUE(drv.read_config(slot, cfg));
  EXPECT_TRUE(std::equal(cfg.begin(), cfg.end(), fdev.config().begin()));
  // The device kept serving through all of it.
  EXPECT_EQ(echo(0, "still here"), "still here");
}

TEST_F(Ownership, AnIntactRegionIsAuditedWithLocalReadsOnly) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  EXPECT_EQ(echo(0, "traffic"), "traffic");
  const auto reads = w.dev_counters.nonposted_reads;
  const auto writes = w.dev_counters.posted_writes;
  const auto mailbox = drv.mailbox_seq();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(dev.audit(), 0u);
  EXPECT_EQ(dev.repairs(), 0u);
  EXPECT_EQ(w.dev_counters.nonposted_reads, reads);
  EXPECT_EQ(w.dev_counters.posted_writes, writes)
      << "an intact region made the device write to the RC";
  EXPECT_EQ(drv.mailbox_seq(), mailbox);
}

TEST_F(Ownership, AStartOnMemoryAPreviousRunLeftPublishesAHeaderOfItsOwn) {
  // A previous run's header with a valid magic and its epoch, and stale queue flags.
  transport::DeviceTransport second(dl, kEpoch + 1);
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, reserved)), 0xdeadbeef);
  poke<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0), 1);
  ASSERT_TRUE(second.init());
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, reserved))), 0u);
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, epoch))), kEpoch + 1);
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), dev_line_off(slot, offsetof(DeviceLine, device_id))), 0u);
  FakeVirtioDevice d;
  auto s = second.add_device(&d);
  ASSERT_TRUE(s);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(*s, 0)), 0)
      << "a stale enabled flag survived";
  EXPECT_EQ(second.audit(), 0u) << "what init() and add_device() published is not what they hold";
  second.remove_device(*s);
}

}  // namespace
}  // namespace vepf::test
