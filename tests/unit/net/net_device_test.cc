// The EP's virtio-net device (NetDevice) against a hostile driver played by the test through the
// real transports: every virtio_net_hdr the driver writes is checked before the frame reaches
// the backend (our kernel); a bad one drops that frame, is counted, and breaks nothing.

#include <gtest/gtest.h>
#include <linux/virtio_config.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "devices/net/net_device.hpp"
#include "net/recording_backend.hpp"
#include "support/driver_queue.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint16_t kQueueSize = 16;

class NetDeviceHostileDriver : public ::testing::Test {
 protected:
  NetDeviceHostileDriver()
      : dl(w), drl(w, dl), dev(dl, 0x5eed0002), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
    if (!spdlog::get("ep.net")) spdlog::create<spdlog::sinks::null_sink_mt>("ep.net");
    auto b = std::make_unique<RecordingBackend>();
    backend = b.get();
    net.emplace(std::move(b), config::NetConfig{}, kQueueSize);
  }

  void SetUp() override {
    ASSERT_TRUE(dev.init());
    auto s = dev.add_device(&*net);
    ASSERT_TRUE(s);
    slot = *s;
    ASSERT_TRUE(drv.attach());
    auto devs = drv.scan();
    ASSERT_TRUE(devs && !devs->empty());
    // The driver takes the checksum and IPv4 segmentation offloads towards the device.
    auto f = drv.negotiate(
        slot, (*devs)[0].device_features,
        bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_HOST_TSO4));
    ASSERT_TRUE(f) << f.error().what;
    for (std::uint16_t q = 0; q < 2; ++q) ASSERT_NO_FATAL_FAILURE(enable(q));
    ASSERT_TRUE(drv.driver_ok(slot));
  }

  void enable(std::uint16_t q) {
    const auto p = enable_driver_queue(drv, w, slot, q, kQueueSize);
    ASSERT_TRUE(p);
    vq[q].emplace(*p);
  }

  /// The driver transmits `hdr` and a 60-byte frame; returns whether the device completed it.
  bool transmit(const layout::VirtioNetHdr& hdr) {
    std::vector<std::byte> buf(layout::kNetHdrSize + kFrame, std::byte{0x42});
    std::memcpy(buf.data(), &hdr, sizeof(hdr));
    const auto out = drv.ep_alloc().alloc(buf.size(), 64);
    if (!out) return false;
    w.drv_ep.write(out->off, buf);
    const ring::Buf b{out->link_addr, static_cast<std::uint32_t>(buf.size())};
    ring::Vring& tx = *vq[layout::kNetTxQueue];
    if (!tx.add({&b, 1}, {}, ++token)) return false;
    (void)tx.kick_prepare();
    (void)drl.ring_doorbell();  // the fake link polls the device at once
    auto u = tx.get_used();
    return u && *u && (*u)->token == token;
  }
  bool queue_broken() { return (drv.device_status(slot) & VIRTIO_CONFIG_S_NEEDS_RESET) != 0; }

  static constexpr std::size_t kFrame = 60;
  LinkWindows w;
  std::optional<ep::NetDevice> net;  // before dev: dev's destructor resets it
  RecordingBackend* backend = nullptr;
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  std::uint32_t slot = 0;
  std::optional<ring::Vring> vq[2];
  std::uint64_t token = 0;
};

