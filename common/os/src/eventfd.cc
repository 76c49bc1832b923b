#include "vepf/os/eventfd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace vepf::os {

Result<EventFd> EventFd::create() noexcept {
  Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd.valid()) return fail(Errc::kSystem, "eventfd", errno);
  return EventFd(std::move(fd));
}

Result<EventFd> EventFd::adopt(Fd fd) noexcept {
  if (!fd.valid()) return fail(Errc::kInvalidArgument, "eventfd: no descriptor");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0) return fail(Errc::kSystem, "fcntl(F_GETFL) on eventfd", errno);
  if (::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return fail(Errc::kSystem, "fcntl(F_SETFL, O_NONBLOCK) on eventfd", errno);
  }
  return EventFd(std::move(fd));
}

Result<void> EventFd::signal() noexcept {
  const std::uint64_t one = 1;
  for (;;) {
    const ssize_t n = ::write(fd_.get(), &one, sizeof one);
    if (n == static_cast<ssize_t>(sizeof one)) return {};
    if (n >= 0) return fail(Errc::kSystem, "eventfd write: short write", EIO);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return fail(Errc::kNoSpace, "eventfd counter saturated", errno);
    return fail(Errc::kSystem, "eventfd write", errno);
  }
}

Result<std::uint64_t> EventFd::drain() noexcept {
  std::uint64_t value = 0;
  for (;;) {
    const ssize_t n = ::read(fd_.get(), &value, sizeof value);
    if (n == static_cast<ssize_t>(sizeof value)) return value;
    if (n >= 0) return fail(Errc::kSystem, "eventfd read: short read", EIO);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return std::uint64_t{0};
    return fail(Errc::kSystem, "eventfd read", errno);
  }
}

Result<bool> EventFd::wait(std::chrono::milliseconds timeout) noexcept {
  auto revents = poll_one(fd_.get(), POLLIN, timeout);
  if (!revents) return tl::unexpected(revents.error());
  if (*revents & (POLLERR | POLLNVAL)) return fail(Errc::kSystem, "poll on eventfd", EBADF);
  return (*revents & POLLIN) != 0;
}

}  // namespace vepf::os
