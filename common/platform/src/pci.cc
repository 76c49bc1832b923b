// The PCI platforms' links: windows over mapped BAR (or physical) memory, ivshmem doorbells,
// eventfd interrupts (pci.hpp).
#include "vepf/platform/pci.hpp"

#include <thread>

#include "vepf/hw/barrier.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/le.hpp"

namespace vepf::platform {

namespace {

using Le32 = layout::Le<std::uint32_t>;

/// Reads and clears the incoming signal's count (0 when none, or without an eventfd).
Result<std::uint64_t> drain(os::EventFd& irq, ring::LinkCounters& c) {
  if (!irq.valid()) return std::uint64_t{0};
  auto n = irq.drain();
  if (n && *n > 0) ++c.signals_received;
  return n;
}

}  // namespace

// ---- ivshmem doorbell ----

IvshmemDoorbell::~IvshmemDoorbell() {
  if (published_) *word(ids_, 4 * static_cast<std::size_t>(role_)) = 0;
}

Result<std::uint16_t> IvshmemDoorbell::publish() {
  const auto pos = static_cast<std::int32_t>(
      Le32::conv(*reinterpret_cast<volatile const std::uint32_t*>(regs_ + kIvshmemIvPosition)));
  if (pos == -1) {
    // What an MMIO read returns when the function decodes nothing (memory space disabled).
    return fail(Errc::kBadLayout,
                "IVPosition reads as all ones: the function does not decode its BARs (disabled?); "
                "with devmem, "
                "name it in ep.device so that vepf-ep enables it");
  }
  if (pos < 0 || pos > 0xffff) {
    return fail(Errc::kBadLayout,
                "IVPosition is not a peer ID: not an ivshmem-doorbell function with a server");
  }
  *word(ids_, 4 * static_cast<std::size_t>(role_)) =
      Le32::conv(kPeerIdValid | static_cast<std::uint32_t>(pos));
  published_ = true;
  return static_cast<std::uint16_t>(pos);
}

bool IvshmemDoorbell::ring() noexcept {
  const std::size_t peer = role_ == PciRole::kEp ? 4 : 0;
  const std::uint32_t w = Le32::conv(*word(ids_, peer));
  if ((w & kPeerIdValid) == 0) return false;
  const std::uint32_t id = w & 0xffff;
  // Every store to the windows before the signal, write-combining buffers drained too (an
  // uncached register write may pass WC stores on x86): pairs with the acquire load of the avail
  // idx or ack in the peer's Vringh::pop() / DeviceTransport::poll_device() after it takes the
  // signal.
  hw::wc_wmb();
  *reinterpret_cast<volatile std::uint32_t*>(regs_ + kIvshmemDoorbell) =
      Le32::conv((id << 16) | vector_);
  return true;
}

// ---- EP ----

PciEp::PciEp(PciParts parts) noexcept
    : p_(std::move(parts)),
      ep_window_(layout::WindowId::kEp, p_.ep_window, nullptr, p_.ep_access) {}

Result<std::uint64_t> PciEp::drain_doorbell() { return drain(p_.irq, counters_); }

Result<ring::Window*> PciEp::attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) {
  const std::uint64_t base = p_.rc_window_bus_addr, avail = p_.rc_window.size();
  if (size == 0 || bus_addr < base || bus_addr - base > avail || size > avail - (bus_addr - base)) {
    return fail(Errc::kOutOfRange, "RC window is not inside the EP's outbound window");
  }
  rc_window_ = ring::Window(layout::WindowId::kRc, p_.rc_window.subspan(bus_addr - base, size),
                            &counters_, p_.rc_access);
  return &rc_window_;
}

Result<void> PciEp::raise_interrupt() {
  if (p_.doorbell && p_.doorbell->ring()) ++counters_.signals_sent;
  return {};
}

// ---- host ----

PciHost::PciHost(PciParts parts) noexcept
    : p_(std::move(parts)),
      ep_window_(layout::WindowId::kEp, p_.ep_window, &counters_, p_.ep_access),
      rc_window_(layout::WindowId::kRc, p_.rc_window, nullptr, p_.rc_access) {}

Result<std::uint64_t> PciHost::drain_interrupt() { return drain(p_.irq, counters_); }

Result<void> PciHost::ring_doorbell() {
  if (p_.doorbell && p_.doorbell->ring()) ++counters_.signals_sent;
  return {};
}

Result<bool> PciHost::wait_interrupt(std::chrono::milliseconds timeout) {
  if (!p_.irq.valid()) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(1)));
    return false;
  }
  auto ready = p_.irq.wait(timeout);
  if (!ready) return tl::unexpected(ready.error());
  if (!*ready) return false;
  auto got = drain_interrupt();
  if (!got) return tl::unexpected(got.error());
  return *got > 0;
}

}  // namespace vepf::platform
