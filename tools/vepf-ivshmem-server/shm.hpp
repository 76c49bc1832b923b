#pragma once
// The shared memory an ivshmem server hands out (ivshmem-spec, Client-Server Protocol,
// message 3). QEMU maps the descriptor as BAR2 at the size fstat() reports.

#include <cstddef>
#include <string>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::ivshmem {

/// Creates `size` bytes of zeros to share. With an empty `path`: an anonymous memfd whose size
/// is sealed (no client can shrink it under another's mapping). Otherwise the regular file
/// `path` (created with mode 0600, or truncated to 0 and regrown, which zeroes it), so that
/// scripts can inspect it (e.g. under /dev/shm). The file is left in place.
/// Errors: kInvalidArgument (size 0, `path` names something other than a regular file),
/// kSystem when a syscall fails.
[[nodiscard]] Result<os::Fd> create_shared_memory(const std::string& path,
                                                  std::size_t size) noexcept;

}  // namespace vepf::ivshmem
