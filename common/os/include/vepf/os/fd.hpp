#pragma once
// Owner of one file descriptor. Move-only; closes it in the destructor.

#include <chrono>
#include <cstdint>

#include "vepf/error.hpp"

namespace vepf::os {

class Fd {
 public:
  Fd() noexcept = default;
  /// Takes ownership of `fd` (-1 = none).
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() { reset(); }

  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  /// Gives up ownership without closing; returns the descriptor (-1 if none).
  [[nodiscard]] int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes the owned descriptor (if any) and takes ownership of `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// Waits up to `timeout` (negative: forever) for `events` (POLLIN, ...) on one descriptor,
/// retrying on EINTR with the time left. Returns the revents, 0 on timeout.
[[nodiscard]] Result<std::uint32_t> poll_one(int fd, std::uint32_t events,
                                             std::chrono::milliseconds timeout) noexcept;

}  // namespace vepf::os
