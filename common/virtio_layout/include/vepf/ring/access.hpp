#pragma once
// Windows and the link model. Every access to memory shared with the peer goes through a Window,
// so accesses that cross the link can be counted (ARCHITECTURE.md §1):
//   - a load from the peer's window is a non-posted read (a PCIe round trip, ~1 us that stalls);
//   - a store to the peer's window is a posted write (pipelined, cheap);
//   - loads and stores to our own window do not cross the link and are not counted.

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "vepf/error.hpp"
#include "vepf/hw/barrier.hpp"
#include "vepf/hw/mmio.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/le.hpp"

namespace vepf::ring {

/// Link-model counters of one side. Plain integers: each side updates its own from one thread.
struct LinkCounters {
  std::uint64_t nonposted_reads = 0;      // loads from the peer's window (accesses)
  std::uint64_t nonposted_read_bytes = 0; // bytes
  std::uint64_t posted_writes = 0;        // stores to the peer's window (accesses)
  std::uint64_t posted_write_bytes = 0;   // bytes
  std::uint64_t signals_sent = 0;         // doorbells (RC->EP) or interrupts (EP->RC) raised
  std::uint64_t signals_received = 0;     // doorbells or interrupts taken

  LinkCounters operator-(const LinkCounters& o) const noexcept {
    return {nonposted_reads - o.nonposted_reads, nonposted_read_bytes - o.nonposted_read_bytes,
            posted_writes - o.posted_writes, posted_write_bytes - o.posted_write_bytes,
            signals_sent - o.signals_sent, signals_received - o.signals_received};
  }
};

/// One window of the link: a byte range this side can reach, either its own memory (local)
/// or the peer's (remote: every access is counted in `counters`). Offsets are bytes from the
/// window's start. Accessors expect in-bounds, naturally aligned offsets: callers validate
/// peer-supplied offsets with check() first (an out-of-bounds offset trips an assert).
class Window {
 public:
  Window() = default;
  /// `counters` non-null makes the window remote.
  Window(layout::WindowId id, std::span<std::byte> mem, LinkCounters* counters) noexcept
      : id_(id), mem_(mem), counters_(counters) {}

  layout::WindowId id() const noexcept { return id_; }
  std::size_t size() const noexcept { return mem_.size(); }
  bool remote() const noexcept { return counters_ != nullptr; }
  bool valid() const noexcept { return !mem_.empty(); }

  /// Checks that [off, off+len) lies inside the window (overflow-safe).
  [[nodiscard]] bool contains(std::uint64_t off, std::uint64_t len) const noexcept {
    return off <= mem_.size() && len <= mem_.size() - off;
  }

  /// Exact-width little-endian accesses. Acquire/release variants order the ring's index
  /// fields against entries and buffers (pairing documented at each call site).
  template <class T>
  T load(std::size_t off) const noexcept {
    count_read(sizeof(T));
    return layout::Le<T>::conv(hw::load_relaxed<T>(at(off, sizeof(T))));
  }
  template <class T>
  T load_acquire(std::size_t off) const noexcept {
    count_read(sizeof(T));
    return layout::Le<T>::conv(hw::load_acquire<T>(at(off, sizeof(T))));
  }
  template <class T>
  void store(std::size_t off, T v) noexcept {
    count_write(sizeof(T));
    hw::store_relaxed<T>(at(off, sizeof(T)), layout::Le<T>::conv(v));
  }
  template <class T>
  void store_release(std::size_t off, T v) noexcept {
    count_write(sizeof(T));
    hw::store_release<T>(at(off, sizeof(T)), layout::Le<T>::conv(v));
  }

