// Fuzz target: a rogue driver against the EP's real virtio-net device (ep::NetDevice, through the
// real DeviceTransport and DriverTransport over the fake links). The driver negotiates any subset
// of the offered features, then transmits chains of any shape (buffers in its windows, at
// addresses of its choosing, with any virtio_net_hdr), posts receive buffers of any shape,
// scribbles on its own rings and resets the device, while the backend (a TAP as far as the device
// can tell) hands frames with any header to the device.
//
// Input (missing bytes read as zero):
//   u8 cfg    the driver's features: bits 0-5 pick VIRTIO_NET_F_CSUM, GUEST_CSUM, HOST_TSO4,
//             HOST_TSO6, GUEST_TSO4, GUEST_TSO6 (of what the device offers); bit 6: the backend
//             takes vectored reads; bit 7: queues of 4 entries instead of 16
//   then operations until the input ends, u8 opcode % 7:
//     0 transmit: u8 segments (1..4), each u8 place, u16 length; 12 header bytes; kick
//     1 post a receive buffer: u8 segments (1..4), each u8 place, u16 length; kick
//     2 the backend has a frame: u16 length, 12 header bytes (then a patterned frame)
//     3 the driver writes a 32-bit word of its EP-window space: u32 offset, u32 value
//     4 the driver takes every used entry of both queues
//     5 doorbell
//     6 device reset, then the same bring-up again
//   place: 0 a buffer the driver allocates; 1 a link address from the input (u64); 2 the last
//   bytes of the window (crossing its end when long).
//
// Checks (abort on violation): strict link model (the device reads and writes the windows only
// as device memory allows, and only inside them); what the device gives the backend passes
// check_net_hdr() against the offloads towards the device that were negotiated, and is never
// larger than a GSO buffer.

#include <linux/virtio_config.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "devices/net/net_device.hpp"
#include "fuzz_support.hpp"
#include "net/recording_backend.hpp"
#include "net_fuzz.hpp"
#include "rogue_driver.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::fuzz {
namespace {

using test::RecordingBackend;

constexpr std::size_t kWindow =
    256 * 1024;  // bytes of each window: room for queues and 4 KiB buffers

struct Rig {
  explicit Rig(bool vectored, std::uint16_t qsize) : queue_size(qsize) {
    auto b = std::make_unique<RecordingBackend>();
    b->vector_io = vectored;
    backend = b.get();
    net.emplace(std::move(b), config::NetConfig{}, qsize);
  }

  /// Negotiate `want` (of what the device offers), enable both queues, DRIVER_OK.
  bool bring_up(std::uint64_t want) {
    return fuzz::bring_up(t, slot, want, queue_size, vq, features);
  }

  std::optional<ep::NetDevice> net;  // before t: its DeviceTransport's destructor resets it
  RecordingBackend* backend = nullptr;
  test::TransportPair t{0x5eed0003, std::chrono::milliseconds(5), kWindow, kWindow};
  std::uint16_t queue_size;
  std::uint32_t slot = 0;
  std::uint64_t features = 0;
  std::optional<ring::Vring> vq[2];
  std::uint64_t token = 0;
};

void check_sent(Rig& r, std::size_t& seen) {
  const layout::NetOffloads allowed = layout::offloads_to_device(r.features);
  for (; seen < r.backend->sent.size(); ++seen) {
    const auto& f = r.backend->sent[seen];
    FUZZ_CHECK(f.size() >= layout::kNetHdrSize && f.size() <= layout::kNetGsoBufferSize);
    layout::VirtioNetHdr h;
    std::memcpy(&h, f.data(), sizeof h);
    FUZZ_EXPECT(
        "backend-gets-checked-header",
        layout::check_net_hdr(h, f.size() - layout::kNetHdrSize, allowed, false) == nullptr);
  }
  r.backend->sent.clear();
  seen = 0;
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("ep.net"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  std::uint64_t want = fuzz::net_offloads(cfg);
  want |= bit(VIRTIO_RING_F_EVENT_IDX);  // the driver here makes no indirect tables
  Rig r((cfg & 0x40) != 0, (cfg & 0x80) != 0 ? 4 : 16);
  auto s = r.t.add(*r.net);
  FUZZ_CHECK(s.has_value());
  r.slot = *s;
  os::EventLoop loop;
  FUZZ_CHECK(r.net->start(loop).has_value());
  FUZZ_CHECK(r.t.drv.attach().has_value());
  if (!r.bring_up(want)) return;
  std::size_t seen = 0;
  const std::uint64_t ep_base = layout::link_addr(layout::WindowId::kEp, 0),
                      ep_size = r.t.w.drv_ep.size();

  while (!in.empty()) {
    switch (in.u8() % 7) {
      case 0: {  // transmit
        const unsigned n = 1 + in.u8() % 4;
        std::vector<ring::Buf> out;
        std::optional<std::size_t> first_off;
        for (unsigned i = 0; i < n; ++i) {
          if (auto b = place(in, r.t.drv.ep_alloc(), ep_base, ep_size)) {
            if (out.empty()) first_off = b->off;
            out.push_back(b->buf);
          }
        }
        std::byte hdr[layout::kNetHdrSize] = {};
        const auto given = in.bytes(sizeof hdr);
        if (!given.empty()) std::memcpy(hdr, given.data(), given.size());
        // The header goes at the start of the first buffer when the driver allocated it (the
        // rest of an allocated buffer holds whatever the window held).
        if (first_off && out[0].len >= sizeof hdr) r.t.w.drv_ep.write(*first_off, hdr);
        (void)post(r.t, *r.vq[layout::kNetTxQueue], out, {}, ++r.token);
        break;
      }
      case 1:  // post a receive buffer
        (void)post(r.t, *r.vq[layout::kNetRxQueue], {}, place_receive(in, r.t, 4), ++r.token);
        break;
      case 2: {  // the backend has a frame
        const std::size_t len = in.u16() % 2048;
        std::vector<std::byte> f(layout::kNetHdrSize + len, std::byte{0x5a});
        const auto given = in.bytes(layout::kNetHdrSize);
        if (!given.empty()) std::memcpy(f.data(), given.data(), given.size());
        r.backend->incoming.push_back(std::move(f));
        if (r.backend->callbacks.readable) r.backend->callbacks.readable();
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
    check_sent(r, seen);
  }
  if (verbose()) {
    const ep::NetStats& st = r.net->stats();
    std::fprintf(stderr,
                 "net_device_fuzz: features %#llx, tx %llu (errors %llu, bad headers %llu), rx "
                 "%llu (dropped %llu), "
                 "status %#x\n",
                 static_cast<unsigned long long>(r.features),
                 static_cast<unsigned long long>(st.tx_frames),
                 static_cast<unsigned long long>(st.tx_errors),
                 static_cast<unsigned long long>(st.tx_bad_hdr),
                 static_cast<unsigned long long>(st.rx_frames),
                 static_cast<unsigned long long>(st.rx_dropped), r.t.drv.device_status(r.slot));
  }
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
