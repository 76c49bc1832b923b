#include "vepf/transport/window_allocator.hpp"

#include <iterator>

namespace vepf::transport {

WindowAllocator::WindowAllocator(layout::WindowId id, std::size_t begin, std::size_t end)
    : id_(id) {
  if (end > begin) free_.emplace(begin, end - begin);
}

Result<Allocation> WindowAllocator::alloc(std::size_t bytes, std::size_t align) noexcept {
  if (bytes == 0 || align == 0 || (align & (align - 1)) != 0)
    return fail(Errc::kInvalidArgument, "bad allocation size or alignment");
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const std::size_t start = it->first, len = it->second;
    const std::size_t aligned = (start + align - 1) & ~(align - 1);
    if (aligned < start || aligned - start > len || bytes > len - (aligned - start)) continue;
    free_.erase(it);
    if (aligned > start) free_.emplace(start, aligned - start);
    const std::size_t tail = start + len - (aligned + bytes);
    if (tail) free_.emplace(aligned + bytes, tail);
    used_ += bytes;
    return Allocation{layout::link_addr(id_, aligned), aligned, bytes};
  }
  return fail(Errc::kNoSpace, "window exhausted");
}

void WindowAllocator::free(const Allocation& a) noexcept {
  if (a.len == 0 || layout::link_addr_window(a.link_addr) != static_cast<std::uint8_t>(id_)) return;
  std::size_t off = a.off, len = a.len;
  auto next = free_.lower_bound(off);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {  // merge with the range before
      off = prev->first;
      len += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end() && off + len == next->first) {  // and with the one after
    len += next->second;
    free_.erase(next);
  }
  free_.emplace(off, len);
  used_ -= a.len;
}

}  // namespace vepf::transport
