#include "vepf/ring/vringh.hpp"

#include <algorithm>
#include <cassert>

#include "vepf/layout/ring.hpp"

namespace vepf::ring {

using layout::VringDesc;

Vringh::Vringh(const VringhParams& p)
    : num_(p.num),
      p_(p),
      chain_max_(p.max_chain == 0 ? p.num : std::min<std::uint32_t>(p.max_chain, p.num)),
      used_shadow_(p.num),
      used_pairs_(p.used.window->access().widths.container_for(2) == 4 && p.used.off % 4 == 0) {
  assert(layout::queue_size_valid(p.num) && p.space != nullptr);
  p_.used.window->store<std::uint16_t>(p_.used.off + layout::kRingFlagsOff, 0);
  p_.used.window->store<std::uint16_t>(p_.used.off + layout::avail_event_offset(num_), 0);
  // Flags and avail_event before the index; pairs with load_acquire of the used idx in
  // Vring::get_used() and Vring::enable_cb().
  p_.used.window->store_release<std::uint16_t>(p_.used.off + layout::kRingIdxOff, 0);
}

VringDesc Vringh::fetch_desc(const Segment& table, std::uint32_t i) const noexcept {
  // The one and only read of this descriptor: everything below checks this copy.
  return table.window->read_struct<VringDesc>(table.off + layout::desc_offset(i));
}

std::uint16_t Vringh::pending() const noexcept {
  if (broken_) return 0;
  // Pairs with store_release of the avail idx in Vring::kick_prepare().
  const auto idx = p_.avail.window->load_acquire<std::uint16_t>(p_.avail.off + layout::kRingIdxOff);
  return static_cast<std::uint16_t>(idx - last_avail_idx_);
}

Result<std::optional<Chain>> Vringh::pop() {
  Chain c;
  auto r = pop(c);
  if (!r) return tl::make_unexpected(r.error());
  if (!*r) return std::nullopt;
  return c;
}

Result<bool> Vringh::pop(Chain& c) {
  if (broken_) return fail(Errc::kBadRing, why_);
  bool found = false;
  if (const char* why = next_chain(c, found)) {
    broken_ = true;
    why_ = why;
    return fail(Errc::kBadRing, why);
  }
  return found;
}

const char* Vringh::next_chain(Chain& c, bool& found) {
  if (last_avail_idx_ == avail_idx_seen_) {
    // Pairs with store_release of the avail idx in Vring::kick_prepare(): the entries and the
    // descriptors are read after the index.
    const auto avail_idx =
        p_.avail.window->load_acquire<std::uint16_t>(p_.avail.off + layout::kRingIdxOff);
    if (avail_idx == last_avail_idx_) return nullptr;
    if (static_cast<std::uint16_t>(avail_idx - last_avail_idx_) > num_) {
      return "avail idx moved by more than the queue size";
    }
    avail_idx_seen_ = avail_idx;
  }

  const auto head = p_.avail.window->load<std::uint16_t>(
      p_.avail.off + layout::avail_entry_offset(last_avail_idx_ & (num_ - 1)));
  if (head >= num_) return "avail entry: head out of range";

  c.clear();
  c.head = head;
  Segment table = p_.desc;
  std::uint32_t table_len = num_;  // descriptors in the current table
  std::uint32_t i = head;
  std::uint32_t steps = 0;
  std::uint32_t descs = 0;  // buffer descriptors so far, the indirect table's included
  bool in_indirect = false;
  std::uint64_t total = 0;
  bool seen_writable = false;  // zero-length writables are not kept, so track them apart
  for (;;) {
    if (++steps > table_len) return "descriptor chain loops";
    const VringDesc d = fetch_desc(table, i);
    const std::uint16_t flags = d.flags.to_cpu();
    const std::uint64_t addr = d.addr.to_cpu();
    const std::uint32_t len = d.len.to_cpu();

    if (flags & VRING_DESC_F_INDIRECT) {
      // VIRTIO 1.2 §2.7.5.3.1: negotiated, not nested, not combined with NEXT, len a multiple
      // of 16. The WRITE flag of this descriptor is ignored.
      if (!p_.indirect) return "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
      if (in_indirect) return "nested indirect table";
      if (flags & VRING_DESC_F_NEXT) return "indirect descriptor with NEXT";
      if (len == 0 || len % sizeof(VringDesc) != 0)
        return "indirect table length not a multiple of 16";
      auto t = p_.space->translate_aligned(addr, len, layout::kDescAlign);
      if (!t) return "indirect table outside the windows";
      if (len / sizeof(VringDesc) > chain_max_) {
        limit_hit_ = true;
        return "indirect table longer than a chain may be (max_chain_segments, queue size)";
      }
      table = *t;
      table_len = len / sizeof(VringDesc);
      i = 0;
      steps = 0;
      in_indirect = true;
      continue;
    }

    if (++descs > chain_max_) {
      limit_hit_ = true;
      return "descriptor chain longer than a chain may be (max_chain_segments, queue size)";
    }
    const Segment seg = p_.space->lookup(addr, len);
    if (seg.window == nullptr) return "buffer outside the windows";
    total += len;
    // VIRTIO 1.2 §2.7.5.2: a chain carries at most 2^32 bytes.
    if (total > UINT32_MAX) return "descriptor chain longer than 2^32 bytes";
    if (flags & VRING_DESC_F_WRITE) {
      seen_writable = true;
      c.write_len += len;
      if (len) c.add_writable(seg);
    } else {
      // §2.7.4.2: device-readable descriptors come before device-writable ones.
      if (seen_writable) return "readable descriptor after a writable one";
      c.read_len += len;
      if (len) c.add_readable(seg);
    }
    if (!(flags & VRING_DESC_F_NEXT)) break;
    i = d.next.to_cpu();
    if (i >= table_len) return "descriptor next out of range";
  }
  ++last_avail_idx_;
  found = true;
  return nullptr;
}

void Vringh::write_used_flags() noexcept {
  if (used_pairs_) {
    // Flags and the published index as one word (no read-modify-write of the index's half).
    p_.used.window->store<std::uint32_t>(
        p_.used.off + layout::kRingFlagsOff,
        std::uint32_t{used_flags_shadow_} | std::uint32_t{used_idx_published_} << 16);
  } else {
    p_.used.window->store<std::uint16_t>(p_.used.off + layout::kRingFlagsOff, used_flags_shadow_);
  }
}

Result<void> Vringh::push_used(std::uint16_t head, std::uint32_t len) {
  if (broken_) return fail(Errc::kBadRing, why_);
  assert(head < num_);
  // Kept here until publish_used() writes the burst's entries together, right before the
  // index: the driver polls the index, which shares a cache line with the first entries.
  used_shadow_[used_idx_ & (num_ - 1)] =
      layout::VringUsedElem{layout::le32::from_cpu(head), layout::le32::from_cpu(len)};
  ++used_idx_;
  return {};
}

void Vringh::publish_used() noexcept {
  if (used_idx_ == used_idx_published_) return;
  for (std::uint16_t i = used_idx_published_; i != used_idx_; ++i) {
    const std::uint16_t slot = i & (num_ - 1);
    p_.used.window->write_struct(p_.used.off + layout::used_entry_offset(slot), used_shadow_[slot]);
  }
  if (used_pairs_) {
    // No 16-bit store on this window: flags and index as one word, the flags from our copy.
    // Entries before index; pairs with load_acquire of the used idx in Vring::get_used().
    p_.used.window->store_release<std::uint32_t>(
        p_.used.off + layout::kRingFlagsOff,
        std::uint32_t{used_flags_shadow_} | std::uint32_t{used_idx_} << 16);
  } else {
    // Entries before index; pairs with load_acquire of the used idx in Vring::get_used().
    p_.used.window->store_release<std::uint16_t>(p_.used.off + layout::kRingIdxOff, used_idx_);
  }
  used_idx_published_ = used_idx_;
}

Result<void> Vringh::complete(std::uint16_t head, std::uint32_t len) {
  if (auto r = push_used(head, len); !r) return r;
  publish_used();
  return {};
}

bool Vringh::need_notify() {
  // Only what publish_used() made visible counts: an interrupt for entries still held back by
  // push_used() would wake the driver to nothing and then be owed for them.
  // Used idx store before reading the driver's suppression state; pairs with hw::mb() in
  // Vring::enable_cb().
  hw::mb();
  bool notify;
  if (p_.event_idx) {
    const auto used_event =
        p_.avail.window->load<std::uint16_t>(p_.avail.off + layout::used_event_offset(num_));
    notify = layout::need_event(used_event, used_idx_published_, signalled_used_);
  } else {
    const auto flags = p_.avail.window->load<std::uint16_t>(p_.avail.off + layout::kRingFlagsOff);
    notify = used_idx_published_ != signalled_used_ && (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }
  signalled_used_ = used_idx_published_;
  return notify;
}

Vringh::~Vringh() {
  if (in_group_) p_.group->leave(this);
}

bool Vringh::notify_enable() {
  if (broken_) return true;
  if (p_.group != nullptr && p_.group->polling()) {
    if (!in_group_) {
      p_.group->want(this);
      in_group_ = true;
    }
    return pending() == 0;
  }
  return request_doorbell();
}

bool Vringh::rearm() noexcept {
  in_group_ = false;
  return broken_ || request_doorbell();
}

bool Vringh::request_doorbell() noexcept {
  if (p_.event_idx) {
    // Doorbell me when the avail idx moves past what I have consumed (VIRTIO 1.2 §2.7.10).
    p_.used.window->store<std::uint16_t>(p_.used.off + layout::avail_event_offset(num_),
                                         last_avail_idx_);
  } else if (used_flags_shadow_ & VRING_USED_F_NO_NOTIFY) {
    used_flags_shadow_ &= static_cast<std::uint16_t>(~VRING_USED_F_NO_NOTIFY);
    write_used_flags();
  }
  // Event store before re-reading the avail idx; pairs with hw::mb() in Vring::kick_prepare().
  hw::mb();
  return pending() == 0;
}

void Vringh::notify_disable() {
  if (p_.event_idx || (used_flags_shadow_ & VRING_USED_F_NO_NOTIFY)) return;
  used_flags_shadow_ |= VRING_USED_F_NO_NOTIFY;
  write_used_flags();
}

void Chain::spill(const Segment& s) {
  if (spill_.empty()) {
    spill_.reserve(4 * kInlineSegments);
    spill_.assign(inline_.segs, inline_.segs + nread_ + nwrite_);
  }
  spill_.push_back(s);
}

std::size_t chain_read(const Chain& c, std::span<std::byte> dst) noexcept {
  std::size_t done = 0;
  for (const Segment& s : c.readable()) {
    if (done == dst.size()) break;
    const std::size_t n = std::min<std::size_t>(s.len, dst.size() - done);
    s.window->read(s.off, dst.subspan(done, n));
    done += n;
  }
  return done;
}

std::size_t chain_write(const Chain& c, std::span<const std::byte> src) noexcept {
  return chain_write_at(c, 0, src);
}

std::size_t chain_write_at(const Chain& c, std::uint64_t off,
                           std::span<const std::byte> src) noexcept {
  std::size_t done = 0;
  for (const Segment& s : c.writable()) {
    if (done == src.size()) break;
    if (off >= s.len) {
      off -= s.len;
      continue;
    }
    const std::size_t n = std::min<std::size_t>(s.len - off, src.size() - done);
    s.window->write(s.off + off, src.subspan(done, n));
    done += n;
    off = 0;
  }
  return done;
}

namespace {
// Visits the parts of `segs` after the first `skip` bytes: fn(segment, offset in it, length).
template <class Fn>
bool for_each_after(std::span<const Segment> segs, std::size_t skip, Fn&& fn) {
  if (segs.size() > kMaxChainIov) return false;
  for (const Segment& s : segs) {
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    if (!fn(s, skip, s.len - skip)) return false;
    skip = 0;
  }
  return true;
}
}  // namespace

bool chain_gather(const Chain& c, std::size_t skip, std::vector<iovec>& iov) {
  return for_each_after(c.readable(), skip, [&](const Segment& s, std::size_t at, std::size_t len) {
    if (s.window->remote() || !s.window->viewable()) return false;
    const auto v = s.window->local_view(s.off + at, len);
    iov.push_back({const_cast<std::byte*>(v.data()), v.size()});  // iovec has no const; only read
    return true;
  });
}

bool chain_scatter(const Chain& c, std::size_t skip, std::vector<iovec>& iov) {
  return for_each_after(c.writable(), skip, [&](const Segment& s, std::size_t at, std::size_t len) {
    if (!s.window->fillable()) return false;
    const auto v = s.window->fill_view(s.off + at, len);
    iov.push_back({v.data(), v.size()});
    return true;
  });
}

void chain_filled(const Chain& c, std::size_t skip, std::size_t bytes) noexcept {
  (void)for_each_after(c.writable(), skip, [&](const Segment& s, std::size_t, std::size_t len) {
    if (bytes == 0) return false;
    const std::size_t n = std::min(len, bytes);
    s.window->filled(n);
    bytes -= n;
    return true;
  });
}

}  // namespace vepf::ring
