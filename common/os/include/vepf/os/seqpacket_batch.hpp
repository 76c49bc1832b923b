#pragma once
// Bursts of messages on a connected, nonblocking unix SOCK_SEQPACKET socket: one recvmmsg(2) or
// sendmmsg(2) for up to kBatch messages, where a program would otherwise make one syscall per
// message (rpmsg channels, the rpmsg relay and the library's end of it).

#include <cstddef>
#include <deque>
#include <span>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include "vepf/error.hpp"

namespace vepf::os {

/// Most messages one recv() or send_queued() call moves.
inline constexpr std::size_t kBatch = 32;

/// Buffers for receiving up to kBatch messages of up to `size` bytes each at once.
class RecvBatch {
 public:
  /// `size`: bytes per message buffer; make it larger than any acceptable message, so that an
  /// oversized one shows as truncated().
  explicit RecvBatch(std::size_t size);
  RecvBatch(const RecvBatch&) = delete;  // the headers point into the buffers
  RecvBatch& operator=(const RecvBatch&) = delete;

  /// Receives up to min(`want`, kBatch) messages waiting on `fd` (MSG_DONTWAIT). Returns how
  /// many (0: none waiting). Errors: kLinkDown when the peer closed (end of file, ECONNRESET),
  /// kSystem otherwise.
  [[nodiscard]] Result<std::size_t> recv(int fd, std::size_t want) noexcept;
  /// Message `i` of the last recv() (valid until the next one).
  std::span<const std::byte> message(std::size_t i) const noexcept;
  /// True when message `i` was longer than the buffer (MSG_TRUNC): message() is cut.
  bool truncated(std::size_t i) const noexcept {
    return (mmsg_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
  }

 private:
  std::size_t size_;
  std::vector<std::byte> buf_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> mmsg_;
};

/// What send_queued() did.
struct QueuedSend {
  std::size_t sent = 0;     // messages the socket took, removed from the queue
  std::size_t dropped = 0;  // messages whose send failed otherwise (the peer is gone): removed
  bool blocked = false;     // the socket is full: the rest waits for EPOLLOUT
};

/// Sends the messages of `queue`, front first, one socket message each, on the connected
/// nonblocking SOCK_SEQPACKET socket `fd` (sendmmsg(2), kBatch per call, MSG_NOSIGNAL) until the
/// queue is empty or the socket is full.
QueuedSend send_queued(int fd, std::deque<std::vector<std::byte>>& queue) noexcept;

}  // namespace vepf::os
