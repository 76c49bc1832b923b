#pragma once
// Signals as events: block them and read them from a signalfd in the event loop.

#include <initializer_list>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

/// Blocks `signals` in the calling thread (call before starting threads, so they inherit the
/// mask) and returns a nonblocking, close-on-exec signalfd that reports them.
/// Errors: kInvalidArgument for a bad signal number; kSystem when a syscall fails.
[[nodiscard]] Result<Fd> block_and_signalfd(std::initializer_list<int> signals) noexcept;

/// Reads one pending signal from `sfd`. Returns its number, or 0 when none is pending.
[[nodiscard]] Result<int> read_signal(int sfd) noexcept;

}  // namespace vepf::os
