#pragma once
// The device's private image of bytes it alone writes in the EP window (LAYOUT.md: one writer
// per line). The RC can write anything through the BAR; a hostile or confused host (or a stray
// DMA) may overwrite the header, a device line or a config space. With the image, the device
// re-publishes what it owns when a host attaches and notices an overwrite with local reads of
// its own window: no link traffic, nothing the host can hide.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "vepf/layout/le.hpp"
#include "vepf/ring/access.hpp"

namespace vepf::transport {

/// `N` bytes at EP-window offset `off`, written only through this class. Stores go to the
/// image and to the window; nothing ever reads the window back except intact().
/// Shape: N is a multiple of 4 (lines of 64 B, the 256 B config space); fields are naturally
/// aligned. The window is the EP's own (local) window: intact() costs no link access.
template <std::size_t N>
class OwnedBytes {
  static_assert(N % 4 == 0);

 public:
  OwnedBytes() = default;
  OwnedBytes(ring::Window* w, std::size_t off) noexcept : w_(w), off_(off) {}

  /// Exact-width store of field `field` (offset inside the N bytes), as ring::Window::store().
  template <class T>
  void store(std::size_t field, T v) noexcept {
    put(field, v);
    w_->store<T>(off_ + field, v);
  }
  /// As store(), with release ordering; the caller's comment names the pairing load.
  template <class T>
  void store_release(std::size_t field, T v) noexcept {
    put(field, v);
    // A forwarder: it pairs with whatever load_acquire the call site names.
    w_->store_release<T>(off_ + field, v);
  }
  /// The field's value as this side last published it (the image, not the window).
  template <class T>
  T get(std::size_t field) const noexcept {
    T raw;
    std::memcpy(&raw, image_.data() + field, sizeof(T));
    return layout::Le<T>::conv(raw);
  }
  /// Sets the image only, e.g. from the window's content at start-up (adopt()) or before
  /// publish().
  template <class T>
  void put(std::size_t field, T v) noexcept {
    const T raw = layout::Le<T>::conv(v);
    std::memcpy(image_.data() + field, &raw, sizeof(T));
  }
  /// Replaces the image with `bytes` (size N) and writes them word by word (single-copy atomic).
  void assign(std::span<const std::byte> bytes) noexcept {
    std::memcpy(image_.data(), bytes.data(), N);
    w_->write_atomic(off_, image_);
  }
  /// Takes the window's current content as the image (a start on memory a previous run left).
  void adopt() noexcept { w_->read_atomic(off_, image_); }
  /// Writes the whole image, word by word, except the 4-byte word at `last`, which is then
  /// stored with release (N for none): the word a reader checks first to see a complete line.
  void publish(std::size_t last = N) noexcept {
    for (std::size_t i = 0; i < N; i += 4) {
      if (i != last) w_->store<std::uint32_t>(off_ + i, word(i));
    }
    // Every word of the line before the one that commits it; it pairs with the load_acquire
    // named where publish() is called.
    if (last < N) w_->store_release<std::uint32_t>(off_ + last, word(last));
  }
  /// True when the window still holds the image (N bytes of local reads).
  bool intact() const noexcept {
    std::array<std::byte, N> now{};
    w_->read_atomic(off_, now);
    return now == image_;
  }
  std::span<const std::byte, N> image() const noexcept { return image_; }

 private:
  std::uint32_t word(std::size_t i) const noexcept { return get<std::uint32_t>(i); }

  ring::Window* w_ = nullptr;
  std::size_t off_ = 0;
  std::array<std::byte, N> image_{};
};

}  // namespace vepf::transport
