// vepf::rpmsg::Relay, an rpmsg device lent to one application in another process, against a fake
// Port and a real unix socket in a temporary directory (the application's end, frame by frame):
// the link state, messages both ways, the peer's announcements replayed to a late application,
// DESTROY for what a vanished application announced, one application at a time, flow control
// both ways, and bad frames from either side.

#include "vepf/rpmsg/relay.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "rpmsg_test_support.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::rpmsg {
namespace {

namespace fs = std::filesystem;
using layout::kRpmsgNsAddr;
using namespace test_support;

std::string frame(RelayFrame kind, const std::vector<std::byte>& body = {}) {
  std::string f(1, static_cast<char>(kind));
  f.append(reinterpret_cast<const char*>(body.data()), body.size());
  return f;
}

class RpmsgRelay : public SocketRouterTest {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);  // refusals are logged; the tests count them
    ASSERT_NO_FATAL_FAILURE(make("vepf-relay"));
    relay_ = std::make_unique<Relay>(dir_.string(), port_, "test.rpmsg", "test");
    ASSERT_TRUE(relay_->start(loop_));
  }
  void drop_router() override { relay_.reset(); }

  /// An application's connection, its greeting (the first frame) read.
  int attach(std::string* greeting = nullptr) {
    const int fd = connect(kRelaySocketName);
    const std::string g = get(fd);
    if (greeting != nullptr) *greeting = g;
    return fd;
  }
  void receive(const std::vector<std::byte>& m) {
    relay_->on_message(m);
    relay_->flush_received();
  }

  std::unique_ptr<Relay> relay_;
};

TEST_F(RpmsgRelay, GreetsWithTheLinkStateAndFollowsIt) {
  std::string g;
  const int app = attach(&g);
  EXPECT_EQ(g, frame(RelayFrame::kLinkDown));
  EXPECT_TRUE(relay_->attached());
  relay_->link_up(true);
  EXPECT_EQ(get(app), frame(RelayFrame::kLinkUp, {std::byte{1}}));
  relay_->link_down();
  EXPECT_EQ(get(app), frame(RelayFrame::kLinkDown));
  relay_->link_up(false);
  EXPECT_EQ(get(app), frame(RelayFrame::kLinkUp, {std::byte{0}}));
}

TEST_F(RpmsgRelay, PassesRpmsgsBothWaysUnchanged) {
  relay_->link_up(true);
  std::string g;
  const int app = attach(&g);
  EXPECT_EQ(g, frame(RelayFrame::kLinkUp, {std::byte{1}}));
  put(app, frame(RelayFrame::kMessage, rpmsg(1024, 1030, bytes("to the peer"))));
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 1; }));
  EXPECT_EQ(port_.sent[0].src, 1024u);
  EXPECT_EQ(port_.sent[0].dst, 1030u);
  EXPECT_EQ(port_.sent[0].payload, "to the peer");
  EXPECT_GE(port_.flushes, 1);
  const auto m = rpmsg(1030, 1024, bytes("from the peer"));
  receive(m);
  EXPECT_EQ(get(app), frame(RelayFrame::kMessage, m));
  EXPECT_EQ(relay_->stats().sent, 1u);
  EXPECT_EQ(relay_->stats().received, 1u);
}

TEST_F(RpmsgRelay, ReplaysThePeersLiveAnnouncementsToALateApplication) {
  relay_->link_up(true);
  receive(ns_msg("svc", 1030, layout::kRpmsgNsCreate));
  receive(ns_msg("old", 1031, layout::kRpmsgNsCreate));
  receive(ns_msg("old", 1031, layout::kRpmsgNsDestroy));
  receive(rpmsg(1030, 1024, bytes("nobody hears this")));
  EXPECT_EQ(relay_->stats().no_endpoint, 4u);
  EXPECT_EQ(relay_->peer_channels(), 1u);
  std::string g;
  const int app = attach(&g);
  EXPECT_EQ(g, frame(RelayFrame::kLinkUp, {std::byte{1}}));
  EXPECT_EQ(get(app), frame(RelayFrame::kMessage, ns_msg("svc", 1030, layout::kRpmsgNsCreate)));
  EXPECT_TRUE(quiet(app));  // not "old", not the message sent while nobody was attached
  // A link reset forgets them: the next application hears only what is announced after it.
  relay_->link_down();
  EXPECT_EQ(relay_->peer_channels(), 0u);
}

TEST_F(RpmsgRelay, TellsThePeerWhatAVanishedApplicationAnnounced) {
  relay_->link_up(true);
  const int app = attach();
  put(app, frame(RelayFrame::kMessage, ns_msg("mine", 1024, layout::kRpmsgNsCreate)));
  put(app, frame(RelayFrame::kMessage, ns_msg("brief", 1025, layout::kRpmsgNsCreate)));
  put(app, frame(RelayFrame::kMessage, ns_msg("brief", 1025, layout::kRpmsgNsDestroy)));
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 3; }));
  EXPECT_EQ(relay_->local_channels(), 1u);
  ::close(app);  // as a crash would: no DESTROY from the application
  fds_.back() = -1;
  ASSERT_TRUE(pump([&] { return !relay_->attached(); }));
  ASSERT_EQ(port_.sent.size(), 4u);
  const Sent& d = port_.sent.back();
  EXPECT_EQ(d.src, 1024u);
  EXPECT_EQ(d.dst, kRpmsgNsAddr);
  const auto ns = ns_of(d);
  EXPECT_STREQ(ns.name, "mine");
  EXPECT_EQ(ns.addr.to_cpu(), 1024u);
  EXPECT_EQ(ns.flags.to_cpu(), layout::kRpmsgNsDestroy);
  EXPECT_EQ(relay_->local_channels(), 0u);
  // The next application may take the device.
  std::string g;
  (void)attach(&g);
  EXPECT_EQ(g, frame(RelayFrame::kLinkUp, {std::byte{1}}));
}

