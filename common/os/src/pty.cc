#include "vepf/os/pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <filesystem>
#include <system_error>

namespace vepf::os {

Result<Pty> open_pty(bool raw, bool hold_slave) noexcept {
  Pty p;
  p.master.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.master.valid()) return fail(Errc::kSystem, "posix_openpt", errno);
  if (::grantpt(p.master.get()) != 0) return fail(Errc::kSystem, "grantpt", errno);
  if (::unlockpt(p.master.get()) != 0) return fail(Errc::kSystem, "unlockpt", errno);
  char name[64];
  if (const int e = ::ptsname_r(p.master.get(), name, sizeof(name)); e != 0)
    return fail(Errc::kSystem, "ptsname_r", e);
  p.slave_path = name;
  const int fl = ::fcntl(p.master.get(), F_GETFL);
  if (fl < 0 || ::fcntl(p.master.get(), F_SETFL, fl | O_NONBLOCK) != 0)
    return fail(Errc::kSystem, "O_NONBLOCK", errno);
  // Termios are set through a slave descriptor, then kept or dropped.
  Fd slave(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave.valid()) return fail(Errc::kSystem, "open the pty slave", errno);
  if (raw) {
    termios t{};
    if (::tcgetattr(slave.get(), &t) != 0) return fail(Errc::kSystem, "tcgetattr", errno);
    ::cfmakeraw(&t);
    if (::tcsetattr(slave.get(), TCSANOW, &t) != 0) return fail(Errc::kSystem, "tcsetattr", errno);
  }
  if (hold_slave) p.slave = std::move(slave);
  return p;
}

Result<WinSize> get_winsize(int fd) noexcept {
  winsize w{};
  if (::ioctl(fd, TIOCGWINSZ, &w) != 0) return fail(Errc::kSystem, "TIOCGWINSZ", errno);
  return WinSize{w.ws_row, w.ws_col};
}

Result<void> set_winsize(int fd, WinSize ws) noexcept {
  winsize w{};
  w.ws_row = ws.rows;
  w.ws_col = ws.cols;
  if (::ioctl(fd, TIOCSWINSZ, &w) != 0) return fail(Errc::kSystem, "TIOCSWINSZ", errno);
  return {};
}

Result<void> replace_symlink(const std::string& target, const std::string& link) noexcept {
  std::error_code ec;
  const std::filesystem::path l(link);
  if (l.has_parent_path()) std::filesystem::create_directories(l.parent_path(), ec);
  if (ec) return fail(Errc::kSystem, "create the link's parent directory", ec.value());
  struct stat st {};
  if (::lstat(link.c_str(), &st) == 0 && !S_ISLNK(st.st_mode)) {
    return fail(Errc::kInvalidArgument, "link path exists and is not a symlink");
  }
  const std::string tmp = link + ".new" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) return fail(Errc::kSystem, "symlink", errno);
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::kSystem, "rename the link into place", e);
  }
  return {};
}

void remove_symlink(const std::string& target, const std::string& link) noexcept {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf));
  if (n > 0 && std::string(buf, static_cast<std::size_t>(n)) == target) ::unlink(link.c_str());
}

Result<Child> spawn_on_tty(const std::vector<std::string>& argv, const std::string& tty) noexcept {
  if (argv.empty()) return fail(Errc::kInvalidArgument, "empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return fail(Errc::kSystem, "fork", errno);
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::setsid();
    const int fd =
        ::open(tty.c_str(), O_RDWR);  // the first tty a session leader opens becomes its ctty
    if (fd < 0) ::_exit(126);
    ::ioctl(fd, TIOCSCTTY, 0);
    ::dup2(fd, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (fd > 2) ::close(fd);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the parent blocks signals for its signalfd
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGUSR1, SIGCHLD}) ::signal(s, SIG_DFL);
    ::setenv("TERM", "linux", 0);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  Child c;
  c.pid = pid;
  c.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!c.pidfd.valid()) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return fail(Errc::kSystem, "pidfd_open", e);
  }
  return c;
}

Result<int> reap(Child& c) noexcept {
  if (c.pid < 0) return fail(Errc::kInvalidArgument, "no child");
  int status = 0;
  const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
  if (r < 0) return fail(Errc::kSystem, "waitpid", errno);
  if (r == 0) return fail(Errc::kSystem, "child still running", EAGAIN);
  c.pid = -1;
  c.pidfd.reset();
  return status;
}

void terminate(Child& c, int grace_ms) noexcept {
  if (c.pid < 0) return;
  ::kill(c.pid, SIGHUP);
  ::kill(c.pid, SIGTERM);
  if (c.pidfd.valid()) {
    pollfd p{c.pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, grace_ms) <= 0) ::kill(c.pid, SIGKILL);
  } else {
    ::kill(c.pid, SIGKILL);
  }
  ::waitpid(c.pid, nullptr, 0);
  c.pid = -1;
  c.pidfd.reset();
}

}  // namespace vepf::os
