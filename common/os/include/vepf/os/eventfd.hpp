#pragma once
// A nonblocking eventfd: a counter one side increments (signal) and the other drains.
// The loopback platform's doorbell (RC->EP) and interrupt (EP->RC).

#include <chrono>
#include <cstdint>
#include <utility>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

class EventFd {
 public:
  EventFd() noexcept = default;

  /// Creates a nonblocking, close-on-exec eventfd with counter 0.
  [[nodiscard]] static Result<EventFd> create() noexcept;
  /// Wraps a descriptor received from a peer and sets O_NONBLOCK on it, so a peer that passed a
  /// blocking descriptor cannot stall us. Errors: kInvalidArgument when it is not an eventfd
  /// (a pipe or socket could block or fill up: /proc/self/fd names an eventfd
  /// "anon_inode:[eventfd]"; without /proc, any anonymous inode passes), kSystem (fcntl).
  [[nodiscard]] static Result<EventFd> adopt(Fd fd) noexcept;

  int fd() const noexcept { return fd_.get(); }
  bool valid() const noexcept { return fd_.valid(); }

  /// Adds 1 to the counter. Errors: kNoSpace when the counter is saturated, kSystem otherwise.
  [[nodiscard]] Result<void> signal() noexcept;
  /// Reads and clears the counter. Returns 0 when nothing was signalled.
  [[nodiscard]] Result<std::uint64_t> drain() noexcept;
  /// Waits up to `timeout` for the counter to become non-zero (does not drain it).
  /// Returns false on timeout. A negative timeout waits forever.
  [[nodiscard]] Result<bool> wait(std::chrono::milliseconds timeout) noexcept;

 private:
  explicit EventFd(Fd fd) noexcept : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace vepf::os
