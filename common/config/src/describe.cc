// describe(): a valid board config in words, for `--check-config`.
#include <fmt/format.h>

#include <bit>

#include "vepf/config/board_config.hpp"
#include "vepf/pci_address.hpp"

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

tl::expected<std::string, ConfigError> configfs_env(const BoardConfig& c) {
  auto fail = [&c](const std::string& what) {
    return tl::unexpected(ConfigError{"board " + c.name + ": " + what});
  };
  const SocConfig& s = c.soc;
  if (!s.present) return fail("has no [soc]: ep-configfs.sh needs the EP controller (soc.epc)");
  const auto ids = PciMatch::parse(c.host.device);
  if (!ids || ids->address) {
    return fail("host.device = \"" + c.host.device +
                "\" is not vendor:device: ep-configfs.sh gives the function these IDs; write "
                "e.g. host.device = \"1d87:3588\"");
  }
  std::string out;
  out += fmt::format("VEPF_EPC={}\nVEPF_EPF={}\n", s.epc, to_string(s.function));
  out += fmt::format("VEPF_VENDOR_ID={:#06x}\nVEPF_DEVICE_ID={:#06x}\n", ids->vendor, ids->device);
  out += fmt::format("VEPF_MSI={}\nVEPF_MSIX={}\n", s.msi ? 1 : 0, s.msix ? 1 : 0);
  const std::uint8_t bar = c.host.ep_window.bar;
  const SocBar& b = s.bars[bar];
  std::uint64_t size = b.kind == BarKind::kFixed
                           ? b.fixed_size
                           : std::bit_ceil(c.host.ep_window.offset + c.link.ep_window_size);
  if (b.kind != BarKind::kFixed && size < s.bar_align) size = s.bar_align;
  out += fmt::format("VEPF_BAR={}\nVEPF_BAR_SIZE={:#x}\n", bar, size);
  if (s.function == EpfKind::kVntb) {
    // The control (config + scratchpads) and doorbell registers take two more BARs.
    std::vector<int> free;
    for (int i = 0; i < 6; ++i) {
      const bool upper = i > 0 && s.bars[i - 1].only_64bit;
      const bool window = i == bar || (i == bar + 1 && b.only_64bit);
      if (!window && !upper && s.bars[i].kind != BarKind::kReserved) free.push_back(i);
    }
    if (free.size() < 2) {
      return fail(
          "pci_epf_vntb needs two BARs besides host.ep_window.bar for its control and "
          "doorbell registers, and " +
          s.name + " leaves " + std::to_string(free.size()) +
          ": move the EP window to another BAR");
    }
    const auto vntb = PciMatch::parse(c.ep.device);
    if (!vntb || vntb->address) {
      return fail("ep.device = \"" + c.ep.device +
                  "\" is not vendor:device: with pci_epf_vntb it names the virtual device "
                  "(vntb_vid:vntb_pid), e.g. ep.device = \"1912:0030\"");
    }
    out += fmt::format("VEPF_CTRL_BAR={}\nVEPF_DB_BAR={}\n", free[0], free[1]);
    out +=
        fmt::format("VEPF_VNTB_VID={:#06x}\nVEPF_VNTB_PID={:#06x}\n", vntb->vendor, vntb->device);
  }
  return out;
}

}  // namespace vepf::config
