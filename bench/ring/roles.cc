#include "roles.hpp"

#include <poll.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <span>
#include <vector>

#include "placement.hpp"
#include "reference.hpp"
#include "vepf/hw/barrier.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kSleepCap{10};  // a sleeping side re-checks stop this often
constexpr std::uint32_t kDeviceBit = 1, kDriverBit = 2;

/// Spinning and sleeping as the mode says: poll spins forever, notify sleeps at once, adaptive
/// spins up to spin_us after the last work, then sleeps.
class Idler {
 public:
  explicit Idler(const Case& c) : mode_(c.mode), budget_(std::chrono::microseconds(c.spin_us)) {}
  /// Called after a round without work. True: arm notifications and sleep now.
  bool should_sleep() {
    if (mode_ == Mode::kPoll) {
      hw::cpu_relax();
      return false;
    }
    if (mode_ == Mode::kAdaptive) {
      const auto now = Clock::now();
      if (!spinning_) {
        spinning_ = true;
        since_ = now;
      }
      if (now - since_ < budget_) {
        hw::cpu_relax();
        return false;
      }
    }
    return true;
  }
  void busy() noexcept { spinning_ = false; }
  /// Whether an empty round only spins (poll mode: nothing to decide but to look again).
  bool spinning_only() noexcept {
    if (mode_ != Mode::kPoll) return false;
    hw::cpu_relax();
    return true;
  }

 private:
  Mode mode_;
  std::chrono::nanoseconds budget_;
  bool spinning_ = false;
  Clock::time_point since_;
};

/// Waits for both sides to be set up; false when the other side gave up.
bool meet(Control& ctl, std::uint32_t me) {
  ctl.ready.fetch_or(me);
  while (ctl.ready.load() != (kDeviceBit | kDriverBit)) {
    if (ctl.stop.load()) return false;
    hw::cpu_relax();
  }
  return true;
}

void fail(Control& ctl, SideStats& st, const char* what, const char* detail) {
  std::snprintf(st.error, sizeof st.error, "%s: %s", what, detail);
  ctl.stop.store(1);
}

/// The measured loop's bookkeeping: wall and CPU time, link counts.
class Meter {
 public:
  explicit Meter(ring::LinkCounters& counters) : counters_(counters), link0_(counters) {}
  void finish(SideStats& st) const {
    st.elapsed_s = std::chrono::duration<double>(Clock::now() - start_).count();
    st.cpu_s = thread_cpu_seconds() - cpu0_;
    st.link = counters_ - link0_;
  }

 private:
  ring::LinkCounters& counters_;
  ring::LinkCounters link0_;
  Clock::time_point start_ = Clock::now();
  double cpu0_ = thread_cpu_seconds();
};

void percentiles(std::vector<std::uint32_t>& ns, SideStats& st) {
  const Rtt r = rtt_of(ns);
  st.rtt_samples = r.samples;
  st.rtt_p50_ns = r.p50_ns;
  st.rtt_p99_ns = r.p99_ns;
}

}  // namespace

std::string to_string(Mode m) {
  switch (m) {
    case Mode::kPoll:
      return "poll";
    case Mode::kNotify:
      return "notify";
    case Mode::kAdaptive:
      return "adaptive";
  }
  return "?";
}

std::string to_string(Direction d) { return d == Direction::kToDevice ? "to-device" : "to-driver"; }

