#include "vepf/os/signals.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace vepf::os {

Result<Fd> block_and_signalfd(std::initializer_list<int> signals) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : signals) {
    if (sigaddset(&set, s) < 0)
      return fail(Errc::kInvalidArgument, "sigaddset: bad signal number", errno);
  }
  // pthread_sigmask returns the error number instead of setting errno.
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    return fail(Errc::kSystem, "pthread_sigmask(SIG_BLOCK)", rc);
  }
  Fd sfd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!sfd.valid()) return fail(Errc::kSystem, "signalfd", errno);
  return sfd;
}

Result<int> read_signal(int sfd) noexcept {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(sfd, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return static_cast<int>(info.ssi_signo);
    if (n >= 0) return fail(Errc::kSystem, "signalfd read: short read", EIO);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return fail(Errc::kSystem, "signalfd read", errno);
  }
}

}  // namespace vepf::os