TEST_F(NetDeviceHostileDriver, BadHeadersAreDroppedAndCountedAndTheQueueGoesOn) {
  layout::VirtioNetHdr past_end{};  // a partial checksum ending past the frame
  past_end.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  past_end.csum_start = layout::le16::from_cpu(kFrame - 2);
  past_end.csum_offset = layout::le16::from_cpu(16);
  layout::VirtioNetHdr udp{};  // segmentation the device never offered
  udp.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  udp.gso_type = VIRTIO_NET_HDR_GSO_UDP;
  udp.gso_size = layout::le16::from_cpu(1400);
  udp.csum_start = layout::le16::from_cpu(34);
  udp.csum_offset = layout::le16::from_cpu(6);
  layout::VirtioNetHdr tso6{};  // IPv6 segmentation the driver did not negotiate
  tso6.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  tso6.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  tso6.gso_size = layout::le16::from_cpu(1400);
  tso6.hdr_len = layout::le16::from_cpu(54);
  tso6.csum_start = layout::le16::from_cpu(54);
  tso6.csum_offset = layout::le16::from_cpu(16);
  layout::VirtioNetHdr data_valid{};  // a flag only a device may set
  data_valid.flags = VIRTIO_NET_HDR_F_DATA_VALID;

  for (const auto* h : {&past_end, &udp, &tso6, &data_valid}) {
    EXPECT_TRUE(transmit(*h)) << "a frame with a bad header was not completed";
  }
  EXPECT_TRUE(backend->sent.empty()) << "a bad header reached the backend";
  EXPECT_EQ(net->stats().tx_bad_hdr, 4u);
  EXPECT_FALSE(queue_broken()) << "a bad frame broke the queue";

  layout::VirtioNetHdr good{};  // a partial checksum inside the frame: allowed with CSUM
  good.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  good.csum_start = layout::le16::from_cpu(34);
  good.csum_offset = layout::le16::from_cpu(16);
  EXPECT_TRUE(transmit(good));
  ASSERT_EQ(backend->sent.size(), 1u) << "the queue stopped after the bad frames";
  ASSERT_EQ(backend->sent[0].size(), layout::kNetHdrSize + kFrame);
  layout::VirtioNetHdr seen;
  std::memcpy(&seen, backend->sent[0].data(), sizeof(seen));
  EXPECT_EQ(seen.csum_start.to_cpu(), 34);
  EXPECT_EQ(backend->sent[0].back(), std::byte{0x42});
  EXPECT_EQ(net->stats().tx_frames, 1u);
}

TEST_F(NetDeviceHostileDriver, AFrameShorterThanTheHeaderIsAnErrorNotACrash) {
  const auto out = drv.ep_alloc().alloc(64, 64);
  ASSERT_TRUE(out);
  const ring::Buf b{out->link_addr, 4};  // 4 bytes: not even a header
  ring::Vring& tx = *vq[layout::kNetTxQueue];
  ASSERT_TRUE(tx.add({&b, 1}, {}, 7));
  (void)tx.kick_prepare();
  (void)drl.ring_doorbell();
  auto u = tx.get_used();
  ASSERT_TRUE(u && *u);
  EXPECT_EQ((*u)->token, 7u);
  EXPECT_TRUE(backend->sent.empty());
  EXPECT_EQ(net->stats().tx_errors, 1u);
  EXPECT_FALSE(queue_broken());
}

// Polling the rings (a doorbell, each spin turn of the main loop) with a receive buffer held
// must not read an empty backend again and again: one read finds it empty, and the next comes
// from the backend's readable callback, which then brings the frame to the driver.
TEST_F(NetDeviceHostileDriver, AnEmptyBackendIsReadAgainOnlyOnceItIsReadable) {
  os::EventLoop loop;
  ASSERT_TRUE(net->start(loop));
  const std::size_t len = layout::kNetGsoBufferSize;
  const auto in = drv.rc_alloc().alloc(len, 64);
  ASSERT_TRUE(in);
  const ring::Buf b{in->link_addr, static_cast<std::uint32_t>(len)};
  ring::Vring& rx = *vq[layout::kNetRxQueue];
  ASSERT_TRUE(rx.add({}, {&b, 1}, 9));
  (void)rx.kick_prepare();
  for (int i = 0; i < 5; ++i) (void)drl.ring_doorbell();
  EXPECT_EQ(backend->reads, 1);
  auto u = rx.get_used();
  ASSERT_TRUE(u);
  EXPECT_FALSE(*u);

  std::vector<std::byte> frame(layout::kNetHdrSize + kFrame, std::byte{0x5a});
  std::memset(frame.data(), 0, layout::kNetHdrSize);  // a plain header
  backend->incoming.push_back(frame);
  ASSERT_TRUE(backend->callbacks.readable);
  backend->callbacks.readable();
  EXPECT_EQ(backend->reads, 2);
  u = rx.get_used();
  ASSERT_TRUE(u && *u);
  EXPECT_EQ((*u)->token, 9u);
  EXPECT_EQ((*u)->len, frame.size());
  EXPECT_EQ(net->stats().rx_frames, 1u);
}

}  // namespace
}  // namespace vepf::test
