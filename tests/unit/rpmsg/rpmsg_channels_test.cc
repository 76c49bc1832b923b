// vepf::rpmsg::Channels, the channel logic both vepf-ep and vepf-host use, against a fake Port
// and real unix sockets in a temporary directory: announce socket, name-service CREATE/DESTROY
// in both directions, per-client addresses, reply addresses, flow control, and peer-written
// name-service messages that must be counted and dropped.

#include "vepf/rpmsg/channels.hpp"

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

class RpmsgChannels : public SocketRouterTest {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // Channels logs to the default logger here
    ASSERT_NO_FATAL_FAILURE(make("vepf-rpch"));
    ch_ = std::make_unique<Channels>(dir_.string(), port_, "test.rpmsg", "test");
    ASSERT_TRUE(ch_->start(loop_));
  }
  void drop_router() override { ch_.reset(); }

  /// Opens local channel `name` through announce.sock; returns its connection.
  int open_local(const std::string& name) {
    const std::size_t before = ch_->local_channels();
    const int fd = connect("announce.sock");
    put(fd, name);
    EXPECT_TRUE(pump([&] { return ch_->local_channels() == before + 1; })) << name;
    return fd;
  }
  /// One message from the peer, as a side hands it over (a burst of one).
  void receive(const std::vector<std::byte>& m) {
    ch_->on_message(m);
    ch_->flush_received();
  }

  std::unique_ptr<Channels> ch_;
};

TEST(RpmsgEncode, WritesTheLinuxHeader) {
  std::vector<std::byte> m(layout::kRpmsgHdrSize + 3);
  const auto p = bytes("abc");
  ASSERT_EQ(encode(m, 1024, 53, p), m.size());
  const auto parsed = layout::parse_rpmsg(m);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->src, 1024u);
  EXPECT_EQ(parsed->dst, 53u);
  ASSERT_EQ(parsed->payload.size(), 3u);
  EXPECT_EQ(std::memcmp(parsed->payload.data(), "abc", 3), 0);
}

TEST_F(RpmsgChannels, AnnounceSendsCreateFromTheChannelAddressToTheNameService) {
  ch_->link_up(true);
  const int c = open_local("svc");
  ASSERT_EQ(port_.sent.size(), 1u);
  const Sent s = port_.sent[0];
  EXPECT_GE(s.src, layout::kRpmsgFirstDynamicAddr);
  EXPECT_EQ(s.dst, kRpmsgNsAddr);
  const auto ns = ns_of(s);
  EXPECT_STREQ(ns.name, "svc");
  EXPECT_EQ(ns.addr.to_cpu(), s.src) << "rpmsg_ns: announced from the channel's own address";
  EXPECT_EQ(ns.flags.to_cpu(), layout::kRpmsgNsCreate);
  EXPECT_GE(port_.flushes, 1);

  ::close(c);
  fds_.pop_back();
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 2; }));
  const auto d = ns_of(port_.sent[1]);
  EXPECT_STREQ(d.name, "svc");
  EXPECT_EQ(d.addr.to_cpu(), s.src);
  EXPECT_EQ(d.flags.to_cpu(), layout::kRpmsgNsDestroy);
  EXPECT_EQ(ch_->local_channels(), 0u);
}

TEST_F(RpmsgChannels, ChannelsNamedBeforeLinkUpAreAnnouncedAtLinkUp) {
  open_local("early");
  settle();
  EXPECT_TRUE(port_.sent.empty()) << "nothing goes out before the queues are up";
  ch_->link_up(true);
  ASSERT_EQ(port_.sent.size(), 1u);
  EXPECT_STREQ(ns_of(port_.sent[0]).name, "early");

  // A reset forgets the peer; the next link_up() announces the channel again.
  ch_->link_down();
  ch_->link_up(true);
  ASSERT_EQ(port_.sent.size(), 2u);
  EXPECT_STREQ(ns_of(port_.sent[1]).name, "early");
}

TEST_F(RpmsgChannels, WithoutNameServiceNothingIsAnnouncedAndPeerAnnouncementsAreBad) {
  ch_->link_up(false);
  open_local("quiet");
  settle();
  EXPECT_TRUE(port_.sent.empty());
  receive(ns_msg("x", 2000, layout::kRpmsgNsCreate));
  EXPECT_EQ(ch_->stats().bad, 1u);
  EXPECT_EQ(ch_->peer_channels(), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "x.sock"));
}

