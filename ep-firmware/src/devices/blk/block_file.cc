#include "devices/blk/block_file.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <vector>

namespace vepf::ep {

Result<BlockFile> BlockFile::open(const std::string& path, std::uint64_t create_size,
                                  bool read_only) {
  BlockFile f;
  f.path_ = path;
  int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd = ::open(path.c_str(), flags);
  if (fd < 0 && errno == ENOENT && create_size != 0) {
    // Created writable (ftruncate needs it), then opened as asked: a read-only device may start
    // as a new, empty image. Missing parent directories are created (like listen_seqpacket()).
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    const int cfd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (cfd < 0) return fail(Errc::kSystem, "open (create)", errno);
    if (::ftruncate(cfd, static_cast<off_t>(create_size)) != 0) {
      const int e = errno;
      ::close(cfd);
      ::unlink(path.c_str());
      return fail(Errc::kSystem, "ftruncate", e);
    }
    ::close(cfd);
    fd = ::open(path.c_str(), flags);
  }
  if (fd < 0) return fail(Errc::kSystem, "open", errno);
  f.fd_ = os::Fd(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Errc::kSystem, "fstat", errno);
  std::uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0)
      return fail(Errc::kSystem, "ioctl(BLKGETSIZE64)", errno);
    f.blkdev_ = true;
  } else if (S_ISREG(st.st_mode)) {
    bytes = static_cast<std::uint64_t>(st.st_size);
  } else {
    return fail(Errc::kInvalidArgument, "neither a regular file nor a block device");
  }
  f.size_ = bytes & ~std::uint64_t{511};
  if (f.size_ == 0) return fail(Errc::kInvalidArgument, "smaller than one 512-byte sector");
  return f;
}

int BlockFile::read(std::uint64_t offset, std::span<std::byte> dst) const noexcept {
  while (!dst.empty()) {
    const ssize_t n = ::pread(fd_.get(), dst.data(), dst.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) {  // past the end of a file that shrank under us: zeroes, as a hole would read
      std::fill(dst.begin(), dst.end(), std::byte{0});
      return 0;
    }
    dst = dst.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int BlockFile::write(std::uint64_t offset, std::span<iovec> iov) const noexcept {
  while (!iov.empty()) {
    const int cnt = static_cast<int>(std::min<std::size_t>(iov.size(), IOV_MAX));
    ssize_t n = ::pwritev(fd_.get(), iov.data(), cnt, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    offset += static_cast<std::uint64_t>(n);
    // Past what was written: whole iovecs, then into the first one left.
    while (!iov.empty() && static_cast<std::size_t>(n) >= iov.front().iov_len) {
      n -= static_cast<ssize_t>(iov.front().iov_len);
      iov = iov.subspan(1);
    }
    if (n > 0) {
      iov.front().iov_base = static_cast<std::byte*>(iov.front().iov_base) + n;
      iov.front().iov_len -= static_cast<std::size_t>(n);
    }
  }
  return 0;
}

int BlockFile::read_cached(std::uint64_t offset, std::span<std::byte> dst) const noexcept {
  while (!dst.empty()) {
    iovec v{dst.data(), dst.size()};
    const ssize_t n = ::preadv2(fd_.get(), &v, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EOPNOTSUPP ? EAGAIN : errno;
    }
    if (n == 0) {  // past the end: zeroes, as read() gives
      std::fill(dst.begin(), dst.end(), std::byte{0});
      return 0;
    }
    dst = dst.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int BlockFile::write(std::uint64_t offset, std::span<const std::byte> src) const noexcept {
  while (!src.empty()) {
    const ssize_t n = ::pwrite(fd_.get(), src.data(), src.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    src = src.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int BlockFile::flush() const noexcept { return ::fdatasync(fd_.get()) == 0 ? 0 : errno; }

int BlockFile::discard(std::uint64_t offset, std::uint64_t length) const noexcept {
  if (blkdev_) {
    std::uint64_t range[2] = {offset, length};
    return ::ioctl(fd_.get(), BLKDISCARD, range) == 0 ? 0 : errno;
  }
  const int r = ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            static_cast<off_t>(offset), static_cast<off_t>(length));
  return r == 0 ? 0 : errno;
}

int BlockFile::write_zeroes(std::uint64_t offset, std::uint64_t length, bool unmap) const noexcept {
  int r = -1;
  if (blkdev_) {
    std::uint64_t range[2] = {offset, length};
    r = ::ioctl(fd_.get(), BLKZEROOUT, range);
  } else {
    const int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                           : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    r = ::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length));
    if (r != 0 && unmap && (errno == EOPNOTSUPP || errno == EINVAL)) {
      r = ::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(offset), static_cast<off_t>(length));
    }
  }
  if (r == 0) return 0;
  if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOTTY) return errno;
  // The file system cannot: write the zeroes.
  static const std::vector<std::byte> zeroes(1 << 20);
  while (length > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeroes.size()));
    if (int e = write(offset, std::span{zeroes}.first(n)); e != 0) return e;
    offset += n;
    length -= n;
  }
  return 0;
}

}  // namespace vepf::ep
