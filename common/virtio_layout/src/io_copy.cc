// Copies to and from device memory (io_copy.hpp).
#include "vepf/hw/io_copy.hpp"

#include <cstring>
#include <type_traits>

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
    case 1:
      store_run<std::uint8_t>(dst, src, run);
      break;
    case 2:
      store_run<std::uint16_t>(dst, src, run);
      break;
    case 4:
      store_run<std::uint32_t>(dst, src, run);
      break;
    default:
      store_run<std::uint64_t>(dst, src, run);
      break;
  }
}
void load_run(std::size_t width, std::byte* dst, const std::byte* src, std::size_t run) noexcept {
  switch (width) {
    case 1:
      load_run<std::uint8_t>(dst, src, run);
      break;
    case 2:
      load_run<std::uint16_t>(dst, src, run);
      break;
    case 4:
      load_run<std::uint32_t>(dst, src, run);
      break;
    default:
      load_run<std::uint64_t>(dst, src, run);
      break;
  }
}

/// The copy loop of both directions: `io` is the device memory, `mem` ordinary memory; a const
/// `Mem` copies to device memory, a const `Io` from it.
template <class Io, class Mem>
void copy(Io* io, Mem* mem, std::size_t n, AccessWidths w) noexcept {
  constexpr bool kToIo = std::is_const_v<Mem>;
  const std::size_t widest = w.widest();
  while (n > 0) {
    const IoStep s = io_step(address(io), n, w);
    std::size_t done = s.bytes;
    if (s.bytes == s.width) {
      // Aligned and allowed. Once the widest width is reached, stay with it to the tail.
      done = s.width == widest ? n / widest * widest : s.width;
      if constexpr (kToIo) {
        store_run(s.width, io, mem, done);
      } else {
        load_run(s.width, mem, io, done);
      }
    } else {
      // The aligned container around a misaligned head or a short tail: loaded whole, and for
      // a store merged and written back (a read-modify-write).
      std::byte tmp[8];
      load_bytes<kRelaxed>(io - s.skip, s.width, tmp);
      if constexpr (kToIo) {
        std::memcpy(tmp + s.skip, mem, s.bytes);
        store_bytes<kRelaxed>(io - s.skip, s.width, tmp);
      } else {
        std::memcpy(mem, tmp + s.skip, s.bytes);
      }
    }
    io += done;
    mem += done;
    n -= done;
  }
}

}  // namespace

void copy_to_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept {
  copy(dst, src, n, w);
}

void copy_from_io(std::byte* dst, const std::byte* src, std::size_t n, AccessWidths w) noexcept {
  copy(src, dst, n, w);
}

}  // namespace vepf::hw