TEST_F(RpmsgChannels, LocalChannelWaitsForItsPeerThenSendsToTheAnnouncedAddress) {
  ch_->link_up(true);
  const int c = open_local("svc");
  const std::uint32_t addr = port_.sent.at(0).src;
  put(c, "hello");
  settle();
  ASSERT_EQ(port_.sent.size(), 1u) << "no peer yet: the message stays in the socket";

  receive(ns_msg("svc", 700, layout::kRpmsgNsCreate));
  EXPECT_EQ(ch_->peer_channels(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "svc.sock"));
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 2; }));
  EXPECT_EQ(port_.sent[1].src, addr);
  EXPECT_EQ(port_.sent[1].dst, 700u);
  EXPECT_EQ(port_.sent[1].payload, "hello");
}

TEST_F(RpmsgChannels, LocalChannelAnswersTheLatestWriter) {
  ch_->link_up(true);
  const int c = open_local("echo");
  const std::uint32_t addr = port_.sent.at(0).src;
  receive(rpmsg(2000, addr, bytes("ping")));
  EXPECT_EQ(get(c), "ping");
  put(c, "pong");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 2; }));
  EXPECT_EQ(port_.sent[1].src, addr);
  EXPECT_EQ(port_.sent[1].dst, 2000u);

  receive(rpmsg(2001, addr, bytes("again")));
  EXPECT_EQ(get(c), "again");
  put(c, "back");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 3; }));
  EXPECT_EQ(port_.sent[2].dst, 2001u);
  EXPECT_EQ(ch_->stats().received, 2u);
  EXPECT_EQ(ch_->stats().received_bytes, 9u);
}

TEST_F(RpmsgChannels, PeerChannelGivesEachClientItsOwnAddress) {
  ch_->link_up(true);
  receive(ns_msg("peer-svc", 77, layout::kRpmsgNsCreate));
  ASSERT_TRUE(fs::exists(dir_ / "peer-svc.sock"));
  const int a = connect("peer-svc.sock");
  const int b = connect("peer-svc.sock");
  put(a, "from-a");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 1; }));
  put(b, "from-b");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 2; }));
  const Sent sa = port_.sent[0], sb = port_.sent[1];
  EXPECT_EQ(sa.payload, "from-a");
  EXPECT_EQ(sb.payload, "from-b");
  EXPECT_EQ(sa.dst, 77u);
  EXPECT_EQ(sb.dst, 77u);
  EXPECT_GE(sa.src, layout::kRpmsgFirstDynamicAddr);
  EXPECT_GE(sb.src, layout::kRpmsgFirstDynamicAddr);
  EXPECT_NE(sa.src, sb.src);

  receive(rpmsg(77, sb.src, bytes("for-b")));
  EXPECT_EQ(get(b), "for-b");
  char x;
  EXPECT_LT(::recv(a, &x, 1, MSG_DONTWAIT), 0) << "only the addressed client gets it";

  // Announced again with a new address: clients follow it.
  receive(ns_msg("peer-svc", 78, layout::kRpmsgNsCreate));
  put(a, "later");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 3; }));
  EXPECT_EQ(port_.sent[2].dst, 78u);

  receive(ns_msg("peer-svc", 78, layout::kRpmsgNsDestroy));
  EXPECT_FALSE(fs::exists(dir_ / "peer-svc.sock"));
  EXPECT_EQ(ch_->peer_channels(), 0u);
  EXPECT_EQ(get(a), "") << "DESTROY closes the clients";
  EXPECT_EQ(get(b), "");
}

TEST_F(RpmsgChannels, LinkDownClosesPeerChannelsAndStopsLocalTraffic) {
  ch_->link_up(true);
  const int local = open_local("svc");
  receive(ns_msg("svc", 900, layout::kRpmsgNsCreate));
  receive(ns_msg("other", 901, layout::kRpmsgNsCreate));
  const int client = connect("other.sock");
  put(client, "accepted?");
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 2; }));  // the CREATE of "svc", then this
  ch_->link_down();
  EXPECT_FALSE(fs::exists(dir_ / "svc.sock"));
  EXPECT_FALSE(fs::exists(dir_ / "other.sock"));
  EXPECT_EQ(get(client), "");
  EXPECT_EQ(ch_->local_channels(), 1u) << "local channels stay open across a reset";
  const std::size_t before = port_.sent.size();
  put(local, "while down");
  settle();
  EXPECT_EQ(port_.sent.size(), before);
  EXPECT_TRUE(fs::exists(dir_ / "announce.sock"));
}

