// vepf-ivshmem-server as a program: exit code 2 and one line for a bad command line; a
// "listening on PATH" line once it accepts; the handshake over its socket; a clean exit on
// SIGTERM that removes the socket. Every wait is bounded.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ivshmem_server.hpp"
#include "support/temp_dir.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/os/unix_socket.hpp"

extern char** environ;

namespace vepf::ivshmem {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kTimeout{5000};

struct Child {
  pid_t pid = -1;
  os::Fd out;  // its stdout
  os::Fd err;  // its stderr
};

Child spawn(const std::vector<std::string>& args) {
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<std::string> argv_s{VEPF_IVSHMEM_SERVER_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child c;
  EXPECT_EQ(::posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  ::posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  c.out.reset(out[0]);
  c.err.reset(err[0]);
  return c;
}

/// Waits up to kTimeout for the child to exit; kills it after that. Returns its wait status.
int reap_child(Child& c) {
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  int status = 0;
  while (::waitpid(c.pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the server did not exit within " << kTimeout.count() << " ms";
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      break;
    }
    ::poll(nullptr, 0, 10);
  }
  c.pid = -1;
  return status;
}

/// Reads `fd` until EOF or until `want` appears (bounded by kTimeout).
std::string read_until(int fd, const std::string& want) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (want.empty() || got.find(want) == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto ev = os::poll_one(fd, POLLIN, left);
    if (!ev || *ev == 0) break;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

class IvshmemServerProgram : public ::testing::Test {
 protected:
  vepf::test::TempDir tmp_{"vepf-ivshmem-prog"};
  std::string dir_ = tmp_.path();
};

TEST_F(IvshmemServerProgram, BadCommandLineExitsWith2AndOneLineNamingTheOption) {
  const std::string sock = dir_ + "/s.sock";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--size", "1000"}, "--size"},
      {{"--vectors", "65"}, "--vectors"},
      {{"--size", "4M"}, "--size"},
      {{"--vectors", "0"}, "--vectors"},
      {{"--log-level", "loud"}, "--log-level"},
      {{"--bogus"}, "--bogus"},
  };
  for (const auto& [extra, option] : cases) {
    std::vector<std::string> args{"--socket", sock};
    args.insert(args.end(), extra.begin(), extra.end());
    Child c = spawn(args);
    const std::string err = read_until(c.err.get(), "");
    const int status = reap_child(c);
    ASSERT_TRUE(WIFEXITED(status)) << option;
    EXPECT_EQ(WEXITSTATUS(status), 2) << option;
    EXPECT_NE(err.find(option), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(std::filesystem::exists(sock)) << "no socket for a bad command line";
  }
  Child c = spawn({"--vectors", "2"});
  const std::string err = read_until(c.err.get(), "");
  const int status = reap_child(c);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(err.find("--socket"), std::string::npos) << err;
}

TEST_F(IvshmemServerProgram, ListensServesAndRemovesItsSocketOnSigterm) {
  const std::string sock = dir_ + "/ivshmem.sock";
  const std::string shm_path = dir_ + "/shm";
  Child c = spawn({"--socket", sock, "--shm-path", shm_path, "--size", "65536", "--vectors", "2",
                   "--foreground", "--log-level", "warn"});
  const std::string line = "listening on " + sock + "\n";
  EXPECT_EQ(read_until(c.out.get(), line), line);
  ASSERT_TRUE(std::filesystem::is_socket(sock));

  os::Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(
      ::connect(s.get(), static_cast<const sockaddr*>(static_cast<const void*>(&a)), sizeof a), 0);
  std::vector<std::int64_t> values;
  std::vector<bool> with_fd;
  os::Fd shm;
  for (int i = 0; i < 3 + 2; ++i) {
    auto ev = os::poll_one(s.get(), POLLIN, kTimeout);
    ASSERT_TRUE(ev && *ev != 0) << "message " << i;
    std::array<std::byte, 8> buf{};
    std::vector<os::Fd> fds;
    auto n = os::recv_with_fds(s.get(), buf, fds, 1);
    ASSERT_TRUE(n && *n == 8) << "message " << i;
    values.push_back(decode_message(buf));
    with_fd.push_back(!fds.empty());
    if (i == 2 && !fds.empty()) shm = std::move(fds[0]);
  }
  EXPECT_EQ(values, (std::vector<std::int64_t>{0, 0, -1, 0, 0}));
  EXPECT_EQ(with_fd, (std::vector<bool>{false, false, true, true, true}));
  struct stat st {};
  ASSERT_EQ(::fstat(shm.get(), &st), 0);
  EXPECT_EQ(st.st_size, 65536);
  EXPECT_EQ(std::filesystem::file_size(shm_path), 65536u);

  ::kill(c.pid, SIGTERM);
  const int status = reap_child(c);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(std::filesystem::exists(sock)) << "the socket is removed on SIGTERM";
  EXPECT_TRUE(std::filesystem::exists(shm_path)) << "the shared-memory file stays";
  char b = 0;
  EXPECT_EQ(::recv(s.get(), &b, 1, 0), 0) << "the client sees EOF";
}

}  // namespace
}  // namespace vepf::ivshmem
