#pragma once
// Driver side of a split virtqueue (VIRTIO 1.2 §2.7): adds buffers, publishes them on the avail
// ring, takes completions from the used ring.
//
// Consumer-local placement (ARCHITECTURE.md §1): the descriptor table and avail ring are in the
// device's memory (we only write them: posted writes), the used ring is in ours (we only read it).
// The driver never reads back what it wrote: descriptor chains are tracked in desc_state_.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/poll_group.hpp"

namespace vepf::ring {

/// A buffer named by its link address (LAYOUT.md §4) and length in bytes.
struct Buf {
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
};

/// Where the three parts of a queue are, and what was negotiated.
struct VringParams {
  std::uint16_t num = 0;   // queue size, entries (power of 2)
  Segment desc;            // num * 16 bytes, 16-aligned
  Segment avail;           // 6 + 2 * num bytes
  Segment used;            // 6 + 8 * num bytes, 4-aligned
  bool event_idx = false;  // VIRTIO_F_EVENT_IDX negotiated
  // VIRTIO_F_INDIRECT_DESC: a pool of num tables of indirect_max descriptors each (16 B),
  // reachable by the device at link address indirect_addr. Empty: no indirect descriptors.
  Segment indirect;
  std::uint64_t indirect_addr = 0;
  std::uint16_t indirect_max = 0;
  PollGroup* group = nullptr;  // the program's spin-then-sleep group (none: always ask at once)
};

class Vring final : private PollGroup::Member {
 public:
  struct Used {
    std::uint64_t token;  // what add() was given
    std::uint32_t len;    // bytes the device wrote into the device-writable buffers
  };

  /// Params must name in-bounds, aligned ranges (the driver chose them). Initialises the avail
  /// ring's flags and index to 0 (VIRTIO 1.2 §2.7.6).
  explicit Vring(const VringParams& p);
  ~Vring();
  Vring(const Vring&) = delete;  // its PollGroup knows it by address
  Vring& operator=(const Vring&) = delete;

  /// Adds one descriptor chain: `out` device-readable buffers, then `in` device-writable ones.
  /// Uses an indirect table when negotiated and the chain has more than one buffer. Returns the
  /// chain's head descriptor (the id the device will put on the used ring); the chain becomes
  /// visible to the device at the next kick_prepare().
  /// Errors: kNoSpace (not enough free descriptors, or num chains already wait for
  /// kick_prepare(): a device may complete chains it was never given), kInvalidArgument (empty
  /// chain or too long for the queue), kBadRing (queue broken).
  [[nodiscard]] Result<std::uint16_t> add(std::span<const Buf> out, std::span<const Buf> in,
                                          std::uint64_t token);

  /// Publishes everything added since the last call and says whether the device wants a
  /// notification (VIRTIO 1.2 §2.7.10/§2.7.13.4). Without adds, returns false.
  [[nodiscard]] bool kick_prepare();

  /// Takes one completion. The used index is read (acquire) only when the completions seen at
  /// its last read are taken, so a burst costs one index read. Errors: kBadRing when the device
  /// wrote an impossible used entry (index moved too far, id out of range or not in flight, len
  /// larger than the writable buffers); the queue is broken from then on.
  [[nodiscard]] Result<std::optional<Used>> get_used();

  /// Asks for an interrupt when the next buffer is used. Returns false if used buffers are
  /// already pending (poll again instead of waiting). VIRTIO 1.2 §2.7.10. While the ring's
  /// PollGroup polls, only looks, and leaves the request to PollGroup::arm().
  [[nodiscard]] bool enable_cb();
  /// Asks the device not to interrupt (best effort; without EVENT_IDX sets NO_INTERRUPT).
  void disable_cb();

  std::uint16_t num() const noexcept { return num_; }
  std::uint16_t num_free() const noexcept { return num_free_; }
  bool broken() const noexcept { return broken_; }
  /// Buffers in flight (added, not yet returned by get_used()).
  std::uint16_t in_flight() const noexcept { return in_flight_; }
  /// Marks the queue unusable (also used when the device reports it broken).
  void mark_broken() noexcept { broken_ = true; }

 private:
  struct DescState {
    std::uint64_t token = 0;
    std::uint32_t in_len = 0;  // device-writable bytes of the chain
    std::uint16_t ndesc = 0;   // descriptors of the main table the chain holds (0: free)
    std::uint16_t next = 0;    // free list / chain link, driver-private copy of desc.next
    // The table's entry as last written (the device never writes it), when `written`.
    bool written = false;
    std::uint16_t flags = 0;
    std::uint16_t desc_next = 0;
    std::uint32_t len = 0;
    std::uint64_t addr = 0;
  };
  void write_desc(const Segment& table, std::uint16_t i, const Buf& b, std::uint16_t flags,
                  std::uint16_t next) noexcept;
  Result<std::optional<Used>> bad_ring(const char* what) noexcept;
  void write_avail_entries(std::uint16_t from, std::uint16_t to) noexcept;
  void write_avail_flags() noexcept;
  bool request_interrupt() noexcept;  // enable_cb()'s stores and the second look
  bool rearm() noexcept override;

  std::uint16_t num_;
  VringParams p_;
  std::vector<DescState> desc_state_;
  std::vector<std::uint16_t> avail_shadow_;  // the avail ring's entries, as added (num entries)
  bool avail_pairs_;  // the window takes no 16-bit accesses: entries go out in 32-bit pairs
  std::uint16_t free_head_ = 0;
  std::uint16_t free_tail_;  // last descriptor of the free list (meaningful while num_free_ > 0)
  std::uint16_t num_free_;
  std::uint16_t in_flight_ = 0;
  std::uint16_t avail_idx_shadow_ = 0;  // next avail idx to publish (private copy)
  std::uint16_t avail_idx_published_ = 0;
  std::uint16_t last_used_idx_ = 0;
  std::uint16_t used_idx_seen_ = 0;  // the used index at its last read (validated)
  std::uint16_t avail_flags_shadow_ = 0;
  bool broken_ = false;
  bool in_group_ = false;  // waiting in p_.group for arm()
};

}  // namespace vepf::ring
