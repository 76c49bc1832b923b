// Fuzz target: a rogue driver against the EP's real virtio-console device (ep::ConsoleDevice with
// two ports: port 0 a pty linked in a scratch directory, port 1 a unix stream socket; through the
// real DeviceTransport and DriverTransport over the fake links). The driver negotiates MULTIPORT
// and the size features or not, sends control messages of any event, port, value and payload in
// chains placed anywhere, posts writable buffers of any shape on any queue, transmits port data
// in chains of any shape, scribbles on its own rings and resets the device; meanwhile a client
// connects to the socket port, writes, reads and hangs up, and an application writes into and
// reads from port 0's pty.
//
// Input (missing bytes read as zero):
//   u8 cfg    bit 0: VIRTIO_CONSOLE_F_MULTIPORT; bit 1: VIRTIO_RING_F_EVENT_IDX; bit 2:
//             VIRTIO_CONSOLE_F_SIZE; bit 3: the driver-size extension; bit 4: queues of 4
//             entries instead of 16
//   then operations until the input ends, u8 opcode % 9:
//     0 the driver sends a control message (console_fuzz.hpp) on control transmitq in a buffer
//       placed as rogue_driver.hpp place() says (written at its start when the driver
//       allocated it), and u8 n % 2 more readable buffers placed; kick
//     1 the driver posts writable buffers (place_receive(), up to 4) on queue u8 % 6; kick
//     2 the driver transmits on port u8 % 2: u8 n % 3 + 1 buffers placed (those it allocated
//       filled with a pattern); kick
//     3 the driver writes a 32-bit word of its EP-window space: u32 offset, u32 value
//     4 the driver takes every used entry of every queue
//     5 doorbell
//     6 the event loop runs once (backend I/O)
//     7 the backends, u8 % 6: the socket client connects, writes u16 n % 2048 bytes, reads what
//       waits, hangs up; the pty application writes u16 n % 2048 bytes, reads what waits; then
//       the event loop once
//     8 device reset, then the same bring-up again
//
// Checks (abort on violation): strict link model; at most kMaxQueued control messages wait in the
// device; no used length exceeds the writable room the driver posted for that chain (while it has
// not scribbled on its rings); the device never gives the driver more port bytes than the
// backends wrote, nor the backends read more than the driver transmitted; once the device is
// gone, its pty link and socket are removed and every descriptor it opened is closed.

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "console_fuzz.hpp"
#include "devices/console/console_device.hpp"
#include "fuzz_support.hpp"
#include "rogue_driver.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/ring/vring.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 256 * 1024;  // bytes of each window
constexpr std::uint32_t kPorts = 2;
constexpr std::uint16_t kQueues = layout::console_num_queues(kPorts);
constexpr std::size_t kMaxQueued = 8;  // the device's max_control_queued (messages)

const std::string& pty_link() {
  static const std::string p = std::string(scratch_dir()) + "/ep-port0";
  return p;
}
const std::string& socket_path() {
  static const std::string p = std::string(scratch_dir()) + "/ep-port1.sock";
  return p;
}

config::ConsoleConfig console_config() {
  config::ConsoleConfig c;
  c.max_control_queued = kMaxQueued;
  c.ports.resize(kPorts);
  c.ports[0].name = "console";
  c.ports[0].backend = config::ConsoleBackend::kPty;
  c.ports[0].link = pty_link();
  c.ports[1].name = "log";
  c.ports[1].backend = config::ConsoleBackend::kSocket;
  c.ports[1].socket = socket_path();
  return c;
}

struct Rig {
  explicit Rig(std::uint16_t qsize) : queue_size(qsize) { dev.emplace(console_config(), qsize); }
  bool bring_up(std::uint64_t want) {
    room.clear();
    return fuzz::bring_up(t, slot, want, queue_size, vq, features);
  }

  std::optional<ep::ConsoleDevice> dev;  // before t: its DeviceTransport's destructor resets it
  test::TransportPair t{0x5eed000b, std::chrono::milliseconds(5), kWindow, kWindow};
  std::uint16_t queue_size;
  std::uint32_t slot = 0;
  std::uint64_t features = 0;
  std::optional<ring::Vring> vq[kQueues];
  std::uint64_t token = 0;
  PostedRoom room;  // what each chain let the device write
};

/// The socket port's client and the application on port 0's pty.
struct Backends {
  void connect() {
    if (client.valid()) return;
    os::Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    FUZZ_CHECK(s.valid());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_path().c_str(), sizeof a.sun_path - 1);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0)
      client = std::move(s);
  }
  int pty() {
    if (!app.valid()) app = os::Fd(::open(pty_link().c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK));
    return app.get();
  }
  void write(int fd, std::size_t n) {
    const std::vector<std::byte> b(n, std::byte{0x64});
    if (fd < 0 || n == 0) return;
    const ssize_t w = ::write(fd, b.data(), b.size());
    if (w > 0) written += static_cast<std::uint64_t>(w);
  }
  void read(int fd) {
    std::byte b[4096];
    ssize_t n = 0;
    while (fd >= 0 && (n = ::read(fd, b, sizeof b)) > 0) got += static_cast<std::uint64_t>(n);
  }
  os::Fd client, app;
  std::uint64_t written = 0, got = 0;  // bytes the backends wrote / read
};

