#include "shm.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "vepf/os/memfd.hpp"

namespace vepf::ivshmem {

Result<os::Fd> create_shared_memory(const std::string& path, std::size_t size) noexcept {
  if (size == 0) return fail(Errc::kInvalidArgument, "shared memory of size 0");
  if (path.empty()) {
    auto mem = os::SharedMemory::create("vepf-ivshmem", size);
    if (!mem) return tl::unexpected(mem.error());
    // Our own mapping is not needed: keep a descriptor, let `mem` unmap and close its own.
    os::Fd fd(::fcntl(mem->fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return fail(Errc::kSystem, "fcntl(F_DUPFD_CLOEXEC) of the memfd", errno);
    return fd;
  }
  // O_NONBLOCK: a FIFO at `path` must not hang the open; it is refused just below.
  os::Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600));
  if (!fd.valid()) return fail(Errc::kSystem, "open of the shared-memory file", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0)
    return fail(Errc::kSystem, "fstat of the shared-memory file", errno);
  if (!S_ISREG(st.st_mode))
    return fail(Errc::kInvalidArgument, "the shared-memory path is not a regular file");
  if (::ftruncate(fd.get(), 0) < 0 || ::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    return fail(Errc::kSystem, "ftruncate of the shared-memory file", errno);
  return fd;
}

}  // namespace vepf::ivshmem
