// The ring's data path allocates nothing: after the queues are set up, adding, publishing,
// popping, completing and taking completions of the usual chains (one to four buffers, direct
// and indirect) makes no heap allocation. This program replaces the global operator new to
// count them (a program of its own, so the count sees nothing but this test).

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/ring/vringh.hpp"

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

namespace vepf::test {
namespace {

/// Runs `rounds` bursts of `burst` chains of `nbufs` buffers each through the ring; returns
/// the number of chains that made the round trip intact.
std::size_t run(RingPair& r, int rounds, int burst, std::size_t nbufs) {
  std::size_t ok = 0;
  ring::Buf out[2], in[2];
  for (std::size_t k = 0; k < 2; ++k) {
    out[k] = {ep_addr(r.ep_data_off + 0x100 * k), 32};
    in[k] = {rc_addr(r.rc_data_off + 0x100 * k), 64};
  }
  const std::size_t nout = nbufs / 2, nin = nbufs - nbufs / 2;
  for (int round = 0; round < rounds; ++round) {
    for (int b = 0; b < burst; ++b) {
      if (!r.drv().add({out, nout}, {in, nin}, static_cast<std::uint64_t>(b))) return ok;
    }
    (void)r.drv().kick_prepare();
    for (;;) {
      auto p = r.dev().pop();
      if (!p || !*p) break;
      if (!r.dev().push_used((*p)->head, static_cast<std::uint32_t>((*p)->write_len))) return ok;
    }
    r.dev().publish_used();
    (void)r.dev().need_notify();
    for (;;) {
      auto u = r.drv().get_used();
      if (!u || !*u) break;
      if ((*u)->len == 64 * nin) ++ok;
    }
  }
  return ok;
}

TEST(RingAllocations, TheDataPathAllocatesNothing) {
  for (const bool indirect : {false, true}) {
    for (const std::size_t nbufs : {1u, 2u, 4u}) {
      LinkWindows w;
      RingOptions o = traffic_ring();
      o.driver_indirect_pool = indirect;
      RingPair r(w, o);
      ASSERT_EQ(run(r, 4, 4, nbufs), 16u);  // warm-up
      const std::size_t before = g_allocations.load();
      const std::size_t ok = run(r, 1000, indirect ? 8 : 4, nbufs);
      const std::size_t allocations = g_allocations.load() - before;
      EXPECT_EQ(ok, indirect ? 8000u : 4000u)
          << "chains lost (indirect " << indirect << ", " << nbufs << " buffers)";
      EXPECT_EQ(allocations, 0u) << "heap allocations on the data path (indirect " << indirect
                                 << ", " << nbufs << " buffers)";
    }
  }
}

TEST(RingAllocations, TheCounterSeesAnAllocation) {
  // The check above would pass with a counter that never counts: make sure it does.
  const std::size_t before = g_allocations.load();
  auto* p = new int(7);
  EXPECT_EQ(g_allocations.load() - before, 1u);
  delete p;
}

}  // namespace
}  // namespace vepf::test
