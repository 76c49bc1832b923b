// describe(): a valid board config in words, for `--check-config`.
#include <fmt/format.h>

#include "vepf/config/board_config.hpp"

namespace vepf::config {

namespace {

std::string size_text(std::uint64_t v) {
  if (v >= (1u << 20) && v % (1u << 20) == 0) return fmt::format("{} MiB", v >> 20);
  if (v >= (1u << 10) && v % (1u << 10) == 0) return fmt::format("{} KiB", v >> 10);
  return fmt::format("{} bytes", v);
}

std::string place_text(const Place& p) {
  std::string s =
      p.is_phys ? fmt::format("phys {:#x}", p.phys) : fmt::format("BAR{} + {:#x}", p.bar, p.offset);
  if (p.memory.type) s += fmt::format(", {}", to_string(*p.memory.type));
  return s;
}

std::string side_text(const char* name, const PciSide& s, bool ep) {
  std::string out = fmt::format("  [{}] function {}\n", name, s.device.empty() ? "-" : s.device);
  out += fmt::format("    EP window: {}\n", place_text(s.ep_window));
  if (s.rc_window) {
    out += fmt::format("    RC window: {} (bus address {:#x})\n", place_text(*s.rc_window),
                       s.rc_window_bus_addr);
  } else if (!ep) {
    out += fmt::format("    RC window: allocated by vepf-host, DMA-mapped at IOVA {:#x}\n",
                       s.rc_window_bus_addr);
  }
  out += fmt::format("    doorbell: {}\n",
                     s.doorbell == DoorbellKind::kNone
                         ? std::string("none (both sides poll)")
                         : fmt::format("{}, MSI-X vector {}", to_string(s.doorbell), s.vector));
  return out;
}

}  // namespace

std::string describe(const BoardConfig& c) {
  std::string out = fmt::format("board {}: platform {}\n", c.name, to_string(c.platform));
  out += fmt::format("  link: EP window {}, RC window {}, ack timeout {} ms\n",
                     size_text(c.link.ep_window_size), size_text(c.link.rc_window_size),
                     c.link.ack_timeout_ms);
  if (c.platform == Platform::kLoopback) {
    out += fmt::format("  loopback socket {}\n", c.loopback.socket);
  } else {
    out += side_text("host", c.host, false);
    out += side_text("ep", c.ep, true);
  }
  if (c.soc.present) {
    const SocConfig& s = c.soc;
    out += fmt::format("  soc {}: controller {}, function {}, inbound alignment {}\n", s.name,
                       s.epc, to_string(s.function), size_text(s.bar_align));
    for (std::size_t b = 0; b < s.bars.size(); ++b) {
      const SocBar& bar = s.bars[b];
      if (bar.kind == BarKind::kProgrammable && !bar.only_64bit) continue;
      out += fmt::format("    BAR{}: {}{}{}\n", b, to_string(bar.kind),
                         bar.kind == BarKind::kFixed ? ", " + size_text(bar.fixed_size) : "",
                         bar.only_64bit ? ", 64-bit only" : "");
    }
    out +=
        fmt::format("    outbound: {}, mappings aligned to {}\n",
                    s.outbound_size ? size_text(s.outbound_size) : std::string("size not stated"),
                    size_text(s.outbound_align));
    std::string irqs;
    if (s.msi) irqs += "MSI ";
    if (s.msix) irqs += "MSI-X ";
    out +=
        fmt::format("    interrupts: {}; inbound writes {}; DMA engine: {}\n",
                    irqs.empty() ? std::string("none ") : irqs,
                    s.coherent ? "snoop the caches (coherent)" : "do not snoop the caches", s.dma);
  }
  out += fmt::format("  {} device(s):", c.devices.size());
  for (std::size_t i = 0; i < c.devices.size(); ++i) {
    out += fmt::format(" [{}] {}", i, to_string(c.devices[i].type));
  }
  out += "\n";
  return out;
}

}  // namespace vepf::config
