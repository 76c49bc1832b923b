#include "vepf/os/acceptor.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

namespace vepf::os {

namespace {
Fd open_spare() noexcept { return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }
Fd accept_one(int lfd) noexcept {
  return Fd(::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}
}  // namespace

Acceptor::Acceptor(EventLoop& loop, Fd listener, std::size_t max_open, Handlers h) noexcept
    : loop_(loop),
      listener_(std::move(listener)),
      max_open_(max_open),
      h_(std::move(h)),
      spare_(open_spare()) {}

Result<std::unique_ptr<Acceptor>> Acceptor::create(EventLoop& loop, Fd listener,
                                                   std::size_t max_open, Handlers h) {
  if (!listener.valid() || max_open == 0 || !h.open || !h.take) {
    return fail(Errc::kInvalidArgument,
                "acceptor: a listener, max_open >= 1, open() and take() are needed");
  }
  std::unique_ptr<Acceptor> a(new Acceptor(loop, std::move(listener), max_open, std::move(h)));
  if (!a->spare_.valid())
    return fail(Errc::kSystem, "open /dev/null (the acceptor's spare descriptor)", errno);
  Acceptor* raw = a.get();
  if (auto r = loop.add(raw->fd(), EPOLLIN, [raw](std::uint32_t) { raw->on_ready(); }); !r)
    return tl::unexpected(r.error());
  return a;
}

Acceptor::~Acceptor() {
  if (backoff_timer_ >= 0) loop_.remove(backoff_timer_);
  loop_.remove(listener_.get());
}

void Acceptor::refuse(Fd c, Refusal why) {
  if (h_.refuse) h_.refuse(c.get(), why);
  // c closes here
}

Acceptor::Shed Acceptor::shed() {
  // accept(2) takes the descriptor before it looks at the queue: EMFILE says nothing of whether
  // a connection waits. With the spare given up, it does.
  spare_ = Fd();
  Fd c = accept_one(listener_.get());
  const int err = errno;
  Shed r = Shed::kFailed;
  if (c.valid()) {
    ++counts_.refused_no_fds;
    refuse(std::move(c), Refusal::kNoFds);
    r = Shed::kTook;
  } else if (err == EAGAIN || err == EWOULDBLOCK) {
    r = Shed::kNoneWaiting;
  }
  spare_ = open_spare();
  return r;
}

void Acceptor::on_ready() {
  for (int i = 0; i < kBurst; ++i) {
    Fd c = accept_one(listener_.get());
    if (!c.valid()) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE) {
        const Shed r = shed();
        if (r == Shed::kTook) continue;
        if (r == Shed::kNoneWaiting) return;
      }
      return pause();  // nothing taken: the connection stays queued; look again later
    }
    if (h_.open() >= max_open_) {
      ++counts_.refused_full;
      refuse(std::move(c), Refusal::kFull);
      continue;
    }
    ++counts_.accepted;
    h_.take(std::move(c));
  }
}

void Acceptor::pause() {
  if (backoff_timer_ >= 0) return;
  auto t = loop_.add_timer(kBackoff, [this] {
    loop_.remove(backoff_timer_);  // one shot (removing the running timer is allowed)
    backoff_timer_ = -1;
    (void)loop_.modify(listener_.get(), EPOLLIN);
  });
  if (!t) return;  // keep watching: spinning beats never accepting again
  ++counts_.paused;
  backoff_timer_ = *t;
  (void)loop_.modify(listener_.get(), 0);
}

}  // namespace vepf::os
