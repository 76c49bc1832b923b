#include "vepf/os/seqpacket_batch.hpp"

#include <array>
#include <cerrno>

namespace vepf::os {

RecvBatch::RecvBatch(std::size_t size)
    : size_(size), buf_(size * kBatch), iov_(kBatch), mmsg_(kBatch) {
  for (std::size_t i = 0; i < kBatch; ++i) {
    iov_[i] = {buf_.data() + i * size_, size_};
    mmsg_[i] = {};
    mmsg_[i].msg_hdr.msg_iov = &iov_[i];
    mmsg_[i].msg_hdr.msg_iovlen = 1;
  }
}

Result<std::size_t> RecvBatch::recv(int fd, std::size_t want) noexcept {
  if (want == 0) return std::size_t{0};
  const unsigned n = static_cast<unsigned>(want < kBatch ? want : kBatch);
  const int got = ::recvmmsg(fd, mmsg_.data(), n, MSG_DONTWAIT, nullptr);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::size_t{0};
    if (errno == ECONNRESET) return fail(Errc::kLinkDown, "the peer closed the connection");
    return fail(Errc::kSystem, "recvmmsg", errno);
  }
  // SOCK_SEQPACKET: a zero-length first message is the end of the connection.
  if (got == 0 || mmsg_[0].msg_len == 0)
    return fail(Errc::kLinkDown, "the peer closed the connection");
  return static_cast<std::size_t>(got);
}

std::span<const std::byte> RecvBatch::message(std::size_t i) const noexcept {
  const std::size_t len = mmsg_[i].msg_len < size_ ? mmsg_[i].msg_len : size_;
  return {buf_.data() + i * size_, len};
}

QueuedSend send_queued(int fd, std::deque<std::vector<std::byte>>& queue) noexcept {
  QueuedSend r;
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> mmsg{};
  while (!queue.empty()) {
    const std::size_t n = queue.size() < kBatch ? queue.size() : kBatch;
    for (std::size_t i = 0; i < n; ++i) {
      iov[i] = {queue[i].data(), queue[i].size()};
      mmsg[i] = {};
      mmsg[i].msg_hdr.msg_iov = &iov[i];
      mmsg[i].msg_hdr.msg_iovlen = 1;
    }
    const int sent =
        ::sendmmsg(fd, mmsg.data(), static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      r.blocked = true;
      break;
    }
    // The first message failed otherwise: the peer is gone (its hang-up closes the connection),
    // and that message with it.
    const std::size_t done = sent < 0 ? 1 : static_cast<std::size_t>(sent);
    (sent < 0 ? r.dropped : r.sent) += done;
    for (std::size_t i = 0; i < done; ++i) queue.pop_front();
  }
  return r;
}

}  // namespace vepf::os
