#pragma once
// SOCK_SEQPACKET unix sockets (message boundaries kept, connection-oriented: the peer's exit is
// seen as EOF/HUP) and descriptor passing with SCM_RIGHTS.

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

/// Most descriptors one message may carry (send and receive).
inline constexpr std::size_t kMaxPassedFds = 32;  // the loopback EP hello carries 18

/// Listens on `path` (nonblocking, close-on-exec). Creates the parent directory if missing and
/// unlinks a stale socket file first (but refuses to remove anything that is not a socket).
/// The socket file gets mode 0660.
/// Errors: kInvalidArgument when the path does not fit sockaddr_un or names a non-socket;
/// kSystem when a syscall fails.
[[nodiscard]] Result<Fd> listen_seqpacket(const std::string& path) noexcept;

/// As listen_seqpacket(), for a SOCK_STREAM socket (byte stream: NBD). `backlog`: listen(2)'s.
[[nodiscard]] Result<Fd> listen_stream(const std::string& path, int backlog = 64) noexcept;

/// Accepts one connection on the listening socket `lfd`; the new socket is nonblocking and
/// close-on-exec. Errors: kNoSpace when no connection is waiting (try later), kSystem otherwise.
[[nodiscard]] Result<Fd> accept_seqpacket(int lfd) noexcept;

/// Connects to `path` (nonblocking, close-on-exec socket). Errors: kInvalidArgument when the
/// path does not fit; kSystem with sys_errno ENOENT (no socket yet), ECONNREFUSED (nobody
/// listens), EAGAIN (backlog full), or another errno.
[[nodiscard]] Result<Fd> connect_seqpacket(const std::string& path) noexcept;

/// Sends one message carrying `data` (not empty) and up to kMaxPassedFds descriptors.
/// Errors: kInvalidArgument (empty data, too many fds), kNoSpace on EAGAIN, kLinkDown when the
/// peer closed (EPIPE/ECONNRESET), kSystem otherwise.
[[nodiscard]] Result<void> send_with_fds(int sock, std::span<const std::byte> data,
                                         std::span<const int> fds) noexcept;

/// Receives one message into `data` and the descriptors it carries into `fds_out` (cleared
/// first; close-on-exec). Returns the message size; 0 means the peer closed the connection.
/// A message carrying more than `max_fds` descriptors, a message longer than `data` (MSG_TRUNC)
/// or truncated descriptors (MSG_CTRUNC) fail with kOutOfRange, and every descriptor received
/// with it is closed. Errors also: kNoSpace on EAGAIN, kLinkDown when the peer closed with our
/// messages unread (ECONNRESET), kSystem otherwise.
[[nodiscard]] Result<std::size_t> recv_with_fds(int sock, std::span<std::byte> data,
                                                std::vector<Fd>& fds_out,
                                                std::size_t max_fds) noexcept;

}  // namespace vepf::os
