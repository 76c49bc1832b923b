#include "vepf/os/unix_socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/temp_dir.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/os/memfd.hpp"

namespace vepf::os {
namespace {

using std::chrono::milliseconds;

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct SocketPair {
  Fd a, b;
};
SocketPair seqpacket_pair() {
  int sv[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  return {Fd(sv[0]), Fd(sv[1])};
}

class UnixSocket : public ::testing::Test {
 protected:
  vepf::test::TempDir tmp_{"vepf-os-test"};
  std::string dir_ = tmp_.path();
};

const std::array<std::byte, 4> kPayload{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};

TEST(FdPassing, TwoDescriptorsArriveAndReferToTheSameObjects) {
  SocketPair sp = seqpacket_pair();
  auto mem = SharedMemory::create("vepf-pass", 4096);
  ASSERT_TRUE(mem);
  auto ev = EventFd::create();
  ASSERT_TRUE(ev);
  const std::array<int, 2> fds{mem->fd(), ev->fd()};
  ASSERT_TRUE(send_with_fds(sp.a.get(), kPayload, fds));

  std::array<std::byte, 16> buf{};
  std::vector<Fd> got;
  auto n = recv_with_fds(sp.b.get(), buf, got, 2);
  ASSERT_TRUE(n) << n.error().what;
  EXPECT_EQ(*n, kPayload.size());
  EXPECT_EQ(std::memcmp(buf.data(), kPayload.data(), kPayload.size()), 0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NE(got[0].get(), mem->fd());  // new descriptors...
  EXPECT_TRUE(::fcntl(got[0].get(), F_GETFD) & FD_CLOEXEC);

  auto remote = SharedMemory::map(std::move(got[0]), 4096);  // ...for the same memfd
  ASSERT_TRUE(remote) << remote.error().what;
  mem->bytes()[42] = std::byte{0x99};
  EXPECT_EQ(remote->bytes()[42], std::byte{0x99});
  auto remote_ev = EventFd::adopt(std::move(got[1]));  // ...and the same eventfd
  ASSERT_TRUE(remote_ev);
  ASSERT_TRUE(remote_ev->signal());
  auto count = ev->drain();
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 1u);
}

TEST(FdPassing, SurplusDescriptorsAreRejectedAndClosed) {
  SocketPair sp = seqpacket_pair();
  auto ev = EventFd::create();
  ASSERT_TRUE(ev);
  const std::array<int, 3> fds{ev->fd(), ev->fd(), ev->fd()};
  ASSERT_TRUE(send_with_fds(sp.a.get(), kPayload, fds));
  const std::size_t before = open_fd_count();
  std::array<std::byte, 16> buf{};
  std::vector<Fd> got;
  auto n = recv_with_fds(sp.b.get(), buf, got, 2);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::kOutOfRange);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(open_fd_count(), before);  // the three received copies were closed
}

TEST(FdPassing, TruncatedMessageIsAnError) {
  SocketPair sp = seqpacket_pair();
  ASSERT_TRUE(send_with_fds(sp.a.get(), kPayload, {}));
  std::array<std::byte, 2> small{};
  std::vector<Fd> got;
  auto n = recv_with_fds(sp.b.get(), small, got, 2);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::kOutOfRange);
}

TEST(FdPassing, SenderLimitsAndEmptySocket) {
  SocketPair sp = seqpacket_pair();
  const std::array<int, kMaxPassedFds + 1> many{};
  auto too_many = send_with_fds(sp.a.get(), kPayload, many);
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().code, Errc::kInvalidArgument);
  auto empty = send_with_fds(sp.a.get(), {}, {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::kInvalidArgument);

  std::array<std::byte, 8> buf{};
  std::vector<Fd> got;
  auto none = recv_with_fds(sp.b.get(), buf, got, 2);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kNoSpace);  // nonblocking, nothing sent
  sp.a.reset();
  auto eof = recv_with_fds(sp.b.get(), buf, got, 2);
  ASSERT_TRUE(eof);
  EXPECT_EQ(*eof, 0u);
}

TEST(FdPassing, PeerClosingWithUnreadMessagesIsLinkDown) {
  SocketPair sp = seqpacket_pair();
  ASSERT_TRUE(send_with_fds(sp.a.get(), kPayload, {}));
  sp.b.reset();  // closes with our message unread: the kernel resets the connection
  std::array<std::byte, 8> buf{};
  std::vector<Fd> got;
  auto r = recv_with_fds(sp.a.get(), buf, got, 2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kLinkDown);
  auto s = send_with_fds(sp.a.get(), kPayload, {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kLinkDown);
}

TEST_F(UnixSocket, ListenConnectAcceptExchange) {
  const std::string path = dir_ + "/sub/dir/link.sock";  // parent created on demand
  auto lfd = listen_seqpacket(path);
  ASSERT_TRUE(lfd) << lfd.error().what << " errno " << lfd.error().sys_errno;
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  auto nobody = accept_seqpacket(lfd->get());
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().code, Errc::kNoSpace);

  auto client = connect_seqpacket(path);
  ASSERT_TRUE(client) << client.error().what;
  auto server = accept_seqpacket(lfd->get());
  ASSERT_TRUE(server) << server.error().what;
  ASSERT_TRUE(send_with_fds(client->get(), kPayload, {}));
  std::array<std::byte, 8> buf{};
  std::vector<Fd> got;
  auto n = recv_with_fds(server->get(), buf, got, 0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, kPayload.size());

  client->reset();
  auto hup = poll_one(server->get(), POLLIN, milliseconds{1000});
  ASSERT_TRUE(hup);
  EXPECT_TRUE(*hup & (POLLHUP | POLLIN));
}

TEST_F(UnixSocket, StaleSocketIsReplacedButOtherFilesAreNot) {
  const std::string path = dir_ + "/link.sock";
  {
    auto first = listen_seqpacket(path);
    ASSERT_TRUE(first);
  }  // closed: the file stays behind
  auto second = listen_seqpacket(path);
  ASSERT_TRUE(second) << second.error().what;
  auto client = connect_seqpacket(path);
  ASSERT_TRUE(client);

  const std::string plain = dir_ + "/not-a-socket";
  std::ofstream(plain) << "keep me";
  auto refused = listen_seqpacket(plain);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_regular_file(plain));
}

TEST_F(UnixSocket, ConnectErrorsNameTheCause) {
  auto missing = connect_seqpacket(dir_ + "/missing.sock");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kSystem);
  EXPECT_EQ(missing.error().sys_errno, ENOENT);

  const std::string path = dir_ + "/stale.sock";
  {
    auto l = listen_seqpacket(path);
    ASSERT_TRUE(l);
  }
  auto refused = connect_seqpacket(path);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().sys_errno, ECONNREFUSED);

  auto too_long = connect_seqpacket(dir_ + "/" + std::string(200, 'x'));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace vepf::os
