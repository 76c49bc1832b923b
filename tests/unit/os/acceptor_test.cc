// os::Acceptor: the connection limit, and a process out of descriptors that neither spins nor
// leaves the client hanging.

#include "vepf/os/acceptor.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::os {
namespace {

/// A client socket, made before it connects (a process out of descriptors cannot make one).
Fd client_socket() { return Fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)); }
bool connect_to(const Fd& s, const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  return ::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
}
/// What the server said before closing: the message, or "" at EOF.
std::string reply(const Fd& s) {
  timeval tv{2, 0};
  (void)::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64];
  const ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}
bool at_eof(const Fd& s) {
  char b;
  timeval tv{2, 0};
  (void)::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return ::recv(s.get(), &b, 1, 0) == 0;
}

class AcceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = EventLoop::create();
    ASSERT_TRUE(l);
    loop = std::move(*l);
    path = dir.path() + "/s.sock";
  }
  void make(std::size_t max_open) {
    auto lfd = listen_seqpacket(path);
    ASSERT_TRUE(lfd) << lfd.error().what;
    Acceptor::Handlers h;
    h.open = [this] { return taken.size(); };
    h.take = [this](Fd c) { taken.push_back(std::move(c)); };
    h.refuse = [this](int fd, Acceptor::Refusal why) {
      const char* msg = why == Acceptor::Refusal::kFull ? "full" : "no fds";
      (void)::send(fd, msg, std::strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
      refusals.push_back(why);
    };
    auto a = Acceptor::create(loop, std::move(*lfd), max_open, std::move(h));
    ASSERT_TRUE(a) << a.error().what;
    acc = std::move(*a);
  }

  test::TempDir dir{"vepf-acceptor"};
  std::string path;
  EventLoop loop;
  std::unique_ptr<Acceptor> acc;
  std::vector<Fd> taken;
  std::vector<Acceptor::Refusal> refusals;
};

TEST_F(AcceptorTest, ConnectionsPastTheLimitAreToldAndClosed) {
  ASSERT_NO_FATAL_FAILURE(make(2));
  std::vector<Fd> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(client_socket());
    ASSERT_TRUE(connect_to(clients.back(), path));
  }
  ASSERT_TRUE(loop.run_once(100));
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_EQ(acc->counts().accepted, 2u);
  EXPECT_EQ(acc->counts().refused_full, 3u);
  ASSERT_EQ(refusals.size(), 3u);
  for (const auto r : refusals) EXPECT_EQ(r, Acceptor::Refusal::kFull);
  EXPECT_EQ(reply(clients[2]), "full");
  EXPECT_EQ(reply(clients[4]), "full");
  EXPECT_TRUE(at_eof(clients[4]));

  // One served connection closes: the next client is taken.
  taken.pop_back();
  Fd again = client_socket();
  ASSERT_TRUE(connect_to(again, path));
  ASSERT_TRUE(loop.run_once(100));
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_EQ(acc->counts().accepted, 3u);
}

TEST_F(AcceptorTest, OutOfDescriptorsTheConnectionIsRefusedAndTheLoopGoesQuiet) {
#if defined(VEPF_SANITIZED)
  // The sanitizers' runtime needs descriptors of its own (UBSan's vptr check tests memory
  // through a pipe, and reports a false "invalid vptr" without one): the default build runs it.
  GTEST_SKIP() << "runs the process out of descriptors, which the sanitizer runtime needs too";
#endif
  ASSERT_NO_FATAL_FAILURE(make(16));
  Fd c1 = client_socket(), c2 = client_socket();
  ASSERT_TRUE(c1.valid() && c2.valid());

  // Lower the soft limit and take every descriptor left.
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  const int top = ::fcntl(c2.get(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(top, 0);
  ::close(top);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(top) + 16;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<Fd> filler;
  for (;;) {
    Fd f(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!f.valid()) break;
    filler.push_back(std::move(f));
  }
  ASSERT_EQ(errno, EMFILE);

  ASSERT_TRUE(connect_to(c1, path));
  ASSERT_TRUE(loop.run_once(100));
  EXPECT_EQ(acc->counts().refused_no_fds, 1u);
  EXPECT_EQ(acc->counts().accepted, 0u);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0], Acceptor::Refusal::kNoFds);
  EXPECT_EQ(reply(c1), "no fds");
  EXPECT_TRUE(at_eof(c1));
  // Nothing is left queued: a turn of the loop finds nothing to do (before, the listener stayed
  // readable and every turn came back to it).
  ASSERT_TRUE(loop.run_once(0));
  EXPECT_EQ(acc->counts().refused_no_fds, 1u);
  EXPECT_EQ(acc->counts().paused, 0u);

  // Descriptors again: the next client is served.
  filler.clear();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_TRUE(connect_to(c2, path));
  ASSERT_TRUE(loop.run_once(100));
  EXPECT_EQ(taken.size(), 1u);
}

TEST_F(AcceptorTest, BadArgumentsAreRefused) {
  auto lfd = listen_seqpacket(path);
  ASSERT_TRUE(lfd);
  Acceptor::Handlers h;
  h.open = [] { return std::size_t{0}; };
  h.take = [](Fd) {};
  auto zero = Acceptor::create(loop, std::move(*lfd), 0, h);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code, Errc::kInvalidArgument);
  auto none = Acceptor::create(loop, Fd(), 1, h);
  ASSERT_FALSE(none);
}

TEST_F(AcceptorTest, DestroyingItStopsWatchingTheListener) {
  ASSERT_NO_FATAL_FAILURE(make(1));
  const std::size_t watched = loop.size();
  acc.reset();
  EXPECT_EQ(loop.size(), watched - 1);
}

}  // namespace
}  // namespace vepf::os