TEST_F(RpmsgRelay, TakesOneApplicationAtATime) {
  relay_->link_up(true);
  const int first = attach();
  std::string g;
  const int second = attach(&g);
  EXPECT_EQ(g, frame(RelayFrame::kTaken));
  EXPECT_EQ(get(second), "");  // closed after it
  EXPECT_EQ(relay_->stats().refused_connections, 1u);
  put(first, frame(RelayFrame::kMessage, rpmsg(1024, 1030, bytes("still mine"))));
  EXPECT_TRUE(pump([&] { return port_.sent.size() == 1; }));
}

TEST_F(RpmsgRelay, DisconnectsAnApplicationThatSendsWhatIsNoRpmsg) {
  relay_->link_up(true);
  const std::vector<std::string> bad = {
      frame(RelayFrame::kLinkUp, {std::byte{1}}),   // not the application's to send
      frame(RelayFrame::kMessage, bytes("short")),  // less than a header
      std::string(600, '\x01'),                     // above 513 bytes
  };
  for (const auto& f : bad) {
    const int app = attach();
    put(app, f);
    EXPECT_EQ(get(app), "") << f.size();
    EXPECT_TRUE(pump([&] { return !relay_->attached(); }));
  }
  EXPECT_EQ(relay_->stats().refused, bad.size());
  EXPECT_TRUE(port_.sent.empty());
}

TEST_F(RpmsgRelay, DropsMalformedRpmsgsFromThePeer) {
  relay_->link_up(true);
  const int app = attach();
  receive(bytes("short"));
  auto lying = rpmsg(1030, 1024, bytes("abc"));
  lying[layout::kRpmsgHdrSize - 4] = std::byte{200};  // hdr.len past the end
  receive(lying);
  receive(ns_msg("", 1030, layout::kRpmsgNsCreate));  // a name-service message with no name
  EXPECT_EQ(relay_->stats().bad, 3u);
  EXPECT_TRUE(quiet(app));
}

TEST_F(RpmsgRelay, ReadsTheApplicationOnlyWhileThePortHasRoom) {
  relay_->link_up(true);
  const int app = attach();
  port_.room = false;
  relay_->resume();  // the side found the Port full
  put(app, frame(RelayFrame::kMessage, rpmsg(1024, 1030, bytes("wait"))));
  settle();
  EXPECT_TRUE(port_.sent.empty());
  port_.room = true;
  relay_->resume();
  EXPECT_TRUE(pump([&] { return port_.sent.size() == 1; }));
}

TEST_F(RpmsgRelay, HoldsThePeersMessagesForAFullApplicationSocketAndLosesNone) {
  relay_->link_up(true);
  const int app = attach();
  std::size_t sent = 0;
  while (relay_->can_take() && sent < 100000) {
    receive(rpmsg(1030, 1024, bytes("message " + std::to_string(sent))));
    ++sent;
  }
  ASSERT_FALSE(relay_->can_take()) << "the socket never filled";
  EXPECT_GE(relay_->stats().held, 1u);
  std::size_t got = 0;
  while (got < sent) {
    const std::string f = get(app);
    ASSERT_FALSE(f.empty()) << got << " of " << sent;
    ASSERT_EQ(
        f, frame(RelayFrame::kMessage, rpmsg(1030, 1024, bytes("message " + std::to_string(got)))));
    ++got;
  }
  EXPECT_TRUE(relay_->can_take());
  EXPECT_GE(port_.receive_agains, 1);
  EXPECT_EQ(relay_->stats().dropped, 0u);
}

TEST(RpmsgRelayAttachment, KeepsTheApplicationAcrossProbes) {
  spdlog::set_level(spdlog::level::off);
  const auto dir = fs::temp_directory_path() / ("vepf-relay-att-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto loop = os::EventLoop::create();
  ASSERT_TRUE(loop);
  Relay relay(dir.string(), "test.rpmsg", "test");
  const auto attachment = relay.attachment();
  FakePort first, second;
  auto probe = attachment(first);
  ASSERT_TRUE(probe->start(*loop));
  probe->link_up(true);
  auto s = os::connect_seqpacket((dir / kRelaySocketName).string());
  ASSERT_TRUE(s);
  const int app = s->get();
  auto next = [&] {
    char b[64];
    for (int i = 0; i < 200; ++i) {
      const ssize_t n = ::recv(app, b, sizeof(b), MSG_DONTWAIT);
      if (n >= 0) return std::string(b, static_cast<std::size_t>(n));
      EXPECT_TRUE(loop->run_once(10));
    }
    return std::string("(nothing)");
  };
  EXPECT_EQ(next(), frame(RelayFrame::kLinkUp, {std::byte{1}}));
  probe.reset();  // the device is re-probed (NEEDS_RESET, an EP restart)
  EXPECT_EQ(next(), frame(RelayFrame::kLinkDown));
  probe = attachment(second);
  ASSERT_TRUE(probe->start(*loop));
  probe->link_up(true);
  EXPECT_EQ(next(), frame(RelayFrame::kLinkUp, {std::byte{1}}));
  const std::string m = frame(RelayFrame::kMessage, rpmsg(1024, 1030, bytes("after")));
  ASSERT_EQ(::send(app, m.data(), m.size(), MSG_NOSIGNAL), static_cast<ssize_t>(m.size()));
  for (int i = 0; i < 200 && second.sent.empty(); ++i) ASSERT_TRUE(loop->run_once(10));
  ASSERT_EQ(second.sent.size(), 1u);
  EXPECT_TRUE(first.sent.empty());
  EXPECT_TRUE(relay.attached());
  probe.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vepf::rpmsg
