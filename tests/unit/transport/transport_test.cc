// DeviceTransport served to DriverTransport over fake links (one thread): the "virtio-pci-epf"
// handshakes as request/acknowledge pairs (ARCHITECTURE.md §2), their failures, and the data
// path through queues the handshake enabled.

#include "transport_fixture.hpp"

namespace vepf::test {
namespace {

// ---- the handshake, step by step

TEST_F(TransportTest, AttachPublishesTheRcWindow) {
  attach();
  EXPECT_TRUE(dev.attached());
  EXPECT_TRUE(dl.attached);
  EXPECT_EQ(drv.epoch(), kEpoch);
  EXPECT_EQ(peek<std::uint32_t>(w.rc(), offsetof(layout::RcMailbox, epoch)), kEpoch);
  EXPECT_FALSE(drv.epoch_changed());
}

TEST_F(TransportTest, ScanSeesTheDevice) {
  attach();
  auto r = drv.scan();
  ASSERT_TRUE(r) << r.error().what;
  ASSERT_EQ(r->size(), 1u);
  const auto& d = r->front();
  EXPECT_EQ(d.slot, slot);
  EXPECT_EQ(d.device_id, 1u);
  EXPECT_EQ(d.num_queues, 2);
  EXPECT_EQ(d.max_queue_size, FakeVirtioDevice::kMaxQueueSize);
  EXPECT_EQ(d.device_features, kFakeFeatures);
}

TEST_F(TransportTest, NegotiateSetsFeaturesOk) {
  attach();
  scan();
  auto r = drv.negotiate(slot, info.device_features, kVersion1 | kEventIdx);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(*r, kVersion1 | kEventIdx);
  EXPECT_EQ(dev.status(slot), kAck | kDriver | kFeaturesOk);
  EXPECT_EQ(drv.device_status(slot), kAck | kDriver | kFeaturesOk);
}

TEST_F(TransportTest, EnableQueueMarksTheQueueEnabled) {
  attach();
  scan();
  negotiate();
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0)), 0);
  enable_both();
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0)), 1);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 1)), 1);
}

TEST_F(TransportTest, DriverOkStartsTheDevice) {
  attach();
  scan();
  negotiate();
  enable_both();
  EXPECT_EQ(fdev.driver_ok_calls, 0);
  driver_ok();
  EXPECT_EQ(fdev.driver_ok_calls, 1);
  EXPECT_EQ(drv.device_status(slot), kAck | kDriver | kFeaturesOk | kDriverOk);
  ASSERT_TRUE(fdev.handle.has_value());
  EXPECT_NE(fdev.handle->queue(0), nullptr);
  EXPECT_NE(fdev.handle->queue(1), nullptr);
  EXPECT_EQ(fdev.handle->features(), kFakeFeatures);
}

TEST_F(TransportTest, ReadConfigMatchesTheDevice) {
  bring_up();
  std::array<std::byte, 8> cfg{};
  auto r = drv.read_config(slot, cfg);
  ASSERT_TRUE(r) << r.error().what;
  const auto want = fdev.config();
  EXPECT_TRUE(std::equal(cfg.begin(), cfg.end(), want.begin(), want.end()));
  std::array<std::byte, layout::kConfigSpaceSize + 1> too_big{};
  auto big = drv.read_config(slot, too_big);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::kOutOfRange);
}

