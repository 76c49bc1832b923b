// Fuzz target: a rogue device against vepf-host's real virtio-console driver (host::ConsoleDriver,
// its ports as ptys linked in a directory of its own, through the real DeviceTransport and
// DriverTransport over the fake links). The device offers MULTIPORT or not and a config of its
// choosing (max_nr_ports any u32, any size), sends control messages of any event, port, value and
// payload (PORT_ADD and PORT_REMOVE in any order, names of any bytes), writes port data with any
// used length, completes transmit chains with any length, writes any word of the RC window,
// changes its config and says DEVICE_NEEDS_RESET; meanwhile an application writes into the ports'
// ptys and reads what reached them.
//
// Input (missing bytes read as zero):
//   u8 cfg    bit 0: VIRTIO_CONSOLE_F_MULTIPORT; bit 1: VIRTIO_RING_F_EVENT_IDX; bit 2:
//             VIRTIO_CONSOLE_F_SIZE; bit 3: the driver-size extension; bit 4: queues of 4
//             entries instead of 16; bit 5: max_nr_ports is a raw u32 (read next), not the ports
//             the queues are for
//   u8 ports  1 + ports % 3: the ports the device has queues for
//   [u32 max_nr_ports]  (cfg bit 5)
//   u16 cols, u16 rows
//   then operations until the input ends, u8 opcode % 9:
//     0 the device sends a control message (console_fuzz.hpp), u8 claim (bit 0: a u32 used
//       length from the input instead of what it wrote)
//     1 the device fills port (u8 % ports)'s next receive buffer with u16 n % 1100 bytes, claim
//     2 the device completes the transmit chains of u8 which % (ports + 1) (the last: control
//       transmitq), claiming a u32 length (the same for each)
//     3 the device writes a 32-bit word of the RC window: u32 offset, u32 value
//     4 interrupt (the driver runs), then the event loop once
//     5 the device's config changes: u16 cols, u16 rows (then the control path runs)
//     6 the device says DEVICE_NEEDS_RESET and the driver is probed again
//     7 the application writes u16 n % 2048 bytes into port (u8 % ports)'s pty (opening its
//       link in the driver's directory first), then the event loop once
//     8 the application reads what port (u8 % ports)'s pty holds
//
// Checks (abort on violation): strict link model; at most kMaxQueued control messages wait in the
// driver; the driver's directory holds only symlinks, each port<N> of a port the device has or a
// name console_name_valid() accepts, at most two per port; the application never reads more than
// the driver counted as received, nor the driver sends more than the application wrote; while the
// device has not written the RC window behind the driver's back, the driver never counts more
// bytes received than the device's used lengths allowed (at most the buffer's 1024 bytes each);
// once the driver is gone, its directory is empty and every descriptor it opened is closed.

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "console_fuzz.hpp"
#include "drivers/console/console_driver.hpp"
#include "fuzz_support.hpp"
#include "rogue_device.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::fuzz {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kWindow = 256 * 1024;  // bytes of each window
constexpr std::size_t kMaxQueued = 8;        // the driver's max_control_queued (messages)

/// The rogue device: what it offers and writes comes from the input.
class RogueConsoleDevice final : public RogueDevice {
 public:
  RogueConsoleDevice(std::uint64_t features, std::uint32_t ports, std::uint16_t qsize,
                     std::uint32_t max_nr_ports, std::uint16_t cols, std::uint16_t rows)
      : RogueDevice(VIRTIO_ID_CONSOLE, features, layout::console_num_queues(ports), qsize) {
    cfg_.max_nr_ports = layout::le32::from_cpu(max_nr_ports);
    cfg_.cols = layout::le16::from_cpu(cols);
    cfg_.rows = layout::le16::from_cpu(rows);
  }
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }

  /// Writes `bytes` into the next buffer of queue `q` and claims `claimed` (or what it wrote).
  bool fill(std::uint16_t q, std::span<const std::byte> bytes,
            std::optional<std::uint32_t> claimed) {
    return complete_next(q, bytes, claimed);
  }
  /// Completes every chain of queue `q`, claiming `len` for each.
  void take(std::uint16_t q, std::uint32_t len) {
    ring::Vringh* v = queue(q);
    for (int k = 0; v != nullptr && k < 64; ++k) {
      auto c = v->pop();
      if (!c || !*c) break;
      if (!v->complete((*c)->head, len)) break;
    }
    interrupt();
  }
  void resize(std::uint16_t cols, std::uint16_t rows) {
    cfg_.cols = layout::le16::from_cpu(cols);
    cfg_.rows = layout::le16::from_cpu(rows);
    config_changed();
  }

 private:
  layout::VirtioConsoleConfig cfg_{};
};

