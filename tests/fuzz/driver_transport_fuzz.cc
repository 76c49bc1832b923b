// Fuzz target: DriverTransport (vepf-host's side of the control region, LAYOUT.md) against a
// hostile EP that writes anything into its own window (the header, device lines, acks, config
// spaces) and into the RC mailbox, between calls and while a request waits for its ack.
//
// Input (missing bytes read as zero): u8 ack_timeout_ms (mod 3), then operations until the
// input ends: u8 opcode (mod kOps) and its arguments (see run_op()). While a request waits, the
// wait hook takes u8 actions from the same input: answer every pending request with a result
// and a value, write a word anywhere in the EP window, or give up (also when the input ran out or
// after kHookTurns turns), so that no input waits for the clock.
//
// The EP window starts as a real DeviceTransport left it after init() and add_device() of one
// FakeVirtioDevice; nothing answers after that but the input.
// Checks (abort on violation): every access of the driver is one the strict link model allows
// (aligned, allowed widths, inside the windows: fuzz_support.hpp turns a violation into a crash);
// no byte outside the windows changes; scan() reports only slots < kMaxDevices with 1..
// kMaxQueuesPerDevice queues; read_config() never writes past its buffer; once epoch_changed()
// said the EP restarted, no request writes to the EP window (kLinkDown) until attach(); every
// call returns (the wait hook bounds the waits).

#include <linux/virtio_config.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "support/fake_device.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::fuzz {
namespace {

using layout::DeviceLine;
using layout::DriverLine;
using layout::EpfHeader;
using layout::LinkDriverLine;

constexpr std::size_t kEpSize = 0x10000 + layout::kControlRegionSize;
constexpr std::size_t kRcSize = 0x4000;
constexpr int kHookTurns = 8;

struct Harness {
  explicit Harness(ByteReader& input) : in(input) {}

  ByteReader& in;
  test::LinkWindows w{kEpSize, kRcSize};
  test::FakeDeviceLink dl{w};
  test::FakeDriverLink drl{w, dl};
  test::FakeVirtioDevice fdev;
  std::optional<transport::DeviceTransport> dev;
  std::optional<transport::DriverTransport> drv;
  std::vector<transport::DeviceInfo> seen;
  bool gone = false;  // epoch_changed() said so, and no attach() since
  int turns = 0;

  bool start() {
    dev.emplace(dl, 0x5eed0001);
    if (!dev->init() || !dev->add_device(&fdev)) return false;
    drl.set_device(nullptr);  // from here on the EP is the input
    drv.emplace(drl, std::chrono::milliseconds(in.u8() % 3));
    drv->set_wait_hook([this] { return hook(); });
    return true;
  }

  void ep_word(std::uint32_t off, std::uint32_t v) {
    off = (off % static_cast<std::uint32_t>(kEpSize)) & ~3u;
    test::poke<std::uint32_t>(w.ep(), off, v);
  }

  /// The hostile EP while a request waits: u8 action (mod 3) and its arguments.
  bool hook() {
    if (in.empty() || ++turns > kHookTurns) return false;
    switch (in.u8() % 3) {
      case 0: {  // answer whatever waits: u32 result, u32 value
        const std::uint32_t result = in.u32(), value = in.u32();
        const auto seq = test::peek<std::uint32_t>(
            w.ep(), layout::link_line_off(offsetof(LinkDriverLine, req_seq)));
        test::poke<std::uint32_t>(w.ep(), layout::header_off(offsetof(EpfHeader, link_ack_result)),
                                  result);
        test::poke<std::uint32_t>(w.ep(), layout::header_off(offsetof(EpfHeader, link_ack_seq)),
                                  seq);
        for (std::uint32_t s = 0; s < layout::kMaxDevices; ++s) {
          const auto rs = test::peek<std::uint32_t>(
              w.ep(), layout::driver_line_off(s, offsetof(DriverLine, req_seq)));
          test::poke<std::uint32_t>(
              w.ep(), layout::device_line_off(s, offsetof(DeviceLine, ack_result)), result);
          test::poke<std::uint32_t>(
              w.ep(), layout::device_line_off(s, offsetof(DeviceLine, ack_value)), value);
          test::poke<std::uint32_t>(w.ep(),
                                    layout::device_line_off(s, offsetof(DeviceLine, ack_seq)), rs);
        }
        return true;
      }
      case 1: {  // a word anywhere in the EP window: u32 offset, u32 value
        const std::uint32_t off = in.u32();
        ep_word(off, in.u32());
        return true;
      }
      default:
        return false;
    }
  }

  std::uint32_t slot_arg() {
    const std::uint8_t b = in.u8();
    if (!seen.empty() && (b & 0x80)) return seen[b % seen.size()].slot;
    return b % (layout::kMaxDevices + 2);  // sometimes out of range
  }

