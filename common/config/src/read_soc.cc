// The board-config reader: [soc], a real EP controller's constraints (its Linux EPC driver's
// struct pci_epc_features, include/linux/pci-epc.h, and the SoC's reference manual), and the
// check of [link], [host] and [ep] against them.
#include <bit>
#include <cctype>

#include "reader.hpp"

namespace vepf::config::detail {

namespace {

bool power_of_2(std::int64_t v) {
  return v > 0 && std::has_single_bit(static_cast<std::uint64_t>(v));
}

std::string bytes(std::uint64_t v) {
  if (v >= (1u << 20) && v % (1u << 20) == 0) return std::to_string(v >> 20) + " MiB";
  if (v >= (1u << 10) && v % (1u << 10) == 0) return std::to_string(v >> 10) + " KiB";
  return std::to_string(v) + " bytes";
}

/// A name that is safe as one path component under /sys/class/pci_epc and configfs.
bool epc_name_valid(std::string_view s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  for (const char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '-' && c != '_' &&
        c != ':')
      return false;
  }
  return true;
}

}  // namespace

Expected<SocConfig> Reader::read_soc(const toml::table& root, Platform platform) const {
  SocConfig soc;
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "soc"));
  if (tbl == nullptr) return soc;
  if (platform == Platform::kLoopback) {
    return fail(
        "[soc] describes a real EP controller: it is for board.platform = \"vfio\" or "
        "\"devmem\"; remove it");
  }
  VEPF_CONFIG_CHECK(check_keys(*tbl, "soc",
                               {"name", "epc", "function", "bar_align", "bars", "outbound",
                                "interrupts", "coherent", "dma"}));
  soc.present = true;
  VEPF_CONFIG_TRY(name, required_string(*tbl, "soc", "name"));
  if (name.empty()) return fail("soc.name is empty: name the SoC, e.g. \"Rockchip RK3588\"");
  soc.name = std::move(name);
  VEPF_CONFIG_TRY(epc, required_string(*tbl, "soc", "epc"));
  if (!epc_name_valid(epc)) {
    return fail("soc.epc = " + in_quotes(epc) +
                " is not an EP controller name: write the name under /sys/class/pci_epc, e.g. "
                "\"a40000000.pcie-ep\" (letters, digits, '.', '-', '_', ':')");
  }
  soc.epc = std::move(epc);
  // The function follows from how vepf-ep maps its memory (ARCHITECTURE.md §1).
  const EpfKind expected = platform == Platform::kVfio ? EpfKind::kVntb : EpfKind::kTest;
  soc.function = expected;
  VEPF_CONFIG_TRY(fn, get_string(*tbl, "soc", "function"));
  if (fn) {
    VEPF_CONFIG_TRY(kind, choose("soc.function", *fn, kEpfKinds, "endpoint function"));
    if (kind != expected) {
      return fail(
          "soc.function = " + in_quotes(*fn) +
          " does not fit board.platform = " + in_quotes(to_string(platform)) + ": vepf-ep maps " +
          (platform == Platform::kVfio ? "the virtual NTB device of pci_epf_vntb through "
                                         "VFIO"
                                       : "the BAR memory of pci_epf_test through /dev/mem") +
          "; write function = " + in_quotes(to_string(expected)) + " or remove it");
    }
  }
  VEPF_CONFIG_TRY(align, get_integer(*tbl, "soc", "bar_align", 4096, 256, std::int64_t{1} << 30));
  if (!power_of_2(align)) {
    return fail("soc.bar_align = " + std::to_string(align) +
                " is not a power of 2: write the EPC driver's pci_epc_features.align, e.g. "
                "bar_align = 0x10000");
  }
  soc.bar_align = static_cast<std::uint64_t>(align);

  if (const toml::node* node = tbl->get("bars")) {
    const auto* list = node->as_array();
    const char* example =
        "bars = [{ bar = 4, kind = \"reserved\" }, { bar = 0, kind = \"fixed\", "
        "size = 0x100000 }]";
    if (list == nullptr) return fail(std::string("soc.bars must be a list: write ") + example);
    std::array<bool, 6> seen{};
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string at = "soc.bars[" + std::to_string(i) + "]";
      const auto* t = list->get(i)->as_table();
      if (t == nullptr) return fail(at + " must be an inline table: write " + example);
      VEPF_CONFIG_CHECK(check_keys(*t, at, {"bar", "kind", "size", "only_64bit"}));
      if (!t->contains("bar")) return fail(at + " names no BAR: add bar = 0..5");
      VEPF_CONFIG_TRY(b, get_integer(*t, at, "bar", 0, 0, 5));
      if (seen[b]) return fail(at + " names BAR " + std::to_string(b) + " again: list each once");
      seen[b] = true;
      SocBar& bar = soc.bars[b];
      VEPF_CONFIG_TRY(kind_name, required_string(*t, at, "kind"));
      VEPF_CONFIG_TRY(kind, choose(at + ".kind", kind_name, kBarKinds, "BAR kind"));
      bar.kind = kind;
      if (kind == BarKind::kFixed) {
        if (!t->contains("size"))
          return fail(at + " is fixed but has no size: add size = the BAR's bytes, e.g. 0x100000");
        VEPF_CONFIG_TRY(size, get_integer(*t, at, "size", 0, 16, std::int64_t{1} << 40));
        if (!power_of_2(size))
          return fail(at + ".size = " + std::to_string(size) + " is not a power of 2: BARs are");
        bar.fixed_size = static_cast<std::uint64_t>(size);
      } else if (t->contains("size")) {
        return fail(at + ".size is for kind = \"fixed\": remove it");
      }
      VEPF_CONFIG_TRY(only64, get_bool(*t, at, "only_64bit", false));
      if (only64 && b == 5)
        return fail(at + ": BAR 5 cannot be 64-bit (it has no next BAR): check only_64bit");
      bar.only_64bit = only64;
    }
  }

  if (const toml::node* node = tbl->get("outbound")) {
    const auto* t = node->as_table();
    const char* example = "outbound = { size = 0x40000000, align = 0x10000 }";
    if (t == nullptr)
      return fail(std::string("soc.outbound must be an inline table: write ") + example);
    VEPF_CONFIG_CHECK(check_keys(*t, "soc.outbound", {"size", "align"}));
    VEPF_CONFIG_TRY(size, get_integer(*t, "soc.outbound", "size", 0, 0, std::int64_t{1} << 48));
    if (size % kPageSize != 0)
      return fail("soc.outbound.size = " + std::to_string(size) + " is not a multiple of 4096");
    soc.outbound_size = static_cast<std::uint64_t>(size);
    VEPF_CONFIG_TRY(oa,
                    get_integer(*t, "soc.outbound", "align", 4096, 4096, std::int64_t{1} << 30));
    if (!power_of_2(oa)) {
      return fail("soc.outbound.align = " + std::to_string(oa) +
                  " is not a power of 2: write the iATU's region alignment, e.g. 0x10000");
    }
    soc.outbound_align = static_cast<std::uint64_t>(oa);
  }

  if (const toml::node* node = tbl->get("interrupts")) {
    const auto* list = node->as_array();
    const char* fix = ": write e.g. interrupts = [\"msi\", \"msix\"]";
    if (list == nullptr) return fail(std::string("soc.interrupts must be a list") + fix);
    for (const toml::node& e : *list) {
      const auto v = e.value<std::string>();
      if (v && *v == "msi") {
        soc.msi = true;
      } else if (v && *v == "msix") {
        soc.msix = true;
      } else if (!v || *v != "intx") {
        return fail(std::string("soc.interrupts may hold \"msi\", \"msix\" and \"intx\"") + fix);
      }
    }
  }
  VEPF_CONFIG_TRY(coherent, get_bool(*tbl, "soc", "coherent", false));
  soc.coherent = coherent;
  VEPF_CONFIG_TRY(dma, get_string(*tbl, "soc", "dma"));
  soc.dma = dma ? *dma : "none";
  return soc;
}

