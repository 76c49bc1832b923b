#pragma once
// Exact-width accesses to memory shared with the peer (a window: memfd, BAR, outbound window).
// The only place in libvepf that turns a byte pointer into a typed reference. Every access here
// is one naturally aligned load or store of exactly the width asked for (std::atomic_ref of a
// lock-free integer: single-copy atomic, never split or merged by the compiler), which is what
// device memory accepts (Arm ARM B2.7.2: an unaligned access to Device memory faults).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace vepf::hw {

/// True when `p` is a multiple of `align` bytes.
inline bool aligned(const void* p, std::size_t align) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % align == 0;
}

/// Loads a naturally aligned T with ordering `O` (relaxed or acquire).
template <class T, std::memory_order O>
T load(const std::byte* p) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  // atomic_ref needs a non-const object; the access itself does not write.
  auto& ref = *reinterpret_cast<T*>(const_cast<std::byte*>(p));
  return std::atomic_ref<T>(ref).load(O);
}
/// Stores a naturally aligned T with ordering `O` (relaxed or release).
template <class T, std::memory_order O>
void store(std::byte* p, T v) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(v, O);
}

/// One access of `width` (1, 2, 4 or 8) bytes at `p` (aligned to `width`), copied byte for
/// byte to `out[0, width)`.
template <std::memory_order O>
void load_bytes(const std::byte* p, std::size_t width, std::byte* out) noexcept {
  switch (width) {
    case 1: {
      const auto v = load<std::uint8_t, O>(p);
      std::memcpy(out, &v, 1);
      break;
    }
    case 2: {
      const auto v = load<std::uint16_t, O>(p);
      std::memcpy(out, &v, 2);
      break;
    }
    case 4: {
      const auto v = load<std::uint32_t, O>(p);
      std::memcpy(out, &v, 4);
      break;
    }
    default: {
      const auto v = load<std::uint64_t, O>(p);
      std::memcpy(out, &v, 8);
      break;
    }
  }
}
/// One store of `width` (1, 2, 4 or 8) bytes from `in[0, width)` at `p` (aligned to `width`).
template <std::memory_order O>
void store_bytes(std::byte* p, std::size_t width, const std::byte* in) noexcept {
  switch (width) {
    case 1: {
      std::uint8_t v;
      std::memcpy(&v, in, 1);
      store<std::uint8_t, O>(p, v);
      break;
    }
    case 2: {
      std::uint16_t v;
      std::memcpy(&v, in, 2);
      store<std::uint16_t, O>(p, v);
      break;
    }
    case 4: {
      std::uint32_t v;
      std::memcpy(&v, in, 4);
      store<std::uint32_t, O>(p, v);
      break;
    }
    default: {
      std::uint64_t v;
      std::memcpy(&v, in, 8);
      store<std::uint64_t, O>(p, v);
      break;
    }
  }
}

}  // namespace vepf::hw
