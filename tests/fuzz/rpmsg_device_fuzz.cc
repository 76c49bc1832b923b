// Fuzz target: a rogue driver against the EP's real virtio-rpmsg device (ep::RpmsgDevice, its
// messages routed to in-process endpoints, rpmsg::Endpoints, through the real DeviceTransport and
// DriverTransport over the fake links). The driver negotiates with or without the name service,
// transmits chains of any shape holding rpmsgs of its choosing (headers whose length lies, the
// name service's address, any name), posts receive buffers of any shape and size, scribbles on
// its own rings and resets the device, while the application's endpoints ("echo", announced,
// which sends every message back to its sender, and an unnamed one at address 2000) send to
// addresses of the input's choosing.
//
// Input (missing bytes read as zero):
//   u8 cfg    bit 0: VIRTIO_RPMSG_F_NS; bit 1: VIRTIO_RING_F_EVENT_IDX; bit 2: queues of 4
//             entries instead of 16
//   then operations until the input ends, u8 opcode % 7:
//     0 transmit: u8 segments (1..3), each placed (rogue_driver.hpp); the rpmsg written at the
//       start of the first buffer when the driver allocated it: u32 src, u32 dst, u16 len (the
//       header's, not checked here), u8 n (mod 41) and n payload bytes; kick
//     1 post a receive buffer: u8 segments (1..3), each placed; kick
//     2 the application sends: u8 which (bit 0: the unnamed endpoint), u32 dst, u16 length
//       (mod 497)
//     3 the driver writes a 32-bit word of its EP-window space: u32 offset, u32 value
//     4 the driver takes every used entry of both queues
//     5 doorbell
//     6 device reset, then the same bring-up again
//
// Checks (abort on violation): strict link model (the device reads and writes the windows only
// as device memory allows, and only inside them); every payload an endpoint's callback gets is
// at most kRpmsgMaxPayload bytes; every message the driver sent is counted, as received by the
// endpoints, bad there, or bad at the device (a buffer no rpmsg fits).

#include <linux/virtio_config.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "devices/rpmsg/rpmsg_device.hpp"
#include "fuzz_support.hpp"
#include "rogue_driver.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/rpmsg/endpoints.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 256 * 1024;  // bytes of each window
constexpr std::uint32_t kUnnamed = 2000;     // the unnamed endpoint's address

struct Rig {
  explicit Rig(std::uint16_t qsize) : queue_size(qsize) {
    const auto rx = [this](std::span<const std::byte> p, std::uint32_t src) {
      FUZZ_CHECK(p.size() <= layout::kRpmsgMaxPayload);
      ++delivered;
      (void)eps.trysendto(echo, src, p);  // a full link loses the echo; that is allowed
    };
    auto e = eps.create("echo", rpmsg::kAddrAny, rpmsg::kAddrAny, rx);
    FUZZ_CHECK(e.has_value());
    echo = *e;
    FUZZ_CHECK(eps.create("", kUnnamed, rpmsg::kAddrAny,
                          [this](std::span<const std::byte> p, std::uint32_t) {
                            FUZZ_CHECK(p.size() <= layout::kRpmsgMaxPayload);
                            ++delivered;
                          })
                   .has_value());
    dev.emplace(qsize, eps.attachment(), "fuzz");
  }

  bool bring_up(std::uint64_t want) {
    return fuzz::bring_up(t, slot, want, queue_size, vq, features);
  }

  rpmsg::Endpoints eps;                // outlives the device's attachment
  std::optional<ep::RpmsgDevice> dev;  // before t: its DeviceTransport's destructor resets it
  test::TransportPair t{0x5eed0007, std::chrono::milliseconds(5), kWindow, kWindow};
  std::uint16_t queue_size;
  std::uint32_t slot = 0;
  std::uint32_t echo = 0;
  std::uint64_t features = 0;
  std::uint64_t delivered = 0;
  std::optional<ring::Vring> vq[2];
  std::uint64_t token = 0;
};

