#pragma once
// Test fixture: the two windows of a link as plain host memory (ARCHITECTURE.md §1), seen from
// both sides. The device side has the EP window local and the RC window remote (its accesses to
// it are counted in dev_counters); the driver side has the EP window remote (drv_counters) and
// the RC window local. Each window is a sub-span of a larger, 64-byte aligned allocation with
// guard bytes on both sides, so a test can check that nothing outside the windows was touched.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "vepf/layout/epf.hpp"
#include "vepf/layout/le.hpp"
#include "vepf/ring/access.hpp"

namespace vepf::test {

/// std::allocator with a fixed over-alignment (operator new with align_val_t).
template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{Align}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{Align}); }
  friend bool operator==(const AlignedAllocator&, const AlignedAllocator&) noexcept { return true; }
};

using AlignedBytes = std::vector<std::byte, AlignedAllocator<std::byte, 64>>;

inline constexpr std::byte kGuardByte{0xA5};
inline constexpr std::size_t kGuardSize = 4096;  // keeps the window 64-byte (and 4 KiB) aligned

/// A window's memory with guard bytes around it. One aligned allocation set with memset (a
/// container of bytes with a custom allocator would construct and destroy them one by one,
/// which costs the fuzz targets more than their runs).
class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::size_t size)
      : size_(size),
        storage_(static_cast<std::byte*>(
            ::operator new[](kGuardSize + size + kGuardSize, std::align_val_t{64}))) {
    std::memset(storage_.get(), static_cast<int>(kGuardByte), kGuardSize);
    std::memset(storage_.get() + kGuardSize, 0, size_);
    std::memset(storage_.get() + kGuardSize + size_, static_cast<int>(kGuardByte), kGuardSize);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  std::span<std::byte> bytes() noexcept { return {storage_.get() + kGuardSize, size_}; }
  std::size_t size() const noexcept { return size_; }
  /// True when no byte before or after the window changed.
  bool guards_intact() const noexcept {
    for (std::size_t i = 0; i < kGuardSize; ++i) {
      if (storage_[i] != kGuardByte || storage_[kGuardSize + size_ + i] != kGuardByte) return false;
    }
    return true;
  }

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::size_t size_;
  std::unique_ptr<std::byte[], AlignedDelete> storage_;
};

/// Raw little-endian pokes and peeks into window memory, for tests that play a (misbehaving)
/// peer by hand. Bypass the Window accessors on purpose: nothing is counted.
template <class T>
void poke(std::span<std::byte> mem, std::size_t off, T v) {
  const T raw = layout::Le<T>::conv(v);
  std::memcpy(mem.data() + off, &raw, sizeof(T));
}
template <class T>
T peek(std::span<const std::byte> mem, std::size_t off) {
  T raw;
  std::memcpy(&raw, mem.data() + off, sizeof(T));
  return layout::Le<T>::conv(raw);
}

inline constexpr std::size_t kDefaultWindowSize = std::size_t{1} << 20;  // 1 MiB

/// Both windows, both views, both address spaces. Not copyable or movable: the views point at
/// the counters and the address spaces at the views.
struct LinkWindows {
  /// `access`: the memory type and access widths every view of both windows is treated as
  /// (the memory itself is ordinary: the accessor's copies and the strict link model follow it).
  explicit LinkWindows(std::size_t ep_size = kDefaultWindowSize,
                       std::size_t rc_size = kDefaultWindowSize, ring::MemoryAccess access = {})
      : ep_mem(ep_size),
        rc_mem(rc_size),
        dev_ep(layout::WindowId::kEp, ep_mem.bytes(), nullptr, access),
        dev_rc(layout::WindowId::kRc, rc_mem.bytes(), &dev_counters, access),
        dev_space(&dev_ep, &dev_rc),
        drv_ep(layout::WindowId::kEp, ep_mem.bytes(), &drv_counters, access),
        drv_rc(layout::WindowId::kRc, rc_mem.bytes(), nullptr, access),
        drv_space(&drv_ep, &drv_rc) {}
  LinkWindows(const LinkWindows&) = delete;
  LinkWindows& operator=(const LinkWindows&) = delete;

  std::span<std::byte> ep() noexcept { return ep_mem.bytes(); }
  std::span<std::byte> rc() noexcept { return rc_mem.bytes(); }
  bool guards_intact() const noexcept { return ep_mem.guards_intact() && rc_mem.guards_intact(); }

  GuardedBuffer ep_mem;
  GuardedBuffer rc_mem;
  ring::LinkCounters dev_counters;
  ring::LinkCounters drv_counters;
  // Device side (EP): EP window local, RC window remote.
  ring::Window dev_ep;
  ring::Window dev_rc;
  ring::AddressSpace dev_space;
  // Driver side (RC): EP window remote, RC window local.
  ring::Window drv_ep;
  ring::Window drv_rc;
  ring::AddressSpace drv_space;
};

inline std::uint64_t ep_addr(std::size_t off) {
  return layout::link_addr(layout::WindowId::kEp, off);
}
inline std::uint64_t rc_addr(std::size_t off) {
  return layout::link_addr(layout::WindowId::kRc, off);
}

}  // namespace vepf::test
