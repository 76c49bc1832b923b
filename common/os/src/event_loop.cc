#include "vepf/os/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>

namespace vepf::os {
namespace {

constexpr int kMaxEventsPerBatch = 64;

}  // namespace

Result<EventLoop> EventLoop::create() noexcept {
  EventLoop loop;
  loop.epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!loop.epfd_.valid()) return fail(Errc::kSystem, "epoll_create1", errno);
  return loop;
}

Result<void> EventLoop::add(int fd, std::uint32_t events, Callback cb) {
  return add_entry(fd, events, std::move(cb), Fd{});
}

Result<void> EventLoop::add_entry(int fd, std::uint32_t events, Callback cb, Fd owned) {
  if (!epfd_.valid()) return fail(Errc::kInvalidArgument, "event loop not created");
  if (id_of_fd_.count(fd) != 0)
    return fail(Errc::kSystem, "epoll_ctl(ADD): fd already added", EEXIST);
  const std::uint64_t id = next_id_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
    return fail(Errc::kSystem, "epoll_ctl(ADD)", errno);
  by_id_.emplace(id, std::make_shared<Entry>(Entry{fd, std::move(cb), std::move(owned)}));
  id_of_fd_.emplace(fd, id);
  return {};
}

Result<void> EventLoop::modify(int fd, std::uint32_t events) {
  const auto it = id_of_fd_.find(fd);
  if (it == id_of_fd_.end()) return fail(Errc::kInvalidArgument, "epoll_ctl(MOD): fd not added");
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) < 0)
    return fail(Errc::kSystem, "epoll_ctl(MOD)", errno);
  return {};
}

void EventLoop::remove(int fd) noexcept {
  const auto it = id_of_fd_.find(fd);
  if (it == id_of_fd_.end()) return;
  // Fails only if fd was already closed, which removed it from the epoll set anyway.
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  // Dropping the entry here keeps a pending event of this batch from reaching it. When the
  // entry's own callback is running, dispatch holds another reference until it returns.
  by_id_.erase(it->second);
  id_of_fd_.erase(it);
}

Result<int> EventLoop::add_timer(std::chrono::milliseconds period, std::function<void()> cb) {
  if (period.count() <= 0) return fail(Errc::kInvalidArgument, "timer period must be positive");
  Fd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!tfd.valid()) return fail(Errc::kSystem, "timerfd_create", errno);
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(period.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>(period.count() % 1000) * 1'000'000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(tfd.get(), 0, &spec, nullptr) < 0)
    return fail(Errc::kSystem, "timerfd_settime", errno);
  const int id = tfd.get();
  auto on_ready = [id, cb = std::move(cb)](std::uint32_t) {
    std::uint64_t expirations = 0;
    // EAGAIN: another reader or a spurious wakeup; nothing expired.
    if (::read(id, &expirations, sizeof expirations) == static_cast<ssize_t>(sizeof expirations))
      cb();
  };
  auto added = add_entry(id, EPOLLIN, std::move(on_ready), std::move(tfd));
  if (!added) return tl::unexpected(added.error());
  return id;
}

Result<void> EventLoop::run_once(int timeout_ms) {
  if (!epfd_.valid()) return fail(Errc::kInvalidArgument, "event loop not created");
  std::array<epoll_event, kMaxEventsPerBatch> events{};
  const int n = ::epoll_wait(epfd_.get(), events.data(), kMaxEventsPerBatch, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return {};
    return fail(Errc::kSystem, "epoll_wait", errno);
  }
  for (int i = 0; i < n; ++i) {
    // A copy: struct epoll_event is packed on x86-64, its u64 is not 8-byte aligned, and find()
    // takes a reference (UBSan: misaligned reference binding).
    const std::uint64_t id = events[i].data.u64;
    const auto it = by_id_.find(id);
    if (it == by_id_.end()) continue;  // removed by an earlier callback of this batch
    // Keep the entry alive while its callback runs: the callback may remove() itself.
    const std::shared_ptr<Entry> entry = it->second;
    entry->cb(events[i].events);
  }
  return {};
}

Result<void> EventLoop::run() {
  stopped_ = false;
  while (!stopped_) {
    auto r = run_once(-1);
    if (!r) return r;
  }
  return {};
}

}  // namespace vepf::os
