// vepf-host's virtio-net driver (NetDriver) against a hostile device played by the test through
// the real transports: every virtio_net_hdr the device writes into a receive buffer is checked
// before the frame reaches the backend (our kernel); a bad one drops that frame, is counted,
// and the buffer goes back to the device.

#include <gtest/gtest.h>
#include <linux/virtio_config.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "drivers/net/net_driver.hpp"
#include "net/recording_backend.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kFrame = 60;

/// A virtio-net device that writes whatever header the test tells it to into the driver's
/// receive buffers.
class HostileNetDevice final : public transport::VirtioDevice {
 public:
  HostileNetDevice() {
    cfg_.status = layout::le16::from_cpu(VIRTIO_NET_S_LINK_UP);
    cfg_.max_virtqueue_pairs = layout::le16::from_cpu(1);
    cfg_.mtu = layout::le16::from_cpu(1500);
  }
  std::uint32_t device_id() const override { return VIRTIO_ID_NET; }
  std::uint64_t device_features() const override {
    return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_STATUS) |
           bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);
  }
  std::uint16_t num_queues() const override { return 2; }
  std::uint16_t max_queue_size() const override { return 16; }
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }
  void on_driver_ok(transport::DeviceHandle& h) override { h_.emplace(h); }
  void on_reset() override { h_.reset(); }
  void on_notify(transport::DeviceHandle&) override {}

  /// Every frame the driver put on the transmit queue (header included), each completed.
  std::vector<std::vector<std::byte>> take_tx() {
    std::vector<std::vector<std::byte>> out;
    ring::Vringh* q = h_ ? h_->queue(layout::kNetTxQueue) : nullptr;
    while (q != nullptr) {
      auto c = q->pop();
      if (!c || !*c) return out;
      std::vector<std::byte> f((*c)->read_len);
      f.resize(ring::chain_read(**c, f));
      out.push_back(std::move(f));
      if (!q->complete((*c)->head, 0)) return out;
    }
    return out;
  }

  /// Puts `hdr` and a frame of kFrame bytes into the next receive buffer and says it wrote
  /// `claimed` bytes (default: what it wrote). False: no buffer posted.
  bool send(const layout::VirtioNetHdr& hdr, std::optional<std::uint32_t> claimed = std::nullopt) {
    ring::Vringh* q = h_ ? h_->queue(layout::kNetRxQueue) : nullptr;
    if (q == nullptr) return false;
    auto c = q->pop();
    if (!c || !*c) return false;
    std::vector<std::byte> buf(layout::kNetHdrSize + kFrame, std::byte{0x24});
    std::memcpy(buf.data(), &hdr, sizeof(hdr));
    const auto n = static_cast<std::uint32_t>(ring::chain_write(**c, buf));
    return q->complete((*c)->head, claimed.value_or(n)).has_value();
  }

 private:
  layout::VirtioNetConfig cfg_{};
  std::optional<transport::DeviceHandle> h_;
};

class NetDriverHostileDevice : public ::testing::Test {
 protected:
  NetDriverHostileDevice()
      : dl(w), drl(w, dl), dev(dl, 0x5eed0003), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
    if (!spdlog::get("host.net")) spdlog::create<spdlog::sinks::null_sink_mt>("host.net");
  }

  void SetUp() override {
    ASSERT_TRUE(dev.init());
    ASSERT_TRUE(dev.add_device(&hostile));
    ASSERT_TRUE(drv.attach());
    auto devs = drv.scan();
    ASSERT_TRUE(devs && devs->size() == 1);
    info = (*devs)[0];
    net.emplace(drv, info, /*offloads=*/true);
    auto p = net->probe();
    ASSERT_TRUE(p) << p.error().what;
    auto l = os::EventLoop::create();
    ASSERT_TRUE(l);
    loop = std::move(*l);
    ASSERT_TRUE(net->attach_backend(backend, loop));
  }

  LinkWindows w;
  HostileNetDevice hostile;  // before dev: dev's destructor resets it
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  transport::DeviceInfo info;
  RecordingBackend backend;
  os::EventLoop loop;
  std::optional<host::NetDriver> net;  // after the transports: its queues go first
};

