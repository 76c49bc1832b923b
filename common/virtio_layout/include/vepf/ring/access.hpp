#pragma once
// Windows and the link model. Every access to memory shared with the peer goes through a Window,
// so accesses that cross the link can be counted (ARCHITECTURE.md §1):
//   - a load from the peer's window is a non-posted read (a PCIe round trip, ~1 us that stalls);
//   - a store to the peer's window is a posted write (pipelined, cheap);
//   - loads and stores to our own window do not cross the link and are not counted.
// Each window has a memory type (LAYOUT.md §7): the Window picks the copies, barriers and cache
// maintenance that type needs, and the strict link model checks every access against what real
// device memory would fault on.

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "vepf/error.hpp"
#include "vepf/hw/barrier.hpp"
#include "vepf/hw/cache.hpp"
#include "vepf/hw/io_copy.hpp"
#include "vepf/hw/mmio.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/le.hpp"

namespace vepf::ring {
/// Link-model counters of one side. Plain integers: each side updates its own from one thread.
/// An access count and its byte count are not adjacent: the compiler would otherwise update the
/// pair with one 16-byte load and store in some places and two 8-byte ones in others, and the
/// wide load after two narrow stores stalls on store forwarding on every ring operation.
struct LinkCounters {
  std::uint64_t nonposted_reads = 0;       // loads from the peer's window (accesses)
  std::uint64_t posted_writes = 0;         // stores to the peer's window (accesses)
  std::uint64_t nonposted_read_bytes = 0;  // bytes
  std::uint64_t posted_write_bytes = 0;    // bytes
  std::uint64_t signals_sent = 0;          // doorbells (RC->EP) or interrupts (EP->RC) raised
  std::uint64_t signals_received = 0;      // doorbells or interrupts taken

  LinkCounters operator-(const LinkCounters& o) const noexcept {
    LinkCounters d;
    d.nonposted_reads = nonposted_reads - o.nonposted_reads;
    d.posted_writes = posted_writes - o.posted_writes;
    d.nonposted_read_bytes = nonposted_read_bytes - o.nonposted_read_bytes;
    d.posted_write_bytes = posted_write_bytes - o.posted_write_bytes;
    d.signals_sent = signals_sent - o.signals_sent;
    d.signals_received = signals_received - o.signals_received;
    return d;
  }
};

/// What a window is to the CPU (LAYOUT.md §7 gives each type's source).
enum class MemoryType : std::uint8_t {
  kCached,          // ordinary cached memory the peer sees coherently (memfd; coherent SoC RAM)
  kDevice,          // uncached device memory (arm64 Device-nGnRE/nGnRnE, x86 UC): a BAR through
                    // VFIO, a range through /dev/mem with O_SYNC. Aligned accesses of allowed
                    // widths only; no memcpy/memset.
  kWriteCombining,  // uncached, stores gathered (x86 WC, arm64 Normal-NC): a prefetchable BAR's
                    // resource<N>_wc. Unaligned accesses allowed; stores weakly ordered (sfence).
  kCachedNoncoherent,  // cached memory that the peer's PCIe accesses do not snoop: every store is
                       // cleaned to the point of coherency, every load invalidated first.
};
std::string_view to_string(MemoryType t) noexcept;

/// How a window may be accessed: its memory type and the access widths its bus takes (only
/// meaningful for kDevice and kWriteCombining; cached memory takes every width).
struct MemoryAccess {
  MemoryType type = MemoryType::kCached;
  hw::AccessWidths widths;
};

/// An access to a window that real device memory would fault on, or that leaves the window.
struct LinkViolation {
  enum class Kind : std::uint8_t {
    kOutOfBounds,     // the access leaves the window
    kUnaligned,       // a typed access not aligned to its width
    kTooWide,         // a typed access wider than the widest width the window takes
    kBulkForbidden,   // the window's bytes handed out (e.g. to a syscall, which uses memcpy) on a
                      // window whose type forbids plain copies
    kMisalignedBase,  // a window whose start or size is not a multiple of 8 bytes
  };
  Kind kind = Kind::kOutOfBounds;
  layout::WindowId window{};
  MemoryType type = MemoryType::kCached;
  std::size_t off = 0;    // bytes from the window's start
  std::size_t width = 0;  // bytes of the access
};
/// One line for logs and test failures: what, where, which window and type.
std::string describe(const LinkViolation& v);

/// Called on every violation while the strict link model is on. Must not return normally in a
/// program (vepf-ep and vepf-host log and abort, as the SIGBUS of real hardware would end them);
/// tests record a failure and carry on.
using StrictLinkHandler = void (*)(const LinkViolation&);
namespace detail {
inline std::atomic<StrictLinkHandler> strict_link_handler{nullptr};
}  // namespace detail
/// Turns the strict link model on (`h` non-null) or off (nullptr), for every Window of the process.
inline void set_strict_link(StrictLinkHandler h) noexcept {
  detail::strict_link_handler.store(h, std::memory_order_release);
}
inline StrictLinkHandler strict_link() noexcept {
  return detail::strict_link_handler.load(std::memory_order_relaxed);
}

/// One window of the link: a byte range this side can reach, either its own memory (local)
/// or the peer's (remote: every access is counted in `counters`). Offsets are bytes from the
/// window's start. Accessors expect in-bounds, naturally aligned offsets: callers validate
/// peer-supplied offsets with contains() first (the strict link model reports any other).
/// The window's memory must start and end on 8-byte boundaries (page-aligned in practice).
class Window {
 public:
  Window() = default;
  /// `counters` non-null makes the window remote.
  Window(layout::WindowId id, std::span<std::byte> mem, LinkCounters* counters,
         MemoryAccess access = {}) noexcept
      : id_(id),
        mem_(mem),
        counters_(counters),
        access_(access),
        plain_copies_(access.type == MemoryType::kCached ||
                      access.type == MemoryType::kCachedNoncoherent ||
                      (access.type == MemoryType::kWriteCombining && access.widths.all())) {
    if (!mem.empty() && (!hw::aligned(mem.data(), 8) || mem.size() % 8 != 0)) {
      violation(LinkViolation::Kind::kMisalignedBase, 0, mem.size());
    }
  }