TEST_F(TransportTest, ReadConfigSaysNotReadyWhileTheGenerationIsOddAndNeverWaits) {
  bring_up();
  int hook_calls = 0;
  drv.set_wait_hook([&] { return ++hook_calls > 0; });
  // An odd config_generation means the device is rewriting the config (seqlock); a broken or
  // hostile device may hold it odd for ever.
  const std::size_t gen = dev_line_off(slot, offsetof(DeviceLine, config_generation));
  poke<std::uint32_t>(w.ep(), gen, peek<std::uint32_t>(w.ep(), gen) | 1);
  std::array<std::byte, 8> cfg{};
  const auto waits = drl.waits;
  auto r = drv.read_config(slot, cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotReady);
  EXPECT_EQ(drl.waits, waits) << "read_config() waited for the device";
  EXPECT_EQ(hook_calls, 0);
  // The probe-time read waits, with the hook running, for up to the ack timeout.
  auto w8 = drv.read_config_wait(slot, cfg);
  ASSERT_FALSE(w8);
  EXPECT_EQ(w8.error().code, Errc::kTimeout);
  EXPECT_GT(hook_calls, 0);
  // And gives up when the hook says so.
  hook_calls = 0;
  drv.set_wait_hook([&] { return ++hook_calls < 3; });
  auto c = drv.read_config_wait(slot, cfg);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kCancelled);
  EXPECT_EQ(hook_calls, 3);
  // A stable config again: read at once.
  poke<std::uint32_t>(w.ep(), gen, (peek<std::uint32_t>(w.ep(), gen) | 1) + 1);
  EXPECT_TRUE(drv.read_config(slot, cfg));
}

TEST_F(TransportTest, AnAckWaitRunsTheWaitHookAndEndsWhenItGivesUp) {
  bring_up();
  drl.set_mode(PeerMode::kNeverAck);
  int hook_calls = 0;
  drv.set_wait_hook([&] { return ++hook_calls < 4; });
  auto r = drv.set_status(slot, kAck);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCancelled);
  EXPECT_EQ(hook_calls, 4);
  // Without a hook that gives up, the wait ends at the ack timeout.
  drv.set_wait_hook([&] { return ++hook_calls > 0; });
  auto t = drv.set_status(slot, kAck);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Errc::kTimeout);
}

TEST_F(TransportTest, ConfigChangeBumpsTheGeneration) {
  bring_up();
  const std::size_t gen = dev_line_off(slot, offsetof(DeviceLine, config_generation));
  const auto g0 = peek<std::uint32_t>(w.ep(), gen);
  const auto seq = drv.mailbox_seq();
  fdev.handle->config_changed();
  const auto g1 = peek<std::uint32_t>(w.ep(), gen);
  EXPECT_NE(g1, g0);
  EXPECT_EQ(g1 % 2, 0u) << "generation left odd";
  EXPECT_NE(drv.mailbox_seq(), seq);
}

