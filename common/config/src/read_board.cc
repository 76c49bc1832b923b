// The board-config reader: [board], [link], [loopback], [gpio], the PCI platforms' [host]/[ep]
// tables, and the whole BoardConfig.
#include <algorithm>
#include <cctype>
#include <limits>

#include "reader.hpp"
#include "vepf/pci_address.hpp"

namespace vepf::config::detail {

Expected<Reader::BoardSection> Reader::read_board_section(const toml::table& root) const {
  VEPF_CONFIG_TRY(board, get_table(root, "", "board"));
  if (board == nullptr) {
    return fail("missing required table [board]: add name = \"...\" and platform = \"loopback\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*board, "board", {"name", "platform"}));
  BoardSection section;
  VEPF_CONFIG_TRY(name, required_string(*board, "board", "name"));
  if (name.empty()) return fail("board.name is empty: write a name such as \"loopback\"");
  section.name = std::move(name);
  VEPF_CONFIG_TRY(platform_name, required_string(*board, "board", "platform"));
  VEPF_CONFIG_TRY(platform, choose("board.platform", platform_name, kPlatforms, "platform"));
  section.platform = platform;
  return section;
}

Expected<std::uint64_t> Reader::read_window_size(const toml::table& link, std::string_view key,
                                                 std::uint64_t fallback) const {
  VEPF_CONFIG_TRY(size, get_integer(link, "link", key, static_cast<std::int64_t>(fallback),
                                    kMinWindow, kMaxWindow));
  if (size % kWindowAlign != 0) {
    return fail(child("link", key) + " = " + std::to_string(size) +
                " is not a multiple of 4096: use a multiple of 4096 in " +
                std::to_string(kMinWindow) + ".." + std::to_string(kMaxWindow));
  }
  return static_cast<std::uint64_t>(size);
}

Expected<LinkConfig> Reader::read_link(const toml::table& root) const {
  LinkConfig link;
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "link"));
  if (tbl == nullptr) return link;
  VEPF_CONFIG_CHECK(check_keys(
      *tbl, "link",
      {"ack_timeout_ms", "ep_window_size", "rc_window_size", "spin_us", "max_chain_segments"}));
  VEPF_CONFIG_TRY(ack, get_integer(*tbl, "link", "ack_timeout_ms", link.ack_timeout_ms, 1, 60000));
  link.ack_timeout_ms = static_cast<std::uint32_t>(ack);
  VEPF_CONFIG_TRY(ep, read_window_size(*tbl, "ep_window_size", link.ep_window_size));
  link.ep_window_size = ep;
  VEPF_CONFIG_TRY(rc, read_window_size(*tbl, "rc_window_size", link.rc_window_size));
  link.rc_window_size = rc;
  VEPF_CONFIG_TRY(spin,
                  get_integer(*tbl, "link", "spin_us", link.spin_us, 0, LinkConfig::kMaxSpinUs));
  link.spin_us = static_cast<std::uint32_t>(spin);
  VEPF_CONFIG_TRY(segs, get_integer(*tbl, "link", "max_chain_segments", link.max_chain_segments, 1,
                                    LinkConfig::kMaxChainSegments));
  link.max_chain_segments = static_cast<std::uint32_t>(segs);
  return link;
}

/// [loopback] is required with board.platform = "loopback".
Expected<LoopbackConfig> Reader::read_loopback(const toml::table& root) const {
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "loopback"));
  if (tbl == nullptr) {
    return fail(
        "missing required table [loopback] (board.platform = \"loopback\"): add it with "
        "socket = \"/run/vepf/loopback.sock\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*tbl, "loopback", {"socket", "memory", "widths"}));
  VEPF_CONFIG_TRY(socket, required_string(*tbl, "loopback", "socket"));
  VEPF_CONFIG_CHECK(check_socket_path("loopback.socket", socket));
  VEPF_CONFIG_TRY(memory, read_window_memory(*tbl, "loopback", MemorySource::kLoopback));
  return LoopbackConfig{std::move(socket), memory};
}

/// `memory` and `widths` of a window (LAYOUT.md §7), checked against what `from` can map.
Expected<WindowMemory> Reader::read_window_memory(const toml::table& t, const std::string& path,
                                                  MemorySource from) const {
  WindowMemory out;
  VEPF_CONFIG_TRY(name, get_string(t, path, "memory"));
  if (name) {
    VEPF_CONFIG_TRY(type, choose(path + ".memory", *name, kMemoryTypes, "memory type"));
    const bool cached = type == MemoryType::kCached || type == MemoryType::kCachedNoncoherent;
    if (from == MemorySource::kVfioBar && cached) {
      return fail(path + ".memory = " + in_quotes(*name) +
                  ": VFIO maps a BAR uncached (vfio-pci's mmap uses pgprot_noncached): use memory "
                  "= \"device\", or "
                  "\"wc\" for a prefetchable BAR");
    }
    if (from == MemorySource::kDevmem && type == MemoryType::kWriteCombining) {
      return fail(
          path +
          ".memory = \"wc\": /dev/mem maps write-combining only for RAM on arm64 (O_SYNC) and "
          "never "
          "on x86: use memory = \"device\" (or \"cached\" for reserved RAM in the linear map)");
    }
    out.type = type;
  }
  const toml::node* node = t.get("widths");
  if (node == nullptr) return out;
  const std::string wpath = path + ".widths";
  const auto* list = node->as_array();
  const char* example = " (bytes), e.g. widths = [4] for a BAR that takes 32-bit accesses only";
  if (list == nullptr || list->empty())
    return fail(wpath + " must be a list of access widths" + std::string(example));
  if (!out.type || (*out.type != MemoryType::kDevice && *out.type != MemoryType::kWriteCombining)) {
    return fail(
        wpath +
        " is for memory = \"device\" or \"wc\" (cached memory takes every width): set memory "
        "or remove widths");
  }
  std::uint8_t bits = 0;
  for (const toml::node& e : *list) {
    const auto w = e.value<std::int64_t>();
    if (!w || (*w != 1 && *w != 2 && *w != 4 && *w != 8)) {
      return fail(wpath + " may only hold 1, 2, 4 and 8" + std::string(example));
    }
    bits = static_cast<std::uint8_t>(bits | *w);
  }
  if ((bits & 4) == 0) {
    return fail(
        wpath +
        " lacks 4: the layout's 32-bit fields need 4-byte accesses; add it, e.g. widths = [4]");
  }
  out.widths = bits;
  return out;
}

Expected<std::optional<Place>> Reader::read_place(const toml::table& parent,
                                                  const std::string& where, std::string_view key,
                                                  bool phys) const {
  const std::string path = child(where, key);
  const std::string example = phys ? " = { phys = 0xfe000000 }" : " = { bar = 2, offset = 0 }";
  const toml::node* node = parent.get(key);
  if (node == nullptr) return std::optional<Place>{};
  // Only the windows take a memory type; the doorbell registers and the peer-ID page are
  // accessed as single aligned 32-bit words whatever their memory is.
  const bool window = key == "ep_window" || key == "rc_window";
  const auto* t = node->as_table();
  if (t == nullptr)
    return fail(path + " must be an inline table: write " + std::string(key) + example);
  Place p;
  p.is_phys = phys;
  if (phys) {
    if (t->contains("bar") || t->contains("offset")) {
      return fail(path +
                  " names a BAR, but board.platform = \"devmem\" maps physical addresses: write " +
                  std::string(key) + example);
    }
    VEPF_CONFIG_CHECK(window ? check_keys(*t, path, {"phys", "memory", "widths"})
                             : check_keys(*t, path, {"phys"}));
    if (!t->contains("phys"))
      return fail(path + " has no phys address: write " + std::string(key) + example);
    VEPF_CONFIG_TRY(a, get_integer(*t, path, "phys", 0, 0, kMaxAddress));
    p.phys = static_cast<std::uint64_t>(a);
  } else {
    if (t->contains("phys")) {
      return fail(
          path +
          " gives a physical address, which only board.platform = \"devmem\" maps for vepf-ep: "
          "name a BAR instead, e.g. " +
          std::string(key) + example);
    }
    VEPF_CONFIG_CHECK(window ? check_keys(*t, path, {"bar", "offset", "memory", "widths"})
                             : check_keys(*t, path, {"bar", "offset"}));
    if (!t->contains("bar"))
      return fail(path + " names no BAR: write " + std::string(key) + example);
    VEPF_CONFIG_TRY(bar, get_integer(*t, path, "bar", 0, 0, 5));
    VEPF_CONFIG_TRY(off, get_integer(*t, path, "offset", 0, 0, kMaxAddress));
    p.bar = static_cast<std::uint8_t>(bar);
    p.offset = static_cast<std::uint64_t>(off);
  }
  const std::uint64_t at = phys ? p.phys : p.offset;
  if (at % kPageSize != 0) {
    return fail(path + (phys ? ".phys" : ".offset") + " = " + fmt_hex(at) +
                " is not page-aligned: use a multiple of 4096");
  }
  if (window) {
    VEPF_CONFIG_TRY(memory, read_window_memory(
                                *t, path, phys ? MemorySource::kDevmem : MemorySource::kVfioBar));
    p.memory = memory;
  }
  return std::optional<Place>{p};
}

Expected<GpioConfig> Reader::read_gpio(const toml::table& root) const {
  GpioConfig out;
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "gpio"));
  if (tbl == nullptr) return out;
  VEPF_CONFIG_CHECK(check_keys(*tbl, "gpio", {"ready", "reset"}));
  for (const char* key : {"ready", "reset"}) {
    const std::string path = child("gpio", key);
    const toml::node* node = tbl->get(key);
    if (node == nullptr) continue;
    const auto* t = node->as_table();
    if (t == nullptr)
      return fail(path + " must be an inline table: write " + key +
                  " = { chip = \"gpiochip0\", line = 5 }");
    VEPF_CONFIG_CHECK(check_keys(*t, path, {"chip", "line", "active_low"}));
    GpioLine line;
    VEPF_CONFIG_TRY(chip, get_string(*t, path, "chip"));
    if (!chip || chip->empty()) {
      return fail(
          path +
          ".chip is missing: name the GPIO chip, e.g. chip = \"gpiochip0\" (see gpiodetect)");
    }
    line.chip = *chip;
    if (!t->contains("line"))
      return fail(
          path +
          ".line is missing: give the line's offset on the chip, e.g. line = 5 (see gpioinfo)");
    VEPF_CONFIG_TRY(offset, get_integer(*t, path, "line", 0, 0, 65535));
    line.line = static_cast<std::uint32_t>(offset);
    VEPF_CONFIG_TRY(low, get_bool(*t, path, "active_low", false));
    line.active_low = low;
    (std::string_view(key) == "ready" ? out.ready : out.reset) = line;
  }
  if (out.ready && out.reset && out.ready->chip == out.reset->chip &&
      out.ready->line == out.reset->line) {
    return fail("gpio.ready and gpio.reset name the same line: give each its own");
  }
  return out;
}

