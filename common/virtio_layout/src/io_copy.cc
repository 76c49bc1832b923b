// Copies to and from device memory (io_copy.hpp).
#include "vepf/hw/io_copy.hpp"

#include <cstring>

#include "vepf/hw/mmio.hpp"

namespace vepf::hw {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

std::uintptr_t address(const std::byte* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

/// `run` bytes (a multiple of sizeof(T)) as accesses of sizeof(T) each.
template <class T>
void store_run(std::byte* dst, const std::byte* src, std::size_t run) noexcept {
  for (std::size_t k = 0; k < run; k += sizeof(T)) {
    T v;
    std::memcpy(&v, src + k, sizeof(T));
    store<T, kRelaxed>(dst + k, v);
  }
}
template <class T>
void load_run(std::byte* dst, const std::byte* src, std::size_t run) noexcept {
  for (std::size_t k = 0; k < run; k += sizeof(T)) {
    const T v = load<T, kRelaxed>(src + k);
    std::memcpy(dst + k, &v, sizeof(T));
  }
}
void store_run(std::size_t width, std::byte* dst, const std::byte* src, std::size_t run) noexcept {
  switch (width) {
    case 1: store_run<std::uint8_t>(dst, src, run); break;
    case 2: store_run<std::uint16_t>(dst, src, run); break;
    case 4: store_run<std::uint32_t>(dst, src, run); break;
    default: store_run<std::uint64_t>(dst, src, run); break;
  }
}
void load_run(std::size_t width, std::byte* dst, const std::byte* src, std::size_t run) noexcept {
  switch (width) {
    case 1: load_run<std::uint8_t>(dst, src, run); break;
    case 2: load_run<std::uint16_t>(dst, src, run); break;
    case 4: load_run<std::uint32_t>(dst, src, run); break;
    default: load_run<std::uint64_t>(dst, src, run); break;
  }
}

}  // namespace

void copy_to_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept {
  const std::size_t widest = w.widest();
  while (n > 0) {
    const IoStep s = io_step(address(dst), n, w);
    if (s.bytes == s.width) {
      // Aligned and allowed. Once the widest width is reached, stay with it to the tail.
      const std::size_t run = s.width == widest ? n / widest * widest : s.width;
      store_run(s.width, dst, src, run);
      dst += run;
      src += run;
      n -= run;
      continue;
    }
    // Read-modify-write of the aligned container around a misaligned head or a short tail.
    std::byte* c = dst - s.skip;
    std::byte tmp[8];
    load_bytes<kRelaxed>(c, s.width, tmp);
    std::memcpy(tmp + s.skip, src, s.bytes);
    store_bytes<kRelaxed>(c, s.width, tmp);
    dst += s.bytes;
    src += s.bytes;
    n -= s.bytes;
  }
}

void copy_from_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept {
  const std::size_t widest = w.widest();
  while (n > 0) {
    const IoStep s = io_step(address(src), n, w);
    if (s.bytes == s.width) {
      const std::size_t run = s.width == widest ? n / widest * widest : s.width;
      load_run(s.width, dst, src, run);
      dst += run;
      src += run;
      n -= run;
      continue;
    }
    std::byte tmp[8];
    load_bytes<kRelaxed>(src - s.skip, s.width, tmp);
    std::memcpy(dst, tmp + s.skip, s.bytes);
    dst += s.bytes;
    src += s.bytes;
    n -= s.bytes;
  }
}

}  // namespace vepf::hw
