// IvshmemServer against fake clients on the real unix socket: the messages of QEMU's
// docs/specs/ivshmem-spec.rst ("The ivshmem Client-Server Protocol") byte for byte, the shared
// memory, the eventfds, ids and disconnects. The server runs on this thread: every helper that
// waits for a client's message runs the server's loop meanwhile (bounded by kTimeout).

#include "ivshmem_server.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shm.hpp"
#include "support/temp_dir.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::ivshmem {
namespace {

using std::chrono::milliseconds;
using Bytes = std::array<std::byte, 8>;

constexpr std::size_t kShmSize = std::size_t{1} << 20;
constexpr auto kTimeout = std::chrono::seconds(5);

Bytes bytes(std::initializer_list<unsigned> v) {
  Bytes b{};
  std::size_t i = 0;
  for (const unsigned x : v) b[i++] = static_cast<std::byte>(x);
  return b;
}
const Bytes kZero = bytes({0, 0, 0, 0, 0, 0, 0, 0});
const Bytes kMinusOne = bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});

struct Msg {
  Bytes raw{};
  std::int64_t value = 0;
  os::Fd fd;  // invalid when the message carried none
};

/// What a client learns in messages 1-5.
struct Handshake {
  bool ok = false;
  std::int64_t id = -1;
  os::Fd shm;
  std::vector<std::pair<std::int64_t, std::vector<os::EventFd>>> peers;  // in arrival order
  std::vector<os::EventFd> own;                                          // by vector
};

bool is_eventfd(const os::Fd& fd) {
  std::error_code ec;
  const auto target =
      std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd.get()), ec);
  return !ec && target.string() == "anon_inode:[eventfd]";
}

os::EventFd adopt(os::Fd fd) {
  auto e = os::EventFd::adopt(std::move(fd));
  EXPECT_TRUE(e);
  return e ? std::move(*e) : os::EventFd{};
}

class IvshmemServerTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/ivshmem.sock"; }
  void TearDown() override { server_.reset(); }

  void start(unsigned vectors) {
    vectors_ = vectors;
    auto loop = os::EventLoop::create();
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    auto listener = os::listen_stream(path_);
    ASSERT_TRUE(listener) << listener.error().what;
    auto shm = create_shared_memory("", kShmSize);
    ASSERT_TRUE(shm) << shm.error().what;
    server_ =
        std::make_unique<IvshmemServer>(loop_, std::move(*listener), std::move(*shm), vectors);
    ASSERT_TRUE(server_->start());
  }

  /// A client as QEMU's `-chardev socket` is one: SOCK_STREAM. Nonblocking, so that the
  /// helpers can run the server between reads.
  os::Fd connect() {
    os::Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(s.valid());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.c_str(), path_.size() + 1);
    EXPECT_EQ(
        ::connect(s.get(), static_cast<const sockaddr*>(static_cast<const void*>(&a)), sizeof a), 0)
        << std::strerror(errno);
    return s;
  }

  /// Runs the server until `c` has a message and returns it; nullopt on EOF (or a failure).
  std::optional<Msg> recv(const os::Fd& c) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (;;) {
      Msg m;
      std::vector<os::Fd> fds;
      auto n = os::recv_with_fds(c.get(), m.raw, fds, 1);
      if (n) {
        if (*n == 0) return std::nullopt;
        EXPECT_EQ(*n, 8u) << "messages are 8 bytes";
        m.value = decode_message(m.raw);
        if (!fds.empty()) m.fd = std::move(fds[0]);
        return m;
      }
      if (n.error().code != Errc::kNoSpace) {
        ADD_FAILURE() << "recv: " << n.error().what;
        return std::nullopt;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "no message within " << kTimeout.count() << " s";
        return std::nullopt;
      }
      (void)loop_.run_once(10);
    }
  }

  /// Lets the server handle everything ready (its work is synchronous in its callbacks).
  void settle() {
    for (int i = 0; i < 20; ++i) (void)loop_.run_once(0);
  }

  /// True when `c` has nothing to read (after settle()).
  bool nothing_pending(const os::Fd& c) {
    settle();
    pollfd p{c.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  /// True when the server has closed `c` (EOF after whatever was still queued).
  bool closed_by_server(const os::Fd& c) {
    while (auto m = recv(c)) {
    }
    return !::testing::Test::HasFailure();
  }

  /// Reads messages 1-5 of a client that finds `others` clients connected.
  Handshake handshake(const os::Fd& c, std::size_t others) {
    Handshake h;
    auto version = recv(c);
    if (!version) return h;
    EXPECT_EQ(version->raw, kZero) << "message 1: protocol version 0";
    EXPECT_FALSE(version->fd.valid());
    auto id = recv(c);
    if (!id) return h;
    EXPECT_FALSE(id->fd.valid()) << "message 2 has no descriptor";
    EXPECT_GE(id->value, 0);
    EXPECT_LE(id->value, 65535);
    h.id = id->value;
    auto shm = recv(c);
    if (!shm) return h;
    EXPECT_EQ(shm->raw, kMinusOne) << "message 3: -1 with the shared memory";
    EXPECT_TRUE(shm->fd.valid());
    h.shm = std::move(shm->fd);
    for (std::size_t p = 0; p < others; ++p) {
      std::vector<os::EventFd> fds;
      std::int64_t peer = -1;
      for (unsigned v = 0; v < vectors_; ++v) {
        auto m = recv(c);
        if (!m) return h;
        if (v == 0) peer = m->value;
        EXPECT_EQ(m->value, peer) << "message 4: one peer's id " << vectors_ << " times in a row";
        EXPECT_NE(m->value, h.id);
        EXPECT_TRUE(is_eventfd(m->fd));
        fds.push_back(adopt(std::move(m->fd)));
      }
      h.peers.emplace_back(peer, std::move(fds));
    }
    for (unsigned v = 0; v < vectors_; ++v) {
      auto m = recv(c);
      if (!m) return h;
      EXPECT_EQ(m->value, h.id) << "message 5: own id once per vector";
      EXPECT_TRUE(is_eventfd(m->fd));
      h.own.push_back(adopt(std::move(m->fd)));
    }
    h.ok = !::testing::Test::HasFailure();
    return h;
  }

  /// Reads one step-4/6 connect notice for a newcomer: its id `vectors_` times, each with an fd.
  std::vector<os::EventFd> connect_notice(const os::Fd& c, std::int64_t id) {
    std::vector<os::EventFd> fds;
    for (unsigned v = 0; v < vectors_; ++v) {
      auto m = recv(c);
      if (!m) return fds;
      EXPECT_EQ(m->value, id);
      EXPECT_TRUE(is_eventfd(m->fd)) << "a connect notice carries an eventfd";
      fds.push_back(adopt(std::move(m->fd)));
    }
    return fds;
  }

  vepf::test::TempDir tmp_{"vepf-ivshmem-test"};
  std::string dir_ = tmp_.path();
  std::string path_;
  unsigned vectors_ = 0;
  os::EventLoop loop_;
  std::unique_ptr<IvshmemServer> server_;
};

TEST(IvshmemMessage, EightLittleEndianBytesTwosComplement) {
  EXPECT_EQ(encode_message(0), kZero);
  EXPECT_EQ(encode_message(-1), kMinusOne);
  EXPECT_EQ(encode_message(0x0102), bytes({0x02, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(encode_message(65535), bytes({0xff, 0xff, 0, 0, 0, 0, 0, 0}));
  for (const std::int64_t v :
       {std::int64_t{0}, std::int64_t{-1}, std::int64_t{7}, std::int64_t{65535}}) {
    EXPECT_EQ(decode_message(encode_message(v)), v);
  }
}

TEST_F(IvshmemServerTest, FirstClientGetsVersionIdZeroShmThenItsOwnEventfds) {
  start(2);
  os::Fd c = connect();
  auto version = recv(c);
  ASSERT_TRUE(version);
  EXPECT_EQ(version->raw, kZero);
  EXPECT_FALSE(version->fd.valid());
  auto id = recv(c);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->raw, kZero) << "the first client gets id 0";
  EXPECT_FALSE(id->fd.valid());
  auto shm = recv(c);
  ASSERT_TRUE(shm);
  EXPECT_EQ(shm->raw, kMinusOne);
  ASSERT_TRUE(shm->fd.valid());
  std::vector<os::EventFd> own;
  for (int v = 0; v < 2; ++v) {
    auto m = recv(c);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->raw, kZero) << "interrupt setup: own id 0, vector " << v;
    EXPECT_TRUE(is_eventfd(m->fd));
    own.push_back(adopt(std::move(m->fd)));
  }
  EXPECT_TRUE(nothing_pending(c));
  EXPECT_EQ(server_->peer_ids(), std::vector<std::uint16_t>{0});

  // Two vectors, two distinct eventfds.
  ASSERT_TRUE(own[0].signal());
  EXPECT_EQ(own[1].drain().value_or(99), 0u);
  EXPECT_EQ(own[0].drain().value_or(0), 1u);
}

TEST_F(IvshmemServerTest, SecondClientLearnsTheFirstAndTheFirstLearnsTheSecond) {
  start(2);
  os::Fd c0 = connect();
  Handshake h0 = handshake(c0, 0);
  ASSERT_TRUE(h0.ok);

  os::Fd c1 = connect();
  const Bytes id1 = bytes({1, 0, 0, 0, 0, 0, 0, 0});
  std::vector<Msg> got;
  for (int i = 0; i < 3 + 2 + 2; ++i) {
    auto m = recv(c1);
    ASSERT_TRUE(m);
    got.push_back(std::move(*m));
  }
  const std::vector<std::pair<Bytes, bool>> want{
      {kZero, false},     // 1. version
      {id1, false},       // 2. id 1
      {kMinusOne, true},  // 3. shared memory
      {kZero, true},      // 4. peer 0, vector 0
      {kZero, true},      //    peer 0, vector 1
      {id1, true},        // 5. own id, vector 0
      {id1, true},        //    own id, vector 1
  };
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].raw, want[i].first) << "message " << i;
    EXPECT_EQ(got[i].fd.valid(), want[i].second) << "message " << i;
  }
  EXPECT_TRUE(nothing_pending(c1));

  // The first client gets the newcomer's id once per vector, each with an eventfd.
  for (int v = 0; v < 2; ++v) {
    auto m = recv(c0);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->raw, id1);
    EXPECT_TRUE(is_eventfd(m->fd));
  }
  EXPECT_TRUE(nothing_pending(c0));
  EXPECT_EQ(server_->peer_ids(), (std::vector<std::uint16_t>{0, 1}));
}