  layout::WindowId id() const noexcept { return id_; }
  std::size_t size() const noexcept { return mem_.size(); }
  bool remote() const noexcept { return counters_ != nullptr; }
  bool valid() const noexcept { return !mem_.empty(); }
  const MemoryAccess& access() const noexcept { return access_; }
  /// True when local_view() may hand out the bytes (cached memory types only).
  bool viewable() const noexcept {
    return access_.type == MemoryType::kCached || access_.type == MemoryType::kCachedNoncoherent;
  }

  /// Checks that [off, off+len) lies inside the window (overflow-safe).
  [[nodiscard]] bool contains(std::uint64_t off, std::uint64_t len) const noexcept {
    return off <= mem_.size() && len <= mem_.size() - off;
  }

  /// Exact-width little-endian accesses. Acquire/release variants order the ring's index
  /// fields against entries and buffers (pairing documented at each call site): acquire is the
  /// load, then dma_rmb(); release is dma_wmb() (wc_wmb() on write-combining memory), then the
  /// store. A width the window does not take is done through the narrowest allowed aligned
  /// container around it (a read-modify-write for stores, counted as a read too).
  template <class T>
  T load(std::size_t off) const noexcept {
    return layout::Le<T>::conv(raw_load<T, std::memory_order_relaxed>(off));
  }
  template <class T>
  T load_acquire(std::size_t off) const noexcept {
    const T v = raw_load<T, std::memory_order_acquire>(off);
    // Later loads from shared memory after this one (outer-shareable on arm64: the peer may be
    // a PCIe device). Pairs with the dma_wmb() in the peer's store_release().
    hw::dma_rmb();
    return layout::Le<T>::conv(v);
  }
  template <class T>
  void store(std::size_t off, T v) noexcept {
    raw_store<T, std::memory_order_relaxed>(off, layout::Le<T>::conv(v));
  }
  template <class T>
  void store_release(std::size_t off, T v) noexcept {
    // Earlier stores before this one, for every observer including a PCIe device (and WC
    // buffers drained first). Pairs with the dma_rmb() in the peer's load_acquire().
    if (access_.type == MemoryType::kWriteCombining) {
      hw::wc_wmb();
    } else {
      hw::dma_wmb();
    }
    raw_store<T, std::memory_order_release>(off, layout::Le<T>::conv(v));
  }

