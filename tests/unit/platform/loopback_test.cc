#include "vepf/platform/loopback.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::platform {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kEpSize = 64 * 1024;
constexpr std::size_t kRcSize = 32 * 1024;
constexpr milliseconds kTimeout{5000};

class Loopback : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/run/ep.sock"; }

  /// Creates the EP (unless it exists) and connects a host from another thread.
  void link_up() {
    if (!ep_) make_ep();
    Result<std::unique_ptr<LoopbackHost>> host = fail(Errc::kNotReady, "not run");
    std::jthread t([&] { host = LoopbackHost::connect(path_, kRcSize, kTimeout); });
    accept_one();
    t.join();
    ASSERT_TRUE(host) << host.error().what;
    host_ = std::move(*host);
  }
  void make_ep() {
    auto ep = LoopbackEp::create(path_, kEpSize);
    ASSERT_TRUE(ep) << ep.error().what;
    ep_ = std::move(*ep);
  }
  /// Waits for a connection on the EP's listening socket and runs accept_peer().
  Result<void> accept_one() {
    auto ready = os::poll_one(ep_->listen_fd(), POLLIN, kTimeout);
    EXPECT_TRUE(ready && *ready != 0) << "no connection came";
    auto r = ep_->accept_peer();
    EXPECT_TRUE(r || r.error().code != Errc::kNoSpace);
    return r;
  }
  /// Connects a raw client that sends `hello` with the given descriptors.
  os::Fd send_raw_hello(const LoopbackHello& hello, std::span<const int> fds) {
    auto sock = os::connect_seqpacket(path_);
    EXPECT_TRUE(sock);
    if (!sock) return {};
    EXPECT_TRUE(os::send_with_fds(sock->get(), std::as_bytes(std::span{&hello, 1}), fds));
    return std::move(*sock);
  }
  /// The client's view after the EP refused it: EOF (recv returns 0) and no EP hello.
  static void expect_closed_by_ep(int sock) {
    auto ready = os::poll_one(sock, POLLIN, kTimeout);
    ASSERT_TRUE(ready);
    std::array<std::byte, 64> buf{};
    std::vector<os::Fd> fds;
    auto n = os::recv_with_fds(sock, buf, fds, 2);
    ASSERT_TRUE(n) << n.error().what;
    EXPECT_EQ(*n, 0u);
  }

  vepf::test::TempDir tmp_{"vepf-loopback-test"};
  std::string dir_ = tmp_.path();
  std::string path_;
  std::unique_ptr<LoopbackEp> ep_;
  std::unique_ptr<LoopbackHost> host_;
};

TEST_F(Loopback, HandshakeWithEpFirst) {
  link_up();
  ASSERT_TRUE(host_);
  EXPECT_TRUE(ep_->connected());
  EXPECT_GE(ep_->peer_fd(), 0);
  EXPECT_EQ(ep_->ep_window().size(), kEpSize);
  EXPECT_FALSE(ep_->ep_window().remote());
  EXPECT_EQ(ep_->ep_window().id(), layout::WindowId::kEp);
  EXPECT_EQ(host_->ep_window().size(), kEpSize);
  EXPECT_TRUE(host_->ep_window().remote());
  EXPECT_EQ(host_->rc_window().size(), kRcSize);
  EXPECT_FALSE(host_->rc_window().remote());
  EXPECT_EQ(host_->rc_window().id(), layout::WindowId::kRc);
  EXPECT_EQ(host_->rc_window_bus_addr(), 0u);
}

TEST_F(Loopback, HostMayStartBeforeTheEp) {
  ASSERT_FALSE(std::filesystem::exists(path_));
  Result<std::unique_ptr<LoopbackHost>> host = fail(Errc::kNotReady, "not run");
  std::jthread t([&] { host = LoopbackHost::connect(path_, kRcSize, kTimeout); });
  std::this_thread::sleep_for(milliseconds{200});  // the host retries meanwhile (ENOENT)
  make_ep();
  accept_one();
  t.join();
  ASSERT_TRUE(host) << host.error().what;
  EXPECT_TRUE(ep_->connected());
}

TEST_F(Loopback, HostGivesUpWithoutEp) {
  auto host = LoopbackHost::connect(path_, kRcSize, milliseconds{120});
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, Errc::kTimeout);
}