bool pin_to_cpu(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void run_device(const Case& c, platform::LoopbackEp& ep, Control& ctl) {
  SideStats& st = ctl.device;
  pin_to_cpu(c.device_cpu);
  const auto pl = RingPlacement::make(c.num, c.size);
  auto rc = ep.attach_rc_window(0, pl.rc_size);
  if (!rc) {
    fail(ctl, st, "device: RC window", rc.error().what);
    ctl.done.fetch_or(kDeviceBit);
    return;
  }
  ring::AddressSpace space(&ep.ep_window(), *rc);
  ring::Vringh q(pl.device(space, c.event_idx));
  std::vector<std::byte> buf(c.size, std::byte{0xa5});
  // The device consumes (and so measures) a stream towards it; otherwise the driver does.
  const bool measuring = c.dir == Direction::kToDevice && !c.pingpong;
  if (!meet(ctl, kDeviceBit)) {
    ctl.done.fetch_or(kDeviceBit);
    return;
  }

  Meter meter(ep.counters());
  const auto deadline = Clock::now() + std::chrono::milliseconds(c.ms);
  Idler idle(c);
  std::uint64_t rounds = 0;
  ring::Chain ch;
  for (;;) {
    int n = 0;
    for (; n < c.burst; ++n) {
      auto p = q.pop(ch);
      if (!p) {
        fail(ctl, st, "device: pop", p.error().what);
        break;
      }
      if (!*p) break;
      auto len = static_cast<std::uint32_t>(c.size);
      if (c.dir == Direction::kToDevice || c.pingpong) {
        len = 0;
        if (c.copies >= 2) ring::chain_read(ch, buf);
      } else if (c.copies >= 1) {
        len = static_cast<std::uint32_t>(ring::chain_write(ch, buf));
      }
      if (!q.push_used(ch.head, len)) break;
    }
    if (n > 0) {
      q.publish_used();
      st.messages += static_cast<std::uint64_t>(n);
      if (c.mode != Mode::kPoll && q.need_notify()) (void)ep.raise_interrupt();
      idle.busy();
      if (++rounds % 64 != 0) continue;
    }
    // The clock is read every 64th round only: a clock_gettime() per empty poll would delay
    // the device's answer to the next burst (the harness's cost, not the ring's).
    if (n == 0 && ++st.idle_rounds % 64 != 0 && idle.spinning_only()) continue;
    if (measuring ? Clock::now() >= deadline : ctl.stop.load(std::memory_order_relaxed) != 0) break;
    if (ctl.stop.load(std::memory_order_relaxed)) break;  // the other side failed
    if (n > 0) continue;
    if (!idle.should_sleep()) continue;
    if (!q.notify_enable()) continue;  // more arrived while arming: pop again
    pollfd pfd{ep.doorbell_fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(kSleepCap.count()));
    (void)ep.drain_doorbell();
    ++st.sleeps;
    q.notify_disable();
    idle.busy();
  }
  if (measuring) ctl.stop.store(1);
  meter.finish(st);
  ctl.done.fetch_or(kDeviceBit);
}

namespace {

/// Buffer slots not in flight, reused first in, first out (as a driver that re-posts the
/// buffers of an in-order queue would: slot k keeps going out on descriptor k).
class SlotFifo {
 public:
  explicit SlotFifo(std::uint16_t num) : slots_(num), mask_(num - 1u) {}  // num: a power of 2
  bool empty() const noexcept { return count_ == 0; }
  std::uint16_t front() const noexcept { return slots_[head_]; }
  void drop() noexcept {
    head_ = (head_ + 1) & mask_;
    --count_;
  }
  void put(std::uint16_t s) noexcept {
    slots_[(head_ + count_) & mask_] = s;
    ++count_;
  }

 private:
  std::vector<std::uint16_t> slots_;
  std::size_t mask_;
  std::size_t head_ = 0, count_ = 0;
};

/// The driver's loops, one per pattern.
class Driver {
 public:
  Driver(const Case& c, platform::LoopbackHost& host, Control& ctl)
      : c_(c),
        host_(host),
        ctl_(ctl),
        st_(ctl.driver),
        pl_(RingPlacement::make(c.num, c.size)),
        q_(pl_.driver(host.ep_window(), host.rc_window(), c.event_idx)),
        buf_(c.size, std::byte{0x5a}),
        idle_(c),
        free_(c.num) {
    for (std::uint16_t s = 0; s < c.num; ++s) free_.put(s);
  }

  void run() {
    if (!meet(ctl_, kDriverBit)) return;
    Meter meter(host_.counters());
    if (c_.pingpong) {
      pingpong();
    } else if (c_.dir == Direction::kToDevice) {
      transmit();
    } else {
      receive();
    }
    meter.finish(st_);
  }

 private:
  void kick() {
    if (q_.kick_prepare() && c_.mode != Mode::kPoll) (void)host_.ring_doorbell();
  }
  /// Sleeps until the device interrupts (after enable_cb() said nothing is pending).
  void sleep() {
    if (!q_.enable_cb()) return;  // completions arrived while arming
    (void)host_.wait_interrupt(kSleepCap);
    ++st_.sleeps;
    q_.disable_cb();
    idle_.busy();
  }
  bool add_out(std::uint16_t slot) {
    if (c_.copies >= 1) host_.ep_window().write(pl_.ep_buf(slot), buf_);
    const ring::Buf b{pl_.ep_buf_addr(slot), static_cast<std::uint32_t>(c_.size)};
    auto r = q_.add({&b, 1}, {}, slot);
    if (!r) fail(ctl_, st_, "driver: add", r.error().what);
    return r.has_value();
  }
  bool add_in(std::uint16_t slot) {
    const ring::Buf b{pl_.rc_buf_addr(slot), static_cast<std::uint32_t>(c_.size)};
    auto r = q_.add({}, {&b, 1}, slot);
    if (!r) fail(ctl_, st_, "driver: add", r.error().what);
    return r.has_value();
  }
  /// Takes one completion: its slot, or -1 when none (-2 after an error).
  int take() {
    auto u = q_.get_used();
    if (!u) {
      fail(ctl_, st_, "driver: get_used", u.error().what);
      return -2;
    }
    if (!*u) return -1;
    last_len_ = (*u)->len;
    return static_cast<int>((*u)->token);
  }

  // A stream towards the device: the driver produces, the device measures.
  void transmit() {
    std::uint64_t rounds = 0;
    for (;;) {
      for (int s; (s = take()) >= 0;) free_.put(static_cast<std::uint16_t>(s));
      int n = 0;
      for (; n < c_.burst && !free_.empty(); ++n) {
        if (!add_out(free_.front())) return;
        free_.drop();
      }
      if (n > 0) {
        st_.messages += static_cast<std::uint64_t>(n);
        kick();
        idle_.busy();
        if (++rounds % 64 != 0) continue;
      }
      if (ctl_.stop.load(std::memory_order_relaxed)) return;
      if (n > 0) continue;
      ++st_.idle_rounds;
      if (idle_.should_sleep()) sleep();
    }
  }

  // A stream towards the driver: the driver posts buffers and measures.
  void receive() {
    for (std::uint16_t s = 0; s < c_.num; ++s) {
      if (!add_in(s)) return;
    }
    kick();
    const auto deadline = Clock::now() + std::chrono::milliseconds(c_.ms);
    std::uint64_t rounds = 0;
    for (;;) {
      int n = 0;
      for (int s; n < c_.burst && (s = take()) >= 0; ++n) {
        const auto slot = static_cast<std::uint16_t>(s);
        if (c_.copies >= 2)
          host_.rc_window().read(pl_.rc_buf(slot), std::span{buf_}.first(std::min<std::size_t>(
                                                       last_len_, buf_.size())));
        if (!add_in(slot)) return;
      }
      if (n > 0) {
        st_.messages += static_cast<std::uint64_t>(n);
        kick();
        idle_.busy();
        if (++rounds % 64 != 0) continue;
      }
      if (Clock::now() >= deadline || ctl_.stop.load(std::memory_order_relaxed)) break;
      if (n > 0) continue;
      ++st_.idle_rounds;
      if (idle_.should_sleep()) sleep();
    }
    ctl_.stop.store(1);
  }

  // One message in flight: RTT from add to its completion.
  void pingpong() {
    std::vector<std::uint32_t> ns;
    ns.reserve(4u << 20);
    const auto deadline = Clock::now() + std::chrono::milliseconds(c_.ms);
    while (!ctl_.stop.load(std::memory_order_relaxed)) {
      const auto t0 = Clock::now();
      if (t0 >= deadline) break;
      if (!add_out(0)) break;
      kick();
      int s;
      while ((s = take()) == -1) {
        if (idle_.should_sleep()) sleep();
        if (ctl_.stop.load(std::memory_order_relaxed)) break;
      }
      if (s < 0) break;
      idle_.busy();
      const auto rtt =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
      if (ns.size() < ns.capacity())
        ns.push_back(static_cast<std::uint32_t>(std::min<long long>(rtt, UINT32_MAX)));
      ++st_.messages;
    }
    ctl_.stop.store(1);
    percentiles(ns, st_);
  }

  const Case& c_;
  platform::LoopbackHost& host_;
  Control& ctl_;
  SideStats& st_;
  RingPlacement pl_;
  ring::Vring q_;
  std::vector<std::byte> buf_;
  Idler idle_;
  SlotFifo free_;  // driver->device buffer slots not in flight
  std::uint32_t last_len_ = 0;
};

}  // namespace

void run_driver(const Case& c, platform::LoopbackHost& host, Control& ctl) {
  pin_to_cpu(c.driver_cpu);
  {
    Driver d(c, host, ctl);
    d.run();
  }
  ctl.done.fetch_or(kDriverBit);
}

}  // namespace vepf::bench
