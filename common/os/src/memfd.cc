#include "vepf/os/memfd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vepf::os {
namespace {

constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;

Result<std::span<std::byte>> map_shared(int fd, std::size_t size) noexcept {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail(Errc::kSystem, "mmap of shared memory", errno);
  return std::span<std::byte>(static_cast<std::byte*>(p), size);
}

}  // namespace

void SharedMemory::unmap() noexcept {
  if (!mem_.empty()) ::munmap(mem_.data(), mem_.size());
  mem_ = {};
}

Result<SharedMemory> SharedMemory::create(const char* name, std::size_t size) noexcept {
  if (size == 0) return fail(Errc::kInvalidArgument, "shared memory of size 0");
  Fd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fail(Errc::kSystem, "memfd_create", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    return fail(Errc::kSystem, "ftruncate of memfd", errno);
  if (::fcntl(fd.get(), F_ADD_SEALS, kSizeSeals | F_SEAL_SEAL) < 0) {
    return fail(Errc::kSystem, "fcntl(F_ADD_SEALS) on memfd", errno);
  }
  auto mem = map_shared(fd.get(), size);
  if (!mem) return tl::unexpected(mem.error());
  return SharedMemory(std::move(fd), *mem);
}

Result<SharedMemory> SharedMemory::map(Fd fd, std::size_t expected_size) noexcept {
  if (!fd.valid()) return fail(Errc::kInvalidArgument, "shared memory: no descriptor");
  if (expected_size == 0) return fail(Errc::kOutOfRange, "shared memory of size 0");
  // Seals first: once F_SEAL_SHRINK is set, the size fstat() reports can no longer drop.
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return fail(Errc::kOutOfRange, "shared memory is not a sealable memfd", errno);
  if ((seals & F_SEAL_SHRINK) == 0)
    return fail(Errc::kOutOfRange, "shared memory size is not sealed");
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return fail(Errc::kSystem, "fstat of shared memory", errno);
  if (!S_ISREG(st.st_mode)) return fail(Errc::kOutOfRange, "shared memory is not a regular file");
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) != expected_size) {
    return fail(Errc::kOutOfRange, "shared memory size differs from the announced size");
  }
  auto mem = map_shared(fd.get(), expected_size);
  if (!mem) return tl::unexpected(mem.error());
  return SharedMemory(std::move(fd), *mem);
}

}  // namespace vepf::os