/// Writes the input's rpmsg (header and up to 40 payload bytes) at `off` of the driver's view
/// of the EP window, within `room` bytes.
void write_rpmsg(Rig& r, ByteReader& in, std::size_t off, std::size_t room) {
  layout::RpmsgHdr h{};
  h.src = layout::le32::from_cpu(in.u32());
  h.dst = layout::le32::from_cpu(in.u32());
  h.len = layout::le16::from_cpu(in.u16());
  const auto payload = in.bytes(in.u8() % 41);
  std::vector<std::byte> m(sizeof h + payload.size());
  std::memcpy(m.data(), &h, sizeof h);
  if (!payload.empty()) std::memcpy(m.data() + sizeof h, payload.data(), payload.size());
  if (m.size() > room) m.resize(room);
  r.t.w.drv_ep.write(off, m);
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("ep.rpmsg"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  std::uint64_t want = 0;
  if (cfg & 1) want |= bit(layout::kVirtioRpmsgFNs);
  if (cfg & 2) want |= bit(VIRTIO_RING_F_EVENT_IDX);
  Rig r((cfg & 4) != 0 ? 4 : 16);
  auto s = r.t.add(*r.dev);
  FUZZ_CHECK(s.has_value());
  r.slot = *s;
  auto loop = os::EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  FUZZ_CHECK(r.dev->start(*loop).has_value());
  FUZZ_CHECK(r.t.drv.attach().has_value());
  if (!r.bring_up(want)) return;
  const std::uint64_t ep_base = layout::link_addr(layout::WindowId::kEp, 0),
                      ep_size = r.t.w.drv_ep.size();
  std::uint64_t sent = 0;  // chains the driver put on its transmit queue

  while (!in.empty()) {
    switch (in.u8() % 7) {
      case 0: {  // transmit one rpmsg
        const unsigned n = 1 + in.u8() % 3;
        std::vector<ring::Buf> out;
        std::optional<Placed> first;
        for (unsigned i = 0; i < n; ++i) {
          if (auto b = place(in, r.t.drv.ep_alloc(), ep_base, ep_size)) {
            if (out.empty()) first = b;
            out.push_back(b->buf);
          }
        }
        if (first && first->off) write_rpmsg(r, in, *first->off, first->buf.len);
        if (post(r.t, *r.vq[layout::kRpmsgTxQueue], out, {}, ++r.token)) ++sent;
        break;
      }
      case 1:  // post a receive buffer
        (void)post(r.t, *r.vq[layout::kRpmsgRxQueue], {}, place_receive(in, r.t, 3), ++r.token);
        break;
      case 2: {  // the application sends
        const std::uint32_t from = (in.u8() & 1) != 0 ? kUnnamed : r.echo;
        const std::uint32_t dst = in.u32();
        const std::vector<std::byte> p(in.u16() % (layout::kRpmsgMaxPayload + 1), std::byte{0x3c});
        (void)r.eps.trysendto(from, dst, p);
        break;
      }
      case 3:  // the driver scribbles on its own share of the EP window
        scribble(in, r.t);
        break;
      case 4:  // the driver takes what was used
        take_used(r.vq);
        break;
      case 5:
        (void)r.t.drl.ring_doorbell();
        break;
      default:
        (void)r.t.drv.reset(r.slot);
        r.vq[0].reset();
        r.vq[1].reset();
        if (!r.bring_up(want)) return;
        break;
    }
    // Nothing the driver sent is taken without being counted somewhere.
    const auto& ch = r.dev->channel_stats();
    FUZZ_CHECK(ch.received + r.dev->stats().bad <= sent);
    FUZZ_CHECK(r.delivered <= ch.received);
  }
  if (verbose()) {
    const auto& st = r.dev->stats();
    const auto& ch = r.dev->channel_stats();
    std::fprintf(stderr,
                 "rpmsg_device_fuzz: features %#llx, sent %llu, received %llu (bad %llu, device "
                 "bad %llu), delivered %llu, to driver %llu (short buffer %llu), status %#x\n",
                 static_cast<unsigned long long>(r.features), static_cast<unsigned long long>(sent),
                 static_cast<unsigned long long>(ch.received),
                 static_cast<unsigned long long>(ch.bad), static_cast<unsigned long long>(st.bad),
                 static_cast<unsigned long long>(r.delivered),
                 static_cast<unsigned long long>(st.to_driver),
                 static_cast<unsigned long long>(st.short_buffer), r.t.drv.device_status(r.slot));
  }
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