// A slot number past the device table is the caller's mistake: kInvalidArgument, and nothing
// written. kMaxDevices + 2 lands the would-be queue block at EP offset 0xb700, i.e. inside the
// driver-managed space where the driver's own rings live (kControlRegionSize = 0xb000).
TEST_F(TransportTest, EnableQueueWithSlotOutOfRangeWritesNothing) {
  attach();
  const std::uint32_t bad_slot = layout::kMaxDevices + 2;
  ASSERT_GE(layout::queue_block_off(bad_slot, 0), layout::kControlRegionSize);
  const std::vector<std::byte> before(w.ep().begin(), w.ep().end());
  auto r =
      drv.enable_queue(bad_slot, 0, kQueueSize, ep_addr(0xc000), ep_addr(0xd000), rc_addr(0x2000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  const std::vector<std::byte> after(w.ep().begin(), w.ep().end());
  std::size_t first_diff = 0;
  while (first_diff < before.size() && before[first_diff] == after[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, before.size()) << "EP window written at offset 0x" << std::hex << first_diff
                                       << " by a request for a slot that does not exist";
}

TEST_F(TransportTest, ReadConfigWithSlotOutOfRangeFails) {
  attach();
  std::array<std::byte, 8> cfg{};
  auto r = drv.read_config(layout::kMaxDevices, cfg);
  EXPECT_FALSE(r) << "read 'config' of a slot past the device table";
}

// Rings inside the control region would let the device overwrite its own header and acks:
// the device refuses them (LAYOUT.md §2.5) and the queue stays disabled.
TEST_F(TransportTest, EnableQueueInsideTheControlRegionIsRejected) {
  attach();
  scan();
  negotiate();
  auto r = drv.enable_queue(slot, 0, kQueueSize, ep_addr(0x1000), ep_addr(0xd000), rc_addr(0x2000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0)), 0);
  auto ok = drv.enable_queue(slot, 0, kQueueSize, ep_addr(layout::kControlRegionSize),
                             ep_addr(0xd000), rc_addr(0x2000));
  EXPECT_TRUE(ok) << "the first byte after the control region is usable";
}

// Fuzz finding (tests/fuzz/corpus/transport_fuzz/crash-driver-ok-without-features-ok): a
// SET_STATUS adding FEATURES_OK and DRIVER_OK at once, with features the device does not offer,
// left DRIVER_OK set without FEATURES_OK, and the device notified without on_driver_ok().
TEST_F(TransportTest, RegressionFuzzRefusedFeaturesDoNotLeaveDriverOk) {
  attach();
  scan();
  const std::uint64_t not_offered = std::uint64_t{1} << 60;
  poke<std::uint32_t>(
      w.ep(), layout::driver_line_off(slot, offsetof(layout::DriverLine, driver_feature_lo)),
      static_cast<std::uint32_t>(kFakeFeatures));
  poke<std::uint32_t>(
      w.ep(), layout::driver_line_off(slot, offsetof(layout::DriverLine, driver_feature_hi)),
      static_cast<std::uint32_t>((kFakeFeatures | not_offered) >> 32));
  auto r = drv.set_status(slot, kAck | kDriver | kFeaturesOk | kDriverOk);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(dev.status(slot) & (kFeaturesOk | kDriverOk), 0);
  EXPECT_EQ(drv.device_status(slot) & (kFeaturesOk | kDriverOk), 0);
  const int notified = fdev.notify_calls;
  dev.poll();
  EXPECT_EQ(fdev.driver_ok_calls, 0);
  EXPECT_EQ(fdev.notify_calls, notified) << "a device that never started was notified";
}

// Fuzz finding (crash-notify-after-failed): after the driver sets FAILED the device is reset and
// must not be notified again until a new DRIVER_OK.
TEST_F(TransportTest, ADeviceDoorbellLetsThatDeviceAloneLookAtItsQueues) {
  bring_up();
  auto other = dev.add_device(&fdev2);  // present, not started
  ASSERT_TRUE(other);
  const int before = fdev.notify_calls;
  dev.notify(*other);
  EXPECT_EQ(fdev.notify_calls, before) << "another device's doorbell woke this one";
  EXPECT_EQ(fdev2.notify_calls, 0) << "a device that is not started was notified";
  dev.notify(slot);
  EXPECT_EQ(fdev.notify_calls, before + 1);
  dev.notify(layout::kMaxDevices);  // no such slot: nothing
  EXPECT_EQ(fdev.notify_calls, before + 1);
}

TEST_F(TransportTest, RegressionFuzzNoNotifyAfterFailed) {
  bring_up();
  auto r = drv.set_status(slot, kAck | kDriver | kFeaturesOk | kDriverOk | VIRTIO_CONFIG_S_FAILED);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(fdev.reset_calls, 1);
  const int notified = fdev.notify_calls;
  dev.poll();
  dev.poll();
  EXPECT_EQ(fdev.notify_calls, notified);
  // A reset and a new initialisation start it again.
  ASSERT_TRUE(drv.reset(slot));
  negotiate();
  enable_both();
  driver_ok();
  dev.poll();
  EXPECT_GT(fdev.notify_calls, notified);
}

TEST_F(TransportTest, BothQueuesCarryData) {
  bring_up();
  EXPECT_EQ(echo(0, "hello queue 0"), "hello queue 0");
  EXPECT_EQ(echo(1, "hello queue 1"), "hello queue 1");
  EXPECT_EQ(echo(0, "again"), "again");
  EXPECT_EQ(fdev.served[0], 2);
  EXPECT_EQ(fdev.served[1], 1);
}

TEST_F(TransportTest, ResetReturnsTheDeviceToStatusZero) {
  bring_up();
  const int resets = fdev.reset_calls;
  auto r = drv.reset(slot);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(fdev.reset_calls, resets + 1);
  EXPECT_EQ(dev.status(slot), 0);
  EXPECT_EQ(drv.device_status(slot), 0);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0)), 0);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 1)), 0);
  EXPECT_FALSE(fdev.handle.has_value());
}

