// Fuzz target: a rogue device against vepf-host's real virtio-net driver (host::NetDriver, through
// the real DeviceTransport and DriverTransport over the fake links). The device offers any
// features and config, writes any header and length into the driver's receive buffers, claims any
// used length, completes transmit chains with any length, and writes any word of the RC window
// (the used rings and the mailbox included), while the backend (a TAP as far as the driver can
// tell) hands the driver frames to transmit.
//
// Input (missing bytes read as zero):
//   u8 feat   offered besides VERSION_1: bits 0-5 VIRTIO_NET_F_CSUM, GUEST_CSUM, HOST_TSO4,
//             HOST_TSO6, GUEST_TSO4, GUEST_TSO6; bit 6 MTU; bit 7 STATUS
//   u16 mtu, u16 status   the config space
//   then operations until the input ends, u8 opcode % 6:
//     0 the device fills the next receive buffer: 12 header bytes, u16 frame length, u8 claim
//       (0: what it wrote; else a u32 from the input)
//     1 the device takes every transmit chain and completes each with a u32 length from the input
//     2 the device writes a 32-bit word of the RC window: u32 offset, u32 value
//     3 the backend has a frame to transmit: u16 length
//     4 interrupt (the driver runs)
//     5 the device says DEVICE_NEEDS_RESET and the driver is probed again
//
// Checks (abort on violation): strict link model; every frame the driver gives the backend passes
// check_net_hdr() towards the driver against the offloads it accepted, and fits a GSO buffer.

#include <linux/virtio_config.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "drivers/net/net_driver.hpp"
#include "fuzz_support.hpp"
#include "net/recording_backend.hpp"
#include "net_fuzz.hpp"
#include "rogue_device.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::fuzz {
namespace {

using test::RecordingBackend;

/// The rogue device: what it offers and writes comes from the input.
class RogueNetDevice final : public RogueDevice {
 public:
  RogueNetDevice(std::uint64_t features, std::uint16_t mtu, std::uint16_t status)
      : RogueDevice(VIRTIO_ID_NET, features, 2, 16) {
    cfg_.status = layout::le16::from_cpu(status);
    cfg_.max_virtqueue_pairs = layout::le16::from_cpu(1);
    cfg_.mtu = layout::le16::from_cpu(mtu);
  }
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }

  void fill_rx(ByteReader& in) {
    std::vector<std::byte> buf(layout::kNetHdrSize);
    const auto hdr = in.bytes(layout::kNetHdrSize);
    if (!hdr.empty()) std::memcpy(buf.data(), hdr.data(), hdr.size());
    buf.resize(layout::kNetHdrSize + in.u16() % 2048, std::byte{0x24});
    const bool claim = (in.u8() & 1) != 0;
    const std::uint32_t claimed = claim ? in.u32() : 0;
    (void)complete_next(layout::kNetRxQueue, buf,
                        claim ? std::optional<std::uint32_t>(claimed) : std::nullopt);
  }
  void take_tx(ByteReader& in) {
    ring::Vringh* q = queue(layout::kNetTxQueue);
    for (int k = 0; q != nullptr && k < 64; ++k) {
      auto c = q->pop();
      if (!c || !*c) break;
      if (!q->complete((*c)->head, in.u32())) break;
    }
    interrupt();
  }

 private:
  layout::VirtioNetConfig cfg_{};
};

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("host.net"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::uint8_t feat = in.u8();
  // Bits 0..5 of the byte: the offloads; bit 6: MTU; bit 7: STATUS.
  std::uint64_t features = bit(VIRTIO_F_VERSION_1) | fuzz::net_offloads(feat);
  if (feat & 0x40) features |= bit(VIRTIO_NET_F_MTU);
  if (feat & 0x80) features |= bit(VIRTIO_NET_F_STATUS);
  const std::uint16_t mtu = in.u16();
  const std::uint16_t status = in.u16();

  RogueNetDevice rogue(features, mtu, status);  // before t: its DeviceTransport resets it
  test::TransportPair t(0x5eed0004, std::chrono::milliseconds(5), 512 * 1024, 512 * 1024);
  RecordingBackend backend;
  auto loop = os::EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  const auto info = attach_rogue(t, rogue);
  if (!info) return;
  std::optional<host::NetDriver> net;  // after the transports: its queues go first
  auto bring_up = [&]() -> bool {
    net.emplace(t.drv, *info, /*offloads=*/true);
    if (!net->probe()) return false;
    return net->attach_backend(backend, *loop).has_value();
  };
  if (!bring_up()) return;

  while (!in.empty()) {
    switch (in.u8() % 6) {
      case 0:
        rogue.fill_rx(in);
        break;
      case 1:
        rogue.take_tx(in);
        break;
      case 2:
        scribble_rc(in, t.w);
        break;
      case 3: {
        std::vector<std::byte> f(layout::kNetHdrSize + 14 + in.u16() % 1500, std::byte{0x42});
        std::memset(f.data(), 0, layout::kNetHdrSize);
        backend.incoming.push_back(std::move(f));
        if (backend.callbacks.readable) backend.callbacks.readable();
        break;
      }
      case 4:
        net->on_interrupt();
        break;
      default:
        rogue.needs_reset(layout::kNetRxQueue);
        if (!net->on_control_event()) {
          net.reset();
          if (!bring_up()) return;
        }
        break;
    }
    const layout::NetOffloads allowed = layout::offloads_to_driver(net->features());
    for (const auto& f : backend.sent) {
      FUZZ_CHECK(f.size() >= layout::kNetHdrSize && f.size() <= layout::kNetGsoBufferSize);
      layout::VirtioNetHdr h;
      std::memcpy(&h, f.data(), sizeof h);
      FUZZ_EXPECT(
          "backend-gets-checked-header",
          layout::check_net_hdr(h, f.size() - layout::kNetHdrSize, allowed, true) == nullptr);
    }
    backend.sent.clear();
  }
  if (verbose()) {
    const host::NetStats& st = net->stats();
    std::fprintf(
        stderr,
        "net_driver_fuzz: features %#llx, rx %llu (errors %llu, bad headers %llu), tx %llu\n",
        static_cast<unsigned long long>(net->features()),
        static_cast<unsigned long long>(st.rx_frames),
        static_cast<unsigned long long>(st.rx_errors),
        static_cast<unsigned long long>(st.rx_bad_hdr),
        static_cast<unsigned long long>(st.tx_frames));
  }
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
