// Fuzz target: a rogue device against vepf-host's real virtio-rpmsg driver (host::RpmsgDriver,
// its messages routed to in-process endpoints, rpmsg::Endpoints, through the real DeviceTransport
// and DriverTransport over the fake links). The device offers the name service or not, writes
// rpmsgs of its choosing into the driver's receive buffers (headers whose length lies, any
// source and destination, name-service CREATE and DESTROY with any name and flags), claims any
// used length, completes transmit chains with any length, writes any word of the RC window and
// says DEVICE_NEEDS_RESET; meanwhile the application's endpoints ("echo", announced, which sends
// every message back; one created for each name the device announces) send to addresses of the
// input's choosing.
//
// Input (missing bytes read as zero):
//   u8 cfg    bit 0: VIRTIO_RPMSG_F_NS offered; bit 1: VIRTIO_RING_F_EVENT_IDX offered; bit 2:
//             queues of 4 entries instead of 16
//   then operations until the input ends, u8 opcode % 7:
//     0 the device fills the next receive buffer: u32 src, u32 dst (u8 selector % 4: the echo
//       endpoint, the name service, the latest bound endpoint, else u32 raw), u16 len (the
//       header's), u8 kind (% 3: n payload bytes (u8 n % 41), a name-service message (u8 name
//       length % 33, u32 addr, u32 flags), nothing), then u8 claim (bit 0: a u32 used length
//       from the input instead of what it wrote)
//     1 the device completes every transmit chain, claiming a u32 length (the same for each)
//     2 the device writes a 32-bit word of the RC window: u32 offset, u32 value
//     3 the application sends: u8 which (bit 0: the latest bound endpoint), u32 dst, u16 length
//       (mod 497)
//     4 interrupt (the driver runs)
//     5 the device says DEVICE_NEEDS_RESET and the driver is probed again
//     6 the application destroys the latest bound endpoint
//
// Checks (abort on violation): strict link model; every payload an endpoint's callback gets is
// at most kRpmsgMaxPayload bytes; no more receive buffers are counted (received by the router,
// name service included, or refused by the driver for their length) than the device filled.

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/rpmsg/rpmsg_driver.hpp"
#include "fuzz_support.hpp"
#include "rogue_device.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/rpmsg/endpoints.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 256 * 1024;  // bytes of each window

/// The rogue device: what it offers and writes comes from the input.
class RogueRpmsgDevice final : public RogueDevice {
 public:
  RogueRpmsgDevice(std::uint64_t features, std::uint16_t qsize)
      : RogueDevice(VIRTIO_ID_RPMSG, features, 2, qsize) {}

  /// Writes `msg` into the next receive buffer and claims `claimed` (or what it wrote). False:
  /// no buffer waits.
  bool fill(std::span<const std::byte> msg, std::optional<std::uint32_t> claimed) {
    return complete_next(layout::kRpmsgRxQueue, msg, claimed);
  }
  /// Completes every transmit chain, claiming `len` for each.
  void take_tx(std::uint32_t len) {
    ring::Vringh* q = queue(layout::kRpmsgTxQueue);
    for (int k = 0; q != nullptr && k < 64; ++k) {
      auto c = q->pop();
      if (!c || !*c) break;
      if (!q->complete((*c)->head, len)) break;
    }
    interrupt();
  }
};

/// The application's side: an echo endpoint, and one endpoint for each name the device
/// announces (the latest kept in `bound`).
struct App {
  void attach(rpmsg::Endpoints& e) {
    eps = &e;
    const auto rx = [this](std::span<const std::byte> p, std::uint32_t src) {
      FUZZ_CHECK(p.size() <= layout::kRpmsgMaxPayload);
      ++delivered;
      (void)eps->trysendto(echo, src, p);  // a full link loses the echo; that is allowed
    };
    auto a = e.create("echo", rpmsg::kAddrAny, rpmsg::kAddrAny, rx);
    FUZZ_CHECK(a.has_value());
    echo = *a;
    bound = 0;
    e.set_bind([this](const std::string&, std::uint32_t dst) {
      auto b = eps->create("", rpmsg::kAddrAny, dst,
                           [this](std::span<const std::byte> p, std::uint32_t) {
                             FUZZ_CHECK(p.size() <= layout::kRpmsgMaxPayload);
                             ++delivered;
                           });
      if (b) bound = *b;
    });
  }
  rpmsg::Endpoints* eps = nullptr;
  std::uint32_t echo = 0, bound = 0;
  std::uint64_t delivered = 0;
};