TEST_F(TransportTest, RestartResetsEveryDeviceAndPublishesANewEpoch) {
  bring_up();
  const int resets = fdev.reset_calls;
  dev.restart(kEpoch + 1);
  EXPECT_EQ(fdev.reset_calls, resets + 1);
  EXPECT_EQ(dev.status(slot), 0);
  EXPECT_FALSE(dev.attached());
  EXPECT_FALSE(dl.attached);
  EXPECT_EQ(dev.epoch(), kEpoch + 1);
  EXPECT_TRUE(drv.epoch_changed());
  // The driver attaches again and finds the same device table.
  attach();
  EXPECT_EQ(drv.epoch(), kEpoch + 1);
  EXPECT_FALSE(drv.epoch_changed());
  scan();
  EXPECT_EQ(info.device_id, 1u);
}

TEST_F(TransportTest, AfterANewEpochTheDriverWritesNothingUntilItAttachesAgain) {
  bring_up();
  dev.restart(kEpoch + 1);
  const std::size_t seq_off = layout::driver_line_off(slot, offsetof(layout::DriverLine, req_seq));
  const auto seq = peek<std::uint32_t>(w.ep(), seq_off);
  ASSERT_TRUE(drv.epoch_changed());
  // What a driver's teardown does: reset its device, disable a queue.
  auto r = drv.reset(slot);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kLinkDown);
  auto q = drv.enable_queue(slot, 0, 8, 0x1000, 0x2000, 0x3000);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::kLinkDown);
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), seq_off), seq);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, 0)), 0);
  // Attached again, the driver talks to the new control region.
  attach();
  auto s = drv.set_status(slot, kAck);
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_EQ(*s, kAck);
}

// Found by driver_transport_fuzz: an attach that failed after reading a valid header used to
// clear the "EP restarted" state, and the next requests wrote into a region never attached to.
TEST_F(TransportTest, AFailedAttachKeepsRequestsRefused) {
  bring_up();
  dev.restart(kEpoch + 1);
  ASSERT_TRUE(drv.epoch_changed());
  drl.set_mode(PeerMode::kNeverAck);  // the new EP does not answer the attach
  auto a = drv.attach();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::kTimeout);
  const std::size_t seq_off = layout::driver_line_off(slot, offsetof(layout::DriverLine, req_seq));
  const auto seq = peek<std::uint32_t>(w.ep(), seq_off);
  auto r = drv.reset(slot);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kLinkDown);
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), seq_off), seq);
  drl.set_mode(PeerMode::kSync);
  attach();
  EXPECT_TRUE(drv.set_status(slot, kAck));
}

TEST_F(TransportTest, RequestsBeforeAttachAreRefused) {
  // No RC window yet: the device acks with kNoLink.
  scan();
  auto r = drv.set_status(slot, kAck);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(dev.status(slot), 0);
}

// ---- a device that never acknowledges

enum class Step { kAttach, kSetStatus, kNegotiate, kEnableQueue, kSetDriverOk, kReset };
std::string step_name(Step s) {
  switch (s) {
    case Step::kAttach:
      return "attach";
    case Step::kSetStatus:
      return "set_status";
    case Step::kNegotiate:
      return "negotiate";
    case Step::kEnableQueue:
      return "enable_queue";
    case Step::kSetDriverOk:
      return "driver_ok";
    case Step::kReset:
      return "reset";
  }
  return "?";
}
void PrintTo(Step s, std::ostream* os) { *os << step_name(s); }