TEST_F(RpmsgChannels, BadAndDuplicateLocalNamesAreRefused) {
  ch_->link_up(true);
  open_local("svc");
  for (const std::string& name :
       std::vector<std::string>{"svc", "a/b", "announce", std::string(32, 'n')}) {
    const int c = connect("announce.sock");
    put(c, name);
    EXPECT_EQ(get(c), "") << "'" << name << "' should be refused (connection closed)";
  }
  EXPECT_EQ(ch_->stats().refused, 4u);
  EXPECT_EQ(ch_->local_channels(), 1u);
  EXPECT_EQ(port_.sent.size(), 1u);
}

TEST_F(RpmsgChannels, OversizeMessageClosesTheConnection) {
  ch_->link_up(true);
  receive(ns_msg("big", 500, layout::kRpmsgNsCreate));
  const int c = connect("big.sock");
  put(c, std::string(layout::kRpmsgMaxPayload, 'x'));
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 1; }));
  put(c, std::string(layout::kRpmsgMaxPayload + 1, 'x'));
  EXPECT_EQ(get(c), "");
  EXPECT_EQ(ch_->stats().refused, 1u);
  EXPECT_EQ(port_.sent.size(), 1u);
}

TEST_F(RpmsgChannels, MalformedPeerMessagesAreCountedAndDropped) {
  ch_->link_up(true);
  std::vector<std::vector<std::byte>> bad;
  bad.push_back(std::vector<std::byte>(layout::kRpmsgHdrSize - 1));  // shorter than a header
  {
    auto m = rpmsg(1, 2, bytes("abcd"));
    m.pop_back();  // hdr.len says 4, 3 follow
    bad.push_back(m);
  }
  {
    auto m = ns_msg("short", 1500, layout::kRpmsgNsCreate);
    m.pop_back();
    layout::RpmsgHdr h;
    std::memcpy(&h, m.data(), sizeof(h));
    h.len = layout::le16::from_cpu(sizeof(layout::RpmsgNsMsg) - 1);  // a 39-byte payload
    std::memcpy(m.data(), &h, sizeof(h));
    bad.push_back(m);
  }
  bad.push_back(ns_msg(std::string(32, 'a'), 1500, layout::kRpmsgNsCreate));  // no NUL
  bad.push_back(ns_msg("a/b", 1500, layout::kRpmsgNsCreate));
  bad.push_back(ns_msg("..", 1500, layout::kRpmsgNsCreate));
  bad.push_back(ns_msg("", 1500, layout::kRpmsgNsCreate));
  bad.push_back(ns_msg("announce", 1500, layout::kRpmsgNsCreate));  // would replace announce.sock
  bad.push_back(ns_msg("flags", 1500, 7));
  bad.push_back(ns_msg("ns-addr", kRpmsgNsAddr, layout::kRpmsgNsCreate));
  for (const auto& m : bad) receive(m);
  EXPECT_EQ(ch_->stats().bad, bad.size());
  EXPECT_EQ(ch_->peer_channels(), 0u);
  EXPECT_TRUE(port_.sent.empty());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_)) files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"announce.sock"});
  EXPECT_TRUE(fs::exists(dir_ / "announce.sock"));

  receive(rpmsg(5, 4242, bytes("nobody")));
  EXPECT_EQ(ch_->stats().no_endpoint, 1u);
  receive(ns_msg("never-announced", 1500, layout::kRpmsgNsDestroy));  // ignored, as rpmsg_ns does
  EXPECT_EQ(ch_->stats().bad, bad.size());
}

TEST_F(RpmsgChannels, PeerChannelsAreCapped) {
  ch_->link_up(true);
  for (std::size_t i = 0; i <= Channels::kMaxPeerChannels; ++i) {
    receive(ns_msg("c" + std::to_string(i), static_cast<std::uint32_t>(2000 + i),
                   layout::kRpmsgNsCreate));
  }
  EXPECT_EQ(ch_->peer_channels(), Channels::kMaxPeerChannels);
  EXPECT_EQ(ch_->stats().bad, 1u);
}

TEST_F(RpmsgChannels, NoRoomHoldsAnnouncementsAndPausesReadingInOrder) {
  port_.room = false;
  ch_->link_up(true);
  receive(ns_msg("svc", 600, layout::kRpmsgNsCreate));
  const int c = open_local("svc");
  put(c, "one");
  put(c, "two");
  settle();
  EXPECT_TRUE(port_.sent.empty()) << "no room: the CREATE waits, the channel is not read";
  port_.room = true;
  ch_->resume();
  ASSERT_TRUE(pump([&] { return port_.sent.size() == 3; }));
  EXPECT_EQ(port_.sent[0].dst, kRpmsgNsAddr)
      << "the announcement goes before the channel's messages";
  EXPECT_EQ(port_.sent[1].payload, "one");
  EXPECT_EQ(port_.sent[2].payload, "two");
  EXPECT_EQ(port_.sent[1].dst, 600u);
}