/// [host] / [ep] of a PCI platform. `platform` is the board's; vepf-ep's side uses phys places
/// with "devmem". Checks that the places of one BAR (or of physical memory) do not overlap.
Expected<PciSide> Reader::read_pci_side(const toml::table& root, std::string_view side,
                                        Platform platform, const LinkConfig& link) const {
  const std::string s(side);
  const bool ep = side == "ep";
  const bool phys = ep && platform == Platform::kDevmem;
  const std::string example = phys ? "{ phys = 0xfe400000 }" : "{ bar = 2, offset = 0x400000 }";
  VEPF_CONFIG_TRY(tbl, get_table(root, "", side));
  if (tbl == nullptr) {
    return fail("missing table [" + s + "] (board.platform = " + in_quotes(to_string(platform)) +
                "): add it with " + (phys ? "" : "device = \"1af4:1110\", ") +
                "ep_window = " + example + (ep ? ", rc_window = ..." : ""));
  }
  VEPF_CONFIG_CHECK(check_keys(*tbl, s,
                               {"device", "ep_window", "rc_window", "rc_window_bus_addr",
                                "doorbell", "doorbell_regs", "peer_ids", "vector"}));
  PciSide out;
  VEPF_CONFIG_TRY(device, get_string(*tbl, s, "device"));
  if (phys && device) {
    // devmem: the function whose BARs hold the ranges, to be enabled (sysfs) before mapping.
    if (!PciAddress::parse(*device)) {
      return fail(s + ".device = " + in_quotes(*device) +
                  " is not a PCI address: with board.platform = \"devmem\" name the function whose "
                  "BARs hold "
                  "the ranges by BDF, e.g. \"0000:00:05.0\", or remove it");
    }
    out.device = *device;
  }
  if (!phys) {
    if (!device) {
      return fail(
          s +
          ".device is missing: name the PCI function, as vendor:device (\"1af4:1110\") or BDF "
          "(\"0000:01:00.0\")");
    }
    const std::string& d = *device;
    if (!PciMatch::parse(d)) {
      return fail(s + ".device = " + in_quotes(d) +
                  " is neither vendor:device nor a PCI address: write e.g. \"1af4:1110\" or "
                  "\"0000:01:00.0\"");
    }
    out.device = d;
  }
  VEPF_CONFIG_TRY(epw, read_place(*tbl, s, "ep_window", phys));
  if (!epw) {
    return fail(s +
                ".ep_window is missing: name where the EP window is, e.g. ep_window = " + example);
  }
  out.ep_window = *epw;
  VEPF_CONFIG_TRY(rcw, read_place(*tbl, s, "rc_window", phys));
  if (ep && !rcw) {
    return fail(s +
                ".rc_window is missing: name the outbound window through which the EP reaches the "
                "RC window, "
                "e.g. rc_window = " +
                example);
  }
  out.rc_window = rcw;
  VEPF_CONFIG_TRY(bus, get_integer(*tbl, s, "rc_window_bus_addr", 0, 0, kMaxAddress));
  if (bus % kPageSize != 0) {
    return fail(s + ".rc_window_bus_addr = " + fmt_hex(static_cast<std::uint64_t>(bus)) +
                " is not page-aligned: use a multiple of 4096");
  }
  out.rc_window_bus_addr = static_cast<std::uint64_t>(bus);
  VEPF_CONFIG_TRY(kind_name, get_string(*tbl, s, "doorbell"));
  if (kind_name) {
    VEPF_CONFIG_TRY(kind, choose(s + ".doorbell", *kind_name, kDoorbellKinds, "doorbell kind"));
    out.doorbell = kind;
  }
  VEPF_CONFIG_TRY(regs, read_place(*tbl, s, "doorbell_regs", phys));
  VEPF_CONFIG_TRY(ids, read_place(*tbl, s, "peer_ids", phys));
  if (out.doorbell == DoorbellKind::kIvshmem) {
    if (!regs)
      return fail(
          s + ".doorbell_regs is missing: name the ivshmem register BAR, e.g. doorbell_regs = " +
          std::string(phys ? "{ phys = 0xfebf1000 }" : "{ bar = 0 }"));
    if (!ids)
      return fail(s +
                  ".peer_ids is missing: name a page of the shared memory for the peer IDs, e.g. "
                  "peer_ids = " +
                  std::string(phys ? "{ phys = 0xfe000000 }" : "{ bar = 2, offset = 0 }"));
    out.doorbell_regs = *regs;
    out.peer_ids = *ids;
  } else if (regs || ids) {
    return fail(s +
                ".doorbell_regs/peer_ids are for doorbell = \"ivshmem\": set that or remove them");
  }
  VEPF_CONFIG_TRY(vec, get_integer(*tbl, s, "vector", 0, 0, 2047));
  out.vector = static_cast<std::uint32_t>(vec);
  // Places of one BAR (or of physical memory) must not overlap: each side writes its own.
  struct Span {
    const char* key;
    const Place* p;
    std::uint64_t size;
  };
  std::vector<Span> spans{{"ep_window", &out.ep_window, link.ep_window_size}};
  if (out.rc_window) spans.push_back({"rc_window", &*out.rc_window, link.rc_window_size});
  if (out.doorbell == DoorbellKind::kIvshmem)
    spans.push_back({"peer_ids", &out.peer_ids, kPageSize});
  for (std::size_t i = 0; i < spans.size(); ++i) {
    for (std::size_t j = i + 1; j < spans.size(); ++j) {
      const Place& a = *spans[i].p;
      const Place& b = *spans[j].p;
      if (!a.is_phys && a.bar != b.bar) continue;
      const std::uint64_t a0 = a.is_phys ? a.phys : a.offset, b0 = b.is_phys ? b.phys : b.offset;
      if (a0 < b0 + spans[j].size && b0 < a0 + spans[i].size) {
        return fail(s + "." + spans[i].key + " and " + s + "." + spans[j].key +
                    " overlap (sizes from [link] and one page for peer_ids): move one of them");
      }
    }
  }
  return out;
}