class TransportTimeout : public TransportTest, public ::testing::WithParamInterface<Step> {};

TEST_P(TransportTimeout, StepTimesOut) {
  const Step step = GetParam();
  if (step != Step::kAttach) {
    attach();
    scan();
  }
  if (step == Step::kEnableQueue || step == Step::kSetDriverOk) {
    negotiate();
  }
  if (step == Step::kSetDriverOk) enable_both();
  ASSERT_FALSE(HasFailure());

  drl.set_mode(PeerMode::kNeverAck);
  Error e;
  switch (step) {
    case Step::kAttach:
      e = drv.attach().error();
      break;
    case Step::kSetStatus:
      e = drv.set_status(slot, kAck).error();
      break;
    case Step::kNegotiate:
      e = drv.negotiate(slot, info.device_features, kFakeFeatures).error();
      break;
    case Step::kEnableQueue:
      e = enable(0).error();
      break;
    case Step::kSetDriverOk:
      e = drv.driver_ok(slot).error();
      break;
    case Step::kReset:
      e = drv.reset(slot).error();
      break;
  }
  EXPECT_EQ(e.code, Errc::kTimeout) << errc_name(e.code) << ": " << e.what;
}

INSTANTIATE_TEST_SUITE_P(Steps, TransportTimeout,
                         ::testing::Values(Step::kAttach, Step::kSetStatus, Step::kNegotiate,
                                           Step::kEnableQueue, Step::kSetDriverOk, Step::kReset),
                         [](const auto& pi) { return step_name(pi.param); });

TEST_F(TransportTest, RequestToAnEmptySlotTimesOut) {
  attach();
  auto r = drv.set_status(slot + 1, kAck);  // nobody serves that slot
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout);
}

// ---- a header the driver must not trust

TEST_F(TransportTest, AttachRejectsWrongMagic) {
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, magic)), 0x12345678);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
  EXPECT_EQ(drl.doorbells, 0) << "no request before the header validated";
  EXPECT_EQ(dl.attach_calls, 0);
}

TEST_F(TransportTest, AttachRejectsWrongVersion) {
  poke<std::uint16_t>(w.ep(), hdr_off(offsetof(EpfHeader, version)), layout::kEpfVersion + 1);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
  EXPECT_FALSE(dev.attached());
}

TEST_F(TransportTest, AttachRejectsBadGeometry) {
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, device_stride)), sizeof(DeviceSlot) + 64);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
}

TEST_F(TransportTest, AttachRejectsWindowSizeMismatch) {
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, ep_window_size_lo)),
                      static_cast<std::uint32_t>(w.ep().size() * 2));
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
}

TEST_F(TransportTest, AttachRejectsEpochZero) {
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, epoch)), 0);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
}

TEST(TransportNoInit, AttachToAnUninitialisedWindowIsBadLayout) {
  LinkWindows w;
  FakeDeviceLink dl(w);
  FakeDriverLink drl(w, dl);
  transport::DriverTransport drv(drl, 20ms);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadLayout);
}

TEST(TransportNoInit, InitRefusesAWindowSmallerThanTheControlRegion) {
  LinkWindows w(layout::kControlRegionSize - 4096, 4096);
  FakeDeviceLink dl(w);
  transport::DeviceTransport dev(dl, 1);
  auto r = dev.init();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

TEST_F(TransportTest, AttachWithWrongEpochIsRefused) {
  // The driver validates a header whose epoch is not the device's (e.g. read just before the
  // firmware restarted): the device refuses the attach.
  poke<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, epoch)), kEpoch + 1);
  auto r = drv.attach();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_FALSE(dev.attached());
  EXPECT_EQ(dl.attach_calls, 0);
}

TEST_F(TransportTest, FirmwareRestartChangesTheEpoch) {
  attach();
  EXPECT_FALSE(drv.epoch_changed());
  transport::DeviceTransport restarted(dl, kEpoch + 7);
  ASSERT_TRUE(restarted.init());
  EXPECT_TRUE(drv.epoch_changed());
}

