#pragma once
// A listening unix socket (seqpacket or stream) served by an EventLoop, guarded against a local
// client that opens connections without end. Every server of ours takes its connections here:
// the control socket, console ports, rpmsg channel sockets, seqpacket net backends, NBD exports.
//
// - At most `max_open` connections at once, as the owner counts them (Handlers::open). A
//   connection past it is accepted, handed to Handlers::refuse (to tell the client why) and
//   closed; counted in refused_full.
// - Out of descriptors (EMFILE/ENFILE, accept(2)): the waiting connection would keep the
//   listener readable and the level-triggered loop would spin on it. A spare descriptor kept for
//   this is given up to accept the connection, which is refused and closed, and taken again;
//   counted in refused_no_fds. When even that fails (or accept(2) fails otherwise: ENOMEM,
//   ENOBUFS), the listener is left unwatched for kBackoff.
// At most kBurst connections are taken per readiness event, so a client that keeps connecting
// does not hold the loop.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "vepf/error.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

class Acceptor {
 public:
  enum class Refusal {
    kFull,   // max_open connections are open
    kNoFds,  // the process is out of descriptors (EMFILE/ENFILE)
  };
  struct Handlers {
    std::function<std::size_t()> open;  // connections open now
    std::function<void(Fd)> take;       // a connection to serve (nonblocking, cloexec)
    std::function<void(int fd, Refusal)>
        refuse;  // optional: tell the client why; it is closed after
  };
  struct Counts {
    std::uint64_t accepted = 0;        // handed to take()
    std::uint64_t refused_full = 0;    // past max_open
    std::uint64_t refused_no_fds = 0;  // EMFILE/ENFILE
    std::uint64_t paused = 0;          // times the listener was left unwatched for kBackoff
  };
  static constexpr std::chrono::milliseconds kBackoff{100};
  static constexpr int kBurst = 64;

  /// Watches `listener` (a listening, nonblocking socket) on `loop`, which must outlive the
  /// Acceptor. `max_open` >= 1. Errors: kSystem (epoll_ctl; /dev/null for the spare descriptor).
  [[nodiscard]] static Result<std::unique_ptr<Acceptor>> create(EventLoop& loop, Fd listener,
                                                                std::size_t max_open, Handlers h);
  /// Stops watching the listener and closes it.
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;  // the loop knows it by address
  Acceptor& operator=(const Acceptor&) = delete;

  int fd() const noexcept { return listener_.get(); }
  const Counts& counts() const noexcept { return counts_; }

 private:
  Acceptor(EventLoop& loop, Fd listener, std::size_t max_open, Handlers h) noexcept;
  void on_ready();
  void refuse(Fd c, Refusal why);
  enum class Shed { kTook, kNoneWaiting, kFailed };
  Shed shed();  // EMFILE/ENFILE: takes and refuses one waiting connection with the spare
  void pause();

  EventLoop& loop_;
  Fd listener_;
  std::size_t max_open_;
  Handlers h_;
  Fd spare_;  // /dev/null, given up when out of descriptors
  int backoff_timer_ = -1;
  Counts counts_;
};

}  // namespace vepf::os