Expected<ControlConfig> Reader::read_control(const toml::table& root) const {
  ControlConfig control;
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "control"));
  if (tbl == nullptr) return control;
  VEPF_CONFIG_CHECK(check_keys(*tbl, "control", {"group", "max_clients", "allowed_dirs"}));
  VEPF_CONFIG_TRY(group, get_string(*tbl, "control", "group"));
  if (group) {
    const bool ok =
        !group->empty() && group->size() <= 32 &&
        std::all_of(group->begin(), group->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!ok)
      return fail(
          "control.group must be a group name of /etc/group such as \"vepf\" (1..32 of a-z 0-9 _ - "
          ".)");
    control.group = std::move(*group);
  }
  VEPF_CONFIG_TRY(clients, get_integer(*tbl, "control", "max_clients", 16, 1, 1024));
  control.max_clients = static_cast<std::uint32_t>(clients);
  if (const toml::node* node = tbl->get("allowed_dirs")) {
    const toml::array* list = node->as_array();
    const std::string fix =
        "write e.g. allowed_dirs = [\"/run/vepf\", \"/var/lib/vepf\"] (1..32 absolute directories)";
    if (list == nullptr || list->empty() || list->size() > 32)
      return fail("control.allowed_dirs must be a list: " + fix);
    control.allowed_dirs.clear();
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto* dir = list->get(i)->as_string();
      const std::string at = "control.allowed_dirs[" + std::to_string(i) + "]";
      if (dir == nullptr) return fail(at + " must be a string: " + fix);
      const std::string& d = dir->get();
      if (d.empty() || d.front() != '/' || d.size() > 4095 || d.find('\0') != std::string::npos) {
        return fail(at + " = \"" + d + "\" is not an absolute path: " + fix);
      }
      control.allowed_dirs.push_back(d);
    }
  }
  return control;
}