// ---- feature negotiation (VIRTIO 1.2 §2.2, §3.1.1)

TEST_F(TransportTest, FeaturesNotASubsetAreRejected) {
  attach();
  scan();
  const std::uint64_t lie = info.device_features | (std::uint64_t{1} << 40);  // not offered
  auto r = drv.negotiate(slot, lie, lie);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_FALSE(dev.status(slot) & kFeaturesOk);
  EXPECT_FALSE(drv.device_status(slot) & kFeaturesOk);
  EXPECT_EQ(drv.device_status(slot), kAck | kDriver);
  // Without FEATURES_OK no queue can be enabled.
  auto e = enable(0);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kRejected);
}

TEST_F(TransportTest, FeaturesWithoutVersion1AreRejected) {
  attach();
  scan();
  auto r = drv.negotiate(slot, info.device_features, kEventIdx);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_FALSE(dev.status(slot) & kFeaturesOk);
  EXPECT_FALSE(drv.device_status(slot) & kFeaturesOk);
}

TEST_F(TransportTest, DriverOkWithoutFeaturesOkIsRefused) {
  attach();
  scan();
  ASSERT_TRUE(drv.set_status(slot, kAck));
  ASSERT_TRUE(drv.set_status(slot, kAck | kDriver));
  auto r = drv.set_status(slot, kAck | kDriver | kDriverOk);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(fdev.driver_ok_calls, 0);
}

TEST_F(TransportTest, ClearingStatusBitsWithoutResetIsRefused) {
  attach();
  scan();
  negotiate();
  auto r = drv.set_status(slot, kAck);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(dev.status(slot), kAck | kDriver | kFeaturesOk);
}

// ---- queue enable with bad parameters

struct BadQueue {
  const char* name;
  std::uint16_t q = 0;
  std::uint16_t size = kQueueSize;
  // Replaces one of the link addresses the fixture allocated (0 = keep).
  std::uint64_t desc = 0, avail = 0, used = 0;
};
void PrintTo(const BadQueue& b, std::ostream* os) { *os << b.name; }

class TransportBadQueue : public TransportTest, public ::testing::WithParamInterface<BadQueue> {};

TEST_P(TransportBadQueue, EnableQueueIsRejected) {
  const BadQueue& b = GetParam();
  attach();
  scan();
  negotiate();
  const auto desc = drv.ep_alloc().alloc(layout::desc_table_size(512), 16);
  const auto avail = drv.ep_alloc().alloc(layout::avail_ring_size(512), 2);
  const auto used = drv.rc_alloc().alloc(layout::used_ring_size(512), 4);
  ASSERT_TRUE(desc && avail && used);
  auto r =
      drv.enable_queue(slot, b.q, b.size, b.desc ? b.desc : desc->link_addr,
                       b.avail ? b.avail : avail->link_addr, b.used ? b.used : used->link_addr);
  ASSERT_FALSE(r) << "device enabled a bad queue";
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(peek<std::uint16_t>(w.ep(), queue_enabled_off(slot, b.q)), 0);
  // The device is still usable: a good queue enables afterwards.
  auto good = enable(0);
  EXPECT_TRUE(good) << good.error().what;
}

constexpr std::size_t kWin = kDefaultWindowSize;
INSTANTIATE_TEST_SUITE_P(
    Cases, TransportBadQueue,
    ::testing::Values(
        BadQueue{.name = "size_not_power_of_2", .size = 6}, BadQueue{.name = "size_0", .size = 0},
        BadQueue{.name = "size_above_max", .size = 512},
        BadQueue{.name = "queue_index_past_num_queues", .q = 2},
        BadQueue{.name = "desc_past_ep_end", .desc = ep_addr(kWin - 64)},
        BadQueue{.name = "desc_far_outside", .desc = ep_addr(std::uint64_t{1} << 40)},
        BadQueue{.name = "avail_past_ep_end", .avail = ep_addr(kWin - 2)},
        BadQueue{.name = "used_past_rc_end", .used = rc_addr(kWin - 64)},
        BadQueue{.name = "used_in_window_0", .used = 0x2000},
        BadQueue{.name = "desc_in_window_9", .desc = (std::uint64_t{9} << 56) | 0x2000},
        BadQueue{.name = "desc_misaligned", .desc = ep_addr(layout::kControlRegionSize + 8)},
        BadQueue{.name = "avail_misaligned", .avail = ep_addr(layout::kControlRegionSize + 1)},
        BadQueue{.name = "used_misaligned", .used = rc_addr(layout::kRcMailboxSize + 2)}),
    [](const auto& pi) { return std::string(pi.param.name); });