TEST_F(IvshmemServerTest, SharedMemoryHasTheSizeAndIsShared) {
  start(1);
  os::Fd c0 = connect();
  Handshake h0 = handshake(c0, 0);
  os::Fd c1 = connect();
  Handshake h1 = handshake(c1, 1);
  ASSERT_TRUE(h0.ok && h1.ok);
  for (const os::Fd* fd : {&h0.shm, &h1.shm}) {
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(static_cast<std::size_t>(st.st_size), kShmSize);
  }
  void* p0 = ::mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, h0.shm.get(), 0);
  void* p1 = ::mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, h1.shm.get(), 0);
  ASSERT_NE(p0, MAP_FAILED);
  ASSERT_NE(p1, MAP_FAILED);
  auto* a = static_cast<unsigned char*>(p0);
  auto* b = static_cast<unsigned char*>(p1);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[kShmSize - 1], 0) << "the memory starts zeroed";
  a[0] = 0x5a;
  a[kShmSize - 1] = 0xa5;
  std::memcpy(a + 4096, "ivshmem", 8);
  EXPECT_EQ(b[0], 0x5a);
  EXPECT_EQ(b[kShmSize - 1], 0xa5);
  EXPECT_EQ(std::memcmp(b + 4096, "ivshmem", 8), 0);
  ::munmap(p0, kShmSize);
  ::munmap(p1, kShmSize);
}