  /// Bulk copies (one access each, for the link model: a burst).
  void read(std::size_t off, std::span<std::byte> dst) const noexcept {
    count_read(dst.size());
    if (!dst.empty()) std::memcpy(dst.data(), at(off, dst.size()), dst.size());
  }
  void write(std::size_t off, std::span<const std::byte> src) noexcept {
    count_write(src.size());
    if (!src.empty()) std::memcpy(at(off, src.size()), src.data(), src.size());
  }
  /// Direct view of our own (local) window's bytes, to hand to a syscall without a copy.
  /// Never for a remote window: that would hide non-posted reads from the link model.
  std::span<const std::byte> local_view(std::size_t off, std::size_t len) const noexcept {
    assert(!remote());
    return {at(off, len), len};
  }
  /// Typed bulk copies of a layout struct.
  template <class S>
  S read_struct(std::size_t off) const noexcept {
    S s;
    read(off, std::as_writable_bytes(std::span{&s, 1}));
    return s;
  }
  template <class S>
  void write_struct(std::size_t off, const S& s) noexcept {
    write(off, std::as_bytes(std::span{&s, 1}));
  }

 private:
  std::byte* at(std::size_t off, std::size_t len) const noexcept {
    assert(contains(off, len));
    (void)len;
    return mem_.data() + off;
  }
  void count_read(std::size_t bytes) const noexcept {
    if (counters_) {
      ++counters_->nonposted_reads;
      counters_->nonposted_read_bytes += bytes;
    }
  }
  void count_write(std::size_t bytes) const noexcept {
    if (counters_) {
      ++counters_->posted_writes;
      counters_->posted_write_bytes += bytes;
    }
  }

  layout::WindowId id_{};
  std::span<std::byte> mem_;
  LinkCounters* counters_ = nullptr;
};

/// A range of a window named by a translated link address.
struct Segment {
  Window* window = nullptr;
  std::size_t off = 0;
  std::uint32_t len = 0;
};

/// The two windows of one side, translating link addresses (LAYOUT.md §4) bounds-checked.
class AddressSpace {
 public:
  AddressSpace() = default;
  AddressSpace(Window* ep, Window* rc) noexcept : ep_(ep), rc_(rc) {}

  Window* ep() const noexcept { return ep_; }
  Window* rc() const noexcept { return rc_; }
  void set_rc(Window* rc) noexcept { rc_ = rc; }
  /// Offsets of the EP window below `floor` bytes are not translatable (the control region).
  void set_ep_floor(std::size_t floor) noexcept { ep_floor_ = floor; }

  /// Translates link address `addr` of `len` bytes.
  /// Errors: kOutOfRange when the window id is unknown or the range leaves the window.
  [[nodiscard]] Result<Segment> translate(std::uint64_t addr, std::uint64_t len) const noexcept {
    Window* w = window(layout::link_addr_window(addr));
    const std::uint64_t off = layout::link_addr_offset(addr);
    if (w == nullptr || !w->valid()) return fail(Errc::kOutOfRange, "link address names no window");
    if (w == ep_ && off < ep_floor_) return fail(Errc::kOutOfRange, "range inside the control region");
    if (len > UINT32_MAX || !w->contains(off, len)) return fail(Errc::kOutOfRange, "range leaves its window");
    return Segment{w, static_cast<std::size_t>(off), static_cast<std::uint32_t>(len)};
  }
  /// As translate(), and also requires the offset to be a multiple of `align` bytes.
  [[nodiscard]] Result<Segment> translate_aligned(std::uint64_t addr, std::uint64_t len,
                                                  std::size_t align) const noexcept {
    if (layout::link_addr_offset(addr) % align != 0) return fail(Errc::kOutOfRange, "misaligned ring address");
    return translate(addr, len);
  }

  Window* window(std::uint8_t id) const noexcept {
    switch (static_cast<layout::WindowId>(id)) {
      case layout::WindowId::kEp: return ep_;
      case layout::WindowId::kRc: return rc_;
    }
    return nullptr;
  }

 private:
  Window* ep_ = nullptr;
  Window* rc_ = nullptr;
  std::size_t ep_floor_ = 0;
};

}  // namespace vepf::ring
