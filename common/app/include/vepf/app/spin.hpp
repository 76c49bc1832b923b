#pragma once
// Adaptive spin-then-sleep for a program's event loop (board config [link] spin_us).
//
// After the program moved data it keeps polling its rings for up to the budget, with its
// PollGroup polling (the peer's doorbells or interrupts left off: ring/poll_group.hpp); when
// the budget passes without more data it arms the group and sleeps. A link without traffic
// never spins, so an idle program sleeps in epoll_wait. A turn that found nothing yields the
// CPU (sched_yield): on a board or VM with fewer cores than busy threads, a spinning program
// must not take the CPU from the applications whose traffic it carries (or from its peer);
// with nothing else runnable it keeps running at once.

#include <sched.h>

#include <chrono>
#include <cstdint>

#include "vepf/ring/poll_group.hpp"

namespace vepf::app {

class Spinner {
 public:
  /// `budget`: how long to poll after the last data moved (0: never spin).
  Spinner(ring::PollGroup& group, std::chrono::microseconds budget) noexcept
      : group_(group), budget_(budget) {}

  /// Call once per loop turn with the program's running total of units moved (frames,
  /// messages, requests, bytes: anything that grows with traffic). Returns true while the
  /// program should poll its rings again rather than sleep.
  bool keep_polling(std::uint64_t moved) noexcept {
    if (budget_.count() == 0) return false;
    const auto now = std::chrono::steady_clock::now();
    if (moved != moved_) {
      moved_ = moved;
      until_ = now + budget_;
      group_.start_polling();
      return true;
    }
    if (!group_.polling()) return false;
    if (now < until_) {
      ::sched_yield();
      return true;
    }
    return !group_.arm();  // work raced with the arming: one more look before sleeping
  }

 private:
  ring::PollGroup& group_;
  std::chrono::microseconds budget_;
  std::chrono::steady_clock::time_point until_{};
  std::uint64_t moved_ = 0;
};

}  // namespace vepf::app