TEST_F(IvshmemServerTest, EventfdsForAPeerAreTheOnesThatPeerReceivesOn) {
  start(3);
  os::Fd c0 = connect();
  Handshake h0 = handshake(c0, 0);
  os::Fd c1 = connect();
  Handshake h1 = handshake(c1, 1);
  ASSERT_TRUE(h0.ok && h1.ok);
  std::vector<os::EventFd> to_c1 = connect_notice(c0, 1);  // c0's way to interrupt c1
  ASSERT_EQ(to_c1.size(), 3u);
  ASSERT_EQ(h1.peers.size(), 1u);
  ASSERT_EQ(h1.peers[0].first, 0);
  std::vector<os::EventFd>& to_c0 = h1.peers[0].second;  // c1's way to interrupt c0

  for (unsigned v = 0; v < 3; ++v) {
    // c1 rings c0's vector v: only c0's own eventfd for vector v counts it.
    ASSERT_TRUE(to_c0[v].signal());
    ASSERT_TRUE(to_c0[v].signal());
    for (unsigned w = 0; w < 3; ++w) EXPECT_EQ(h0.own[w].drain().value_or(99), w == v ? 2u : 0u);
    for (unsigned w = 0; w < 3; ++w)
      EXPECT_EQ(h1.own[w].drain().value_or(99), 0u) << "not c1's own";
    // And back: c0 rings c1's vector v.
    ASSERT_TRUE(to_c1[v].signal());
    for (unsigned w = 0; w < 3; ++w) EXPECT_EQ(h1.own[w].drain().value_or(99), w == v ? 1u : 0u);
    for (unsigned w = 0; w < 3; ++w) EXPECT_EQ(h0.own[w].drain().value_or(99), 0u);
  }
}

TEST_F(IvshmemServerTest, IdsFollowConnectOrderAndAreNotReusedAtOnce) {
  start(1);
  std::vector<os::Fd> c;
  for (std::int64_t i = 0; i < 3; ++i) {
    c.push_back(connect());
    Handshake h = handshake(c.back(), static_cast<std::size_t>(i));
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(h.id, i);
    for (std::size_t p = 0; p < h.peers.size(); ++p)
      EXPECT_EQ(h.peers[p].first, static_cast<std::int64_t>(p));
  }
  c[1].reset();
  settle();
  EXPECT_EQ(server_->peer_ids(), (std::vector<std::uint16_t>{0, 2}));
  os::Fd c3 = connect();
  Handshake h3 = handshake(c3, 2);
  ASSERT_TRUE(h3.ok);
  EXPECT_EQ(h3.id, 3) << "the next id in connect order, not the freed 1";
  EXPECT_EQ(h3.peers[0].first, 0);
  EXPECT_EQ(h3.peers[1].first, 2);
  EXPECT_EQ(server_->peer_ids(), (std::vector<std::uint16_t>{0, 2, 3}));
}

TEST_F(IvshmemServerTest, DisconnectNoticeReachesEveryRemainingClient) {
  start(2);
  os::Fd c0 = connect();
  ASSERT_TRUE(handshake(c0, 0).ok);
  os::Fd c1 = connect();
  ASSERT_TRUE(handshake(c1, 1).ok);
  os::Fd c2 = connect();
  ASSERT_TRUE(handshake(c2, 2).ok);
  EXPECT_EQ(connect_notice(c0, 1).size(), 2u);
  EXPECT_EQ(connect_notice(c0, 2).size(), 2u);
  EXPECT_EQ(connect_notice(c1, 2).size(), 2u);

  c1.reset();
  for (const os::Fd* c : {&c0, &c2}) {
    auto m = recv(*c);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->raw, bytes({1, 0, 0, 0, 0, 0, 0, 0}))
        << "message 6: the id of the client that left";
    EXPECT_FALSE(m->fd.valid()) << "no descriptor: a disconnect, not a connect";
    EXPECT_TRUE(nothing_pending(*c));
  }
  EXPECT_EQ(server_->peer_ids(), (std::vector<std::uint16_t>{0, 2}));
}

TEST_F(IvshmemServerTest, ClientsLeavingMidHandshakeDoNotHurtTheServer) {
  start(4);
  os::Fd c0 = connect();
  ASSERT_TRUE(handshake(c0, 0).ok);

  os::Fd gone = connect();  // closes before the server even accepts it
  gone.reset();
  settle();
  os::Fd partial = connect();  // reads the version only, leaving the rest unread
  auto version = recv(partial);
  ASSERT_TRUE(version);
  partial.reset();
  settle();
  EXPECT_EQ(server_->peer_ids(), std::vector<std::uint16_t>{0});

  // Whatever c0 heard about them, each announced id was withdrawn afterwards.
  std::vector<std::int64_t> announced, withdrawn;
  while (!nothing_pending(c0)) {
    auto m = recv(c0);
    ASSERT_TRUE(m);
    if (m->fd.valid()) {
      if (announced.empty() || announced.back() != m->value) announced.push_back(m->value);
    } else {
      withdrawn.push_back(m->value);
    }
  }
  EXPECT_EQ(announced, withdrawn);

  // The server still serves newcomers in full.
  os::Fd c3 = connect();
  Handshake h3 = handshake(c3, 1);
  ASSERT_TRUE(h3.ok);
  EXPECT_EQ(h3.peers[0].first, 0);
  EXPECT_EQ(connect_notice(c0, h3.id).size(), 4u);
  EXPECT_TRUE(nothing_pending(c3));
}

