#pragma once
// Shared memory that can be passed to another process: a sealed memfd mapped MAP_SHARED.
// The loopback platform's windows.

#include <cstddef>
#include <span>
#include <utility>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

class SharedMemory {
 public:
  SharedMemory() noexcept = default;
  ~SharedMemory() { unmap(); }
  SharedMemory(SharedMemory&& o) noexcept
      : fd_(std::move(o.fd_)), mem_(std::exchange(o.mem_, {})) {}
  SharedMemory& operator=(SharedMemory&& o) noexcept {
    if (this != &o) {
      unmap();
      fd_ = std::move(o.fd_);
      mem_ = std::exchange(o.mem_, {});
    }
    return *this;
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  /// Creates a zero-filled memfd of `size` bytes (close-on-exec) and maps it. The size is sealed
  /// (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): whoever receives the fd cannot shrink it under
  /// our mapping (a shrink would turn our next access into SIGBUS).
  /// Errors: kInvalidArgument for size 0; kSystem when a syscall fails.
  [[nodiscard]] static Result<SharedMemory> create(const char* name, std::size_t size) noexcept;

  /// Maps a memfd received from a peer. Refuses it (kOutOfRange) unless it is a regular file of
  /// exactly `expected_size` bytes whose size is sealed against shrinking.
  [[nodiscard]] static Result<SharedMemory> map(Fd fd, std::size_t expected_size) noexcept;

  std::span<std::byte> bytes() const noexcept { return mem_; }
  std::size_t size() const noexcept { return mem_.size(); }
  int fd() const noexcept { return fd_.get(); }
  bool valid() const noexcept { return !mem_.empty(); }

 private:
  SharedMemory(Fd fd, std::span<std::byte> mem) noexcept : fd_(std::move(fd)), mem_(mem) {}
  void unmap() noexcept;

  Fd fd_;
  std::span<std::byte> mem_;
};

}  // namespace vepf::os
