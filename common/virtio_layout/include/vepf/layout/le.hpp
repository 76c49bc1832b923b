#pragma once
// Little-endian wire values (VIRTIO 1.2 §1.4: le16/le32/le64). Never converts implicitly:
// every read says .to_cpu(), every write Le<T>::from_cpu().

#include <bit>
#include <cstdint>
#include <type_traits>

namespace vepf::layout {

template <typename T>
class Le {
  static_assert(std::is_unsigned_v<T> && sizeof(T) >= 2 && sizeof(T) <= 8);

 public:
  static constexpr Le from_cpu(T v) noexcept {
    Le r;
    r.raw_ = conv(v);
    return r;
  }
  constexpr T to_cpu() const noexcept { return conv(raw_); }
  /// The value as it is stored in memory (little-endian bytes), for exact-width accessors.
  constexpr T raw() const noexcept { return raw_; }
  static constexpr Le from_raw(T raw) noexcept {
    Le r;
    r.raw_ = raw;
    return r;
  }
  friend constexpr bool operator==(Le a, Le b) noexcept { return a.raw_ == b.raw_; }

  /// Converts between CPU order and wire order (the same operation both ways).
  static constexpr T conv(T v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
      return v;
    } else if constexpr (sizeof(T) == 2) {
      return __builtin_bswap16(v);
    } else if constexpr (sizeof(T) == 4) {
      return __builtin_bswap32(v);
    } else {
      return __builtin_bswap64(v);
    }
  }

 private:
  T raw_{};
};

using le16 = Le<std::uint16_t>;
using le32 = Le<std::uint32_t>;
using le64 = Le<std::uint64_t>;
static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && sizeof(le64) == 8);
static_assert(alignof(le64) == 8);

}  // namespace vepf::layout
