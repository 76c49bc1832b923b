// vepf-bench-ring-micro: Google Benchmark micro-benchmarks of the ring operations, the driver
// side (Vring add + kick_prepare, get_used) and the device side (Vringh pop + push_used +
// publish_used) on one queue of 256 entries in ordinary memory, one thread. Each reports ns per
// chain and `allocs_per_chain`, the heap allocations per chain (operator new is replaced here to
// count them: the data path should make none). The other side's half of each round runs with
// the timer paused, once per burst of 256 chains.
// Run: build/default/bench/vepf-bench-ring-micro [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <span>

#include "placement.hpp"

namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace vepf;

/// One queue in two blocks of ordinary memory standing for the two windows, both local.
class Queue {
 public:
  explicit Queue(std::size_t msg)
      : pl_(bench::RingPlacement::make(256, msg)),
        ep_mem_(static_cast<std::byte*>(std::aligned_alloc(4096, pl_.ep_size))),
        rc_mem_(static_cast<std::byte*>(std::aligned_alloc(4096, pl_.rc_size))),
        ep_(layout::WindowId::kEp, {ep_mem_, pl_.ep_size}, nullptr),
        rc_(layout::WindowId::kRc, {rc_mem_, pl_.rc_size}, nullptr),
        space_(&ep_, &rc_),
        drv_(pl_.driver(ep_, rc_, true)),
        dev_(pl_.device(space_, true)) {}
  ~Queue() {
    std::free(ep_mem_);
    std::free(rc_mem_);
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  /// Driver half: adds `n` single-buffer chains (driver -> device) and publishes them.
  void add(std::uint16_t n) {
    for (std::uint16_t s = 0; s < n; ++s) {
      const ring::Buf b{pl_.ep_buf_addr(s), static_cast<std::uint32_t>(pl_.msg)};
      if (!drv_.add({&b, 1}, {}, s)) std::abort();
    }
    benchmark::DoNotOptimize(drv_.kick_prepare());
  }
  /// Device half: pops everything, completes it as one burst.
  std::uint16_t serve() {
    std::uint16_t n = 0;
    for (;;) {
      auto got = dev_.pop(chain_);
      if (!got) std::abort();
      if (!*got) break;
      if (!dev_.push_used(chain_.head, 0)) std::abort();
      ++n;
    }
    dev_.publish_used();
    benchmark::DoNotOptimize(dev_.need_notify());
    return n;
  }
  /// Driver half: takes every completion.
  std::uint16_t reap() {
    std::uint16_t n = 0;
    for (;;) {
      auto u = drv_.get_used();
      if (!u) std::abort();
      if (!*u) break;
      benchmark::DoNotOptimize((*u)->token);
      ++n;
    }
    return n;
  }

 private:
  bench::RingPlacement pl_;
  std::byte* ep_mem_;
  std::byte* rc_mem_;
  ring::Window ep_, rc_;
  ring::AddressSpace space_;
  ring::Vring drv_;
  ring::Vringh dev_;
  ring::Chain chain_;
};

constexpr std::uint16_t kBurst = 256;

void report(benchmark::State& state, std::size_t allocations) {
  const auto chains = static_cast<double>(state.iterations()) * kBurst;
  state.SetItemsProcessed(static_cast<std::int64_t>(chains));
  state.counters["allocs_per_chain"] = static_cast<double>(allocations) / chains;
  state.counters["ns_per_chain"] =
      benchmark::Counter(chains, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Vring: add + kick_prepare, then get_used, per chain (the device's pop/complete paused).
void BM_VringAddGetUsed(benchmark::State& state) {
  Queue q(64);
  const std::size_t a0 = g_allocations.load();
  for (auto _ : state) {
    q.add(kBurst);
    state.PauseTiming();
    if (q.serve() != kBurst) std::abort();
    state.ResumeTiming();
    if (q.reap() != kBurst) std::abort();
  }
  report(state, g_allocations.load() - a0);
}
BENCHMARK(BM_VringAddGetUsed);

// Vringh: pop + push_used, one publish_used per burst (the driver's add/reap paused).
void BM_VringhPopComplete(benchmark::State& state) {
  Queue q(64);
  const std::size_t a0 = g_allocations.load();
  for (auto _ : state) {
    state.PauseTiming();
    q.add(kBurst);
    state.ResumeTiming();
    if (q.serve() != kBurst) std::abort();
    state.PauseTiming();
    if (q.reap() != kBurst) std::abort();
    state.ResumeTiming();
  }
  report(state, g_allocations.load() - a0);
}
BENCHMARK(BM_VringhPopComplete);

// Both sides in one thread, nothing paused: what one chain costs the two CPUs together.
void BM_RingRoundTrip(benchmark::State& state) {
  Queue q(64);
  const std::size_t a0 = g_allocations.load();
  for (auto _ : state) {
    q.add(kBurst);
    if (q.serve() != kBurst) std::abort();
    if (q.reap() != kBurst) std::abort();
  }
  report(state, g_allocations.load() - a0);
}
BENCHMARK(BM_RingRoundTrip);

}  // namespace

BENCHMARK_MAIN();
