// Driver and device in two threads over one pair of windows, as they run on a real link: the
// config seqlock (DeviceTransport::write_config against DriverTransport::read_config) and a
// split ring carrying messages both ways. Meant for ThreadSanitizer (the tsan preset runs every
// unit test): every byte the two sides share is ordered by a named barrier pair, or accessed
// single-copy atomically. Without TSan the checks still catch torn configs and lost messages.

#include <gtest/gtest.h>
#include <linux/virtio_config.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

using namespace std::chrono_literals;

/// A device with the largest config space the layout has (256 bytes), every byte the same
/// round number, so that a torn read shows as two different bytes.
class SeqlockDevice final : public transport::VirtioDevice {
 public:
  std::uint32_t device_id() const override { return 1; }
  std::uint64_t device_features() const override { return std::uint64_t{1} << VIRTIO_F_VERSION_1; }
  std::uint16_t num_queues() const override { return 1; }
  std::uint16_t max_queue_size() const override { return 16; }
  std::span<const std::byte> config() const override { return config_; }
  void on_driver_ok(transport::DeviceHandle& h) override { handle.emplace(h); }
  void on_reset() override { handle.reset(); }
  void on_notify(transport::DeviceHandle&) override {}

  void set_round(std::uint8_t r) { config_.fill(std::byte{r}); }

  std::optional<transport::DeviceHandle> handle;

 private:
  std::array<std::byte, layout::kConfigSpaceSize> config_{};
};

TEST(Concurrency, ConfigSeqlockNeverShowsATornConfig) {
  LinkWindows w;
  FakeDeviceLink dl(w);
  FakeDriverLink drl(w, dl);
  SeqlockDevice sdev;
  transport::DeviceTransport dev(dl, 0x5eed0002);
  transport::DriverTransport drv(drl, 200ms);
  drl.set_device(&dev);
  ASSERT_TRUE(dev.init());
  auto slot = dev.add_device(&sdev);
  ASSERT_TRUE(slot);
  ASSERT_TRUE(drv.attach());
  auto found = drv.scan();
  ASSERT_TRUE(found && found->size() == 1);
  ASSERT_TRUE(drv.negotiate(*slot, (*found)[0].device_features, (*found)[0].device_features));
  ASSERT_TRUE(drv.driver_ok(*slot));
  ASSERT_TRUE(sdev.handle.has_value());
  // From here on the driver only reads the config: nothing polls the device from its thread.
  drl.set_device(nullptr);

  constexpr int kRounds = 20000;
  std::atomic<bool> done{false};
  std::thread device([&] {
    for (int r = 1; r <= kRounds; ++r) {
      sdev.set_round(static_cast<std::uint8_t>(r));
      sdev.handle->config_changed();
    }
    done.store(true, std::memory_order_release);
  });
  std::uint64_t reads = 0, torn = 0, timeouts = 0;
  std::array<std::byte, layout::kConfigSpaceSize> cfg{};
  while (!done.load(std::memory_order_acquire) || reads == 0) {
    auto r = drv.read_config(*slot, cfg);
    if (!r) {
      ++timeouts;  // the device kept rewriting it (kNotReady): allowed, not torn
      continue;
    }
    ++reads;
    for (const std::byte b : cfg) {
      if (b != cfg[0]) {
        ++torn;
        break;
      }
    }
  }
  device.join();
  EXPECT_EQ(torn, 0u) << "of " << reads << " reads";
  EXPECT_GT(reads, 0u);
  // After the last round the config is stable and the last one.
  ASSERT_TRUE(drv.read_config(*slot, cfg));
  EXPECT_EQ(cfg[0], std::byte{static_cast<std::uint8_t>(kRounds)});
  EXPECT_EQ(cfg[255], std::byte{static_cast<std::uint8_t>(kRounds)});
  RecordProperty("timeouts", std::to_string(timeouts));
}

class RingThreads : public ::testing::TestWithParam<ring::MemoryAccess> {};

TEST_P(RingThreads, EveryMessageComesBackOnceInOrderAndIntact) {
  LinkWindows w(kDefaultWindowSize, kDefaultWindowSize, GetParam());
  RingPair r(w, traffic_ring());
  constexpr std::uint32_t kMessages = 20000;
  constexpr std::size_t kSlot = 256;  // bytes per message slot, each window
  const std::uint16_t num = r.num();

  std::thread device([&] {
    std::vector<std::byte> buf(kSlot);
    std::uint32_t served = 0;
    while (served < kMessages) {
      auto c = r.dev().pop();
      if (!c) {
        ADD_FAILURE() << "pop: " << c.error().what;
        return;
      }
      if (!*c) {
        std::this_thread::yield();
        continue;
      }
      const std::size_t n = ring::chain_read(**c, buf);
      for (std::size_t k = 0; k < n; ++k) buf[k] = ~buf[k];  // the reply: every bit flipped
      const std::size_t m = ring::chain_write(**c, std::span{buf}.first(n));
      if (!r.dev().complete((*c)->head, static_cast<std::uint32_t>(m))) {
        ADD_FAILURE() << "complete failed";
        return;
      }
      ++served;
    }
  });

  std::uint32_t sent = 0, returned = 0, bad = 0;
  std::vector<std::byte> msg(kSlot), back(kSlot);
  auto length = [](std::uint32_t i) { return 1 + (i * 29) % (kSlot - 1); };
  while (returned < kMessages) {
    while (sent < kMessages && sent - returned < num) {
      const std::size_t len = length(sent);
      const std::size_t slot = sent % num;
      for (std::size_t k = 0; k < len; ++k) msg[k] = std::byte(sent + k);
      w.drv_ep.write(r.ep_data_off + slot * kSlot, std::span{msg}.first(len));
      const ring::Buf ob{ep_addr(r.ep_data_off + slot * kSlot), static_cast<std::uint32_t>(len)};
      const ring::Buf ib{rc_addr(r.rc_data_off + slot * kSlot), static_cast<std::uint32_t>(kSlot)};
      ASSERT_TRUE(r.drv().add({&ob, 1}, {&ib, 1}, sent));
      ++sent;
    }
    (void)r.drv().kick_prepare();
    auto u = r.drv().get_used();
    ASSERT_TRUE(u) << u.error().what;
    if (!*u) {
      std::this_thread::yield();
      continue;
    }
    const std::uint32_t i = static_cast<std::uint32_t>((*u)->token);
    EXPECT_EQ(i, returned);
    const std::size_t len = length(i);
    EXPECT_EQ((*u)->len, len);
    w.drv_rc.read(r.rc_data_off + (i % num) * kSlot, std::span{back}.first(len));
    for (std::size_t k = 0; k < len; ++k) {
      if (back[k] != ~std::byte(i + k)) {
        ++bad;
        break;
      }
    }
    ++returned;
  }
  device.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(w.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(Types, RingThreads,
                         ::testing::Values(ring::MemoryAccess{ring::MemoryType::kCached, {}},
                                           ring::MemoryAccess{ring::MemoryType::kDevice, {}},
                                           ring::MemoryAccess{ring::MemoryType::kDevice,
                                                              hw::AccessWidths::from_bits(4)}),
                         [](const ::testing::TestParamInfo<ring::MemoryAccess>& p) {
                           return std::string(ring::to_string(p.param.type)) +
                                  (p.param.widths.all() ? "" : "_32bit_only");
                         });

}  // namespace
}  // namespace vepf::test
