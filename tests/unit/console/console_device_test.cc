// The EP's virtio-console device (ConsoleDevice) against a hostile driver played by the test
// through the real transports: what the driver can make the device queue stays bounded.

#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>

#include <chrono>
#include <optional>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "devices/console/console_device.hpp"
#include "support/driver_queue.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint16_t kQueueSize = 64;

class ConsoleDeviceHostileDriver : public ::testing::Test {
 protected:
  ConsoleDeviceHostileDriver()
      : dl(w), drl(w, dl), dev(dl, 0x5eed0005), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
    if (!spdlog::get("ep.console")) spdlog::create<spdlog::sinks::null_sink_mt>("ep.console");
  }

  void SetUp() override {
    config::ConsoleConfig cfg;
    cfg.max_control_queued = 16;
    cfg.ports.resize(2);
    cfg.ports[1].name = "ttyEP1";
    console.emplace(cfg, kQueueSize);
    ASSERT_TRUE(dev.init());
    auto s = dev.add_device(&*console);
    ASSERT_TRUE(s);
    slot = *s;
    ASSERT_TRUE(drv.attach());
    auto devs = drv.scan();
    ASSERT_TRUE(devs && !devs->empty());
    ASSERT_TRUE(drv.negotiate(slot, (*devs)[0].device_features,
                              bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_CONSOLE_F_MULTIPORT)));
    // Every queue but control receiveq (2): the device never gets a buffer for its messages.
    for (std::uint16_t q = 0; q < console->num_queues(); ++q) {
      if (q == layout::kConsoleCtrlRxQueue) continue;
      auto p = enable_driver_queue(drv, w, slot, q, kQueueSize);
      ASSERT_TRUE(p);
      if (q == layout::kConsoleCtrlTxQueue) ctrl_tx.emplace(*p);
    }
    ASSERT_TRUE(drv.driver_ok(slot));
  }

  /// One control message from the driver on control transmitq.
  void control(std::uint32_t id, std::uint16_t event, std::uint16_t value) {
    const auto m = layout::console_control(id, event, value);
    const auto at = drv.ep_alloc().alloc(m.size(), 64);
    ASSERT_TRUE(at);
    w.drv_ep.write(at->off, m);
    const ring::Buf b{at->link_addr, static_cast<std::uint32_t>(m.size())};
    ASSERT_TRUE(ctrl_tx->add({&b, 1}, {}, ++token));
    (void)ctrl_tx->kick_prepare();
    (void)drl.ring_doorbell();
    while (auto u = ctrl_tx->get_used()) {
      if (!*u) break;
    }
    drv.ep_alloc().free(*at);
  }
  nlohmann::json describe() {
    nlohmann::json d;
    console->describe(d);
    return d;
  }

  LinkWindows w;
  std::optional<ep::ConsoleDevice> console;  // before dev: dev's destructor resets it
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  std::uint32_t slot = 0;
  std::optional<ring::Vring> ctrl_tx;
  std::uint64_t token = 0;
};

// PORT_READY toggled again and again while control receiveq never gets a buffer: each READY
// makes the device announce the port (name, console port, open), and those messages used to
// pile up without bound. Now at most max_control_queued wait; the rest are dropped and counted.
TEST_F(ConsoleDeviceHostileDriver, TogglingPortReadyQueuesAtMostTheConfiguredMessages) {
  control(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
  for (int i = 0; i < 500; ++i) {
    control(1, VIRTIO_CONSOLE_PORT_READY, 1);
    control(1, VIRTIO_CONSOLE_PORT_READY, 0);
  }
  const auto d = describe();
  EXPECT_LE(d["control_queued"].get<std::uint64_t>(), 16u);
  EXPECT_GT(d["control_dropped"].get<std::uint64_t>(), 500u);
}

}  // namespace
}  // namespace vepf::test
