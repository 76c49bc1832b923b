#pragma once
// Exact-width accesses to memory shared with the peer (a window: memfd, BAR, outbound window).
// The only place in libvepf that turns a byte pointer into a typed reference.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace vepf::hw {

/// Loads a naturally aligned T from shared memory with acquire ordering: later loads (ring
/// entries, descriptors, buffers) are not reordered before it. `p` must be aligned to sizeof(T).
template <class T>
T load_acquire(const std::byte* p) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  // atomic_ref needs a non-const object; the access itself does not write.
  auto& ref = *reinterpret_cast<T*>(const_cast<std::byte*>(p));
  return std::atomic_ref<T>(ref).load(std::memory_order_acquire);
}

/// Stores a naturally aligned T to shared memory with release ordering: earlier stores
/// (descriptors, ring entries, buffers) are visible to the peer before it.
template <class T>
void store_release(std::byte* p, T v) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(v, std::memory_order_release);
}

/// Relaxed exact-width load / store: single-copy atomic, no ordering.
template <class T>
T load_relaxed(const std::byte* p) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  auto& ref = *reinterpret_cast<T*>(const_cast<std::byte*>(p));
  return std::atomic_ref<T>(ref).load(std::memory_order_relaxed);
}
template <class T>
void store_relaxed(std::byte* p, T v) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(v, std::memory_order_relaxed);
}

}  // namespace vepf::hw
