#pragma once
// Memory barriers for memory shared with the peer across the link, after Linux's dma_rmb(),
// dma_wmb(), wmb() and mb() (arch/arm64/include/asm/barrier.h, arch/x86/include/asm/barrier.h).
// The peer is a PCIe device, which sits in the outer-shareable domain: on arm64 every barrier
// here is outer-shareable (`osh`), never the inner-shareable `ish` that only orders against
// other CPUs. On x86 (TSO, Intel SDM vol. 3 §9.2) loads are not reordered with loads nor stores
// with stores to write-back and uncached memory, so dma_rmb()/dma_wmb() only stop the compiler;
// write-combining stores are weakly ordered and need sfence (SDM vol. 3 §12.3.1).

#include <atomic>

namespace vepf::hw {

#if defined(__aarch64__)
#define VEPF_ARM64_BARRIER(insn) asm volatile(insn ::: "memory")
#else
#define VEPF_ARM64_BARRIER(insn) std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

/// Orders earlier loads from shared memory before later loads (arm64 `dmb oshld`).
inline void dma_rmb() noexcept { VEPF_ARM64_BARRIER("dmb oshld"); }
/// Orders earlier stores to shared memory before later stores (arm64 `dmb oshst`), for cached
/// and device memory.
inline void dma_wmb() noexcept { VEPF_ARM64_BARRIER("dmb oshst"); }
/// As dma_wmb(), and also for stores to write-combining memory (x86 `sfence`: WC stores may
/// pass each other and later stores; arm64 Normal-NC memory is ordered by `dmb oshst`).
inline void wc_wmb() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("sfence" ::: "memory");
#else
  VEPF_ARM64_BARRIER("dmb oshst");
#endif
}
/// Full barrier: orders earlier loads and stores before later ones, stores before loads too
/// (virtio_mb(); needed around notification suppression: publish an event index, then re-read
/// the ring). arm64 `dmb osh`; x86 a locked instruction or mfence (atomic_thread_fence).
inline void mb() noexcept {
#if defined(__aarch64__)
  VEPF_ARM64_BARRIER("dmb osh");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

/// Spin-wait hint for a loop polling shared memory (not a barrier): x86 `pause` (Intel SDM
/// vol. 2 PAUSE: saves power and avoids the memory-order mis-speculation on loop exit), arm64
/// `yield` (Linux cpu_relax()).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace vepf::hw
