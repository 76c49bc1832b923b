#pragma once
// Data cache maintenance for cached memory that the peer's PCIe writes and reads do not snoop
// (memory type "cached-noncoherent"; OpenAMP's metal_cache_flush/metal_cache_invalidate do the
// same job for remoteproc rings).
//   arm64: `dc cvac` / `dc civac` per cache line, then `dsb sy` (Arm ARM D7.5.9: data cache
//          maintenance by VA to the Point of Coherency; Linux lets EL0 issue them with
//          SCTLR_EL1.UCI set, and CTR_EL0.DminLine gives the line size, readable with UCT set).
//          `dc ivac` (invalidate without clean) is EL1-only; clean+invalidate is used instead,
//          which is the same for lines this side never wrote.
//   x86:   PCIe DMA snoops the caches (Intel SDM vol. 3 §12.1): nothing to do but stop the
//          compiler.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vepf::hw {

/// Bytes in the smallest data cache line (arm64: 4 << CTR_EL0.DminLine; elsewhere 64).
inline std::size_t dcache_line() noexcept {
#if defined(__aarch64__)
  std::uint64_t ctr;
  asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
  return std::size_t{4} << ((ctr >> 16) & 0xf);
#else
  return 64;
#endif
}

/// Calls `op(address)` for each cache line holding [p, p + n), then waits for the maintenance
/// to complete (`dsb sy`). Elsewhere than arm64 only a compiler barrier.
template <class Op>
void for_each_dcache_line(const void* p, std::size_t n, Op op) noexcept {
#if defined(__aarch64__)
  if (n == 0) return;
  const std::size_t line = dcache_line();
  auto a = reinterpret_cast<std::uintptr_t>(p) & ~(line - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(p) + n;
  for (; a < end; a += line) op(a);
  asm volatile("dsb sy" ::: "memory");
#else
  (void)p;
  (void)n;
  (void)op;
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

/// Writes the lines holding [p, p + n) back to the Point of Coherency, so that a peer that does
/// not snoop reads what this side stored.
inline void dcache_clean(const void* p, std::size_t n) noexcept {
  for_each_dcache_line(p, n, [](std::uintptr_t a) {
#if defined(__aarch64__)
    asm volatile("dc cvac, %0" ::"r"(a) : "memory");
#else
    (void)a;
#endif
  });
}

/// Cleans and invalidates the lines holding [p, p + n), so that the next loads fetch what a
/// non-snooping peer wrote to memory.
inline void dcache_invalidate(const void* p, std::size_t n) noexcept {
  for_each_dcache_line(p, n, [](std::uintptr_t a) {
#if defined(__aarch64__)
    asm volatile("dc civac, %0" ::"r"(a) : "memory");
#else
    (void)a;
#endif
  });
}

}  // namespace vepf::hw