// ---- broken queues (VIRTIO 1.2 §2.1.2 DEVICE_NEEDS_RESET)

TEST_F(TransportTest, QueueBrokenByTheDeviceSetsNeedsReset) {
  bring_up();
  const std::uint32_t seq = drv.mailbox_seq();
  const auto irqs = w.dev_counters.signals_sent;
  ASSERT_TRUE(fdev.handle.has_value());
  fdev.handle->queue_broken(0);
  EXPECT_TRUE(drv.device_status(slot) & kNeedsReset);
  EXPECT_EQ(drv.broken_queues(slot), 1u);
  EXPECT_NE(drv.mailbox_seq(), seq) << "the driver was not told through the mailbox";
  EXPECT_GT(w.dev_counters.signals_sent, irqs) << "no interrupt raised";
  EXPECT_EQ(fdev.handle->queue(0), nullptr);
  EXPECT_NE(fdev.handle->queue(1), nullptr);
}

TEST_F(TransportTest, CorruptAvailRingBreaksOnlyThatQueue) {
  bring_up();
  const std::uint32_t seq = drv.mailbox_seq();
  // The driver-side avail index of queue 0 jumps by more than the queue size.
  poke<std::uint16_t>(w.ep(), queues[0].avail.off + layout::kRingIdxOff, kQueueSize + 3);
  ASSERT_TRUE(drl.ring_doorbell());
  EXPECT_EQ(fdev.bad_ring[0], 1);
  EXPECT_EQ(fdev.bad_ring[1], 0);
  EXPECT_TRUE(drv.device_status(slot) & kNeedsReset);
  EXPECT_TRUE(dev.status(slot) & kNeedsReset);
  EXPECT_EQ(drv.broken_queues(slot), 1u);
  EXPECT_NE(drv.mailbox_seq(), seq);
  ASSERT_TRUE(fdev.handle.has_value());
  EXPECT_EQ(fdev.handle->queue(0), nullptr);
  EXPECT_NE(fdev.handle->queue(1), nullptr);
}

// [link] max_chain_segments: a chain longer than the limit breaks its queue, the others keep
// running, and the transport counts it apart from other breaks.
TEST_F(TransportTest, ChainPastTheSegmentLimitBreaksItsQueueAndIsCounted) {
  dev.set_max_chain(2);
  bring_up();
  EXPECT_EQ(echo(0, "two"), "two") << "a chain of 2 (one out, one in) is within the limit";
  ring::Vring& v = *queues[0].vring;
  const auto out = drv.ep_alloc().alloc(64, 64);
  ASSERT_TRUE(out);
  const ring::Buf three[3] = {
      {out->link_addr, 8}, {out->link_addr + 8, 8}, {out->link_addr + 16, 8}};
  ASSERT_TRUE(v.add(three, {}, 7));
  (void)v.kick_prepare();
  ASSERT_TRUE(drl.ring_doorbell());
  EXPECT_EQ(fdev.bad_ring[0], 1);
  EXPECT_TRUE(drv.device_status(slot) & kNeedsReset);
  EXPECT_EQ(drv.broken_queues(slot), 1u);
  EXPECT_EQ(dev.chain_limit_hits(slot), 1u);
  EXPECT_EQ(echo(1, "after"), "after");
  // Removing the device forgets its count.
  dev.remove_device(slot);
  EXPECT_EQ(dev.chain_limit_hits(slot), 0u);
}