  /// A request on the control path: after epoch_changed(), nothing may reach the EP window (the
  /// request fails: kLinkDown, or kInvalidArgument for arguments checked first).
  template <class F>
  void request(F&& f) {
    turns = 0;
    const auto writes = w.drv_counters.posted_writes;
    auto r = f();
    if (gone) {
      FUZZ_CHECK(!r &&
                 (r.error().code == Errc::kLinkDown || r.error().code == Errc::kInvalidArgument));
      FUZZ_CHECK(w.drv_counters.posted_writes == writes);
    }
  }

  static constexpr unsigned kOps = 13;

  void run_op() {
    switch (in.u8() % kOps) {
      case 0: {
        turns = 0;
        if (drv->attach()) gone = false;
        break;
      }
      case 1: {
        auto r = drv->scan();
        if (r) {
          seen = *r;
          for (const auto& d : seen) {
            FUZZ_CHECK(d.slot < layout::kMaxDevices);
            FUZZ_CHECK(d.device_id != 0);
            FUZZ_CHECK(d.num_queues >= 1 && d.num_queues <= layout::kMaxQueuesPerDevice);
          }
        }
        break;
      }
      case 2: {  // negotiate: u8 slot, u64 offered, u64 wanted
        const std::uint32_t s = slot_arg();
        const std::uint64_t offered = std::uint64_t{in.u32()} | std::uint64_t{in.u32()} << 32;
        const std::uint64_t wanted = std::uint64_t{in.u32()} | std::uint64_t{in.u32()} << 32;
        request([&] {
          auto r = drv->negotiate(s, offered, wanted);
          if (r) FUZZ_CHECK((*r & ~(offered & wanted)) == 0);
          return r.has_value() ? Result<void>{} : Result<void>(tl::unexpected(r.error()));
        });
        break;
      }
      case 3: {  // enable_queue: u8 slot, u8 q, u16 size, three u32 address seeds
        const std::uint32_t s = slot_arg();
        const std::uint16_t q = in.u8() % (layout::kMaxQueuesPerDevice + 1);
        const std::uint16_t size = in.u16();
        const std::uint64_t a = test::ep_addr(in.u32() % kEpSize),
                            b = test::ep_addr(in.u32() % kEpSize),
                            c = test::rc_addr(in.u32() % kRcSize);
        request([&] { return drv->enable_queue(s, q, size, a, b, c); });
        break;
      }
      case 4: {
        const std::uint32_t s = slot_arg();
        request([&] { return drv->driver_ok(s); });
        break;
      }
      case 5: {
        const std::uint32_t s = slot_arg();
        request([&] { return drv->reset(s); });
        break;
      }
      case 6: {  // set_status: u8 slot, u8 status
        const std::uint32_t s = slot_arg();
        const std::uint8_t st = in.u8();
        request([&] {
          auto r = drv->set_status(s, st);
          return r.has_value() ? Result<void>{} : Result<void>(tl::unexpected(r.error()));
        });
        break;
      }
      case 7:
      case 8: {  // read_config / read_config_wait: u8 slot, u16 length (guarded buffer)
        const std::uint32_t s = slot_arg();
        const std::size_t n = in.u16() % (layout::kConfigSpaceSize + 8);
        std::vector<std::byte> buf(n + 16, std::byte{0xa5});
        const std::span<std::byte> out{buf.data() + 8, n};
        turns = 0;
        auto r = (in.u8() & 1) ? drv->read_config(s, out) : drv->read_config_wait(s, out);
        if (!r) FUZZ_CHECK(r.error().code != Errc::kSystem);
        for (std::size_t i = 0; i < 8; ++i) {
          FUZZ_CHECK(buf[i] == std::byte{0xa5});
          FUZZ_CHECK(buf[n + 8 + i] == std::byte{0xa5});
        }
        break;
      }
      case 9: {  // the looks that cross no request
        const std::uint32_t s = slot_arg();
        (void)drv->device_status(s);
        (void)drv->broken_queues(s);
        (void)drv->mailbox_seq();
        (void)drv->table_generation();
        (void)drv->still_alive();
        break;
      }
      case 10:
        if (drv->epoch_changed()) gone = true;
        break;
      case 11: {  // the EP writes a word of its window: u32 offset, u32 value
        const std::uint32_t off = in.u32();
        ep_word(off, in.u32());
        break;
      }
      case 12: {  // the EP writes a word of the RC mailbox: u16 offset, u32 value
        const std::uint32_t off = (in.u16() % layout::kRcMailboxSize) & ~3u;
        test::poke<std::uint32_t>(w.rc(), off, in.u32());
        break;
      }
    }
  }
};

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::fuzz;
  ByteReader in(data, size);
  Harness h(in);
  if (!h.start()) return 0;
  for (int ops = 0; !in.empty() && ops < 256; ++ops) h.run_op();
  FUZZ_CHECK(h.w.guards_intact());
  return 0;
}
