#pragma once
// Device side of a split virtqueue (VIRTIO 1.2 §2.7; the role of Linux's vringh): takes
// descriptor chains from the avail ring, completes them on the used ring.
//
// Everything in the descriptor table and avail ring is written by an untrusted peer. Each
// descriptor is copied exactly once and the copy validated: head and next in range, at most
// `num` steps (no loops), indirect tables only when negotiated, 16-byte multiple, never nested,
// writable buffers only after readable ones, total length < 2^32, every range inside a window,
// at most max_chain descriptors per chain and per indirect table (the walk and the Chain it
// fills stay bounded whatever the driver writes). The first violation breaks the queue: every
// later call fails with kBadRing.

#include <sys/uio.h>

#include <cassert>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/poll_group.hpp"

namespace vepf::ring {

struct VringhParams {
  std::uint16_t num = 0;                // queue size, entries (power of 2)
  Segment desc;                         // descriptor table (read)
  Segment avail;                        // avail ring (read)
  Segment used;                         // used ring (written)
  const AddressSpace* space = nullptr;  // translates buffer and indirect table addresses
  bool event_idx = false;               // VIRTIO_F_EVENT_IDX negotiated
  bool indirect = false;                // VIRTIO_F_INDIRECT_DESC negotiated
  /// Descriptors one chain may have, those of its indirect table included, and the longest
  /// indirect table taken (board config [link] max_chain_segments; 0: the queue size). The
  /// queue size caps it either way (VIRTIO 1.2 §2.7.5.3.1: no chain longer than the queue).
  std::uint32_t max_chain = 0;
  PollGroup* group = nullptr;  // the program's spin-then-sleep group (none: always ask at once)
};

/// One descriptor chain, translated: its segments in chain order, readable ones first.
/// Holds up to kInlineSegments segments without touching the heap (a chain of more spills into
/// a vector), so popping the usual chain (a header and a buffer or two) allocates nothing.
class Chain {
 public:
  static constexpr std::size_t kInlineSegments = 8;

  std::uint16_t head = 0;
  std::uint64_t read_len = 0;   // bytes, the sum of the readable descriptors' lengths
  std::uint64_t write_len = 0;  // bytes, the sum of the writable descriptors' lengths

  Chain() noexcept {}
  Chain(const Chain& o) { assign(o); }
  Chain& operator=(const Chain& o) {
    if (this != &o) assign(o);
    return *this;
  }
  Chain(Chain&& o) noexcept { take(o); }
  Chain& operator=(Chain&& o) noexcept {
    if (this != &o) take(o);
    return *this;
  }

  /// Device-readable segments (driver -> device), in chain order.
  std::span<const Segment> readable() const noexcept { return {data(), nread_}; }
  /// Device-writable segments (device -> driver), in chain order.
  std::span<const Segment> writable() const noexcept { return {data() + nread_, nwrite_}; }
  /// Appends a segment; readable ones must all come before the first writable one.
  void add_readable(const Segment& s) {
    assert(nwrite_ == 0);
    push(s);
    ++nread_;
  }
  void add_writable(const Segment& s) {
    push(s);
    ++nwrite_;
  }
  /// Forgets the segments and lengths (keeps a spilled vector's capacity).
  void clear() noexcept {
    head = 0;
    read_len = write_len = 0;
    nread_ = nwrite_ = 0;
    spill_.clear();
  }

 private:
  // Uninitialised until written: a chain of one buffer writes one Segment, not eight.
  union Inline {
    Inline() noexcept {}
    Segment segs[kInlineSegments];
  };

  const Segment* data() const noexcept { return spill_.empty() ? inline_.segs : spill_.data(); }
  void push(const Segment& s) {
    const std::size_t n = nread_ + nwrite_;
    if (spill_.empty() && n < kInlineSegments) {
      inline_.segs[n] = s;
    } else {
      spill(s);
    }
  }
  void spill(const Segment& s);  // the (rare) chain of more than kInlineSegments segments
  void copy_header(const Chain& o) noexcept {
    head = o.head;
    read_len = o.read_len;
    write_len = o.write_len;
    nread_ = o.nread_;
    nwrite_ = o.nwrite_;
  }
  void assign(const Chain& o) {
    copy_header(o);
    if (o.spill_.empty()) {
      for (std::size_t i = 0; i < nread_ + nwrite_; ++i) inline_.segs[i] = o.inline_.segs[i];
      spill_.clear();
    } else {
      spill_ = o.spill_;
    }
  }
  void take(Chain& o) noexcept {
    copy_header(o);
    if (o.spill_.empty()) {
      for (std::size_t i = 0; i < nread_ + nwrite_; ++i) inline_.segs[i] = o.inline_.segs[i];
      spill_.clear();
    } else {
      spill_ = std::move(o.spill_);
    }
    o.clear();
  }

  Inline inline_;
  std::vector<Segment> spill_;  // all segments, once there are more than kInlineSegments
  std::size_t nread_ = 0;
  std::size_t nwrite_ = 0;
};

class Vringh final : private PollGroup::Member {
 public:
  /// Params were validated by the transport (sizes, alignment, in-window). Writes used flags
  /// and index 0.
  explicit Vringh(const VringhParams& p);
  ~Vringh();
  Vringh(const Vringh&) = delete;  // its PollGroup knows it by address
  Vringh& operator=(const Vringh&) = delete;

