#pragma once
// The driver's allocator for the space it manages in one window (rings, indirect tables, frame
// buffers). First fit over a sorted list of free ranges; freeing merges neighbours, so devices
// can come and go while the link stays up.

#include <cstddef>
#include <cstdint>
#include <map>

#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"

namespace vepf::transport {

/// A range the driver allocated in one of the windows.
struct Allocation {
  std::uint64_t link_addr = 0;  // what goes into descriptors and queue lines (LAYOUT.md §4)
  std::size_t off = 0;          // byte offset in the window
  std::size_t len = 0;          // bytes
};

class WindowAllocator {
 public:
  WindowAllocator() = default;
  /// Manages [begin, end) of window `id` (byte offsets).
  WindowAllocator(layout::WindowId id, std::size_t begin, std::size_t end);

  /// `bytes` bytes aligned to `align` (a power of 2). Errors: kNoSpace when no free range fits,
  /// kInvalidArgument for 0 bytes or a bad alignment.
  [[nodiscard]] Result<Allocation> alloc(std::size_t bytes, std::size_t align) noexcept;
  /// Returns an allocation of this allocator (ignores one of another window or an empty one).
  void free(const Allocation& a) noexcept;
  /// Bytes currently allocated.
  std::size_t used() const noexcept { return used_; }
  /// Free ranges (offset -> length), for tests.
  const std::map<std::size_t, std::size_t>& free_ranges() const noexcept { return free_; }

 private:
  layout::WindowId id_{};
  std::map<std::size_t, std::size_t> free_;  // offset -> length, no two adjacent
  std::size_t used_ = 0;
};

}  // namespace vepf::transport
