// Fuzz target: rpmsg::Channels (both sides' rpmsg endpoint logic) against a hostile peer: every
// rpmsg the peer writes goes through Channels::on_message(), the name service included, which
// creates and removes socket files named by the peer.
//
// Input (missing bytes read as zero):
//   u8 cfg   bit 0: VIRTIO_RPMSG_F_NS negotiated at the first link_up; bit 1: one local channel
//            "svc" is opened through announce.sock before the peer speaks; bit 2: the Port has no
//            room at first (can_send() false)
//   then operations until the input ends: u8 opcode (mod kOps) and its arguments (see run_op).
//
// Each input gets fresh Channels over a fresh EventLoop in one scratch directory under /tmp.
// Checks (abort on violation), after every operation: the directory holds only announce.sock and
// one <name>.sock per peer channel (the names the peer announced, each a valid rpmsg name: none
// escapes the directory), at most kMaxPeerChannels of them; what Channels gives the Port fits an
// rpmsg (payload <= kRpmsgMaxPayload) and goes out only while can_send() says so; every message
// is counted (received or bad). After the input, destroying Channels leaves the directory empty.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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
#include "vepf/rpmsg/channels.hpp"

namespace vepf::fuzz {
namespace {

namespace fs = std::filesystem;

const char* scratch() { return rpmsg_scratch(); }

struct Harness {
  std::string dir = std::string(scratch()) + "/side";
  os::EventLoop loop;
  CheckingPort port;
  std::optional<rpmsg::Channels> ch;
  std::vector<os::Fd> clients;
  std::uint64_t messages = 0;
  std::uint64_t bad_before = 0;

  bool start(std::uint8_t cfg) {
    std::error_code ec;
    FUZZ_CHECK(!fs::exists(dir, ec) || fs::is_empty(dir, ec));
    auto l = os::EventLoop::create();
    if (!l) return false;
    loop = std::move(*l);
    ch.emplace(dir, port, "fuzz.rpmsg", "fuzz", 4);
    FUZZ_CHECK(ch->start(loop).has_value());
    port.room = !(cfg & 4);
    ch->link_up(cfg & 1);
    if (cfg & 2) {
      auto c = os::connect_seqpacket(dir + "/announce.sock");
      FUZZ_CHECK(c.has_value());
      (void)::send(c->get(), "svc", 3, MSG_NOSIGNAL);
      clients.push_back(std::move(*c));
      for (int i = 0; i < 3; ++i) (void)loop.run_once(0);
    }
    return true;
  }

  /// The directory as the peer's announcements must leave it.
  void check_dir() const {
    std::size_t socks = 0;
    bool announce = false;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (f == "announce.sock") {
        announce = true;
        continue;
      }
      FUZZ_CHECK(f.size() > 5 && f.compare(f.size() - 5, 5, ".sock") == 0);
      const std::string name = f.substr(0, f.size() - 5);
      FUZZ_CHECK(layout::rpmsg_name_valid(name.data(), name.size()));
      ++socks;
    }
    FUZZ_CHECK(announce);
    FUZZ_CHECK(socks == ch->peer_channels());
    FUZZ_CHECK(ch->peer_channels() <= rpmsg::Channels::kMaxPeerChannels);
    // Nothing beside the side's directory in the scratch directory: no name escaped it.
    for (const auto& e : fs::directory_iterator(scratch()))
      FUZZ_CHECK(e.path().filename() == "side");
  }

  void message(std::span<const std::byte> m) {
    ch->on_message(m);
    ch->flush_received();  // as a side does after each burst
    ++messages;
    const auto& s = ch->stats();
    FUZZ_CHECK(s.received + s.bad >= messages);  // every message counted, a bad NS message twice
  }

  void rpmsg(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
    message(make_rpmsg(src, dst, payload));
  }

  static constexpr unsigned kOps = 8;

  void run_op(ByteReader& in) {
    switch (in.u8() % kOps) {
      case 0: {  // raw bytes as the peer left them: u16 length, bytes
        const std::size_t n = in.u16() % 600;
        message(std::as_bytes(in.bytes(n)));
        break;
      }
      case 1: {  // a well-formed rpmsg to an address: u32 src, u8 dst kind, u32 dst, u16 n, bytes
        const std::uint32_t src = in.u32();
        const std::uint8_t kind = in.u8();
        std::uint32_t dst = in.u32();
        if (kind % 3 == 0) dst = layout::kRpmsgFirstDynamicAddr + (dst % 8);  // where ours live
        if (kind % 3 == 1) dst = layout::kRpmsgNsAddr;
        rpmsg(src, dst, std::as_bytes(in.bytes(in.u16() % 520)));
        break;
      }
      case 2:  // a name-service message (read_ns)
        message(read_ns(in));
        break;
      case 3:
        ch->link_down();
        break;
      case 4:
        ch->link_up(in.u8() & 1);
        break;
      case 5:
        port.room = !port.room;
        if (port.room) ch->resume();
        break;
      case 6:
        (void)loop.run_once(0);
        break;
      case 7: {  // a local client connects to a peer channel, if there is one: u8 which
        const std::uint8_t which = in.u8();
        std::vector<std::string> socks;
        for (const auto& e : fs::directory_iterator(dir)) {
          if (e.path().filename() != "announce.sock") socks.push_back(e.path().string());
        }
        if (socks.empty()) break;
        if (auto c = os::connect_seqpacket(socks[which % socks.size()]))
          clients.push_back(std::move(*c));
        (void)loop.run_once(0);
        break;
      }
    }
    check_dir();
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
    h.clients.clear();
    h.ch.reset();
  }
  // Destroyed: every socket file it made is gone (the side's directory stays, empty).
  FUZZ_CHECK(std::filesystem::is_empty(std::string(scratch()) + "/side"));
  return 0;
}