  /// Takes the next available chain, or nullopt when none. The avail index is read (acquire)
  /// only when the chains seen at its last read are used up, so a burst costs one index read.
  /// Errors: kBadRing (the peer broke a rule: see why()); the queue is broken from then on.
  [[nodiscard]] Result<std::optional<Chain>> pop();
  /// As pop(), into `c`, whose storage is reused (the data path: a consume loop keeps one Chain
  /// and never builds, moves or zeroes another). Returns false when no chain is available (`c`
  /// is then unspecified). Errors: as pop().
  [[nodiscard]] Result<bool> pop(Chain& c);

  /// Puts a chain on the used ring: `len` bytes were written to its writable segments.
  /// Publishes the used index (release). Errors: kBadRing when the queue is broken.
  [[nodiscard]] Result<void> complete(std::uint16_t head, std::uint32_t len);
  /// As complete(), without publishing: the entry and the used index are written at the next
  /// publish_used(). For bursts: the entries and one index store together.
  [[nodiscard]] Result<void> push_used(std::uint16_t head, std::uint32_t len);
  /// Writes the entries pushed since the last call, then the used index (release); nothing
  /// when none.
  void publish_used() noexcept;

  /// Whether the driver wants an interrupt for what was completed since the last call
  /// (VIRTIO 1.2 §2.7.10 used_event / VRING_AVAIL_F_NO_INTERRUPT).
  [[nodiscard]] bool need_notify();

  /// Asks the driver for doorbells again. Returns false when more chains arrived meanwhile:
  /// pop again before waiting. While the ring's PollGroup polls, only looks, and leaves the
  /// request to PollGroup::arm().
  [[nodiscard]] bool notify_enable();
  /// Tells the driver doorbells are not needed (we are polling this queue).
  void notify_disable();

  /// Chains available and not yet popped, as the avail index says now (0 when broken).
  std::uint16_t pending() const noexcept;
  bool broken() const noexcept { return broken_; }
  /// The rule the peer broke, when broken().
  const char* why() const noexcept { return why_; }
  /// Whether the rule broken was the chain or indirect table limit (max_chain): counted by the
  /// transport apart from the other breaks, as the board config sets it.
  bool limit_hit() const noexcept { return limit_hit_; }
  std::uint16_t num() const noexcept { return num_; }
  /// The next avail ring entry this side will take, and the used index it last wrote (both
  /// free-running 16-bit counters, VIRTIO 1.2 §2.7.6 and §2.7.8), for status reports.
  std::uint16_t last_avail_idx() const noexcept { return last_avail_idx_; }
  std::uint16_t used_idx() const noexcept { return used_idx_; }
  /// Descriptors a chain may have here (max_chain capped by the queue size).
  std::uint32_t chain_max() const noexcept { return chain_max_; }

 private:
  // Takes the next chain into `c` (found: whether there was one). Returns the rule the peer
  // broke, or nullptr.
  const char* next_chain(Chain& c, bool& found);
  bool request_doorbell() noexcept;  // notify_enable()'s stores and the second look
  bool rearm() noexcept override;
  void write_used_flags() noexcept;
  layout::VringDesc fetch_desc(const Segment& table, std::uint32_t i) const noexcept;

  std::uint16_t num_;
  VringhParams p_;
  std::uint32_t chain_max_;
  std::uint16_t last_avail_idx_ = 0;
  std::uint16_t avail_idx_seen_ = 0;  // the avail index at its last read (validated)
  std::uint16_t used_idx_ = 0;        // private copy: never read back from the used ring
  std::uint16_t used_idx_published_ = 0;
  std::vector<layout::VringUsedElem> used_shadow_;  // entries pushed, not yet written (num)
  bool used_pairs_;  // the window takes no 16-bit accesses: flags and index go out as one word
  std::uint16_t signalled_used_ = 0;  // used idx at the last need_notify()
  std::uint16_t used_flags_shadow_ = 0;
  bool broken_ = false;
  bool limit_hit_ = false;
  bool in_group_ = false;  // waiting in p_.group for arm()
  const char* why_ = "";
};

/// Copies a chain's readable bytes into `dst` (at most dst.size()); returns bytes copied.
std::size_t chain_read(const Chain& c, std::span<std::byte> dst) noexcept;
/// Copies `src` into a chain's writable segments; returns bytes copied (< src.size() when the
/// chain is too short).
std::size_t chain_write(const Chain& c, std::span<const std::byte> src) noexcept;
/// As chain_write(), starting `off` bytes into the chain's writable bytes (a status byte at the
/// end of whatever room the driver gave, without writing the room before it).
std::size_t chain_write_at(const Chain& c, std::uint64_t off,
                           std::span<const std::byte> src) noexcept;

/// Most iovecs chain_gather()/chain_scatter() produce (a longer chain takes the copies).
inline constexpr std::size_t kMaxChainIov = 64;
/// Appends the chain's readable bytes after the first `skip` as iovecs into our own cached
/// windows, for a syscall to read in place (writev() to a TAP): no copy of ours. Returns false
/// (and `iov` is to be discarded) when a segment is in the peer's window or in memory that is
/// not viewable(), or the chain has more than kMaxChainIov segments: chain_read() instead.
/// The bytes stay the peer's to rewrite: only hand over what needs no validation.
bool chain_gather(const Chain& c, std::size_t skip, std::vector<iovec>& iov);
/// Appends the chain's writable bytes after the first `skip` as iovecs for a syscall to fill
/// (readv() from a TAP), in windows that are fillable() (cached memory): false otherwise (as
/// chain_gather()): chain_write() instead. Report what was filled with chain_filled().
bool chain_scatter(const Chain& c, std::size_t skip, std::vector<iovec>& iov);
/// Counts the `bytes` a syscall wrote through chain_scatter()'s iovecs (link model).
void chain_filled(const Chain& c, std::size_t skip, std::size_t bytes) noexcept;

}  // namespace vepf::ring