TEST_F(RpmsgChannels, DestructorRemovesSocketFiles) {
  ch_->link_up(true);
  receive(ns_msg("gone", 800, layout::kRpmsgNsCreate));
  ASSERT_TRUE(fs::exists(dir_ / "gone.sock"));
  ch_.reset();
  EXPECT_FALSE(fs::exists(dir_ / "gone.sock"));
  EXPECT_FALSE(fs::exists(dir_ / "announce.sock"));
}

// [device.rpmsg] max_connections: connections on all the sockets together are bounded; a client
// past it is closed at once and counted (before, each one took a descriptor and an address).
TEST_F(RpmsgChannels, ConnectionsPastTheLimitAreClosedAndCounted) {
  ch_ = std::make_unique<Channels>(dir_.string(), port_, "test.rpmsg", "test", 3);
  ASSERT_TRUE(ch_->start(loop_));
  ch_->link_up(true);
  const int a = open_local("a");
  (void)a;
  receive(ns_msg("peer", 1030, layout::kRpmsgNsCreate));
  ASSERT_TRUE(pump([&] { return fs::exists(dir_ / "peer.sock"); }));
  const int p = connect("peer.sock");
  const int b = open_local("b");
  (void)p;
  (void)b;
  ASSERT_EQ(ch_->local_channels(), 2u);

  // A fourth connection, on either socket, is refused: end of file at once.
  const int over = connect("announce.sock");
  EXPECT_EQ(get(over), "");
  const int over2 = connect("peer.sock");
  EXPECT_EQ(get(over2), "");
  EXPECT_EQ(ch_->stats().refused_connections, 2u);
  EXPECT_EQ(ch_->local_channels(), 2u);

  // One closes: a new client is taken again.
  ::close(fds_[0]);
  fds_[0] = -1;
  ASSERT_TRUE(pump([&] { return ch_->local_channels() == 1; }));
  const int c = open_local("c");
  (void)c;
  EXPECT_EQ(ch_->local_channels(), 2u);
  EXPECT_EQ(ch_->stats().refused_connections, 2u);
}

TEST_F(RpmsgChannels, ASlowProgramIsWaitedForNotDroppedAndTheRingIsHeldBack) {
  ch_->link_up(true);
  const int c = open_local("svc");
  const std::uint32_t addr = port_.sent.at(0).src;
  // The program does not read: its socket fills, then the Router holds messages, in order, and
  // once kMaxHeld wait it asks the side to leave the peer's messages on the ring.
  int buf = 4096;
  ASSERT_EQ(::setsockopt(c, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf), 0);
  std::uint32_t n = 0;
  while (ch_->can_take() && n < 100000) {
    receive(rpmsg(900, addr, bytes("m" + std::to_string(n))));
    ++n;
  }
  ASSERT_FALSE(ch_->can_take()) << "the socket took " << n << " messages";
  EXPECT_GT(ch_->stats().held, 0u);
  EXPECT_EQ(ch_->stats().dropped, 0u);
  EXPECT_EQ(port_.receive_agains, 0);
  // The program reads everything, in order; the side is told to go on.
  for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(get(c), "m" + std::to_string(i));
  EXPECT_TRUE(ch_->can_take());
  EXPECT_EQ(port_.receive_agains, 1);
  EXPECT_EQ(ch_->stats().dropped, 0u);
  // Nothing held: straight into the socket again.
  receive(rpmsg(900, addr, bytes("after")));
  EXPECT_EQ(get(c), "after");
}

TEST_F(RpmsgChannels, HeldMessagesOfAClosedProgramAreCountedAndLetGo) {
  ch_->link_up(true);
  const int c = open_local("svc");
  const std::uint32_t addr = port_.sent.at(0).src;
  int buf = 4096;
  ASSERT_EQ(::setsockopt(c, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf), 0);
  while (ch_->can_take()) receive(rpmsg(900, addr, bytes("x")));
  const auto held = ch_->stats().held;
  ::shutdown(c, SHUT_RDWR);
  ASSERT_TRUE(pump([&] { return ch_->local_channels() == 0; }));
  EXPECT_TRUE(ch_->can_take());
  EXPECT_EQ(port_.receive_agains, 1);
  EXPECT_GE(held, 1u);                                  // the socket was found full
  EXPECT_EQ(ch_->stats().dropped, Channels::kMaxHeld);  // what waited for it
}

}  // namespace
}  // namespace vepf::rpmsg