TEST_F(Loopback, WindowsAreSharedBothWays) {
  link_up();
  ASSERT_TRUE(host_);
  host_->ep_window().store<std::uint32_t>(0x40, 0xfeedf00d);
  const std::array<std::byte, 3> bytes{std::byte{7}, std::byte{8}, std::byte{9}};
  host_->ep_window().write(kEpSize - 3, bytes);
  EXPECT_EQ(ep_->ep_window().load<std::uint32_t>(0x40), 0xfeedf00du);
  std::array<std::byte, 3> back{};
  ep_->ep_window().read(kEpSize - 3, back);
  EXPECT_EQ(back, bytes);

  auto rc = ep_->attach_rc_window(host_->rc_window_bus_addr(), kRcSize);
  ASSERT_TRUE(rc) << rc.error().what;
  EXPECT_TRUE((*rc)->remote());
  EXPECT_EQ((*rc)->id(), layout::WindowId::kRc);
  (*rc)->store<std::uint64_t>(8, 0x0123456789abcdefULL);
  EXPECT_EQ(host_->rc_window().load<std::uint64_t>(8), 0x0123456789abcdefULL);
}

TEST_F(Loopback, LinkModelCountsOnlyCrossings) {
  link_up();
  ASSERT_TRUE(host_);
  const ring::LinkCounters h0 = host_->counters();
  host_->ep_window().store<std::uint32_t>(0, 1);  // posted write, 4 bytes
  std::array<std::byte, 100> burst{};
  host_->ep_window().write(256, burst);             // posted write, 100 bytes
  (void)host_->ep_window().load<std::uint16_t>(0);  // non-posted read, 2 bytes
  host_->rc_window().store<std::uint32_t>(0, 2);    // local: not counted
  (void)host_->rc_window().load<std::uint32_t>(0);
  const ring::LinkCounters h = host_->counters() - h0;
  EXPECT_EQ(h.posted_writes, 2u);
  EXPECT_EQ(h.posted_write_bytes, 104u);
  EXPECT_EQ(h.nonposted_reads, 1u);
  EXPECT_EQ(h.nonposted_read_bytes, 2u);

  const ring::LinkCounters e0 = ep_->counters();
  ep_->ep_window().store<std::uint32_t>(0, 3);  // local
  (void)ep_->ep_window().load<std::uint32_t>(0);
  auto rc = ep_->attach_rc_window(0, kRcSize);
  ASSERT_TRUE(rc);
  (*rc)->store<std::uint32_t>(64, 4);  // posted write across the link
  const ring::LinkCounters e = ep_->counters() - e0;
  EXPECT_EQ(e.posted_writes, 1u);
  EXPECT_EQ(e.posted_write_bytes, 4u);
  EXPECT_EQ(e.nonposted_reads, 0u);
}

TEST_F(Loopback, DoorbellAndInterrupt) {
  link_up();
  ASSERT_TRUE(host_);
  auto none = ep_->drain_doorbell();
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  EXPECT_EQ(ep_->counters().signals_received, 0u);

  ASSERT_TRUE(host_->ring_doorbell());
  ASSERT_TRUE(host_->ring_doorbell());
  EXPECT_EQ(host_->counters().signals_sent, 2u);
  auto ready = os::poll_one(ep_->doorbell_fd(), POLLIN, kTimeout);
  ASSERT_TRUE(ready && (*ready & POLLIN));
  auto rung = ep_->drain_doorbell();
  ASSERT_TRUE(rung);
  EXPECT_EQ(*rung, 2u);
  EXPECT_EQ(ep_->counters().signals_received, 1u);

  auto idle = host_->wait_interrupt(milliseconds{20});
  ASSERT_TRUE(idle) << idle.error().what;
  EXPECT_FALSE(*idle);
  ASSERT_TRUE(ep_->raise_interrupt());
  EXPECT_EQ(ep_->counters().signals_sent, 1u);
  auto got = host_->wait_interrupt(kTimeout);
  ASSERT_TRUE(got) << got.error().what;
  EXPECT_TRUE(*got);
  EXPECT_EQ(host_->counters().signals_received, 1u);
  auto consumed = host_->wait_interrupt(milliseconds{20});
  ASSERT_TRUE(consumed);
  EXPECT_FALSE(*consumed);

  ASSERT_TRUE(ep_->raise_interrupt());
  auto drained = host_->drain_interrupt();
  ASSERT_TRUE(drained);
  EXPECT_EQ(*drained, 1u);
  EXPECT_EQ(host_->counters().signals_received, 2u);
}

TEST_F(Loopback, ADeviceDoorbellWakesThatDeviceAlone) {
  link_up();
  ASSERT_TRUE(host_);
  ASSERT_TRUE(host_->ring_device_doorbell(3));
  ASSERT_TRUE(host_->ring_device_doorbell(3));
  EXPECT_EQ(host_->counters().signals_sent, 2u);
  auto ready = os::poll_one(ep_->device_doorbell_fd(3), POLLIN, kTimeout);
  ASSERT_TRUE(ready && (*ready & POLLIN));
  for (std::uint32_t slot = 0; slot < layout::kMaxDevices; ++slot) {
    if (slot == 3) continue;
    auto other = ep_->drain_device_doorbell(slot);
    ASSERT_TRUE(other);
    EXPECT_EQ(*other, 0u) << "slot " << slot << " was rung for slot 3";
  }
  auto control = ep_->drain_doorbell();
  ASSERT_TRUE(control);
  EXPECT_EQ(*control, 0u) << "the control doorbell rang for a device kick";
  auto rung = ep_->drain_device_doorbell(3);
  ASSERT_TRUE(rung);
  EXPECT_EQ(*rung, 2u);
  EXPECT_EQ(ep_->counters().signals_received, 1u);

  ASSERT_TRUE(
      host_->ring_device_doorbell(layout::kMaxDevices));  // no such slot: the control doorbell
  auto fallback = ep_->drain_doorbell();
  ASSERT_TRUE(fallback);
  EXPECT_EQ(*fallback, 1u);
}