/// The device's rpmsg from the input (see the top of the file).
std::vector<std::byte> message(ByteReader& in, const App& app) {
  layout::RpmsgHdr h{};
  h.src = layout::le32::from_cpu(in.u32());
  std::uint32_t dst = 0;
  switch (in.u8() % 4) {
    case 0:
      dst = app.echo;
      break;
    case 1:
      dst = layout::kRpmsgNsAddr;
      break;
    case 2:
      dst = app.bound;
      break;
    default:
      dst = in.u32();
  }
  h.dst = layout::le32::from_cpu(dst);
  h.len = layout::le16::from_cpu(in.u16());
  std::vector<std::byte> m;
  const auto append = [&m](const void* p, std::size_t n) {
    const std::size_t at = m.size();
    m.resize(at + n);
    if (n != 0) std::memcpy(m.data() + at, p, n);
  };
  append(&h, sizeof h);
  switch (in.u8() % 3) {
    case 0: {
      const auto p = in.bytes(in.u8() % 41);
      append(p.data(), p.size());
      break;
    }
    case 1: {
      layout::RpmsgNsMsg ns{};
      const auto name = in.bytes(in.u8() % (layout::kRpmsgNameSize + 1));
      if (!name.empty()) std::memcpy(ns.name, name.data(), name.size());
      ns.addr = layout::le32::from_cpu(in.u32());
      ns.flags = layout::le32::from_cpu(in.u32());
      append(&ns, sizeof ns);
      break;
    }
    default:
      break;
  }
  return m;
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("host.rpmsg"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  std::uint64_t features = bit(VIRTIO_F_VERSION_1);
  if (cfg & 1) features |= bit(layout::kVirtioRpmsgFNs);
  if (cfg & 2) features |= bit(VIRTIO_RING_F_EVENT_IDX);

  RogueRpmsgDevice rogue(features, (cfg & 4) != 0 ? 4 : 16);  // before t: its transport resets it
  test::TransportPair t(0x5eed000a, std::chrono::milliseconds(5), kWindow, kWindow);
  auto loop = os::EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  const auto info = attach_rogue(t, rogue);
  if (!info) return;
  App app;
  std::optional<host::RpmsgDriver> rp;           // after the transports: its queues go first
  std::uint64_t filled = 0, counted_before = 0;  // buffers filled; counted by earlier drivers
  // Buffers taken: received by the router (a name-service message that is bad there counts in
  // both received and bad: not added) or refused by the driver for their length.
  auto counted = [&] { return rp->channel_stats().received + rp->stats().bad; };
  auto bring_up = [&]() -> bool {
    rp.emplace(
        t.drv, *info,
        [&app](rpmsg::Port& p) {
          auto e = std::make_unique<rpmsg::Endpoints>(p);
          app.attach(*e);
          return e;
        },
        "fuzz", *loop);
    return rp->probe().has_value();
  };
  if (!bring_up()) return;

  while (!in.empty()) {
    switch (in.u8() % 7) {
      case 0: {
        const auto m = message(in, app);
        const bool claim = (in.u8() & 1) != 0;
        if (rogue.fill(m, claim ? std::optional<std::uint32_t>(in.u32()) : std::nullopt)) ++filled;
        break;
      }
      case 1:
        rogue.take_tx(in.u32());
        break;
      case 2:
        scribble_rc(in, t.w);
        break;
      case 3: {
        const std::uint32_t from = (in.u8() & 1) != 0 && app.bound != 0 ? app.bound : app.echo;
        const std::uint32_t dst = in.u32();
        const std::vector<std::byte> p(in.u16() % (layout::kRpmsgMaxPayload + 1), std::byte{0x3c});
        (void)app.eps->trysendto(from, dst, p);
        break;
      }
      case 4:
        rp->on_interrupt();
        break;
      case 5:
        rogue.needs_reset(layout::kRpmsgRxQueue);
        if (!rp->on_control_event()) {
          counted_before += counted();
          rp.reset();
          if (!bring_up()) return;
        }
        break;
      default:
        if (app.bound != 0) (void)app.eps->destroy(std::exchange(app.bound, 0));
        break;
    }
    // Nothing the device wrote is taken without being counted (a buffer still on the used
    // ring, or held for a full router, is not taken yet).
    FUZZ_CHECK(counted_before + counted() <= filled);
  }
  if (verbose()) {
    const auto& ch = rp->channel_stats();
    std::fprintf(
        stderr,
        "rpmsg_driver_fuzz: cfg %#x, filled %llu, received %llu (bad %llu, driver bad "
        "%llu, no endpoint %llu), delivered %llu, sent %llu, bound %u\n",
        cfg, static_cast<unsigned long long>(filled), static_cast<unsigned long long>(ch.received),
        static_cast<unsigned long long>(ch.bad), static_cast<unsigned long long>(rp->stats().bad),
        static_cast<unsigned long long>(ch.no_endpoint),
        static_cast<unsigned long long>(app.delivered), static_cast<unsigned long long>(ch.sent),
        app.bound);
  }
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