TEST_F(IvshmemServerTest, ClientThatSendsIsDroppedAsTheProtocolIsOneWay) {
  start(1);
  os::Fd c0 = connect();
  ASSERT_TRUE(handshake(c0, 0).ok);
  os::Fd c1 = connect();
  ASSERT_TRUE(handshake(c1, 1).ok);
  EXPECT_EQ(connect_notice(c0, 1).size(), 1u);
  ASSERT_EQ(::send(c1.get(), "x", 1, MSG_NOSIGNAL), 1);
  auto m = recv(c0);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value, 1);
  EXPECT_FALSE(m->fd.valid());
  EXPECT_TRUE(closed_by_server(c1));
  EXPECT_EQ(server_->peer_ids(), std::vector<std::uint16_t>{0});
}

// 64 vectors among 6 clients: the last one is owed 3 + 6 * 64 messages at once, more than a
// unix socket buffer holds on a default kernel, so the server has to wait for EPOLLOUT.
TEST_F(IvshmemServerTest, ManyVectorsAndClientsArriveCompleteAndInOrder) {
  start(64);
  constexpr std::size_t kClients = 6;
  std::vector<os::Fd> c;
  for (std::size_t i = 0; i < kClients; ++i) c.push_back(connect());  // nobody reads yet
  settle();
  for (std::size_t i = 0; i < kClients; ++i) {
    Handshake h = handshake(c[i], i);
    ASSERT_TRUE(h.ok) << "client " << i;
    EXPECT_EQ(h.id, static_cast<std::int64_t>(i));
    for (std::size_t p = 0; p < h.peers.size(); ++p)
      EXPECT_EQ(h.peers[p].first, static_cast<std::int64_t>(p));
    for (std::size_t later = i + 1; later < kClients; ++later) {
      EXPECT_EQ(connect_notice(c[i], static_cast<std::int64_t>(later)).size(), 64u);
    }
    EXPECT_TRUE(nothing_pending(c[i]));
  }
}

TEST_F(IvshmemServerTest, StoppingTheServerClosesEveryClient) {
  start(1);
  os::Fd c0 = connect();
  ASSERT_TRUE(handshake(c0, 0).ok);
  server_.reset();
  char b = 0;
  EXPECT_EQ(::recv(c0.get(), &b, 1, 0), 0) << "EOF";
}

TEST(IvshmemSharedMemory, MemfdIsSizedZeroedAndSealedAgainstShrinking) {
  auto fd = create_shared_memory("", 8192);
  ASSERT_TRUE(fd) << fd.error().what;
  struct stat st {};
  ASSERT_EQ(::fstat(fd->get(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  EXPECT_TRUE(::fcntl(fd->get(), F_GET_SEALS) & F_SEAL_SHRINK);
  EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
  unsigned char byte = 1;
  EXPECT_EQ(::pread(fd->get(), &byte, 1, 8191), 1);
  EXPECT_EQ(byte, 0);
}

TEST(IvshmemSharedMemory, FileIsCreatedOrTruncatedAndZeroed) {
  const vepf::test::TempDir tmp("vepf-ivshmem-shm");
  const std::string dir = tmp.path();
  const std::string path = dir + "/shm";
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(16384, '\xab');  // an old, bigger, dirty file
  }
  auto fd = create_shared_memory(path, 8192);
  ASSERT_TRUE(fd) << fd.error().what;
  EXPECT_EQ(std::filesystem::file_size(path), 8192u);
  std::vector<unsigned char> buf(8192, 0xff);
  EXPECT_EQ(::pread(fd->get(), buf.data(), buf.size(), 0), 8192);
  EXPECT_EQ(std::count(buf.begin(), buf.end(), 0), 8192);

  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto bad = create_shared_memory(fifo, 8192);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_FALSE(create_shared_memory(path, 0));
}

}  // namespace
}  // namespace vepf::ivshmem