TEST_F(Loopback, AttachNeedsThePeerAndTheExactWindow) {
  make_ep();
  auto early = ep_->attach_rc_window(0, kRcSize);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Errc::kLinkDown);
  auto irq = ep_->raise_interrupt();
  ASSERT_FALSE(irq);
  EXPECT_EQ(irq.error().code, Errc::kLinkDown);

  link_up();
  ASSERT_TRUE(host_);
  for (auto [addr, size] : {std::pair<std::uint64_t, std::uint64_t>{0, kRcSize + 4096},
                            {0, kRcSize / 2},
                            {0x1000, kRcSize}}) {
    auto bad = ep_->attach_rc_window(addr, size);
    ASSERT_FALSE(bad) << addr << "+" << size;
    EXPECT_EQ(bad.error().code, Errc::kOutOfRange);
  }
  auto good = ep_->attach_rc_window(0, kRcSize);
  ASSERT_TRUE(good);
  EXPECT_TRUE((*good)->valid());
  ep_->detach_rc_window();
  EXPECT_FALSE((*good)->valid());
}

TEST_F(Loopback, EpSeesTheHostLeaveAndTakesANewOne) {
  link_up();
  ASSERT_TRUE(host_);
  host_.reset();
  auto hup = os::poll_one(ep_->peer_fd(), POLLIN, kTimeout);
  ASSERT_TRUE(hup);
  EXPECT_TRUE(*hup & (POLLHUP | POLLIN));
  ep_->drop_peer();
  EXPECT_EQ(ep_->peer_fd(), -1);
  EXPECT_FALSE(ep_->connected());
  auto after = ep_->attach_rc_window(0, kRcSize);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Errc::kLinkDown);

  link_up();  // a restarted host
  ASSERT_TRUE(host_);
  host_->ep_window().store<std::uint32_t>(0, 42);
  EXPECT_EQ(ep_->ep_window().load<std::uint32_t>(0), 42u);
}

TEST_F(Loopback, HostSeesTheEpDrop) {
  link_up();
  ASSERT_TRUE(host_);
  ep_->drop_peer();
  auto r = host_->wait_interrupt(kTimeout);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kLinkDown);
}

TEST_F(Loopback, SecondHostIsRefused) {
  link_up();
  ASSERT_TRUE(host_);
  Result<std::unique_ptr<LoopbackHost>> second = fail(Errc::kNotReady, "not run");
  std::jthread t([&] { second = LoopbackHost::connect(path_, kRcSize, kTimeout); });
  auto r = accept_one();
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::kLinkDown);
  ASSERT_TRUE(ep_->raise_interrupt());  // the first host is still linked
  auto got = host_->wait_interrupt(kTimeout);
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
}

class BadHello : public Loopback {
 protected:
  void SetUp() override {
    Loopback::SetUp();
    make_ep();
    auto mem = os::SharedMemory::create("vepf-test-rc", kRcSize);
    ASSERT_TRUE(mem);
    mem_ = std::move(*mem);
    auto ev = os::EventFd::create();
    ASSERT_TRUE(ev);
    ev_ = std::move(*ev);
  }
  /// Sends `hello` with `nfds` descriptors and expects the EP to refuse it with `code`.
  void expect_refused(const LoopbackHello& hello, std::size_t nfds, Errc code) {
    const std::array<int, 3> fds{mem_.fd(), ev_.fd(), ev_.fd()};
    os::Fd sock = send_raw_hello(hello, std::span{fds.data(), nfds});
    auto r = accept_one();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, code) << r.error().what;
    EXPECT_FALSE(ep_->connected());
    expect_closed_by_ep(sock.get());
  }
  static LoopbackHello good_hello() {
    LoopbackHello h;
    h.role = static_cast<std::uint16_t>(LoopbackRole::kHost);
    h.window_size = kRcSize;
    return h;
  }
  os::SharedMemory mem_;
  os::EventFd ev_;
};

TEST_F(BadHello, BadMagicIsRefused) {
  LoopbackHello h = good_hello();
  h.magic = 0x12345678;
  expect_refused(h, 2, Errc::kBadLayout);
}

