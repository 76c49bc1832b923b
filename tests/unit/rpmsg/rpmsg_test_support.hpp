#pragma once
// What the rpmsg routing tests (Channels: sockets; Endpoints: in-process; Relay: a lent device)
// share: a Port that records what is sent, messages as the peer writes them, and a fixture for
// the Routers that serve unix sockets.

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/unix_socket.hpp"
#include "vepf/rpmsg/channels.hpp"

namespace vepf::rpmsg::test_support {

using layout::kRpmsgNsAddr;

struct Sent {
  std::uint32_t src = 0, dst = 0;
  std::string payload;
};

class FakePort final : public Port {
 public:
  bool room = true;
  std::vector<Sent> sent;
  int flushes = 0;

  bool can_send() override { return room; }
  void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) override {
    std::string p(payload.size(), '\0');
    std::memcpy(p.data(), payload.data(), payload.size());
    sent.push_back({src, dst, std::move(p)});
  }
  void flush() override { ++flushes; }
  void receive_again() override { ++receive_agains; }
  int receive_agains = 0;
};

inline layout::RpmsgNsMsg ns_of(const Sent& s) {
  layout::RpmsgNsMsg ns{};
  EXPECT_EQ(s.payload.size(), sizeof(ns));
  std::memcpy(&ns, s.payload.data(), std::min(s.payload.size(), sizeof(ns)));
  return ns;
}

inline std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

/// An rpmsg as the peer would write it.
inline std::vector<std::byte> rpmsg(std::uint32_t src, std::uint32_t dst,
                                    std::span<const std::byte> payload) {
  std::vector<std::byte> m(layout::kRpmsgHdrSize + payload.size());
  encode(m, src, dst, payload);
  return m;
}

/// A name-service message from the peer: raw name bytes (copied as given, up to 32).
inline std::vector<std::byte> ns_msg(const std::string& name, std::uint32_t addr,
                                     std::uint32_t flags) {
  layout::RpmsgNsMsg ns{};
  std::memcpy(ns.name, name.data(), std::min(name.size(), sizeof(ns.name)));
  ns.addr = layout::le32::from_cpu(addr);
  ns.flags = layout::le32::from_cpu(flags);
  return rpmsg(addr, kRpmsgNsAddr, std::as_bytes(std::span{&ns, 1}));
}

/// A Router that serves unix sockets, under test: a fresh directory and event loop per test, a
/// FakePort, and the programs' ends of its sockets (closed before the Router goes).
class SocketRouterTest : public ::testing::Test {
 protected:
  /// Makes the directory (/tmp/<prefix>-<pid>-<n>) and the loop; then the derived SetUp()
  /// makes its Router.
  void make(const char* prefix) {
    static int n = 0;
    dir_ = std::filesystem::temp_directory_path() /
           (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(dir_);
    auto l = os::EventLoop::create();
    ASSERT_TRUE(l);
    loop_ = std::move(*l);
  }
  void TearDown() override {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
    drop_router();
    std::filesystem::remove_all(dir_);
  }
  /// Destroys the Router under test.
  virtual void drop_router() = 0;

  /// Runs the loop until `cond` holds (true) or 2 s pass (false).
  bool pump(const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!cond()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      EXPECT_TRUE(loop_.run_once(10));
    }
    return true;
  }
  /// Runs the loop for a few rounds (to show that something does not happen).
  void settle() {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(loop_.run_once(5));
  }
  /// A program's connection to socket `file` of the directory (closed at TearDown()).
  int connect(const std::string& file) {
    auto s = os::connect_seqpacket((dir_ / file).string());
    EXPECT_TRUE(s) << file;
    if (!s) return -1;
    fds_.push_back(s->release());
    return fds_.back();
  }
  static void put(int fd, const std::string& m) {
    ASSERT_EQ(::send(fd, m.data(), m.size(), MSG_NOSIGNAL), static_cast<ssize_t>(m.size()));
  }
  /// The next message on `fd` ("" for end of file), waiting up to 2 s.
  std::string get(int fd) {
    char b[1024];
    ssize_t n = -1;
    pump([&] {
      n = ::recv(fd, b, sizeof(b), MSG_DONTWAIT);
      return n >= 0;
    });
    return n > 0 ? std::string(b, static_cast<std::size_t>(n)) : "";
  }
  /// True when nothing waits on `fd` once the loop has settled.
  bool quiet(int fd) {
    settle();
    char b[1024];
    return ::recv(fd, b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN;
  }

  std::filesystem::path dir_;
  os::EventLoop loop_;
  FakePort port_;
  std::vector<int> fds_;
};

}  // namespace vepf::rpmsg::test_support
