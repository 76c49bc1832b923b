#pragma once
// The board config's window memory (`memory`, `widths`) as the accessor's MemoryAccess.

#include "vepf/config/board_config.hpp"
#include "vepf/hw/io_copy.hpp"
#include "vepf/ring/access.hpp"

namespace vepf::platform {

/// `m` with `fallback` where the config names no type: the platform's safe default
/// (LAYOUT.md §7: cached for the loopback memfds and vepf-host's own DMA memory, device for a
/// BAR through VFIO and a range through /dev/mem).
inline ring::MemoryAccess memory_access(const config::WindowMemory& m,
                                        ring::MemoryType fallback) noexcept {
  ring::MemoryAccess a;
  a.widths = hw::AccessWidths::from_bits(m.widths);
  if (!m.type) {
    a.type = fallback;
    return a;
  }
  switch (*m.type) {
    case config::MemoryType::kCached:
      a.type = ring::MemoryType::kCached;
      break;
    case config::MemoryType::kDevice:
      a.type = ring::MemoryType::kDevice;
      break;
    case config::MemoryType::kWriteCombining:
      a.type = ring::MemoryType::kWriteCombining;
      break;
    case config::MemoryType::kCachedNoncoherent:
      a.type = ring::MemoryType::kCachedNoncoherent;
      break;
  }
  return a;
}

}  // namespace vepf::platform