TEST_F(TransportTest, OtherBreaksAreNotCountedAsChainLimitHits) {
  bring_up();
  poke<std::uint16_t>(w.ep(), queues[0].avail.off + layout::kRingIdxOff, kQueueSize + 3);
  ASSERT_TRUE(drl.ring_doorbell());
  ASSERT_EQ(drv.broken_queues(slot), 1u);
  EXPECT_EQ(dev.chain_limit_hits(slot), 0u);
}

// device_transport.hpp: queue_broken() "Other queues and devices keep running."
TEST_F(TransportTest, OtherQueueKeepsWorkingAfterAQueueBroke) {
  bring_up();
  EXPECT_EQ(echo(1, "before"), "before");
  poke<std::uint16_t>(w.ep(), queues[0].avail.off + layout::kRingIdxOff, kQueueSize + 3);
  ASSERT_TRUE(drl.ring_doorbell());
  ASSERT_EQ(drv.broken_queues(slot), 1u);
  EXPECT_EQ(echo(1, "after"), "after") << "queue 1 stopped being served once queue 0 broke";
}

TEST_F(TransportTest, BrokenQueueDoesNotMarkOtherSlots) {
  auto s2 = dev.add_device(&fdev2);
  ASSERT_TRUE(s2);
  bring_up();
  ASSERT_TRUE(fdev.handle.has_value());
  fdev.handle->queue_broken(0);
  ASSERT_TRUE(drv.device_status(slot) & kNeedsReset);
  EXPECT_EQ(drv.device_status(*s2), 0) << "the other slot's status changed";
  EXPECT_EQ(drv.broken_queues(*s2), 0u);
}

TEST_F(TransportTest, ResetClearsNeedsResetAndBrokenQueues) {
  bring_up();
  ASSERT_TRUE(fdev.handle.has_value());
  fdev.handle->queue_broken(1);
  ASSERT_TRUE(drv.device_status(slot) & kNeedsReset);
  auto r = drv.reset(slot);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(drv.device_status(slot), 0);
  EXPECT_EQ(drv.broken_queues(slot), 0u);
  // And the device comes back up.
  negotiate();
  enable_both();
  driver_ok();
  EXPECT_EQ(echo(1, "revived"), "revived");
}

// ---- device table changes

TEST_F(TransportTest, StaleRequestIsNotReplayedIntoAReusedSlot) {
  attach();
  scan();
  negotiate();  // leaves valid driver features in the slot's driver line
  dev.remove_device(slot);
  // The driver, not yet aware, asks the empty slot to go all the way to DRIVER_OK.
  auto stale = drv.set_status(slot, kAck | kDriver | kFeaturesOk | kDriverOk);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::kTimeout) << "an empty slot answered";

  auto s = dev.add_device(&fdev2);
  ASSERT_TRUE(s);
  ASSERT_EQ(*s, slot) << "the freed slot is reused";
  dev.poll();
  dev.poll();
  EXPECT_EQ(dev.status(slot), 0) << "the stale request was replayed";
  EXPECT_EQ(fdev2.driver_ok_calls, 0);
  EXPECT_EQ(drv.device_status(slot), 0);

  // A re-scan picks up the new device and the handshake works from there.
  scan();
  negotiate();
  enable_both();
  driver_ok();
  EXPECT_EQ(fdev2.driver_ok_calls, 1);
}

TEST_F(TransportTest, RemovedDeviceDisappearsFromScan) {
  attach();
  scan();
  const std::uint32_t gen = info.slot_generation;
  dev.remove_device(slot);
  auto r = drv.scan();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  ASSERT_TRUE(dev.add_device(&fdev2));
  r = drv.scan();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_NE(r->front().slot_generation, gen) << "a reused slot must look different";
}

}  // namespace
}  // namespace vepf::test