/// [affinity]: ep = [...] and host = [...], lists of CPU numbers.
Expected<AffinityConfig> Reader::read_affinity(const toml::table& root) const {
  AffinityConfig affinity;
  VEPF_CONFIG_TRY(tbl, get_table(root, "", "affinity"));
  if (tbl == nullptr) return affinity;
  VEPF_CONFIG_CHECK(check_keys(*tbl, "affinity", {"ep", "host"}));
  for (const char* side : {"ep", "host"}) {
    const toml::node* node = tbl->get(side);
    if (node == nullptr) continue;
    const std::string path = child("affinity", side);
    const std::string fix = "write e.g. " + std::string(side) + " = [0] or " + side +
                            " = [2, 3] (CPU numbers 0.." + std::to_string(AffinityConfig::kMaxCpu) +
                            ", as in /sys/devices/system/cpu), or remove it";
    const toml::array* list = node->as_array();
    if (list == nullptr || list->empty())
      return fail(path + " must be a non-empty list of CPUs: " + fix);
    std::vector<std::uint32_t>& cpus = std::string_view(side) == "ep" ? affinity.ep : affinity.host;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      const auto cpu = list->get(i)->value_exact<std::int64_t>();
      if (!cpu) return fail(at + " must be an integer: " + fix);
      if (*cpu < 0 || *cpu > AffinityConfig::kMaxCpu) {
        return fail(at + " = " + std::to_string(*cpu) + " is out of range: " + fix);
      }
      const auto n = static_cast<std::uint32_t>(*cpu);
      if (std::find(cpus.begin(), cpus.end(), n) != cpus.end()) {
        return fail(at + " = " + std::to_string(n) + " repeats a CPU: name each CPU once");
      }
      cpus.push_back(n);
    }
  }
  return affinity;
}

