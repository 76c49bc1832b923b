#pragma once
// Pseudo-terminals for virtio-console ports: a pty pair, its window size, a stable symlink to
// the slave, and a program run with the slave as its controlling terminal (a login shell).
// Uses only libc (posix_openpt, grantpt, unlockpt, ptsname_r): vepf-ep links statically.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

struct Pty {
  Fd master;               // nonblocking, close-on-exec
  Fd slave;                // close-on-exec, O_NOCTTY; -1 when open_pty(hold_slave = false)
  std::string slave_path;  // "/dev/pts/N"
};

/// Window size in character cells (struct winsize ws_row / ws_col; pixels are not carried).
struct WinSize {
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
  bool operator==(const WinSize&) const = default;
};

/// Opens a pty pair. `raw`: the line discipline passes bytes through (cfmakeraw: no echo, no
/// line editing, no CR/NL translation): a byte pipe until the program on the slave sets its own
/// modes. `hold_slave`: keep a slave descriptor open, so that the master never reads EIO/HUP
/// while nobody else has the slave open. Errors: kSystem (sys_errno from the failing call).
[[nodiscard]] Result<Pty> open_pty(bool raw, bool hold_slave) noexcept;

/// TIOCGWINSZ / TIOCSWINSZ on a pty descriptor (either end). Setting it on the master makes the
/// kernel send SIGWINCH to the slave's foreground process group. Errors: kSystem.
[[nodiscard]] Result<WinSize> get_winsize(int fd) noexcept;
[[nodiscard]] Result<void> set_winsize(int fd, WinSize ws) noexcept;

/// Points the symlink `link` at `target`, atomically (a temporary link renamed over it), and
/// creates `link`'s parent directories. Refuses to replace anything that is not a symlink.
/// Errors: kInvalidArgument (an existing non-symlink), kSystem.
[[nodiscard]] Result<void> replace_symlink(const std::string& target,
                                           const std::string& link) noexcept;
/// Removes `link` if it is a symlink pointing at `target` (and nothing else). Never fails.
void remove_symlink(const std::string& target, const std::string& link) noexcept;

/// A child process and a pidfd that becomes readable when it exits (poll it, then reap()).
struct Child {
  pid_t pid = -1;
  Fd pidfd;
};
/// Runs `argv` (argv[0] looked up in PATH) in a new session with `tty` (a pty slave path) as its
/// controlling terminal and stdin/stdout/stderr; TERM is set to "linux" when unset. Errors:
/// kInvalidArgument (empty argv), kSystem (fork, pidfd_open). A failed exec shows as exit
/// status 127.
[[nodiscard]] Result<Child> spawn_on_tty(const std::vector<std::string>& argv,
                                         const std::string& tty) noexcept;
/// Reaps an exited child; returns its wait status. Errors: kSystem (not exited yet: EAGAIN).
[[nodiscard]] Result<int> reap(Child& c) noexcept;
/// SIGHUP then, unless it exits within `grace_ms`, SIGKILL; reaps it.
void terminate(Child& c, int grace_ms) noexcept;

}  // namespace vepf::os
