#include "vepf/os/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <vector>

#include "vepf/os/eventfd.hpp"

namespace vepf::os {
namespace {

using std::chrono::milliseconds;

EventLoop make_loop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop) << loop.error().what;
  return loop ? std::move(*loop) : EventLoop{};
}

EventFd make_eventfd() {
  auto ev = EventFd::create();
  EXPECT_TRUE(ev) << ev.error().what;
  return ev ? std::move(*ev) : EventFd{};
}

TEST(EventLoop, CallbackFiresWithItsEvents) {
  EventLoop loop = make_loop();
  EventFd ev = make_eventfd();
  int calls = 0;
  std::uint32_t seen = 0;
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN, [&](std::uint32_t revents) {
    ++calls;
    seen = revents;
    (void)ev.drain();
  }));
  ASSERT_TRUE(loop.run_once(0));
  EXPECT_EQ(calls, 0);  // nothing signalled yet
  ASSERT_TRUE(ev.signal());
  ASSERT_TRUE(loop.run_once(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen & EPOLLIN);
}

TEST(EventLoop, RemoveFromCallbackDropsTheOtherPendingEvent) {
  EventLoop loop = make_loop();
  EventFd a = make_eventfd();
  EventFd b = make_eventfd();
  int calls = 0;
  // Whichever runs first removes the other, whose event is already in the same batch.
  ASSERT_TRUE(loop.add(a.fd(), EPOLLIN, [&](std::uint32_t) {
    ++calls;
    loop.remove(b.fd());
  }));
  ASSERT_TRUE(loop.add(b.fd(), EPOLLIN, [&](std::uint32_t) {
    ++calls;
    loop.remove(a.fd());
  }));
  ASSERT_TRUE(a.signal());
  ASSERT_TRUE(b.signal());
  ASSERT_TRUE(loop.run_once(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop.size(), 1u);
}

TEST(EventLoop, ReusedDescriptorNumberDoesNotGetTheOldEvent) {
  EventLoop loop = make_loop();
  EventFd a = make_eventfd();
  EventFd b = make_eventfd();
  EventFd fresh;
  int fresh_calls = 0;
  int calls = 0;
  auto replace_other = [&](EventFd& other) {
    ++calls;
    loop.remove(other.fd());
    other = EventFd{};       // closed: its number is free again
    fresh = make_eventfd();  // usually gets that same number
    ASSERT_TRUE(loop.add(fresh.fd(), EPOLLIN, [&](std::uint32_t) { ++fresh_calls; }));
  };
  ASSERT_TRUE(loop.add(a.fd(), EPOLLIN, [&](std::uint32_t) { replace_other(b); }));
  ASSERT_TRUE(loop.add(b.fd(), EPOLLIN, [&](std::uint32_t) { replace_other(a); }));
  ASSERT_TRUE(a.signal());
  ASSERT_TRUE(b.signal());
  ASSERT_TRUE(loop.run_once(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(fresh_calls, 0);  // fresh was never signalled
}

TEST(EventLoop, CallbackMayRemoveItself) {
  EventLoop loop = make_loop();
  EventFd ev = make_eventfd();
  int calls = 0;
  std::vector<int> big(100, 7);  // captured state must survive until the callback returns
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN, [&, big](std::uint32_t) {
    loop.remove(ev.fd());
    calls += big[99];
  }));
  ASSERT_TRUE(ev.signal());
  ASSERT_TRUE(loop.run_once(1000));
  ASSERT_TRUE(loop.run_once(10));  // still signalled, but removed
  EXPECT_EQ(calls, 7);
  EXPECT_EQ(loop.size(), 0u);
}

TEST(EventLoop, StopFromCallbackEndsRun) {
  EventLoop loop = make_loop();
  EventFd ev = make_eventfd();
  int calls = 0;
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN, [&](std::uint32_t) {
    ++calls;
    loop.stop();  // level-triggered: without stop() run() would call us forever
  }));
  ASSERT_TRUE(ev.signal());
  EXPECT_FALSE(loop.stopped());
  ASSERT_TRUE(loop.run());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(loop.stopped());
}

TEST(EventLoop, TimerFiresRepeatedlyUntilRemoved) {
  EventLoop loop = make_loop();
  int ticks = 0;
  auto id = loop.add_timer(milliseconds{5}, [&] {
    if (++ticks == 3) loop.stop();
  });
  ASSERT_TRUE(id) << id.error().what;
  ASSERT_TRUE(loop.run());
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(loop.size(), 1u);
  loop.remove(*id);
  EXPECT_EQ(loop.size(), 0u);
  ASSERT_TRUE(loop.run_once(30));
  EXPECT_EQ(ticks, 3);
}

TEST(EventLoop, ModifyChangesTheWatchedEvents) {
  EventLoop loop = make_loop();
  EventFd ev = make_eventfd();
  int calls = 0;
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN, [&](std::uint32_t) { ++calls; }));
  ASSERT_TRUE(loop.modify(ev.fd(), 0));  // watch nothing (EPOLLERR/HUP aside)
  ASSERT_TRUE(ev.signal());
  ASSERT_TRUE(loop.run_once(10));
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(loop.modify(ev.fd(), EPOLLIN));
  ASSERT_TRUE(loop.run_once(1000));
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, RejectsDuplicatesAndUnknownDescriptors) {
  EventLoop loop = make_loop();
  EventFd ev = make_eventfd();
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN, [](std::uint32_t) {}));
  auto dup = loop.add(ev.fd(), EPOLLIN, [](std::uint32_t) {});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Errc::kSystem);
  EventFd other = make_eventfd();
  auto mod = loop.modify(other.fd(), EPOLLIN);
  ASSERT_FALSE(mod);
  EXPECT_EQ(mod.error().code, Errc::kInvalidArgument);
  loop.remove(other.fd());  // no-op
  EXPECT_EQ(loop.size(), 1u);
  auto bad_timer = loop.add_timer(milliseconds{0}, [] {});
  ASSERT_FALSE(bad_timer);
  EXPECT_EQ(bad_timer.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace vepf::os
