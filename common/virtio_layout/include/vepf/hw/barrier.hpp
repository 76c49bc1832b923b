#pragma once
// Memory barriers for memory shared with the peer across the link (Linux dma_rmb/dma_wmb/virt_mb).
// On x86 (TSO) the read and write barriers only stop the compiler; arm64 needs outer-shareable dmb.

#include <atomic>

namespace vepf::hw {

#if defined(__aarch64__)
#define VEPF_ARM64_BARRIER(insn) asm volatile(insn ::: "memory")
#else
#define VEPF_ARM64_BARRIER(insn) std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

/// Orders earlier loads from shared memory before later ones.
inline void dma_rmb() noexcept { VEPF_ARM64_BARRIER("dmb oshld"); }
/// Orders earlier stores to shared memory before later ones.
inline void dma_wmb() noexcept { VEPF_ARM64_BARRIER("dmb oshst"); }
/// Full barrier: orders an earlier store before a later load (virtio_mb, needed around
/// notification suppression: publish event index, then re-check the ring).
inline void mb() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }

}  // namespace vepf::hw