Expected<BoardConfig> Reader::board_config(const toml::table& root) const {
  VEPF_CONFIG_CHECK(check_keys(
      root, "",
      {"board", "link", "loopback", "host", "ep", "soc", "gpio", "control", "affinity", "device"}));
  BoardConfig config;
  VEPF_CONFIG_TRY(section, read_board_section(root));
  config.name = std::move(section.name);
  config.platform = section.platform;
  VEPF_CONFIG_TRY(link_config, read_link(root));
  config.link = link_config;
  if (config.platform == Platform::kLoopback) {
    for (const char* t : {"host", "ep"}) {
      if (root.contains(t)) {
        return fail(
            std::string("[") + t +
            "] is for PCI platforms: remove it, or set board.platform = \"vfio\" or \"devmem\"");
      }
    }
    VEPF_CONFIG_TRY(loopback_config, read_loopback(root));
    config.loopback = std::move(loopback_config);
  } else {
    if (root.contains("loopback")) {
      return fail("[loopback] is for board.platform = \"loopback\": remove it");
    }
    VEPF_CONFIG_TRY(host, read_pci_side(root, "host", config.platform, config.link));
    config.host = std::move(host);
    VEPF_CONFIG_TRY(ep, read_pci_side(root, "ep", config.platform, config.link));
    config.ep = std::move(ep);
  }
  VEPF_CONFIG_TRY(soc, read_soc(root, config.platform));
  config.soc = std::move(soc);
  VEPF_CONFIG_CHECK(check_soc(config));
  VEPF_CONFIG_TRY(gpio, read_gpio(root));
  config.gpio = std::move(gpio);
  VEPF_CONFIG_TRY(control, read_control(root));
  config.control = std::move(control);
  VEPF_CONFIG_TRY(affinity, read_affinity(root));
  config.affinity = std::move(affinity);
  VEPF_CONFIG_TRY(device_configs, read_devices(root));
  config.devices = std::move(device_configs);
  return config;
}

}  // namespace vepf::config::detail
