#pragma once
// The consume loops of a virtqueue, written once for every device and driver.
//
// ChainConsumer is the device's loop over the avail ring (VIRTIO 1.2 §2.7.13 seen from the
// device): pop a chain, hand it to the device's handler, put it on the used ring. The used
// entries of a burst go out together with one used-index store (Vringh::push_used() then one
// publish_used()), and need_notify() is asked once per burst. A chain the handler cannot finish
// now (no frame to fill it with, a backend that is full) is held and offered first next time,
// so nothing is lost and nothing is completed early.
//
// UsedConsumer is the driver's loop over the used ring (VIRTIO 1.2 §2.7.14): take a completion,
// hand it to the driver's handler, hold it when the handler's sink is full.
//
// Both re-enable notifications (Vringh::notify_enable() / Vring::enable_cb()) only when the
// ring is empty, and pop again when more arrived in between (the race VIRTIO 1.2 §2.7.10 warns
// of), so a caller that sleeps after End::kEmpty sleeps with the peer told to wake it.

#include <cstdint>
#include <optional>
#include <utility>

#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::ring {

/// What a handler did with the chain (or completion) it was given.
struct Handled {
  enum class Kind : std::uint8_t {
    kUsed,   // done: put it on the used ring with `len` bytes written (device side), go on
    kTaken,  // the handler keeps it and completes it itself later (e.g. an I/O thread), go on
    kRetry,  // keep it and call the handler with it again (the handler dropped its input), go on
    kHold,   // keep it for the next drain and stop (no input for it, or the sink is full)
    kStop,   // stop; it is neither used nor held (the handler broke the queue)
  };
  Kind kind = Kind::kUsed;
  std::uint32_t len = 0;  // bytes written into the chain's writable buffers (kUsed only)

  static constexpr Handled used(std::uint32_t len = 0) noexcept { return {Kind::kUsed, len}; }
  static constexpr Handled taken() noexcept { return {Kind::kTaken, 0}; }
  static constexpr Handled retry() noexcept { return {Kind::kRetry, 0}; }
  static constexpr Handled hold() noexcept { return {Kind::kHold, 0}; }
  static constexpr Handled stop() noexcept { return {Kind::kStop, 0}; }
};

/// How a drain ended.
struct Drained {
  enum class End : std::uint8_t {
    kEmpty,    // the ring is empty and notifications are enabled: safe to sleep
    kBudget,   // the budget ran out with work perhaps left: poll again before sleeping
    kHeld,     // the handler held an entry (or had no work: see drain_while())
    kStopped,  // the handler stopped
    kBroken,   // the peer broke the ring's rules (see why() / the Vring error)
  };
  End end = End::kEmpty;
  std::uint32_t used = 0;  // entries put on the used ring (device) or taken (driver)
  bool notify = false;     // device side: the driver wants an interrupt for this burst
};

/// The device's consume loop for one queue. Holds at most one chain between drains; drop() it
/// when the device is reset.
class ChainConsumer {
 public:
  /// A burst is published (one used-index store) at its end, and on the way every this many
  /// entries or bytes written.
  static constexpr std::uint32_t kPublishEntries = 32;
  static constexpr std::uint64_t kPublishBytes = 128 * 1024;

  /// Drains up to `budget` chains from `q` through `h`, a callable `Handled(Chain&)`.
  template <class Handler>
  Drained drain(Vringh& q, std::uint32_t budget, Handler&& h) {
    return drain_while(
        q, budget, [] { return true; }, h);
  }

