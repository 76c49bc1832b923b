// vepf-host's virtio-console driver (ConsoleDriver) against a hostile device played by the test
// through the real transports: what the device names in host_dir stays bounded.

#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "drivers/console/console_driver.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "support/temp_dir.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kMaxControlQueued = 64;  // the driver's bound (messages)

/// A virtio-console device with one port (MULTIPORT) that sends whatever control messages the
/// test tells it to.
class HostileConsoleDevice final : public transport::VirtioDevice {
 public:
  HostileConsoleDevice() { cfg_.max_nr_ports = layout::le32::from_cpu(1); }
  std::uint32_t device_id() const override { return VIRTIO_ID_CONSOLE; }
  std::uint64_t device_features() const override {
    return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_CONSOLE_F_MULTIPORT);
  }
  std::uint16_t num_queues() const override { return layout::console_num_queues(1); }
  std::uint16_t max_queue_size() const override { return 16; }
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }
  void on_driver_ok(transport::DeviceHandle& h) override { h_.emplace(h); }
  void on_reset() override { h_.reset(); }
  void on_notify(transport::DeviceHandle&) override {}

  /// Puts one control message into the driver's next control receive buffer. False: none posted.
  bool send(std::uint32_t id, std::uint16_t event, std::uint16_t value,
            std::string_view payload = {}) {
    // The driver's own control messages (DEVICE_READY, PORT_READY...) are taken and dropped,
    // unless the test says otherwise.
    ring::Vringh* tx = h_ && take_control ? h_->queue(layout::kConsoleCtrlTxQueue) : nullptr;
    if (tx != nullptr) {
      while (auto c = tx->pop()) {
        if (!*c || !tx->complete((*c)->head, 0)) break;
      }
    }
    ring::Vringh* q = h_ ? h_->queue(layout::kConsoleCtrlRxQueue) : nullptr;
    if (q == nullptr) return false;
    auto c = q->pop();
    if (!c || !*c) return false;
    const auto m = layout::console_control(id, event, value, std::as_bytes(std::span{payload}));
    const auto n = static_cast<std::uint32_t>(ring::chain_write(**c, m));
    return q->complete((*c)->head, n).has_value();
  }

  bool take_control = true;  // false: the driver's control transmitq is never taken

 private:
  layout::VirtioConsoleConfig cfg_{};
  std::optional<transport::DeviceHandle> h_;
};

class ConsoleDriverHostileDevice : public ::testing::Test {
 protected:
  ConsoleDriverHostileDevice()
      : dl(w), drl(w, dl), dev(dl, 0x5eed0006), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
    if (!spdlog::get("host.console")) spdlog::create<spdlog::sinks::null_sink_mt>("host.console");
  }

  void SetUp() override {
    ASSERT_TRUE(dev.init());
    ASSERT_TRUE(dev.add_device(&hostile));
    ASSERT_TRUE(drv.attach());
    auto devs = drv.scan();
    ASSERT_TRUE(devs && devs->size() == 1);
    auto l = os::EventLoop::create();
    ASSERT_TRUE(l);
    loop = std::move(*l);
    console.emplace(drv, (*devs)[0], tmp.path(), loop, kMaxControlQueued);
    auto p = console->probe();
    ASSERT_TRUE(p) << p.error().what;
  }
  std::size_t links_in_host_dir() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
      n += e.is_symlink() ? 1 : 0;
    return n;
  }

  TempDir tmp{"vepf-condrv"};
  LinkWindows w;
  HostileConsoleDevice hostile;  // before dev: dev's destructor resets it
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  os::EventLoop loop;
  std::optional<host::ConsoleDriver> console;  // after the transports: its queues go first
};

// A device that adds and removes its port again and again while it never takes the driver's
// control messages: each add is answered with PORT_READY and PORT_OPEN, which used to pile up
// without bound. Now at most max_control_queued wait; the rest are dropped and counted.
TEST_F(ConsoleDriverHostileDevice, AddRemoveCyclesQueueAtMostTheConfiguredMessages) {
  hostile.take_control = false;
  const std::size_t limit = kMaxControlQueued;
  for (std::size_t i = 0; i < limit; ++i) {
    ASSERT_TRUE(hostile.send(0, VIRTIO_CONSOLE_PORT_ADD, 0)) << i;
    console->on_interrupt();
    ASSERT_TRUE(hostile.send(0, VIRTIO_CONSOLE_PORT_REMOVE, 0)) << i;
    console->on_interrupt();
  }
  EXPECT_EQ(console->control_queued(), limit);
  // DEVICE_READY (1) and PORT_READY + PORT_OPEN per add (2 x limit), less what the 16-entry
  // control transmitq took before it filled.
  EXPECT_EQ(console->stats().control_dropped, 1 + 2 * limit - 16 - limit);
  // The port still works: the last add has it back, with its link.
  ASSERT_TRUE(hostile.send(0, VIRTIO_CONSOLE_PORT_ADD, 0));
  console->on_interrupt();
  EXPECT_TRUE(std::filesystem::is_symlink(tmp.path() + "/port0"));
}

// A device that names its port again and again, each time differently: one name link at a
// time in host_dir (the last name), next to port0. It used to leave a link per name.
TEST_F(ConsoleDriverHostileDevice, ANewPortNameReplacesTheOldLink) {
  ASSERT_TRUE(hostile.send(0, VIRTIO_CONSOLE_PORT_ADD, 0));
  console->on_interrupt();
  ASSERT_TRUE(std::filesystem::is_symlink(tmp.path() + "/port0"));
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(hostile.send(0, VIRTIO_CONSOLE_PORT_NAME, 1, "name" + std::to_string(i))) << i;
    console->on_interrupt();
  }
  EXPECT_EQ(links_in_host_dir(), 2u);
  EXPECT_TRUE(std::filesystem::is_symlink(tmp.path() + "/name39"));
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/name0"));
  EXPECT_TRUE(std::filesystem::is_symlink(tmp.path() + "/port0"));
}

}  // namespace
}  // namespace vepf::test
