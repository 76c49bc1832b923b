#include "vepf/os/eventfd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

namespace vepf::os {

Result<EventFd> EventFd::create() noexcept {
  Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd.valid()) return fail(Errc::kSystem, "eventfd", errno);
  return EventFd(std::move(fd));
}

namespace {
/// Whether `fd` is an eventfd: the kernel names it "anon_inode:[eventfd]" under /proc/self/fd.
/// Without /proc (a small root filesystem), only that it is an anonymous inode (no file type).
bool is_eventfd(int fd) noexcept {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  char target[64];
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
  if (n > 0) return std::string_view(target, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]";
  struct stat st {};
  if (errno != ENOENT || ::fstat(fd, &st) < 0) return false;
  return (st.st_mode & S_IFMT) == 0;
}
}  // namespace

Result<EventFd> EventFd::adopt(Fd fd) noexcept {
  if (!fd.valid()) return fail(Errc::kInvalidArgument, "eventfd: no descriptor");
  if (!is_eventfd(fd.get()))
    return fail(Errc::kInvalidArgument, "the peer passed a descriptor that is not an eventfd");
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