  /// As drain(), but first asks `more()` (a callable `bool()`) before each chain: false ends
  /// the drain with End::kHeld without popping (the device has nothing to put in a receive
  /// buffer, or a limit of its own is reached).
  template <class More, class Handler>
  Drained drain_while(Vringh& q, std::uint32_t budget, More&& more, Handler&& h) {
    Drained d;
    d.end = Drained::End::kBudget;
    std::uint32_t unpublished = 0;        // entries pushed since the last publish_used()
    std::uint64_t unpublished_bytes = 0;  // and the bytes they carry
    while (budget > 0) {
      if (!more()) {
        d.end = Drained::End::kHeld;
        break;
      }
      if (!held_) {
        auto r = q.pop(chain_);
        if (!r) {
          d.end = Drained::End::kBroken;
          break;
        }
        if (!*r) {
          if (q.notify_enable()) {
            d.end = Drained::End::kEmpty;
            break;
          }
          --budget;  // chains arrived while enabling: take them (counted, so a peer cannot spin us)
          continue;
        }
        held_ = true;
      }
      const Handled res = h(chain_);
      if (res.kind == Handled::Kind::kRetry) {
        --budget;
        continue;
      }
      if (res.kind == Handled::Kind::kHold) {
        d.end = Drained::End::kHeld;
        break;
      }
      held_ = false;
      if (res.kind == Handled::Kind::kStop) {
        d.end = Drained::End::kStopped;
        break;
      }
      if (res.kind == Handled::Kind::kUsed) {
        if (!q.push_used(chain_.head, res.len)) {
          d.end = Drained::End::kBroken;
          break;
        }
        ++d.used;
        ++unpublished;
        unpublished_bytes += res.len;
        // A long burst goes out in parts, so that a driver that is awake starts on the first
        // buffers while we fill the rest.
        if (unpublished == kPublishEntries || unpublished_bytes >= kPublishBytes) {
          q.publish_used();
          unpublished = 0;
          unpublished_bytes = 0;
        }
      }
      --budget;
    }
    if (d.used > 0) {
      q.publish_used();
      d.notify = q.need_notify();
    }
    return d;
  }

  /// Whether a chain is held for the next drain.
  bool holding() const noexcept { return held_; }
  /// Forgets the held chain (the device was reset: the queue and its chains are gone).
  void drop() noexcept {
    held_ = false;
    chain_.clear();
  }

 private:
  Chain chain_;  // reused: popping allocates nothing
  bool held_ = false;
};

/// The driver's consume loop over one queue's used ring. Holds at most one completion between
/// drains; drop() it when the queue goes away.
class UsedConsumer {
 public:
  /// Takes up to `budget` completions from `q` through `h`, a callable
  /// `Handled(const Vring::Used&)` (kUsed, kTaken and kStop mean the completion is done with;
  /// kRetry and kHold keep it). On a ring error the error is left in `*error` (when given).
  template <class Handler>
  Drained drain(Vring& q, std::uint32_t budget, Handler&& h, Error* error = nullptr) {
    Drained d;
    d.end = Drained::End::kBudget;
    while (budget > 0) {
      if (!held_) {
        auto u = q.get_used();
        if (!u) {
          if (error) *error = u.error();
          d.end = Drained::End::kBroken;
          break;
        }
        if (!*u) {
          if (q.enable_cb()) {
            d.end = Drained::End::kEmpty;
            break;
          }
          --budget;  // completions arrived while enabling: take them
          continue;
        }
        held_ = *u;
      }
      const Handled res = h(*held_);
      if (res.kind == Handled::Kind::kRetry) {
        --budget;
        continue;
      }
      if (res.kind == Handled::Kind::kHold) {
        d.end = Drained::End::kHeld;
        break;
      }
      held_.reset();
      ++d.used;
      --budget;
      if (res.kind == Handled::Kind::kStop) {
        d.end = Drained::End::kStopped;
        break;
      }
    }
    return d;
  }

  bool holding() const noexcept { return held_.has_value(); }
  /// Gives up the held completion (to recycle its buffer when the queue's user goes away).
  std::optional<Vring::Used> release() noexcept { return std::exchange(held_, std::nullopt); }
  void drop() noexcept { held_.reset(); }

 private:
  std::optional<Vring::Used> held_;
};

}  // namespace vepf::ring
