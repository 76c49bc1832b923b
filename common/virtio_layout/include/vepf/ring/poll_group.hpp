#pragma once
// The rings one event loop serves, for adaptive spin-then-sleep (board config [link] spin_us).
//
// After work, a program keeps polling its rings for a while before it sleeps. While it polls, a
// consume loop that finds its ring empty does not ask the peer for a doorbell or an interrupt
// (Vringh::notify_enable() / Vring::enable_cb() only look): with VIRTIO_F_EVENT_IDX the peer
// then signals at most once per spin instead of once per burst. The ring is remembered here,
// and arm(), called just before the program sleeps, asks the peer for the signal after all,
// then looks once more for work that raced with it (VIRTIO 1.2 §2.7.10). Without EVENT_IDX a
// peer signals as it did (the flags are left alone).
//
// Single-threaded: the group and its rings belong to one event loop.

#include <algorithm>
#include <vector>

namespace vepf::ring {

class PollGroup {
 public:
  /// A ring that can be asked for its peer's signal later (Vring, Vringh).
  class Member {
   public:
    /// Asks the peer to signal new work; returns false when work is there already.
    virtual bool rearm() noexcept = 0;

   protected:
    ~Member() = default;
  };

  /// Starts polling: empty rings stop asking the peer for signals until arm().
  void start_polling() noexcept { polling_ = true; }
  bool polling() const noexcept { return polling_; }

  /// Stops polling and asks the peer of every ring that found itself empty meanwhile for its
  /// signal. Returns false when one of those rings has work already: poll again, don't sleep.
  [[nodiscard]] bool arm() noexcept {
    polling_ = false;
    bool quiet = true;
    for (Member* m : wanted_) quiet = m->rearm() && quiet;
    wanted_.clear();
    return quiet;
  }

  /// `m` found its ring empty while polling (at most once per arm(): see Vringh/Vring).
  void want(Member* m) { wanted_.push_back(m); }
  /// `m` is going away.
  void leave(Member* m) noexcept {
    wanted_.erase(std::remove(wanted_.begin(), wanted_.end(), m), wanted_.end());
  }

 private:
  bool polling_ = false;
  std::vector<Member*> wanted_;
};

}  // namespace vepf::ring
