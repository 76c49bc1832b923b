#include "vepf/ring/vring.hpp"

#include <cassert>

#include "vepf/layout/ring.hpp"

namespace vepf::ring {

using layout::VringDesc;

Vring::Vring(const VringParams& p)
    : num_(p.num),
      p_(p),
      desc_state_(p.num),
      avail_shadow_(p.num),
      avail_pairs_(p.num >= 2 && p.avail.window->access().widths.container_for(2) == 4 &&
                   p.avail.off % 4 == 0),
      free_tail_(static_cast<std::uint16_t>(p.num - 1)),
      num_free_(p.num) {
  assert(layout::queue_size_valid(p.num));
  for (std::uint16_t i = 0; i + 1 < num_; ++i)
    desc_state_[i].next = static_cast<std::uint16_t>(i + 1);
  // VIRTIO 1.2 §2.7.6: the driver initialises the avail ring; the device owns the used ring.
  p_.avail.window->store<std::uint16_t>(p_.avail.off + layout::kRingFlagsOff, 0);
  p_.avail.window->store<std::uint16_t>(p_.avail.off + layout::used_event_offset(num_), 0);
  // Flags and used_event before the index; pairs with load_acquire of the avail idx in
  // Vringh::next_chain() and Vringh::pending().
  p_.avail.window->store_release<std::uint16_t>(p_.avail.off + layout::kRingIdxOff, 0);
}

void Vring::write_desc(const Segment& table, std::uint16_t i, const Buf& b, std::uint16_t flags,
                       std::uint16_t next) noexcept {
  if (&table == &p_.desc) {
    // The device only reads the table (VIRTIO 1.2 §2.7.5), so a descriptor that already holds
    // these bytes is not written again: no posted write across the link, and the device's
    // cached copy of the line stays valid. A queue that re-posts the same buffers in order (an
    // RX refill, rpmsg buffers) writes no descriptor at all in steady state.
    DescState& st = desc_state_[i];
    if (st.written && st.addr == b.addr && st.len == b.len && st.flags == flags &&
        st.desc_next == next)
      return;
    st.addr = b.addr;
    st.len = b.len;
    st.flags = flags;
    st.desc_next = next;
    st.written = true;
  }
  const VringDesc d{layout::le64::from_cpu(b.addr), layout::le32::from_cpu(b.len),
                    layout::le16::from_cpu(flags), layout::le16::from_cpu(next)};
  // One 16-byte posted write per descriptor; never read back.
  table.window->write_struct(table.off + layout::desc_offset(i), d);
}

Result<std::uint16_t> Vring::add(std::span<const Buf> out, std::span<const Buf> in,
                                 std::uint64_t token) {
  if (broken_) return fail(Errc::kBadRing, "queue is broken");
  const std::size_t total = out.size() + in.size();
  if (total == 0) return fail(Errc::kInvalidArgument, "empty descriptor chain");
  const bool indirect = p_.indirect.window != nullptr && total > 1 && total <= p_.indirect_max;
  const std::size_t needed = indirect ? 1 : total;
  if (needed > num_) return fail(Errc::kInvalidArgument, "chain longer than the queue");
  if (needed > num_free_) return fail(Errc::kNoSpace, "no free descriptors");
  // A device that completes chains not yet made available frees descriptors before the kick:
  // one burst past the queue size would overwrite its own unpublished avail entries.
  if (static_cast<std::uint16_t>(avail_idx_shadow_ - avail_idx_published_) >= num_) {
    return fail(Errc::kNoSpace, "a queue's worth of chains waits for kick_prepare()");
  }

  const std::uint16_t head = free_head_;
  std::uint64_t in_len = 0;
  for (const Buf& b : in) in_len += b.len;
  // VIRTIO 1.2 §2.7.5.2: the device rejects a chain longer than 2^32 - 1 bytes; so do we.
  std::uint64_t total_len = in_len;
  for (const Buf& b : out) total_len += b.len;
  if (total_len > UINT32_MAX)
    return fail(Errc::kInvalidArgument, "chain longer than 2^32 - 1 bytes");

  if (indirect) {
    // Table for this head: slot `head` of the pool, indirect_max entries of 16 bytes.
    const std::size_t slot_bytes = std::size_t{p_.indirect_max} * sizeof(VringDesc);
    const Segment table{p_.indirect.window, p_.indirect.off + head * slot_bytes,
                        static_cast<std::uint32_t>(slot_bytes)};
    for (std::size_t k = 0; k < total; ++k) {
      const bool writable = k >= out.size();
      const Buf& b = writable ? in[k - out.size()] : out[k];
      std::uint16_t flags = writable ? VRING_DESC_F_WRITE : 0;
      if (k + 1 < total) flags |= VRING_DESC_F_NEXT;
      write_desc(table, static_cast<std::uint16_t>(k), b, flags,
                 static_cast<std::uint16_t>(k + 1 < total ? k + 1 : 0));
    }
    const Buf tbl{p_.indirect_addr + head * slot_bytes,
                  static_cast<std::uint32_t>(total * sizeof(VringDesc))};
    write_desc(p_.desc, head, tbl, VRING_DESC_F_INDIRECT, 0);
    free_head_ = desc_state_[head].next;
  } else {
    std::uint16_t i = head;
    for (std::size_t k = 0; k < total; ++k) {
      const bool writable = k >= out.size();
      const Buf& b = writable ? in[k - out.size()] : out[k];
      const bool last = k + 1 == total;
      std::uint16_t flags = writable ? VRING_DESC_F_WRITE : 0;
      if (!last) flags |= VRING_DESC_F_NEXT;
      // The free list's links double as the chain's links (desc_state_[i].next).
      const std::uint16_t next = desc_state_[i].next;
      write_desc(p_.desc, i, b, flags, last ? 0 : next);
      i = next;
    }
    free_head_ = i;
  }

  desc_state_[head].token = token;
  desc_state_[head].in_len = static_cast<std::uint32_t>(in_len);
  desc_state_[head].ndesc = static_cast<std::uint16_t>(needed);
  num_free_ = static_cast<std::uint16_t>(num_free_ - needed);
  ++in_flight_;
  // The entry goes to the ring at kick_prepare(), with the others of the burst.
  avail_shadow_[avail_idx_shadow_ & (num_ - 1)] = head;
  ++avail_idx_shadow_;
  return head;
}

void Vring::write_avail_flags() noexcept {
  if (avail_pairs_) {
    // Flags and the published index as one word (no read-modify-write of the index's half).
    p_.avail.window->store<std::uint32_t>(
        p_.avail.off + layout::kRingFlagsOff,
        std::uint32_t{avail_flags_shadow_} | std::uint32_t{avail_idx_published_} << 16);
  } else {
    p_.avail.window->store<std::uint16_t>(p_.avail.off + layout::kRingFlagsOff,
                                          avail_flags_shadow_);
  }
}

void Vring::write_avail_entries(std::uint16_t from, std::uint16_t to) noexcept {
  // Written together right before the index, not one by one as add() takes them: the device
  // polls the index, which shares a cache line with the first entries, and every entry store
  // between two of its polls would take the line back across the link (or the cores).
  Window& w = *p_.avail.window;
  if (avail_pairs_) {
    // A window without 16-bit accesses: whole 32-bit words of two entries from the shadow,
    // never a read-modify-write (a non-posted read per entry). An entry past the burst is
    // rewritten with its old value; the device reads no entry at or past the index.
    for (std::uint16_t i = from; i != to;) {
      const auto slot = static_cast<std::uint16_t>(i & (num_ - 1));
      const auto even = static_cast<std::uint16_t>(slot & ~1u);
      const std::uint32_t word =
          std::uint32_t{avail_shadow_[even]} | std::uint32_t{avail_shadow_[even + 1]} << 16;
      w.store<std::uint32_t>(p_.avail.off + layout::avail_entry_offset(even), word);
      const std::uint16_t covered = (slot & 1) ? 1 : 2;  // entries of the burst this word held
      if (static_cast<std::uint16_t>(to - i) <= covered) break;
      i = static_cast<std::uint16_t>(i + covered);
    }
    return;
  }
  for (std::uint16_t i = from; i != to; ++i) {
    w.store<std::uint16_t>(p_.avail.off + layout::avail_entry_offset(i & (num_ - 1)),
                           avail_shadow_[i & (num_ - 1)]);
  }
}

bool Vring::kick_prepare() {
  if (avail_idx_shadow_ == avail_idx_published_) return false;
  const std::uint16_t old_idx = avail_idx_published_;
  const std::uint16_t new_idx = avail_idx_shadow_;
  write_avail_entries(old_idx, new_idx);
  // Publishes descriptors and avail entries before the index (both stores below pair with
  // load_acquire of the avail idx in Vringh::next_chain()).
  if (avail_pairs_) {
    // No 16-bit store on this window: flags and index as one word, the flags from our copy.
    // Pairs with load_acquire of the avail idx in Vringh::next_chain().
    p_.avail.window->store_release<std::uint32_t>(
        p_.avail.off + layout::kRingFlagsOff,
        std::uint32_t{avail_flags_shadow_} | std::uint32_t{new_idx} << 16);
  } else {
    // Pairs with load_acquire of the avail idx in Vringh::next_chain().
    p_.avail.window->store_release<std::uint16_t>(p_.avail.off + layout::kRingIdxOff, new_idx);
  }
  avail_idx_published_ = new_idx;
  // Index store before reading the device's suppression state; pairs with hw::mb() in
  // Vringh::notify_enable().
  hw::mb();
  if (p_.event_idx) {
    const auto avail_event =
        p_.used.window->load<std::uint16_t>(p_.used.off + layout::avail_event_offset(num_));
    return layout::need_event(avail_event, new_idx, old_idx);
  }
  const auto flags = p_.used.window->load<std::uint16_t>(p_.used.off + layout::kRingFlagsOff);
  return (flags & VRING_USED_F_NO_NOTIFY) == 0;
}

Result<std::optional<Vring::Used>> Vring::bad_ring(const char* what) noexcept {
  broken_ = true;
  return fail(Errc::kBadRing, what);
}

Result<std::optional<Vring::Used>> Vring::get_used() {
  if (broken_) return fail(Errc::kBadRing, "queue is broken");
  if (last_used_idx_ == used_idx_seen_) {
    // Pairs with store_release of the used idx in Vringh::publish_used(): entries before index.
    const auto used_idx =
        p_.used.window->load_acquire<std::uint16_t>(p_.used.off + layout::kRingIdxOff);
    if (used_idx == last_used_idx_) return std::nullopt;
    if (static_cast<std::uint16_t>(used_idx - last_used_idx_) > in_flight_) {
      return bad_ring("used idx moved past the buffers in flight");
    }
    used_idx_seen_ = used_idx;
  }
  const std::size_t elem = p_.used.off + layout::used_entry_offset(last_used_idx_ & (num_ - 1));
  const auto id = p_.used.window->load<std::uint32_t>(elem);
  const auto len = p_.used.window->load<std::uint32_t>(elem + 4);
  if (id >= num_) return bad_ring("used id out of range");
  DescState& st = desc_state_[id];
  if (st.ndesc == 0) return bad_ring("used id is not a chain in flight");
  if (len > st.in_len) return bad_ring("used len exceeds the device-writable buffers");

  // Return the chain's descriptors to the free list, following the private links.
  std::uint16_t tail = static_cast<std::uint16_t>(id);
  for (std::uint16_t k = 1; k < st.ndesc; ++k) tail = desc_state_[tail].next;
  // Onto the free list's tail: descriptors are reused in the order they were freed, so a queue
  // completed in order writes its table front to back, four descriptors per cache line, rather
  // than scattering writes over lines the device has just read.
  if (num_free_ == 0) {
    free_head_ = static_cast<std::uint16_t>(id);
  } else {
    desc_state_[free_tail_].next = static_cast<std::uint16_t>(id);
  }
  free_tail_ = tail;
  num_free_ = static_cast<std::uint16_t>(num_free_ + st.ndesc);
  st.ndesc = 0;
  --in_flight_;
  ++last_used_idx_;
  return Used{st.token, len};
}

Vring::~Vring() {
  if (in_group_) p_.group->leave(this);
}

bool Vring::enable_cb() {
  if (p_.group != nullptr && p_.group->polling()) {
    if (!in_group_) {
      p_.group->want(this);
      in_group_ = true;
    }
    // Pairs with store_release of the used idx in Vringh::publish_used().
    return broken_ || p_.used.window->load_acquire<std::uint16_t>(
                          p_.used.off + layout::kRingIdxOff) == last_used_idx_;
  }
  return request_interrupt();
}

bool Vring::rearm() noexcept {
  in_group_ = false;
  return broken_ || request_interrupt();
}

bool Vring::request_interrupt() noexcept {
  if (p_.event_idx) {
    // Interrupt me once the device uses past what I have consumed (VIRTIO 1.2 §2.7.10).
    p_.avail.window->store<std::uint16_t>(p_.avail.off + layout::used_event_offset(num_),
                                          last_used_idx_);
  } else if (avail_flags_shadow_ & VRING_AVAIL_F_NO_INTERRUPT) {
    avail_flags_shadow_ &= static_cast<std::uint16_t>(~VRING_AVAIL_F_NO_INTERRUPT);
    write_avail_flags();
  }
  // Event store before re-reading the used idx; pairs with hw::mb() in Vringh::need_notify().
  hw::mb();
  // Pairs with store_release of the used idx in Vringh::publish_used().
  return p_.used.window->load_acquire<std::uint16_t>(p_.used.off + layout::kRingIdxOff) ==
         last_used_idx_;
}

void Vring::disable_cb() {
  // With EVENT_IDX the device interrupts at most once past used_event: nothing to write.
  if (p_.event_idx || (avail_flags_shadow_ & VRING_AVAIL_F_NO_INTERRUPT)) return;
  avail_flags_shadow_ |= VRING_AVAIL_F_NO_INTERRUPT;
  write_avail_flags();
}

}  // namespace vepf::ring
