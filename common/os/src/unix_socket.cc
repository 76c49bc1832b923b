#include "vepf/os/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace vepf::os {
namespace {

constexpr int kListenBacklog = 4;
constexpr mode_t kSocketMode = 0660;

struct UnixAddr {
  sockaddr_un un{};
  socklen_t len = 0;
  // The sockets API takes every address family through `sockaddr*`.
  const sockaddr* get() const noexcept {
    return static_cast<const sockaddr*>(static_cast<const void*>(&un));
  }
};

Result<UnixAddr> make_addr(const std::string& path) noexcept {
  UnixAddr a;
  a.un.sun_family = AF_UNIX;
  // No abstract names (leading NUL) and nothing the kernel would cut off.
  if (path.empty() || path.size() >= sizeof(a.un.sun_path) ||
      path.find('\0') != std::string::npos) {
    return fail(Errc::kInvalidArgument, "unix socket path empty or too long");
  }
  std::memcpy(a.un.sun_path, path.data(), path.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return a;
}

/// Creates the parent directory and removes a stale socket file left by a previous run.
Result<void> prepare_socket_path(const std::string& path) noexcept {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return fail(Errc::kSystem, "create the socket's parent directory", ec.value());
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return {};
    return fail(Errc::kSystem, "lstat of the socket path", errno);
  }
  if (!S_ISSOCK(st.st_mode))
    return fail(Errc::kInvalidArgument, "socket path exists and is not a socket");
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return fail(Errc::kSystem, "unlink stale socket", errno);
  return {};
}

using ControlBuffer = std::array<std::byte, CMSG_SPACE(sizeof(int) * kMaxPassedFds)>;

/// Takes ownership of every descriptor in the SCM_RIGHTS messages of `msg`.
std::vector<Fd> take_fds(msghdr& msg) {
  std::vector<Fd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return fds;
}

}  // namespace

namespace {

Result<Fd> listen_unix(const std::string& path, int type, const char* what, int backlog) noexcept {
  auto addr = make_addr(path);
  if (!addr) return tl::unexpected(addr.error());
  if (auto r = prepare_socket_path(path); !r) return tl::unexpected(r.error());
  Fd fd(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail(Errc::kSystem, what, errno);
  if (::bind(fd.get(), addr->get(), addr->len) < 0)
    return fail(Errc::kSystem, "bind unix socket", errno);
  if (::chmod(path.c_str(), kSocketMode) < 0 || ::listen(fd.get(), backlog) < 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return fail(Errc::kSystem, "chmod or listen on unix socket", err);
  }
  return fd;
}

}  // namespace

Result<Fd> listen_seqpacket(const std::string& path) noexcept {
  return listen_unix(path, SOCK_SEQPACKET, "socket(AF_UNIX, SOCK_SEQPACKET)", kListenBacklog);
}

Result<Fd> listen_stream(const std::string& path, int backlog) noexcept {
  return listen_unix(path, SOCK_STREAM, "socket(AF_UNIX, SOCK_STREAM)", backlog);
}

Result<Fd> accept_seqpacket(int lfd) noexcept {
  for (;;) {
    Fd fd(::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.valid()) return fd;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN) return fail(Errc::kNoSpace, "accept: no connection waiting", errno);
    return fail(Errc::kSystem, "accept4", errno);
  }
}

Result<Fd> connect_seqpacket(const std::string& path) noexcept {
  auto addr = make_addr(path);
  if (!addr) return tl::unexpected(addr.error());
  Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail(Errc::kSystem, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  // A unix-domain connect completes at once or fails; it never returns EINPROGRESS.
  if (::connect(fd.get(), addr->get(), addr->len) < 0)
    return fail(Errc::kSystem, "connect unix socket", errno);
  return fd;
}

Result<void> send_with_fds(int sock, std::span<const std::byte> data,
                           std::span<const int> fds) noexcept {
  if (data.empty()) return fail(Errc::kInvalidArgument, "send_with_fds: empty message");
  if (fds.size() > kMaxPassedFds)
    return fail(Errc::kInvalidArgument, "send_with_fds: too many descriptors");
  // sendmsg() does not write through iov_base; the iovec type is shared with recvmsg().
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) ControlBuffer ctrl{};
  if (!fds.empty()) {
    msg.msg_control = ctrl.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(data.size())) return {};
    if (n >= 0) return fail(Errc::kSystem, "sendmsg: short send", EMSGSIZE);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return fail(Errc::kNoSpace, "sendmsg: socket buffer full", errno);
    if (errno == EPIPE || errno == ECONNRESET)
      return fail(Errc::kLinkDown, "sendmsg: peer closed", errno);
    return fail(Errc::kSystem, "sendmsg", errno);
  }
}

Result<std::size_t> recv_with_fds(int sock, std::span<std::byte> data, std::vector<Fd>& fds_out,
                                  std::size_t max_fds) noexcept {
  fds_out.clear();
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) ControlBuffer ctrl{};
  msg.msg_control = ctrl.data();
  msg.msg_controllen = ctrl.size();
  ssize_t n = -1;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return fail(Errc::kNoSpace, "recvmsg: no message waiting", errno);
    // A peer that closes with our messages still unread resets the connection instead of EOF.
    if (errno == ECONNRESET)
      return fail(Errc::kLinkDown, "recvmsg: peer reset the connection", errno);
    return fail(Errc::kSystem, "recvmsg", errno);
  }
  // Owned from here on: returning early closes them.
  std::vector<Fd> fds = take_fds(msg);
  if (msg.msg_flags & MSG_CTRUNC) return fail(Errc::kOutOfRange, "recvmsg: descriptors truncated");
  if (msg.msg_flags & MSG_TRUNC)
    return fail(Errc::kOutOfRange, "recvmsg: message longer than the buffer");
  if (fds.size() > max_fds)
    return fail(Errc::kOutOfRange, "recvmsg: more descriptors than expected");
  fds_out = std::move(fds);
  return static_cast<std::size_t>(n);
}

}  // namespace vepf::os
