#pragma once
// Shared pieces of the fuzz targets (STYLE.md §9): checks that abort, a reader that turns the
// fuzzer's bytes into values, and window memory with guard bytes that AddressSanitizer also
// poisons (so an out-of-window read is caught too, not only a write).

#include <dirent.h>
#include <stdlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string_view>

#include "support/link_windows.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define VEPF_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VEPF_FUZZ_ASAN 1
#endif
#endif
#if defined(VEPF_FUZZ_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace vepf::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
  std::fflush(stderr);
  __builtin_trap();
}

/// Invariant of the code under test. Aborts (SIGILL), which libFuzzer reports as a crash.
#define FUZZ_CHECK(cond)                                                \
  do {                                                                  \
    if (!(cond)) ::vepf::fuzz::check_failed(__FILE__, __LINE__, #cond); \
  } while (0)

/// The strict link model is on in every fuzz target (LAYOUT.md §7): whatever the peer wrote, an
/// access to a window that real device memory would fault on, or outside the window, is a crash.
inline void strict_link_violation(const ring::LinkViolation& v) {
  check_failed(__FILE__, __LINE__, ring::describe(v).c_str());
}
inline const bool kStrictLink = (ring::set_strict_link(&strict_link_violation), true);

/// True when `name` is listed in the environment variable VEPF_FUZZ_IGNORE (comma separated).
/// Lets a fuzzing session get past a known finding; the corpus replay never sets it.
inline bool ignored(std::string_view name) {
  const char* env = std::getenv("VEPF_FUZZ_IGNORE");
  if (env == nullptr) return false;
  std::string_view list(env);
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

/// A named invariant (a known finding can be skipped with VEPF_FUZZ_IGNORE=name).
#define FUZZ_EXPECT(name, cond)                                            \
  do {                                                                     \
    if (!(cond) && !::vepf::fuzz::ignored(name))                           \
      ::vepf::fuzz::check_failed(__FILE__, __LINE__, "[" name "] " #cond); \
  } while (0)

/// A directory under /tmp for the target's sockets and files, made on first use and removed at
/// exit (by an atexit handler, which runs after the static destructors of objects made later:
/// so the name lives in a static array).
inline const char* scratch_dir() {
  static char dir[] = "/tmp/vepf-fuzz-XXXXXX";
  static const bool made = [] {
    if (::mkdtemp(dir) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return true;
  }();
  (void)made;
  return dir;
}

/// Descriptors this process has open (/proc/self/fd), for leak checks around an input.
inline std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) std::abort();
  while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the directory stream's own
}

/// True when VEPF_FUZZ_VERBOSE is set: the targets then print a summary line per input (for
/// whoever writes seeds: did the input get where it meant to?).
inline bool verbose() {
  static const bool v = std::getenv("VEPF_FUZZ_VERBOSE") != nullptr;
  return v;
}

/// The fuzzer's bytes as a stream of little-endian values; zeros once they run out.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) noexcept : p_(data), n_(size) {}

  bool empty() const noexcept { return n_ == 0; }
  std::size_t remaining() const noexcept { return n_; }

  std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(take(1)); }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(take(2)); }
  std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(take(4)); }
  std::uint64_t u64() noexcept { return take(8); }
  bool flag() noexcept { return (u8() & 1) != 0; }

  /// Up to `n` raw bytes (fewer when the input runs out).
  std::span<const std::uint8_t> bytes(std::size_t n) noexcept {
    const std::size_t k = n < n_ ? n : n_;
    std::span<const std::uint8_t> r(p_, k);
    p_ += k;
    n_ -= k;
    return r;
  }

 private:
  std::uint64_t take(std::size_t width) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width && n_ > 0; ++i, ++p_, --n_)
      v |= std::uint64_t{*p_} << (8 * i);
    return v;
  }

  const std::uint8_t* p_;
  std::size_t n_;
};