TEST_F(NetDriverHostileDevice, BadHeadersAreDroppedCountedAndTheBuffersComeBack) {
  layout::VirtioNetHdr past_end{};  // a partial checksum ending past the frame
  past_end.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  past_end.csum_start = layout::le16::from_cpu(kFrame - 2);
  past_end.csum_offset = layout::le16::from_cpu(16);
  layout::VirtioNetHdr tso{};  // segmentation the driver did not accept (GUEST_TSO4)
  tso.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  tso.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  tso.gso_size = layout::le16::from_cpu(1400);
  tso.hdr_len = layout::le16::from_cpu(54);
  tso.csum_start = layout::le16::from_cpu(34);
  tso.csum_offset = layout::le16::from_cpu(16);
  layout::VirtioNetHdr unknown_flag{};
  unknown_flag.flags = 0x80;

  // More bad frames than the queue has buffers: each must come back to the device.
  for (int round = 0; round < 8; ++round) {
    for (const auto* h : {&past_end, &tso, &unknown_flag}) {
      ASSERT_TRUE(hostile.send(*h))
          << "round " << round << ": the driver did not give the buffer back";
      net->on_interrupt();
    }
  }
  EXPECT_TRUE(backend.sent.empty()) << "a bad header reached the backend";
  EXPECT_EQ(net->stats().rx_bad_hdr, 24u);

  layout::VirtioNetHdr good{};
  good.flags = VIRTIO_NET_HDR_F_DATA_VALID;  // a device may say the checksum was checked
  ASSERT_TRUE(hostile.send(good));
  net->on_interrupt();
  ASSERT_EQ(backend.sent.size(), 1u);
  EXPECT_EQ(backend.sent[0].size(), layout::kNetHdrSize + kFrame);
  EXPECT_EQ(backend.sent[0].back(), std::byte{0x24});
  EXPECT_EQ(net->stats().rx_frames, 1u);
}

TEST_F(NetDriverHostileDevice, AUsedLengthShorterThanTheHeaderIsAnErrorAndTheBufferComesBack) {
  const layout::VirtioNetHdr plain{};
  for (int k = 0; k < 20; ++k) {  // more than the queue's 16 buffers
    ASSERT_TRUE(hostile.send(plain, 4u)) << "buffer " << k << " did not come back";
    net->on_interrupt();
  }
  EXPECT_TRUE(backend.sent.empty());
  EXPECT_EQ(net->stats().rx_errors, 20u);
  EXPECT_EQ(net->stats().rx_bad_hdr, 0u);
}

// Frames from the backend reach the device whole, with DATA_VALID taken off the header (it does
// not go towards a device), read straight into the transmit buffers in the EP window when the
// backend takes iovecs and that window is cached memory, through a bounce buffer otherwise.
class NetDriverTransmit : public NetDriverHostileDevice,
                          public ::testing::WithParamInterface<bool> {};

TEST_P(NetDriverTransmit, FramesArriveWholeWithoutDataValid) {
  backend.vector_io = GetParam();
  constexpr int kFrames = 40;  // more than the queue's 16 buffers: they must come back
  int got = 0;
  for (int k = 0; k < kFrames; ++k) {
    std::vector<std::byte> f(layout::kNetHdrSize + kFrame + static_cast<std::size_t>(k),
                             std::byte{0});
    layout::VirtioNetHdr hdr{};
    hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    std::memcpy(f.data(), &hdr, sizeof(hdr));
    for (std::size_t i = layout::kNetHdrSize; i < f.size(); ++i)
      f[i] = static_cast<std::byte>(i * 7 + k);
    backend.incoming.push_back(f);
    backend.callbacks.readable();
    auto frames = hostile.take_tx();
    ASSERT_EQ(frames.size(), 1u) << "frame " << k;
    layout::VirtioNetHdr seen{};
    std::memcpy(&seen, frames[0].data(), sizeof(seen));
    EXPECT_EQ(seen.flags, 0) << "frame " << k;
    f[0] = std::byte{0};  // what should arrive: the frame with DATA_VALID cleared
    EXPECT_EQ(frames[0], f) << "frame " << k;
    ++got;
    net->on_interrupt();  // the used entries: the buffers come back
  }
  EXPECT_EQ(got, kFrames);
  EXPECT_EQ(net->stats().tx_frames, static_cast<std::uint64_t>(kFrames));
  EXPECT_EQ(backend.vectored_reads > 0, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Backends, NetDriverTransmit, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "Vectored" : "Bounced"; });

}  // namespace
}  // namespace vepf::test
