#pragma once
// Copies to and from device memory (a BAR or an outbound window mapped uncached), in the manner
// of Linux's memcpy_toio()/memcpy_fromio() (arch/arm64/kernel/io.c): only naturally aligned
// accesses of the widths the window takes, the widest that fits first. glibc's memcpy/memset
// may not be used there: they issue unaligned loads and stores, overlapping stores and
// `dc zva`, each of which raises an alignment fault on arm64 Device memory (Arm ARM B2.7.2,
// D7.5.9).

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace vepf::hw {

/// The access widths a window takes: a set of {1, 2, 4, 8} bytes. Some PCIe controllers' BARs
/// take 32-bit accesses only (e.g. DesignWare's, where the board config says widths = [4]).
class AccessWidths {
 public:
  constexpr AccessWidths() = default;  // every width
  /// `bits`: bit k set = 2^k bytes allowed (bits 0..3); 0 is treated as "every width".
  static constexpr AccessWidths from_bits(std::uint8_t bits) noexcept {
    AccessWidths w;
    w.bits_ = (bits & 0xf) != 0 ? static_cast<std::uint8_t>(bits & 0xf) : 0xf;
    return w;
  }
  static constexpr std::uint8_t bit(std::size_t width) noexcept {
    return width == 1 ? 1 : width == 2 ? 2 : width == 4 ? 4 : width == 8 ? 8 : 0;
  }
  constexpr std::uint8_t bits() const noexcept { return bits_; }
  constexpr bool all() const noexcept { return bits_ == 0xf; }
  constexpr bool allows(std::size_t width) const noexcept { return (bits_ & bit(width)) != 0; }
  /// The narrowest / widest allowed width, bytes.
  constexpr std::size_t narrowest() const noexcept {
    for (std::size_t w = 1; w < 8; w <<= 1) {
      if (allows(w)) return w;
    }
    return 8;
  }
  constexpr std::size_t widest() const noexcept {
    for (std::size_t w = 8; w > 1; w >>= 1) {
      if (allows(w)) return w;
    }
    return 1;
  }
  /// The narrowest allowed width of at least `width` bytes; 0 when none is that wide.
  constexpr std::size_t container_for(std::size_t width) const noexcept {
    for (std::size_t w = width; w <= 8; w <<= 1) {
      if (allows(w)) return w;
    }
    return 0;
  }
  friend constexpr bool operator==(AccessWidths a, AccessWidths b) noexcept {
    return a.bits_ == b.bits_;
  }

 private:
  std::uint8_t bits_ = 0xf;
};

/// One access of a copy: `width` bytes at `addr - skip` (aligned to `width`), of which the bytes
/// [skip, skip + bytes) belong to the copy. `bytes < width` means the access also covers bytes
/// outside the copy: a store is then a read-modify-write of that aligned container.
struct IoStep {
  std::size_t width = 0;
  std::size_t skip = 0;
  std::size_t bytes = 0;
};

/// The next access of a copy of `n` > 0 bytes at address `addr`: the widest allowed access
/// that is aligned and fits; when none does (a misaligned head or a short tail on a window
/// without byte accesses), the narrowest allowed width's aligned container.
constexpr IoStep io_step(std::uintptr_t addr, std::size_t n, AccessWidths w) noexcept {
  for (std::size_t width = 8; width >= 1; width >>= 1) {
    if (w.allows(width) && addr % width == 0 && width <= n) return {width, 0, width};
  }
  const std::size_t width = w.narrowest();
  const std::size_t skip = addr % width;
  return {width, skip, std::min(n, width - skip)};
}

/// Copies n bytes from ordinary memory `src` to device memory `dst` with io_step()'s accesses.
/// The containers of a read-modify-write lie inside the window as long as the window's start
/// and size are multiples of 8 (Window checks that). No ordering against other accesses: the
/// caller's barriers order the copy.
void copy_to_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept;
/// Copies n bytes from device memory `src` to ordinary memory `dst` with io_step()'s accesses
/// (loads only: a container is loaded whole and the copy's bytes taken from it).
void copy_from_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept;

}  // namespace vepf::hw