Expected<void> Reader::check_soc(const BoardConfig& c) const {
  const SocConfig& soc = c.soc;
  if (!soc.present) return {};
  const std::string who = "soc (" + soc.name + ")";
  for (const auto* side : {&c.host, &c.ep}) {
    const char* s = side == &c.host ? "host" : "ep";
    if (side->doorbell == DoorbellKind::kIvshmem) {
      return fail(std::string(s) +
                  ".doorbell = \"ivshmem\" is QEMU's ivshmem-doorbell device, which " + who +
                  " does not have: write doorbell = \"none\" (both sides poll)");
    }
  }
  // vepf-host reaches the EP window through a BAR of the function: one the controller gives
  // functions, large enough.
  const Place& w = c.host.ep_window;
  const SocBar& bar = soc.bars[w.bar];
  const std::string at = "host.ep_window.bar = " + std::to_string(w.bar);
  if (bar.kind == BarKind::kReserved) {
    std::string free;
    for (std::size_t b = 0; b < soc.bars.size() && free.empty(); ++b) {
      const bool upper = b > 0 && soc.bars[b - 1].only_64bit;
      if (soc.bars[b].kind != BarKind::kReserved && !upper) free = std::to_string(b);
    }
    return fail(at + ": " + who + " reserves BAR " + std::to_string(w.bar) +
                " for the controller (soc.bars): use another BAR" +
                (free.empty() ? std::string() : ", e.g. bar = " + free));
  }
  if (w.bar > 0 && soc.bars[w.bar - 1].only_64bit) {
    return fail(at + " is the upper half of 64-bit BAR " + std::to_string(w.bar - 1) + " on " +
                who + ": use bar = " + std::to_string(w.bar - 1));
  }
  const std::uint64_t need = w.offset + c.link.ep_window_size;
  if (bar.kind == BarKind::kFixed && need > bar.fixed_size) {
    return fail(at + " needs " + bytes(need) +
                " (host.ep_window.offset + link.ep_window_size) "
                "but the BAR has a fixed size of " +
                bytes(bar.fixed_size) + " on " + who + ": make link.ep_window_size at most " +
                bytes(bar.fixed_size - std::min(w.offset, bar.fixed_size)));
  }
  // With /dev/mem, vepf-ep maps the BAR's memory itself: it starts at an inbound-aligned address.
  if (c.platform == Platform::kDevmem && c.ep.ep_window.is_phys) {
    const std::uint64_t base = c.ep.ep_window.phys - std::min(c.ep.ep_window.phys, w.offset);
    if (base % soc.bar_align != 0) {
      return fail("ep.ep_window.phys = " + fmt_hex(c.ep.ep_window.phys) +
                  ": the BAR's memory would start at " + fmt_hex(base) +
                  " (minus host.ep_window.offset), not a multiple of soc.bar_align = " +
                  fmt_hex(soc.bar_align) + " (the controller's inbound alignment): move it");
    }
  }
  // The EP reaches the RC window through its outbound window.
  if (soc.outbound_size != 0 && c.link.rc_window_size > soc.outbound_size) {
    return fail("link.rc_window_size = " + bytes(c.link.rc_window_size) + " is more than " + who +
                " maps outbound (soc.outbound.size = " + bytes(soc.outbound_size) +
                "): make it at most that");
  }
  for (const auto* side : {&c.host, &c.ep}) {
    const char* s = side == &c.host ? "host" : "ep";
    if (side->rc_window_bus_addr % soc.outbound_align != 0) {
      return fail(std::string(s) + ".rc_window_bus_addr = " + fmt_hex(side->rc_window_bus_addr) +
                  " is not a multiple of soc.outbound.align = " + fmt_hex(soc.outbound_align) +
                  ": the outbound window maps in such units; align the IOVA");
    }
  }
  if (c.ep.rc_window && c.ep.rc_window->is_phys && c.ep.rc_window->phys % soc.outbound_align != 0) {
    return fail("ep.rc_window.phys = " + fmt_hex(c.ep.rc_window->phys) +
                " is not a multiple of soc.outbound.align = " + fmt_hex(soc.outbound_align) +
                ": start the outbound window at an aligned address of the controller's space");
  }
  // What the RC writes into the EP window reaches the EP's RAM past its caches unless the
  // controller snoops them.
  if (!soc.coherent && c.ep.ep_window.memory.type == MemoryType::kCached) {
    return fail("ep.ep_window.memory = \"cached\", but inbound writes on " + who +
                " do not snoop the CPU's caches (soc.coherent = false): use memory = "
                "\"cached-noncoherent\" or \"device\"");
  }
  return {};
}

}  // namespace vepf::config::detail
