#pragma once
// What the rogue-driver fuzz targets (net_device_fuzz, rpmsg_device_fuzz) share: the device's
// bring-up by the real DriverTransport over the fake links (support/transport_pair.hpp), and
// buffers placed where the input says: in the driver's share of a window, at any link address,
// or across a window's end.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "fuzz_log.hpp"
#include "fuzz_support.hpp"
#include "support/driver_queue_core.hpp"
#include "support/transport_pair.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/window_allocator.hpp"

namespace vepf::fuzz {

/// Negotiates `want` for the device in `slot`, enables its queues 0..N-1 with `num` entries each
/// into `vq` (EVENT_IDX as negotiated), then DRIVER_OK. Stores the features agreed in
/// `features`. False when a step fails.
template <std::size_t N>
bool bring_up(test::TransportPair& t, std::uint32_t slot, std::uint64_t want, std::uint16_t num,
              std::optional<ring::Vring> (&vq)[N], std::uint64_t& features) {
  auto f = t.negotiate(slot, want);
  if (!f) return false;
  features = *f;
  for (std::size_t q = 0; q < N; ++q) {
    auto p = test::make_driver_queue(t.drv, t.w, slot, static_cast<std::uint16_t>(q), num);
    if (!p) return false;
    p->event_idx = (features & (std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX)) != 0;
    vq[q].emplace(*p);
  }
  return t.drv.driver_ok(slot).has_value();
}

/// A buffer of the input's choosing: where it lies, and where in the window when the driver
/// allocated it.
struct Placed {
  ring::Buf buf;
  std::optional<std::size_t> off;
};

/// Reads u8 place (mod 3) and u16 length (1..4096), then: 0 a buffer allocated in `mine` (the
/// driver's share of a window), 1 a link address from the input (u64), 2 the last bytes of the
/// window at `window_base` (crossing its end when long). Empty when `mine` is full.
inline std::optional<Placed> place(ByteReader& in, transport::WindowAllocator& mine,
                                   std::uint64_t window_base, std::uint64_t window_size) {
  const std::uint8_t how = in.u8() % 3;
  const std::uint32_t len = 1 + in.u16() % 4096;
  if (how == 0) {
    const auto a = mine.alloc(len, 8);
    if (!a) return std::nullopt;
    return Placed{{a->link_addr, len}, a->off};
  }
  if (how == 1) return Placed{{in.u64(), len}, std::nullopt};
  return Placed{{window_base + window_size - (len < 64 ? len : 64), len}, std::nullopt};
}

/// Reads u8 n (1..`max` segments) and places each in the driver's share of the RC window (or
/// where the input says): a device-writable buffer list, empty when nothing could be placed.
inline std::vector<ring::Buf> place_receive(ByteReader& in, test::TransportPair& t, unsigned max) {
  const unsigned n = 1 + in.u8() % max;
  std::vector<ring::Buf> bufs;
  for (unsigned i = 0; i < n; ++i) {
    if (auto b = place(in, t.drv.rc_alloc(), layout::link_addr(layout::WindowId::kRc, 0),
                       t.w.drv_rc.size())) {
      bufs.push_back(b->buf);
    }
  }
  return bufs;
}

/// Puts the chain (`out` device-readable, `in` device-writable) on `vq` and rings the doorbell.
/// False when it did not fit.
inline bool post(test::TransportPair& t, ring::Vring& vq, std::span<const ring::Buf> out,
                 std::span<const ring::Buf> in, std::uint64_t token) {
  if ((out.empty() && in.empty()) || !vq.add(out, in, token)) return false;
  (void)vq.kick_prepare();
  (void)t.drl.ring_doorbell();
  return true;
}

/// The driver writes a 32-bit word of its EP-window space (its rings included): u32 offset,
/// u32 value.
inline void scribble(ByteReader& in, test::TransportPair& t) {
  const auto size = static_cast<std::uint32_t>(t.w.drv_ep.size());
  const std::uint32_t off = in.u32() % size & ~3u;
  t.w.drv_ep.store<std::uint32_t>(off, in.u32());
}

/// What the driver posted, to check the device's used lengths against: the writable bytes of
/// each chain (by token), until the driver scribbles on its own rings (the device may then see
/// other chains than the ones posted).
class PostedRoom {
 public:
  void clear() {
    room_.clear();
    scribbled_ = false;
  }
  void posted(std::uint64_t token, std::uint64_t writable) { room_[token] = writable; }
  void scribbled() { scribbled_ = true; }
  /// The driver takes up to 64 used entries of `q`; aborts when one claims more than its
  /// chain's writable bytes (while the rings are as the driver wrote them).
  void take_used(ring::Vring& q) {
    for (int k = 0; k < 64; ++k) {
      auto u = q.get_used();
      if (!u || !*u) break;
      const auto it = room_.find((*u)->token);
      if (it == room_.end()) continue;
      if (!scribbled_) FUZZ_CHECK((*u)->len <= it->second);
      room_.erase(it);
    }
  }

 private:
  std::unordered_map<std::uint64_t, std::uint64_t> room_;  // token -> writable bytes (bytes)
  bool scribbled_ = false;
};

/// The driver takes up to 64 used entries of each queue.
template <std::size_t N>
void take_used(std::optional<ring::Vring> (&vq)[N]) {
  for (auto& q : vq) {
    for (int k = 0; q && k < 64; ++k) {
      auto u = q->get_used();
      if (!u || !*u) break;
    }
  }
}

}  // namespace vepf::fuzz