  /// Bulk copies (one access each, for the link model: a burst). Plain memcpy on cached
  /// memory (and write-combining memory that takes every width); aligned accesses of the
  /// allowed widths on device memory (hw::copy_to_io / copy_from_io).
  void read(std::size_t off, std::span<std::byte> dst) const noexcept {
    copy_out(off, dst, plain_copies_);
  }
  void write(std::size_t off, std::span<const std::byte> src) noexcept {
    copy_in(off, src, plain_copies_);
  }
  /// As read() / write(), but always as aligned single-copy-atomic accesses of the allowed
  /// widths (hw::copy_from_io / copy_to_io), whatever the memory type: for bytes the peer may
  /// rewrite while they are read (a seqlock's payload: the device config).
  void read_atomic(std::size_t off, std::span<std::byte> dst) const noexcept {
    copy_out(off, dst, false);
  }
  void write_atomic(std::size_t off, std::span<const std::byte> src) noexcept {
    copy_in(off, src, false);
  }
  /// Direct view of our own (local) window's bytes, to hand to a syscall without a copy.
  /// Never for a remote window: that would hide non-posted reads from the link model; never
  /// for a window that is not viewable() (the strict link model reports it): read() instead.
  std::span<const std::byte> local_view(std::size_t off, std::size_t len) const noexcept {
    assert(!remote());
    if (!check_bulk(off, len)) return {};
    const std::byte* p = at(off, len);
    if (!viewable()) violation(LinkViolation::Kind::kBulkForbidden, off, len);
    if (access_.type == MemoryType::kCachedNoncoherent) hw::dcache_invalidate(p, len);
    return {p, len};
  }
  /// Writable bytes of a window (ours or the peer's) for a syscall to fill without a copy of
  /// ours (readv() from a TAP into a receive buffer): cached coherent memory only (fillable());
  /// never device memory, whose accesses a kernel's copy does not keep to (write() instead;
  /// the strict link model reports it). Not counted until filled().
  std::span<std::byte> fill_view(std::size_t off, std::size_t len) noexcept {
    if (!check_bulk(off, len)) return {};
    if (!fillable()) violation(LinkViolation::Kind::kBulkForbidden, off, len);
    return {at(off, len), len};
  }
  bool fillable() const noexcept { return access_.type == MemoryType::kCached; }
  /// Counts `bytes` written through fill_view() as one posted write burst (the link model).
  void filled(std::size_t bytes) noexcept { count_write(bytes); }
  /// Typed bulk copies of a layout struct.
  /// On cached memory these are one fixed-size memcpy the compiler inlines (a descriptor, a
  /// used element: the ring's hot path).
  template <class S>
  S read_struct(std::size_t off) const noexcept {
    S s{};
    if (access_.type == MemoryType::kCached) {
      count_read(sizeof(S));
      if (check_bulk(off, sizeof(S))) std::memcpy(&s, at(off, sizeof(S)), sizeof(S));
      return s;
    }
    read(off, std::as_writable_bytes(std::span{&s, 1}));
    return s;
  }
  template <class S>
  void write_struct(std::size_t off, const S& s) noexcept {
    if (access_.type == MemoryType::kCached) {
      count_write(sizeof(S));
      if (check_bulk(off, sizeof(S))) std::memcpy(at(off, sizeof(S)), &s, sizeof(S));
      return;
    }
    write(off, std::as_bytes(std::span{&s, 1}));
  }

 private:
  std::byte* at(std::size_t off, std::size_t len) const noexcept {
    assert(contains(off, len));
    (void)len;
    return mem_.data() + off;
  }
  // The bulk copies: memcpy when `plain`, else the device-memory copies; cache maintenance
  // around them on non-coherent cached memory.
  void copy_out(std::size_t off, std::span<std::byte> dst, bool plain) const noexcept {
    count_read(dst.size());
    if (dst.empty() || !check_bulk(off, dst.size())) return;
    const std::byte* p = at(off, dst.size());
    if (access_.type == MemoryType::kCachedNoncoherent) hw::dcache_invalidate(p, dst.size());
    if (plain) {
      std::memcpy(dst.data(), p, dst.size());
    } else {
      hw::copy_from_io(dst.data(), p, dst.size(), access_.widths);
    }
  }
  void copy_in(std::size_t off, std::span<const std::byte> src, bool plain) noexcept {
    count_write(src.size());
    if (src.empty() || !check_bulk(off, src.size())) return;
    std::byte* p = at(off, src.size());
    if (plain) {
      std::memcpy(p, src.data(), src.size());
    } else {
      hw::copy_to_io(p, src.data(), src.size(), access_.widths);
    }
    if (access_.type == MemoryType::kCachedNoncoherent) hw::dcache_clean(p, src.size());
  }
  // The strict link model's checks. Each returns false after reporting a violation: the
  // access is then not made (a load reads 0, a store or copy does nothing), so that a test
  // that goes on after the failure does not fault or trip a sanitizer.
  bool check_bulk(std::size_t off, std::size_t len) const noexcept {
    if (strict_link() == nullptr || contains(off, len)) return true;
    violation(LinkViolation::Kind::kOutOfBounds, off, len);
    return false;
  }
  bool check_typed(std::size_t off, std::size_t width) const noexcept {
    if (strict_link() == nullptr) [[likely]]
      return true;  // inlined: every typed access passes here
    return check_typed_strictly(off, width);
  }
  [[gnu::noinline]] bool check_typed_strictly(std::size_t off, std::size_t width) const noexcept {
    if (!contains(off, width)) {
      violation(LinkViolation::Kind::kOutOfBounds, off, width);
    } else if (off % width != 0) {
      violation(LinkViolation::Kind::kUnaligned, off, width);
    } else if (width > access_.widths.widest() && !plain_copies_) {
      violation(LinkViolation::Kind::kTooWide, off, width);
    } else {
      return true;
    }
    return false;
  }
  void violation(LinkViolation::Kind kind, std::size_t off, std::size_t width) const noexcept {
    if (auto h = strict_link()) h(LinkViolation{kind, id_, access_.type, off, width});
  }

