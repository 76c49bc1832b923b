// Fuzz target: rpmsg::Relay (an rpmsg device vepf-ep / vepf-host lends to one application)
// against a hostile peer and a hostile application at once: every rpmsg the peer writes goes
// through Relay::on_message(), every frame the application writes through its socket.
//
// Input (missing bytes read as zero):
//   u8 cfg   bit 0: link up at the start; bit 1: VIRTIO_RPMSG_F_NS; bit 2: an application is
//            attached before the first operation; bit 3: the Port has no room at first
//   then operations until the input ends: u8 opcode (mod kOps) and its arguments (see run_op).
//
// Each input gets a fresh Relay over a fresh EventLoop in one scratch directory under /tmp.
// Checks (abort on violation), after every operation: what the Relay gives the Port fits an
// rpmsg and goes out only while can_send() says so; every peer message is counted (received or
// bad); what it remembers stays within kMaxPeerChannels and kMaxAnnounced; each frame the
// application reads is a known kind of at most kRelayMaxFrame bytes, and a kMessage frame holds
// a well-formed rpmsg. After the input, destroying the Relay leaves the directory empty.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"
#include "rpmsg_fuzz.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/unix_socket.hpp"
#include "vepf/rpmsg/relay.hpp"

namespace vepf::fuzz {
namespace {

namespace fs = std::filesystem;

const char* scratch() { return rpmsg_scratch(); }

struct Harness {
  std::string dir = std::string(scratch()) + "/side";
  os::EventLoop loop;
  CheckingPort port;
  std::optional<rpmsg::Relay> relay;
  os::Fd app;
  std::uint64_t messages = 0;

  bool start(std::uint8_t cfg) {
    std::error_code ec;
    FUZZ_CHECK(!fs::exists(dir, ec) || fs::is_empty(dir, ec));
    auto l = os::EventLoop::create();
    if (!l) return false;
    loop = std::move(*l);
    relay.emplace(dir, port, "fuzz.rpmsg", "fuzz");
    FUZZ_CHECK(relay->start(loop).has_value());
    port.room = !(cfg & 8);
    if (cfg & 1) relay->link_up(cfg & 2);
    if (cfg & 4) attach();
    return true;
  }

  void attach() {
    if (auto c = os::connect_seqpacket(dir + "/" + rpmsg::kRelaySocketName)) app = std::move(*c);
    (void)loop.run_once(0);
  }

  /// Reads what waits for the application and checks each frame.
  void drain() {
    if (!app.valid()) return;
    std::byte b[1024];
    for (;;) {
      const ssize_t n = ::recv(app.get(), b, sizeof(b), MSG_DONTWAIT);
      if (n <= 0) return;
      const auto f = std::span{b, static_cast<std::size_t>(n)};
      FUZZ_CHECK(f.size() <= rpmsg::kRelayMaxFrame);
      switch (static_cast<rpmsg::RelayFrame>(f[0])) {
        case rpmsg::RelayFrame::kMessage: {
          const auto m = layout::parse_rpmsg(f.subspan(1));
          FUZZ_CHECK(m.has_value() && m->payload.size() <= layout::kRpmsgMaxPayload);
          break;
        }
        case rpmsg::RelayFrame::kLinkUp:
          FUZZ_CHECK(f.size() == 2);
          break;
        case rpmsg::RelayFrame::kLinkDown:
        case rpmsg::RelayFrame::kTaken:
          FUZZ_CHECK(f.size() == 1);
          break;
        default:
          FUZZ_CHECK(false);
      }
    }
  }

  void message(std::span<const std::byte> m) {
    relay->on_message(m);
    relay->flush_received();
    ++messages;
    const auto& s = relay->stats();
    FUZZ_CHECK(s.received + s.bad == messages);
  }

  void from_app(std::span<const std::byte> frame) {
    if (app.valid() && !frame.empty()) {
      (void)::send(app.get(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    (void)loop.run_once(0);
  }

  static constexpr unsigned kOps = 11;

  void run_op(ByteReader& in) {
    switch (in.u8() % kOps) {
      case 0: {  // raw bytes from the peer: u16 length, bytes
        message(std::as_bytes(in.bytes(in.u16() % 600)));
        break;
      }
      case 1: {  // a well-formed rpmsg from the peer: u32 src, u32 dst, u16 n, bytes
        const std::uint32_t src = in.u32();
        const std::uint32_t dst = in.u32();
        message(make_rpmsg(src, dst, std::as_bytes(in.bytes(in.u16() % 520))));
        break;
      }
      case 2:  // a name-service message from the peer
        message(read_ns(in));
        break;
      case 3:
        relay->link_down();
        break;
      case 4:
        relay->link_up(in.u8() & 1);
        break;
      case 5:
        port.room = !port.room;
        if (port.room) relay->resume();
        break;
      case 6:
        (void)loop.run_once(0);
        break;
      case 7:  // the application comes (a second one is refused) or goes
        if (in.u8() & 1) {
          attach();
        } else {
          app.reset();
          (void)loop.run_once(0);
        }
        break;
      case 8: {  // raw bytes from the application: u16 length, bytes
        from_app(std::as_bytes(in.bytes(in.u16() % 600)));
        break;
      }
      case 9: {  // a kMessage frame from the application with a name-service message in it
        auto m = read_ns(in);
        m.insert(m.begin(), static_cast<std::byte>(rpmsg::RelayFrame::kMessage));
        from_app(m);
        break;
      }
      case 10:
        drain();
        break;
    }
    FUZZ_CHECK(relay->peer_channels() <= rpmsg::Relay::kMaxPeerChannels);
    FUZZ_CHECK(relay->local_channels() <= rpmsg::Relay::kMaxAnnounced);
  }
};

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::fuzz;
  ByteReader in(data, size);
  {
    Harness h;
    if (!h.start(in.u8())) return 0;
    for (int ops = 0; !in.empty() && ops < 512; ++ops) h.run_op(in);
    h.drain();
    h.app.reset();
    h.relay.reset();
  }
  FUZZ_CHECK(std::filesystem::is_empty(std::string(scratch()) + "/side"));
  return 0;
}