/// True when every byte of `b` is `v` (libc memcmp: fast, and not instrumented for coverage).
inline bool all_bytes(std::span<const std::byte> b, std::byte v) noexcept {
  static std::array<std::byte, 4096> block;
  std::memset(block.data(), static_cast<int>(v), block.size());
  for (std::size_t i = 0; i < b.size(); i += block.size()) {
    const std::size_t n = b.size() - i < block.size() ? b.size() - i : block.size();
    if (std::memcmp(b.data() + i, block.data(), n) != 0) return false;
  }
  return true;
}

/// Window memory with guard bytes on both sides (as test::GuardedBuffer), poisoned for ASan.
/// Ranges inside the window can be poisoned too (a window that is not mapped right now).
/// Meant to be allocated once per process and reset() per input: a fresh allocation per input
/// costs more than the code under test (ASan's quarantine, page faults).
class GuardedMemory {
 public:
  static constexpr std::size_t kGuard = 4096;

  explicit GuardedMemory(std::size_t size) : size_(size), storage_(kGuard + size + kGuard) {
    reset();
  }
  ~GuardedMemory() { unpoison_raw(storage_.data(), storage_.size()); }
  GuardedMemory(const GuardedMemory&) = delete;
  GuardedMemory& operator=(const GuardedMemory&) = delete;

  /// Fills the window with `fill`, rewrites the guards, poisons only the guards.
  void reset(std::byte fill = std::byte{0}) noexcept {
    unpoison_raw(storage_.data(), storage_.size());
    std::memset(storage_.data(), static_cast<int>(test::kGuardByte), kGuard);
    std::memset(storage_.data() + kGuard, static_cast<int>(fill), size_);
    std::memset(storage_.data() + kGuard + size_, static_cast<int>(test::kGuardByte), kGuard);
    poison_guards();
  }

  std::span<std::byte> bytes() noexcept { return {storage_.data() + kGuard, size_}; }
  std::size_t size() const noexcept { return size_; }

  /// Marks [off, off+len) of the window unreachable (ASan builds) or reachable again.
  void poison(std::size_t off, std::size_t len) noexcept {
    poison_raw(storage_.data() + kGuard + off, len);
  }
  void unpoison(std::size_t off, std::size_t len) noexcept {
    unpoison_raw(storage_.data() + kGuard + off, len);
  }

  /// True when no guard byte changed.
  bool guards_intact() noexcept {
    unpoison_raw(storage_.data(), kGuard);
    unpoison_raw(storage_.data() + kGuard + size_, kGuard);
    const bool ok = all_bytes({storage_.data(), kGuard}, test::kGuardByte) &&
                    all_bytes({storage_.data() + kGuard + size_, kGuard}, test::kGuardByte);
    poison_guards();
    return ok;
  }

 private:
  void poison_guards() noexcept {
    poison_raw(storage_.data(), kGuard);
    poison_raw(storage_.data() + kGuard + size_, kGuard);
  }
  static void poison_raw([[maybe_unused]] std::byte* p, [[maybe_unused]] std::size_t n) noexcept {
#if defined(VEPF_FUZZ_ASAN)
    ASAN_POISON_MEMORY_REGION(p, n);
#endif
  }
  static void unpoison_raw([[maybe_unused]] std::byte* p, [[maybe_unused]] std::size_t n) noexcept {
#if defined(VEPF_FUZZ_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
  }

  std::size_t size_;
  test::AlignedBytes storage_;
};

/// Copies raw input bytes into window memory at `off`, clipped to the window.
inline void put_bytes(std::span<std::byte> mem, std::size_t off,
                      std::span<const std::uint8_t> src) noexcept {
  if (off >= mem.size()) return;
  const std::size_t n = src.size() < mem.size() - off ? src.size() : mem.size() - off;
  if (n) std::memcpy(mem.data() + off, src.data(), n);
}

}  // namespace vepf::fuzz
