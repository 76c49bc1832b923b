#pragma once
// The EP's backing store of a virtio-blk device: a regular file or a block device, opened once.
// Every call is a plain blocking syscall, safe to make from several threads at once (pread and
// pwrite at explicit offsets); BlockDevice runs them on its I/O threads.

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::ep {

class BlockFile {
 public:
  /// Opens `path` (O_RDWR, or O_RDONLY when `read_only`; O_CLOEXEC). A missing path is created
  /// as a sparse file of `create_size` bytes when that is non-zero. The size is the file's or
  /// the block device's (BLKGETSIZE64), rounded down to 512-byte sectors.
  /// Errors: kSystem (open, fstat, ftruncate, ioctl failed; sys_errno set), kInvalidArgument
  /// (neither a regular file nor a block device, or smaller than one sector).
  [[nodiscard]] static Result<BlockFile> open(const std::string& path, std::uint64_t create_size,
                                              bool read_only);

  std::uint64_t size() const noexcept { return size_; }  // bytes, a multiple of 512
  bool is_block_device() const noexcept { return blkdev_; }
  const std::string& path() const noexcept { return path_; }

  /// Full reads and writes (short transfers are retried; reading past the end gives zeroes).
  /// Return 0 or an errno.
  int read(std::uint64_t offset, std::span<std::byte> dst) const noexcept;
  int write(std::uint64_t offset, std::span<const std::byte> src) const noexcept;
  /// As write(), gathering from `iov` (pwritev); the iovecs are advanced past what was written.
  int write(std::uint64_t offset, std::span<iovec> iov) const noexcept;
  /// read() only if the page cache holds all of it (preadv2 RWF_NOWAIT): never waits for the
  /// storage, so the device's own thread can make it. Returns 0, EAGAIN when some of it would
  /// wait or the file system cannot tell (read() it on an I/O thread then), or an errno.
  int read_cached(std::uint64_t offset, std::span<std::byte> dst) const noexcept;
  /// fdatasync(2): everything written before is on stable storage.
  int flush() const noexcept;
  /// Deallocates a range (fallocate PUNCH_HOLE, BLKDISCARD); reads of it return zeroes after a
  /// successful discard of a regular file. EOPNOTSUPP when the file system cannot.
  int discard(std::uint64_t offset, std::uint64_t length) const noexcept;
  /// Zeroes a range: ZERO_RANGE / PUNCH_HOLE (when `unmap`) / BLKZEROOUT, falling back to
  /// writing zeroes.
  int write_zeroes(std::uint64_t offset, std::uint64_t length, bool unmap) const noexcept;

 private:
  os::Fd fd_;
  std::uint64_t size_ = 0;
  bool blkdev_ = false;
  std::string path_;
};

}  // namespace vepf::ep
