#pragma once
// A single-threaded event loop over epoll (level-triggered unless EPOLLET is passed).
//
// Callbacks may call add(), modify(), remove() and stop() on the loop. remove() takes effect at
// once: a removed descriptor's callback does not run again, not even for an event already
// returned in the batch being dispatched (entries are looked up by a per-registration id, so
// a descriptor number reused by a later add() does not receive the old registration's events).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

class EventLoop {
 public:
  using Callback = std::function<void(std::uint32_t revents)>;

  EventLoop() noexcept = default;
  EventLoop(EventLoop&&) noexcept = default;
  EventLoop& operator=(EventLoop&&) noexcept = default;

  /// Creates the epoll instance.
  [[nodiscard]] static Result<EventLoop> create() noexcept;

  /// Watches `fd` for `events` (EPOLLIN, ...); `cb` gets the returned events. The loop does not
  /// own `fd`: remove() it before closing it. Errors: kSystem (EEXIST when already added).
  [[nodiscard]] Result<void> add(int fd, std::uint32_t events, Callback cb);
  /// Changes the events watched on `fd`. Errors: kInvalidArgument when `fd` is not added.
  [[nodiscard]] Result<void> modify(int fd, std::uint32_t events);
  /// Stops watching `fd` (no-op when it is not added). Closes it if the loop owns it (timers).
  void remove(int fd) noexcept;

  /// Calls `cb` every `period` (first time after one period) through a timerfd the loop owns.
  /// Returns the timer's id (its descriptor number), to pass to remove().
  [[nodiscard]] Result<int> add_timer(std::chrono::milliseconds period, std::function<void()> cb);

  /// Waits up to `timeout_ms` (-1: forever) for one epoll_wait batch and dispatches it.
  /// EINTR counts as an empty batch.
  [[nodiscard]] Result<void> run_once(int timeout_ms);
  /// Dispatches batches until stop() is called (the batch in progress is finished first, so
  /// no edge-triggered event is lost). Errors: those of run_once().
  [[nodiscard]] Result<void> run();
  /// Makes run() return after the current batch. Call from the loop's thread (e.g. a callback).
  void stop() noexcept { stopped_ = true; }
  bool stopped() const noexcept { return stopped_; }

  std::size_t size() const noexcept { return by_id_.size(); }
  /// The epoll descriptor: readable while an event waits, so another loop can poll it and call
  /// run_once(0) then.
  int fd() const noexcept { return epfd_.get(); }

 private:
  struct Entry {
    int fd = -1;
    Callback cb;
    Fd owned;  // set for descriptors the loop created (timers)
  };

  Result<void> add_entry(int fd, std::uint32_t events, Callback cb, Fd owned);

  Fd epfd_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<Entry>> by_id_;
  std::unordered_map<int, std::uint64_t> id_of_fd_;
  bool stopped_ = false;
};

}  // namespace vepf::os