void control(Rig& r, ByteReader& in) {
  const std::uint64_t ep_base = layout::link_addr(layout::WindowId::kEp, 0),
                      ep_size = r.t.w.drv_ep.size();
  std::vector<ring::Buf> out;
  if (auto h = place(in, r.t.drv.ep_alloc(), ep_base, ep_size)) {
    out.push_back(h->buf);
    const auto m = console_message(in, kPorts);
    if (h->off) {
      r.t.w.drv_ep.write(*h->off, std::span{m}.first(std::min<std::size_t>(m.size(), h->buf.len)));
    }
  }
  for (unsigned n = in.u8() % 2; n > 0; --n) {
    if (auto b = place(in, r.t.drv.ep_alloc(), ep_base, ep_size)) out.push_back(b->buf);
  }
  if (post(r.t, *r.vq[layout::kConsoleCtrlTxQueue], out, {}, ++r.token)) r.room.posted(r.token, 0);
}

void transmit(Rig& r, ByteReader& in) {
  const std::uint64_t ep_base = layout::link_addr(layout::WindowId::kEp, 0),
                      ep_size = r.t.w.drv_ep.size();
  const std::uint32_t port = in.u8() % kPorts;
  std::vector<ring::Buf> out;
  for (unsigned n = 1 + in.u8() % 3; n > 0; --n) {
    auto b = place(in, r.t.drv.ep_alloc(), ep_base, ep_size);
    if (!b) continue;
    out.push_back(b->buf);
    if (b->off) {
      const std::vector<std::byte> fill(b->buf.len, std::byte{0x63});
      r.t.w.drv_ep.write(*b->off, fill);
    }
  }
  if (post(r.t, *r.vq[layout::console_tx_queue(port)], out, {}, ++r.token))
    r.room.posted(r.token, 0);
}

void receive(Rig& r, ByteReader& in) {
  const std::uint16_t q = in.u8() % kQueues;
  const auto bufs = place_receive(in, r.t, 4);
  std::uint64_t writable = 0;
  for (const auto& b : bufs) writable += b.len;
  if (post(r.t, *r.vq[q], {}, bufs, ++r.token)) r.room.posted(r.token, writable);
}

void backends(Backends& b, ByteReader& in) {
  switch (in.u8() % 6) {
    case 0:
      b.connect();
      break;
    case 1:
      b.write(b.client.get(), in.u16() % 2048);
      break;
    case 2:
      b.read(b.client.get());
      break;
    case 3:
      b.client.reset();
      break;
    case 4:
      b.write(b.pty(), in.u16() % 2048);
      break;
    default:
      b.read(b.pty());
      break;
  }
}

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("ep.console"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::size_t fds_before = open_fds();
  const std::uint8_t cfg = in.u8();
  std::uint64_t want = 0;
  if (cfg & 1) want |= bit(VIRTIO_CONSOLE_F_MULTIPORT);
  if (cfg & 2) want |= bit(VIRTIO_RING_F_EVENT_IDX);
  if (cfg & 4) want |= bit(VIRTIO_CONSOLE_F_SIZE);
  if (cfg & 8) want |= bit(layout::kVepfConsoleFDriverSize);
  {
    auto loop = os::EventLoop::create();  // outlives the device, which leaves it when destroyed
    FUZZ_CHECK(loop.has_value());
    Rig r((cfg & 0x10) != 0 ? 4 : 16);
    Backends b;
    auto s = r.t.add(*r.dev);
    FUZZ_CHECK(s.has_value());
    r.slot = *s;
    FUZZ_CHECK(r.dev->start(*loop).has_value());
    FUZZ_CHECK(r.t.drv.attach().has_value());
    if (!r.bring_up(want)) return;

    while (!in.empty()) {
      switch (in.u8() % 9) {
        case 0:
          control(r, in);
          break;
        case 1:
          receive(r, in);
          break;
        case 2:
          transmit(r, in);
          break;
        case 3:
          scribble(in, r.t);
          r.room.scribbled();
          break;
        case 4:
          for (auto& q : r.vq) {
            if (q) r.room.take_used(*q);
          }
          break;
        case 5:
          (void)r.t.drl.ring_doorbell();
          break;
        case 6:
          (void)loop->run_once(0);
          break;
        case 7:
          backends(b, in);
          (void)loop->run_once(0);
          break;
        default:
          (void)r.t.drv.reset(r.slot);
          for (auto& q : r.vq) q.reset();
          if (!r.bring_up(want)) return;
          break;
      }
      const ep::ConsoleStats& st = r.dev->stats();
      FUZZ_CHECK(r.dev->control_queued() <= kMaxQueued);
      FUZZ_CHECK(st.to_driver_bytes <= b.written);
      FUZZ_CHECK(b.got <= st.from_driver_bytes);
    }
    if (verbose()) {
      const ep::ConsoleStats& st = r.dev->stats();
      std::fprintf(
          stderr,
          "console_device_fuzz: features %#llx, to driver %llu (backends wrote %llu), "
          "from driver %llu (backends read %llu, dropped %llu), bad control %llu, "
          "control dropped %llu, resizes %llu in, status %#x\n",
          static_cast<unsigned long long>(r.features),
          static_cast<unsigned long long>(st.to_driver_bytes),
          static_cast<unsigned long long>(b.written),
          static_cast<unsigned long long>(st.from_driver_bytes),
          static_cast<unsigned long long>(b.got), static_cast<unsigned long long>(st.dropped_bytes),
          static_cast<unsigned long long>(st.bad_control),
          static_cast<unsigned long long>(st.control_dropped),
          static_cast<unsigned long long>(st.resizes_from_driver), r.t.drv.device_status(r.slot));
    }
  }
  FUZZ_CHECK(!std::filesystem::exists(std::filesystem::symlink_status(pty_link())));
  FUZZ_CHECK(!std::filesystem::exists(socket_path()));
  FUZZ_CHECK(open_fds() == fds_before);
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