TEST_F(BadHello, BadVersionAndRoleAreRefused) {
  LoopbackHello h = good_hello();
  h.version = kLoopbackVersion + 1;
  expect_refused(h, 2, Errc::kBadLayout);
  h = good_hello();
  h.role = static_cast<std::uint16_t>(LoopbackRole::kEp);
  expect_refused(h, 2, Errc::kBadLayout);
}

TEST_F(BadHello, WrongDescriptorCountIsRefused) {
  expect_refused(good_hello(), 1, Errc::kBadLayout);
  expect_refused(good_hello(), 0, Errc::kBadLayout);
  expect_refused(good_hello(), 3, Errc::kOutOfRange);
}

TEST_F(BadHello, WindowSizeDifferentFromTheMemfdIsRefused) {
  LoopbackHello h = good_hello();
  h.window_size = kRcSize * 2;
  expect_refused(h, 2, Errc::kOutOfRange);
  h.window_size = 0;
  expect_refused(h, 2, Errc::kOutOfRange);
  // Not whole 8-byte words (device-memory copies work in aligned containers of up to 8 bytes).
  h.window_size = kRcSize - 4;
  expect_refused(h, 2, Errc::kOutOfRange);
}

// A signal descriptor that is not an eventfd (here a pipe, which a writer can fill and block
// on) is refused; the EP takes the next host as usual.
TEST_F(BadHello, ASignalThatIsNotAnEventfdIsRefused) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  os::Fd r(p[0]), w(p[1]);
  {
    const std::array<int, 2> fds{mem_.fd(), w.get()};
    os::Fd sock = send_raw_hello(good_hello(), fds);
    auto a = accept_one();
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code, Errc::kInvalidArgument) << a.error().what;
    EXPECT_FALSE(ep_->connected());
    expect_closed_by_ep(sock.get());
  }
  const std::array<int, 2> fds{mem_.fd(), ev_.fd()};
  os::Fd sock = send_raw_hello(good_hello(), fds);
  EXPECT_TRUE(accept_one());
  EXPECT_TRUE(ep_->connected());
}

TEST(LoopbackWindows, SizesInWholeWordsOnly) {
  auto ep = LoopbackEp::create("/tmp/vepf-unused.sock", 65536 + 4);
  ASSERT_FALSE(ep);
  EXPECT_EQ(ep.error().code, Errc::kInvalidArgument);
}

TEST_F(BadHello, GoodHelloIsAccepted) {  // the fixture itself can produce a valid hello
  const std::array<int, 2> fds{mem_.fd(), ev_.fd()};
  os::Fd sock = send_raw_hello(good_hello(), fds);
  ASSERT_TRUE(accept_one());
  EXPECT_TRUE(ep_->connected());
  auto rc = ep_->attach_rc_window(0, kRcSize);
  ASSERT_TRUE(rc);
  (*rc)->store<std::uint32_t>(0, 77);
  EXPECT_EQ(mem_.bytes()[0], std::byte{77});
}

/// A fake EP answers LoopbackHost::connect() with a hello of `role` carrying an EP window and
/// one eventfd (version 1's shape); returns what connect() made of it.
Result<std::unique_ptr<LoopbackHost>> connect_to_fake_ep(const std::string& path,
                                                         LoopbackRole role) {
  Result<std::unique_ptr<LoopbackHost>> host = fail(Errc::kNotReady, "not run");
  auto lfd = os::listen_seqpacket(path);
  EXPECT_TRUE(lfd);
  if (!lfd) return host;
  std::jthread t([&] { host = LoopbackHost::connect(path, kRcSize, kTimeout); });
  EXPECT_TRUE(os::poll_one(lfd->get(), POLLIN, kTimeout));
  auto conn = os::accept_seqpacket(lfd->get());
  auto mem = os::SharedMemory::create("vepf-test-ep", kEpSize);
  auto ev = os::EventFd::create();
  EXPECT_TRUE(conn && mem && ev);
  if (conn && mem && ev) {
    LoopbackHello h;
    h.role = static_cast<std::uint16_t>(role);
    h.window_size = kEpSize;
    const std::array<int, 2> fds{mem->fd(), ev->fd()};
    EXPECT_TRUE(os::send_with_fds(conn->get(), std::as_bytes(std::span{&h, 1}), fds));
  }
  t.join();
  return host;
}

TEST_F(Loopback, HostRefusesAnEpHelloWithoutTheDeviceDoorbells) {
  auto host = connect_to_fake_ep(path_, LoopbackRole::kEp);
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, Errc::kBadLayout) << host.error().what;
}

TEST_F(Loopback, HostRefusesABadEpHello) {
  auto host = connect_to_fake_ep(path_, LoopbackRole::kHost);  // an EP must say kEp
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, Errc::kBadLayout);
}

}  // namespace
}  // namespace vepf::platform