  template <class T, std::memory_order O>
  T raw_load(std::size_t off) const noexcept {
    count_read(sizeof(T));
    if (!check_typed(off, sizeof(T))) return T{};
    const std::byte* p = at(off, sizeof(T));
    if (access_.type == MemoryType::kCachedNoncoherent) hw::dcache_invalidate(p, sizeof(T));
    const std::size_t w = access_.widths.container_for(sizeof(T));
    if (plain_copies_ || w == sizeof(T) || w == 0) return hw::load<T, O>(p);
    // The field through the aligned container of the narrowest width the window takes.
    const std::size_t skip = off % w;
    std::byte c[8];
    hw::load_bytes<O>(p - skip, w, c);
    T v;
    std::memcpy(&v, c + skip, sizeof(T));
    return v;
  }
  template <class T, std::memory_order O>
  void raw_store(std::size_t off, T raw) noexcept {
    count_write(sizeof(T));
    if (!check_typed(off, sizeof(T))) return;
    std::byte* p = at(off, sizeof(T));
    const std::size_t w = access_.widths.container_for(sizeof(T));
    if (plain_copies_ || w == sizeof(T) || w == 0) {
      hw::store<T, O>(p, raw);
    } else {
      // Read-modify-write of the container: the layout gives every 64-byte line (and so every
      // container) one writer, this side, so nothing the peer writes is lost.
      count_read(w);
      const std::size_t skip = off % w;
      std::byte c[8];
      hw::load_bytes<std::memory_order_relaxed>(p - skip, w, c);
      std::memcpy(c + skip, &raw, sizeof(T));
      hw::store_bytes<O>(p - skip, w, c);
    }
    if (access_.type == MemoryType::kCachedNoncoherent) hw::dcache_clean(p, sizeof(T));
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
  MemoryAccess access_;
  bool plain_copies_ = true;
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
    if (w == ep_ && off < ep_floor_)
      return fail(Errc::kOutOfRange, "range inside the control region");
    if (len > UINT32_MAX || !w->contains(off, len))
      return fail(Errc::kOutOfRange, "range leaves its window");
    return Segment{w, static_cast<std::size_t>(off), static_cast<std::uint32_t>(len)};
  }
  /// As translate(), without the error: a Segment whose window is null when translate() would
  /// fail. For the ring's hot path, which reports its own error and should not build one here.
  Segment lookup(std::uint64_t addr, std::uint64_t len) const noexcept {
    Window* w = window(layout::link_addr_window(addr));
    const std::uint64_t off = layout::link_addr_offset(addr);
    if (w == nullptr || !w->valid() || (w == ep_ && off < ep_floor_) || len > UINT32_MAX ||
        !w->contains(off, len)) {
      return {};
    }
    return Segment{w, static_cast<std::size_t>(off), static_cast<std::uint32_t>(len)};
  }
  /// As translate(), and also requires the offset to be a multiple of `align` bytes.
  [[nodiscard]] Result<Segment> translate_aligned(std::uint64_t addr, std::uint64_t len,
                                                  std::size_t align) const noexcept {
    if (layout::link_addr_offset(addr) % align != 0)
      return fail(Errc::kOutOfRange, "misaligned ring address");
    return translate(addr, len);
  }

  Window* window(std::uint8_t id) const noexcept {
    switch (static_cast<layout::WindowId>(id)) {
      case layout::WindowId::kEp:
        return ep_;
      case layout::WindowId::kRc:
        return rc_;
    }
    return nullptr;
  }

 private:
  Window* ep_ = nullptr;
  Window* rc_ = nullptr;
  std::size_t ep_floor_ = 0;
};

}  // namespace vepf::ring
