#include "vepf/os/fd.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace vepf::os {

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) {
    // close() releases the descriptor even when it reports EINTR/EIO on Linux: never retry.
    ::close(fd_);
  }
  fd_ = fd;
}

Result<std::uint32_t> poll_one(int fd, std::uint32_t events,
                               std::chrono::milliseconds timeout) noexcept {
  using Clock = std::chrono::steady_clock;
  const bool forever = timeout.count() < 0;
  const auto deadline = Clock::now() + (forever ? std::chrono::milliseconds{0} : timeout);
  for (;;) {
    int ms = -1;
    if (!forever) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      ms = static_cast<int>(
          std::max<std::int64_t>(0, std::min<std::int64_t>(left.count(), INT32_MAX)));
    }
    pollfd p{fd, static_cast<short>(events), 0};
    const int n = ::poll(&p, 1, ms);
    if (n > 0) return static_cast<std::uint32_t>(static_cast<unsigned short>(p.revents));
    if (n == 0) return 0u;
    if (errno != EINTR) return fail(Errc::kSystem, "poll", errno);
  }
}

}  // namespace vepf::os