/// The driver's directory of pty links, made once.
const std::string& host_dir() {
  static const std::string d = [] {
    std::string p = std::string(scratch_dir()) + "/console";
    std::filesystem::create_directory(p);
    return p;
  }();
  return d;
}

/// What the driver left in its directory is only what it may leave there.
void check_dir(std::uint32_t ports) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(host_dir())) {
    FUZZ_CHECK(e.is_symlink());
    const std::string name = e.path().filename().string();
    bool numbered = false;
    for (std::uint32_t p = 0; p < ports; ++p) numbered |= name == "port" + std::to_string(p);
    FUZZ_CHECK(numbered || layout::console_name_valid(name));
    ++n;
  }
  FUZZ_CHECK(n <= 2 * ports);
}

/// The application at the ptys' other ends.
struct App {
  /// Port `p`'s pty, opened through the driver's link (an invalid Fd when there is none).
  int fd(std::uint32_t p) {
    if (!fds[p].valid()) {
      const std::string link = host_dir() + "/port" + std::to_string(p);
      fds[p] = os::Fd(::open(link.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    }
    return fds[p].get();
  }
  std::vector<os::Fd> fds;
  std::uint64_t written = 0, read = 0;
};

void run(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (quiet_log("host.console"), true);
  (void)quiet;
  ByteReader in(data, size);
  const std::size_t fds_before = open_fds();
  const std::uint8_t cfg = in.u8();
  const std::uint32_t ports = 1 + in.u8() % 3;
  const std::uint32_t max_nr_ports = (cfg & 0x20) != 0 ? in.u32() : ports;
  const std::uint16_t cols = in.u16(), rows = in.u16();
  std::uint64_t features = bit(VIRTIO_F_VERSION_1);
  if (cfg & 1) features |= bit(VIRTIO_CONSOLE_F_MULTIPORT);
  if (cfg & 2) features |= bit(VIRTIO_RING_F_EVENT_IDX);
  if (cfg & 4) features |= bit(VIRTIO_CONSOLE_F_SIZE);
  if (cfg & 8) features |= bit(layout::kVepfConsoleFDriverSize);
  {
    // Before t: its transport resets it.
    RogueConsoleDevice rogue(features, ports, (cfg & 0x10) != 0 ? 4 : 16, max_nr_ports, cols, rows);
    test::TransportPair t(0x5eed000c, std::chrono::milliseconds(5), kWindow, kWindow);
    auto loop = os::EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    const auto info = attach_rogue(t, rogue);
    if (!info) return;
    App app;
    app.fds.resize(ports);
    std::optional<host::ConsoleDriver> con;  // after the transports and loop: it leaves them
    // Received and sent by drivers before this one (a reset makes a new driver).
    std::uint64_t received_before = 0, sent_before = 0;
    std::uint64_t given = 0;  // bytes the device's used lengths let the driver take
    bool scribbled = false;   // the device wrote the RC window (its used rings) directly
    auto received = [&] { return received_before + con->stats().received_bytes; };
    auto sent = [&] { return sent_before + con->stats().sent_bytes; };
    auto bring_up = [&]() -> bool {
      con.emplace(t.drv, *info, host_dir(), *loop, kMaxQueued);
      return con->probe().has_value();
    };
    auto again = [&]() -> bool {  // the driver reacts to the control path; false: probe failed
      if (con->on_control_event()) return true;
      received_before += con->stats().received_bytes;
      sent_before += con->stats().sent_bytes;
      con.reset();
      for (auto& f : app.fds) f.reset();
      return bring_up();
    };
    if (!bring_up()) return;

    while (!in.empty()) {
      switch (in.u8() % 9) {
        case 0: {
          const auto m = console_message(in, ports);
          const bool claim = (in.u8() & 1) != 0;
          (void)rogue.fill(layout::kConsoleCtrlRxQueue, m,
                           claim ? std::optional<std::uint32_t>(in.u32()) : std::nullopt);
          break;
        }
        case 1: {
          const std::uint32_t p = in.u8() % ports;
          const std::vector<std::byte> bytes(in.u16() % 1100, std::byte{0x61});
          const bool claim = (in.u8() & 1) != 0;
          const std::uint32_t claimed = claim ? in.u32() : 0;
          if (rogue.fill(layout::console_rx_queue(p), bytes,
                         claim ? std::optional<std::uint32_t>(claimed) : std::nullopt)) {
            // What the driver may take: the used length when it fits the buffer.
            const std::uint64_t len = claim ? claimed : std::min<std::size_t>(bytes.size(), 1024);
            if (len <= host::ConsoleDriver::kPortBufSize) given += len;
          }
          break;
        }
        case 2: {
          const std::uint32_t which = in.u8() % (ports + 1);
          rogue.take(which == ports ? layout::kConsoleCtrlTxQueue : layout::console_tx_queue(which),
                     in.u32());
          break;
        }
        case 3:
          scribble_rc(in, t.w);
          scribbled = true;
          break;
        case 4:
          con->on_interrupt();
          (void)loop->run_once(0);
          break;
        case 5: {
          const std::uint16_t c = in.u16();
          rogue.resize(c, in.u16());
          if (!again()) return;
          break;
        }
        case 6:
          rogue.needs_reset(layout::kConsoleCtrlRxQueue);
          if (!again()) return;
          break;
        case 7: {
          const std::uint32_t p = in.u8() % ports;
          const std::vector<std::byte> bytes(in.u16() % 2048, std::byte{0x62});
          const int fd = app.fd(p);
          if (fd >= 0 && !bytes.empty()) {
            const ssize_t n = ::write(fd, bytes.data(), bytes.size());
            if (n > 0) app.written += static_cast<std::uint64_t>(n);
          }
          (void)loop->run_once(0);
          break;
        }
        default: {
          const int fd = app.fd(in.u8() % ports);
          std::byte buf[4096];
          ssize_t n = 0;
          while (fd >= 0 && (n = ::read(fd, buf, sizeof buf)) > 0)
            app.read += static_cast<std::uint64_t>(n);
          break;
        }
      }
      FUZZ_CHECK(con->control_queued() <= kMaxQueued);
      FUZZ_CHECK(app.read <= received());
      FUZZ_CHECK(sent() <= app.written);
      if (!scribbled) FUZZ_CHECK(received() <= given);
    }
    check_dir(ports);
    if (verbose()) {
      const auto& st = con->stats();
      std::fprintf(
          stderr,
          "console_driver_fuzz: cfg %#x, ports %u, max_nr_ports %u, received %llu (given "
          "%llu, app read %llu), sent %llu (app wrote %llu), bad %llu, control dropped "
          "%llu, queued %zu\n",
          cfg, ports, max_nr_ports, static_cast<unsigned long long>(received()),
          static_cast<unsigned long long>(given), static_cast<unsigned long long>(app.read),
          static_cast<unsigned long long>(sent()), static_cast<unsigned long long>(app.written),
          static_cast<unsigned long long>(st.bad),
          static_cast<unsigned long long>(st.control_dropped), con->control_queued());
    }
    con.reset();
    FUZZ_CHECK(std::filesystem::is_empty(host_dir()));
  }
  FUZZ_CHECK(open_fds() == fds_before);
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
