#include "vepf/config/board_config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <utility>

// toml++ is built by Debian as a shared library with exceptions on (TOML_EXCEPTIONS=1): parse()
// throws toml::parse_error. Every entry point below catches it; nothing escapes this file.
#include <toml++/toml.h>

#include "vepf/vfio/pci.hpp"

// Unwraps an Expected into `var`, or returns its error from the enclosing function.
// `var` names a new variable, so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define VEPF_CONFIG_TRY(var, expr)                                   \
  auto var##_or = (expr);                                            \
  if (!var##_or) return tl::unexpected(std::move(var##_or).error()); \
  auto var = std::move(*var##_or)
// NOLINTEND(bugprone-macro-parentheses)

// Returns the error of an Expected<void> from the enclosing function.
#define VEPF_CONFIG_CHECK(expr)                                        \
  do {                                                                 \
    auto check_or = (expr);                                            \
    if (!check_or) return tl::unexpected(std::move(check_or).error()); \
  } while (false)

namespace vepf::config {
namespace {

template <class T>
using Expected = tl::expected<T, ConfigError>;
using Names = std::initializer_list<std::string_view>;

constexpr std::size_t kMaxIfnameLen = 15;       // IFNAMSIZ - 1 (the NUL)
constexpr std::size_t kMaxSocketPathLen = 107;  // sizeof(sockaddr_un::sun_path) - 1 (the NUL)
constexpr std::int64_t kWindowAlign = 4096;
constexpr std::int64_t kMinWindow = std::int64_t{64} << 10;
constexpr std::int64_t kMaxWindow = std::int64_t{1} << 30;
constexpr std::size_t kMaxFileSize = std::size_t{1} << 20;  // a board file is a few KiB

constexpr std::array kPlatforms{Platform::kLoopback, Platform::kVfio, Platform::kDevmem};
constexpr std::array kDoorbellKinds{DoorbellKind::kNone, DoorbellKind::kIvshmem};
constexpr std::int64_t kPageSize = 4096;
constexpr std::int64_t kMaxAddress = std::numeric_limits<std::int64_t>::max();
constexpr std::array kDeviceTypes{DeviceType::kNet, DeviceType::kRpmsg, DeviceType::kBlock, DeviceType::kConsole};
constexpr std::array kConsoleBackends{ConsoleBackend::kPty, ConsoleBackend::kProgram, ConsoleBackend::kSocket};
constexpr std::size_t kMaxConsolePorts = 32;    // vepf::layout::kConsoleMaxPorts
constexpr std::size_t kMaxConsoleNameLen = 63;  // vepf::layout::kConsoleMaxNameLen
constexpr std::array kBackendKinds{BackendKind::kTap, BackendKind::kSeqpacket};

/// `s` between `q` quotes, with quotes, backslashes and control bytes escaped, for messages.
std::string in_quotes(std::string_view s, char q = '"') {
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out(1, q);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  out += q;
  return out;
}

std::string join(Names names) {
  std::string out;
  for (const std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

/// TOML path of `key` inside the table at `where` ("" is the top level).
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the order reads like the path.
std::string fmt_hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#" PRIx64, v);
  return buf;
}

std::string child(std::string_view where, std::string_view key) {
  std::string out(where);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::optional<std::uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
  return std::nullopt;
}

/// Parses exactly "xx:xx:xx:xx:xx:xx" (hex digits in either case).
std::optional<std::array<std::uint8_t, 6>> parse_mac(std::string_view text) {
  std::array<std::uint8_t, 6> mac{};
  if (text.size() != 3 * mac.size() - 1) return std::nullopt;
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const auto hi = hex_digit(text[3 * i]);
    const auto lo = hex_digit(text[3 * i + 1]);
    if (!hi || !lo) return std::nullopt;
    if (i + 1 < mac.size() && text[3 * i + 2] != ':') return std::nullopt;
    mac[i] = static_cast<std::uint8_t>(*hi << 4 | *lo);
  }
  return mac;
}

bool is_ifname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

/// Turns a parsed TOML document into a validated BoardConfig. Each method returns the first
/// problem as "<source>: <toml path> <what is wrong>: <what to write instead>".
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Expected<BoardConfig> board_config(const toml::table& root) const;
  /// One device given as the keys of a [[device]] table.
  Expected<DeviceConfig> device(const toml::table& table, std::size_t index) const {
    return read_device(table, index);
  }

 private:
  struct BoardSection {
    std::string name;
    Platform platform = Platform::kLoopback;
  };

  tl::unexpected<ConfigError> fail(std::string_view what) const {
    return tl::unexpected(ConfigError{std::string(source_) + ": " + std::string(what)});
  }

  Expected<void> check_keys(const toml::table& table, std::string_view where, Names allowed) const;
  Expected<const toml::table*> get_table(const toml::table& parent, std::string_view where,
                                         std::string_view key) const;
  Expected<std::optional<std::string>> get_string(const toml::table& parent, std::string_view where,
                                                  std::string_view key) const;
  Expected<std::string> required_string(const toml::table& parent, std::string_view where,
                                        std::string_view key) const;
  Expected<std::int64_t> get_integer(const toml::table& parent, std::string_view where,
                                     std::string_view key, std::int64_t fallback, std::int64_t lo,
                                     std::int64_t hi) const;
  template <class E, std::size_t N>
  Expected<E> choose(const std::string& path, const std::string& value, const std::array<E, N>& all,
                     std::string_view what) const;
  Expected<void> check_socket_path(const std::string& path, const std::string& value) const;
  Expected<void> check_ifname(const std::string& path, const std::string& value) const;

  Expected<BoardSection> read_board_section(const toml::table& root) const;
  Expected<LinkConfig> read_link(const toml::table& root) const;
  Expected<std::uint64_t> read_window_size(const toml::table& link, std::string_view key,
                                           std::uint64_t fallback) const;
  Expected<LoopbackConfig> read_loopback(const toml::table& root) const;
  Expected<GpioConfig> read_gpio(const toml::table& root) const;
  Expected<PciSide> read_pci_side(const toml::table& root, std::string_view side, Platform platform,
                                  const LinkConfig& link) const;
  Expected<std::optional<Place>> read_place(const toml::table& parent, const std::string& where, std::string_view key,
                                            bool phys) const;
  Expected<std::vector<DeviceConfig>> read_devices(const toml::table& root) const;
  Expected<DeviceConfig> read_device(const toml::table& table, std::size_t index) const;
  Expected<NetConfig> read_net(const toml::table& table, const std::string& where) const;
  Expected<RpmsgConfig> read_rpmsg(const toml::table& device, const std::string& where, std::size_t index) const;
  Expected<BlockConfig> read_block(const toml::table& device, const std::string& where, std::size_t index) const;
  Expected<ConsoleConfig> read_console(const toml::table& device, const std::string& where, std::size_t index) const;
  Expected<ConsolePort> read_console_port(const toml::table& port, const std::string& in, std::size_t index,
                                          std::size_t p) const;
  Expected<std::string> read_dir(const toml::table& parent, const std::string& in, std::string_view key,
                                 std::string fallback, std::size_t max_len) const;
  Expected<bool> get_bool(const toml::table& parent, std::string_view where, std::string_view key,
                          bool fallback) const;
  Expected<Backend> read_backend(const toml::table& device, const std::string& device_where,
                                 std::string_view side, std::string default_ifname) const;
  Expected<void> check_unique(const std::vector<DeviceConfig>& devices, Backend DeviceConfig::*side,
                              std::string_view side_name) const;

  std::string_view source_;
};

Expected<void> Reader::check_keys(const toml::table& table, std::string_view where,
                                  Names allowed) const {
  for (auto&& [key, node] : table) {
    bool known = false;
    for (const std::string_view name : allowed) known = known || key.str() == name;
    if (known) continue;
    const std::string in = where.empty() ? "at the top level" : "in [" + std::string(where) + "]";
    return fail("unknown key " + in_quotes(key.str(), '\'') + " " + in +
                "; allowed: " + join(allowed));
  }
  return {};
}

/// The sub-table `key` of `parent`, or nullptr when there is none.
Expected<const toml::table*> Reader::get_table(const toml::table& parent, std::string_view where,
                                               std::string_view key) const {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return nullptr;
  if (const toml::table* t = node->as_table()) return t;
  const std::string path = child(where, key);
  return fail(path + " must be a table (got " + std::string(type_name(node->type())) +
              "): write it as [" + path + "]");
}

Expected<std::optional<std::string>> Reader::get_string(const toml::table& parent,
                                                        std::string_view where,
                                                        std::string_view key) const {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return std::optional<std::string>{};
  if (const auto* s = node->as_string()) return std::optional<std::string>{s->get()};
  return fail(child(where, key) + " must be a string (got " + std::string(type_name(node->type())) +
              "): write " + std::string(key) + " = \"...\"");
}

Expected<std::string> Reader::required_string(const toml::table& parent, std::string_view where,
                                              std::string_view key) const {
  VEPF_CONFIG_TRY(value, get_string(parent, where, key));
  if (!value) return fail("missing required key " + child(where, key));
  return std::move(*value);
}

/// An optional integer in lo..hi, or `fallback` when absent. TOML integers are int64: the range
/// is checked here, before any caller narrows the value.
Expected<std::int64_t> Reader::get_integer(const toml::table& parent, std::string_view where,
                                           std::string_view key, std::int64_t fallback,
                                           std::int64_t lo, std::int64_t hi) const {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return fallback;
  const std::string path = child(where, key);
  const auto* i = node->as_integer();
  if (i == nullptr) {
    return fail(path + " must be an integer (got " + std::string(type_name(node->type())) +
                "): write " + std::string(key) + " = " + std::to_string(fallback));
  }
  const std::int64_t v = i->get();
  if (v < lo || v > hi) {
    return fail(path + " = " + std::to_string(v) + " is out of range: use " + std::to_string(lo) +
                ".." + std::to_string(hi));
  }
  return v;
}

template <class E, std::size_t N>
Expected<E> Reader::choose(const std::string& path, const std::string& value,
                           const std::array<E, N>& all, std::string_view what) const {
  std::string allowed;
  for (const E e : all) {
    if (to_string(e) == value) return e;
    if (!allowed.empty()) allowed += " or ";
    allowed += in_quotes(to_string(e));
  }
  return fail(path + " = " + in_quotes(value) + " is not a known " + std::string(what) + ": use " +
              allowed);
}

Expected<void> Reader::check_socket_path(const std::string& path, const std::string& value) const {
  if (value.empty())
    return fail(path + " is empty: write a unix socket path such as \"/run/vepf/x.sock\"");
  if (value.find('\0') != std::string::npos) {
    return fail(path + " = " + in_quotes(value) + " contains a NUL character: remove it");
  }
  if (value.size() > kMaxSocketPathLen) {
    return fail(path + " = " + in_quotes(value) + " is " + std::to_string(value.size()) +
                " characters long: use a path of 1.." + std::to_string(kMaxSocketPathLen) +
                " characters (sun_path limit)");
  }
  return {};
}

Expected<void> Reader::check_ifname(const std::string& path, const std::string& value) const {
  const std::string prefix = path + " = " + in_quotes(value);
  if (value.empty() || value.size() > kMaxIfnameLen) {
    return fail(prefix + " is " + std::to_string(value.size()) + " characters long: use 1.." +
                std::to_string(kMaxIfnameLen) + " characters (IFNAMSIZ - 1)");
  }
  for (const char c : value) {
    if (is_ifname_char(c)) continue;
    return fail(prefix + " contains " + in_quotes(std::string_view(&c, 1), '\'') +
                ": use only letters, digits, '-', '_' and '.'");
  }
  if (value == "." || value == "..")
    return fail(prefix + " is reserved: use a name such as \"vepf0\"");
  return {};
}

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
  VEPF_CONFIG_CHECK(
      check_keys(*tbl, "link", {"ack_timeout_ms", "ep_window_size", "rc_window_size"}));
  VEPF_CONFIG_TRY(ack, get_integer(*tbl, "link", "ack_timeout_ms", link.ack_timeout_ms, 1, 60000));
  link.ack_timeout_ms = static_cast<std::uint32_t>(ack);
  VEPF_CONFIG_TRY(ep, read_window_size(*tbl, "ep_window_size", link.ep_window_size));
  link.ep_window_size = ep;
  VEPF_CONFIG_TRY(rc, read_window_size(*tbl, "rc_window_size", link.rc_window_size));
  link.rc_window_size = rc;
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
  VEPF_CONFIG_CHECK(check_keys(*tbl, "loopback", {"socket"}));
  VEPF_CONFIG_TRY(socket, required_string(*tbl, "loopback", "socket"));
  VEPF_CONFIG_CHECK(check_socket_path("loopback.socket", socket));
  return LoopbackConfig{std::move(socket)};
}

Expected<std::optional<Place>> Reader::read_place(const toml::table& parent, const std::string& where,
                                                 std::string_view key, bool phys) const {
  const std::string path = child(where, key);
  const std::string example = phys ? " = { phys = 0xfe000000 }" : " = { bar = 2, offset = 0 }";
  const toml::node* node = parent.get(key);
  if (node == nullptr) return std::optional<Place>{};
  const auto* t = node->as_table();
  if (t == nullptr) return fail(path + " must be an inline table: write " + std::string(key) + example);
  Place p;
  p.is_phys = phys;
  if (phys) {
    if (t->contains("bar") || t->contains("offset")) {
      return fail(path + " names a BAR, but board.platform = \"devmem\" maps physical addresses: write " +
                  std::string(key) + example);
    }
    VEPF_CONFIG_CHECK(check_keys(*t, path, {"phys"}));
    if (!t->contains("phys")) return fail(path + " has no phys address: write " + std::string(key) + example);
    VEPF_CONFIG_TRY(a, get_integer(*t, path, "phys", 0, 0, kMaxAddress));
    p.phys = static_cast<std::uint64_t>(a);
  } else {
    if (t->contains("phys")) {
      return fail(path + " gives a physical address, which only board.platform = \"devmem\" maps for vepf-ep: "
                  "name a BAR instead, e.g. " + std::string(key) + example);
    }
    VEPF_CONFIG_CHECK(check_keys(*t, path, {"bar", "offset"}));
    if (!t->contains("bar")) return fail(path + " names no BAR: write " + std::string(key) + example);
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
    if (t == nullptr) return fail(path + " must be an inline table: write " + key + " = { chip = \"gpiochip0\", line = 5 }");
    VEPF_CONFIG_CHECK(check_keys(*t, path, {"chip", "line", "active_low"}));
    GpioLine line;
    VEPF_CONFIG_TRY(chip, get_string(*t, path, "chip"));
    if (!chip || chip->empty()) {
      return fail(path + ".chip is missing: name the GPIO chip, e.g. chip = \"gpiochip0\" (see gpiodetect)");
    }
    line.chip = *chip;
    if (!t->contains("line")) return fail(path + ".line is missing: give the line's offset on the chip, e.g. line = 5 (see gpioinfo)");
    VEPF_CONFIG_TRY(offset, get_integer(*t, path, "line", 0, 0, 65535));
    line.line = static_cast<std::uint32_t>(offset);
    VEPF_CONFIG_TRY(low, get_bool(*t, path, "active_low", false));
    line.active_low = low;
    (std::string_view(key) == "ready" ? out.ready : out.reset) = line;
  }
  if (out.ready && out.reset && out.ready->chip == out.reset->chip && out.ready->line == out.reset->line) {
    return fail("gpio.ready and gpio.reset name the same line: give each its own");
  }
  return out;
}

/// [host] / [ep] of a PCI platform. `platform` is the board's; vepf-ep's side uses phys places
/// with "devmem". Checks that the places of one BAR (or of physical memory) do not overlap.
Expected<PciSide> Reader::read_pci_side(const toml::table& root, std::string_view side, Platform platform,
                                        const LinkConfig& link) const {
  const std::string s(side);
  const bool ep = side == "ep";
  const bool phys = ep && platform == Platform::kDevmem;
  const std::string example = phys ? "{ phys = 0xfe400000 }" : "{ bar = 2, offset = 0x400000 }";
  VEPF_CONFIG_TRY(tbl, get_table(root, "", side));
  if (tbl == nullptr) {
    return fail("missing table [" + s + "] (board.platform = " + in_quotes(to_string(platform)) + "): add it with " +
                (phys ? "" : "device = \"1af4:1110\", ") + "ep_window = " + example + (ep ? ", rc_window = ..." : ""));
  }
  VEPF_CONFIG_CHECK(check_keys(*tbl, s, {"device", "ep_window", "rc_window", "rc_window_bus_addr", "doorbell",
                                         "doorbell_regs", "peer_ids", "vector"}));
  PciSide out;
  VEPF_CONFIG_TRY(device, get_string(*tbl, s, "device"));
  if (phys && device) {
    // devmem: the function whose BARs hold the ranges, to be enabled (sysfs) before mapping.
    if (!vfio::PciAddress::parse(*device)) {
      return fail(s + ".device = " + in_quotes(*device) +
                  " is not a PCI address: with board.platform = \"devmem\" name the function whose BARs hold "
                  "the ranges by BDF, e.g. \"0000:00:05.0\", or remove it");
    }
    out.device = *device;
  }
  if (!phys) {
    if (!device) {
      return fail(s + ".device is missing: name the PCI function, as vendor:device (\"1af4:1110\") or BDF "
                      "(\"0000:01:00.0\")");
    }
    const std::string& d = *device;
    if (!vfio::PciMatch::parse(d)) {
      return fail(s + ".device = " + in_quotes(d) +
                  " is neither vendor:device nor a PCI address: write e.g. \"1af4:1110\" or \"0000:01:00.0\"");
    }
    out.device = d;
  }
  VEPF_CONFIG_TRY(epw, read_place(*tbl, s, "ep_window", phys));
  if (!epw) {
    return fail(s + ".ep_window is missing: name where the EP window is, e.g. ep_window = " + example);
  }
  out.ep_window = *epw;
  VEPF_CONFIG_TRY(rcw, read_place(*tbl, s, "rc_window", phys));
  if (ep && !rcw) {
    return fail(s + ".rc_window is missing: name the outbound window through which the EP reaches the RC window, "
                    "e.g. rc_window = " + example);
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
    if (!regs) return fail(s + ".doorbell_regs is missing: name the ivshmem register BAR, e.g. doorbell_regs = " +
                           std::string(phys ? "{ phys = 0xfebf1000 }" : "{ bar = 0 }"));
    if (!ids) return fail(s + ".peer_ids is missing: name a page of the shared memory for the peer IDs, e.g. peer_ids = " +
                          std::string(phys ? "{ phys = 0xfe000000 }" : "{ bar = 2, offset = 0 }"));
    out.doorbell_regs = *regs;
    out.peer_ids = *ids;
  } else if (regs || ids) {
    return fail(s + ".doorbell_regs/peer_ids are for doorbell = \"ivshmem\": set that or remove them");
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
  if (out.doorbell == DoorbellKind::kIvshmem) spans.push_back({"peer_ids", &out.peer_ids, kPageSize});
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

Expected<NetConfig> Reader::read_net(const toml::table& table, const std::string& where) const {
  VEPF_CONFIG_CHECK(check_keys(table, where, {"mac", "mtu"}));
  NetConfig net;
  const std::string mac_path = where + ".mac";
  VEPF_CONFIG_TRY(mac_text, required_string(table, where, "mac"));
  const auto mac = parse_mac(mac_text);
  const std::string prefix = mac_path + " = " + in_quotes(mac_text);
  if (!mac) {
    return fail(prefix +
                " is not a MAC address: use six hex octets separated by colons, like "
                "\"02:00:00:00:00:01\"");
  }
  if (((*mac)[0] & 0x01) != 0) {
    return fail(prefix +
                " is a multicast address (bit 0 of the first octet is set): use a "
                "unicast address such as \"02:00:00:00:00:01\"");
  }
  if (*mac == std::array<std::uint8_t, 6>{}) {
    return fail(prefix + " is the all-zero address: use an address such as \"02:00:00:00:00:01\"");
  }
  net.mac = *mac;
  VEPF_CONFIG_TRY(mtu, get_integer(table, where, "mtu", net.mtu, 68, 65535));
  net.mtu = static_cast<std::uint16_t>(mtu);
  return net;
}

/// The [device.ep] or [device.host] table; absent means a tap named `default_ifname`.
Expected<Backend> Reader::read_backend(const toml::table& device, const std::string& device_where,
                                       std::string_view side, std::string default_ifname) const {
  Backend backend;
  backend.ifname = std::move(default_ifname);
  VEPF_CONFIG_TRY(tbl, get_table(device, device_where, side));
  if (tbl == nullptr) return backend;
  const std::string where = child(device_where, side);
  VEPF_CONFIG_CHECK(check_keys(*tbl, where, {"backend", "ifname", "path"}));
  VEPF_CONFIG_TRY(kind_name, get_string(*tbl, where, "backend"));
  if (kind_name) {
    VEPF_CONFIG_TRY(kind, choose(where + ".backend", *kind_name, kBackendKinds, "backend"));
    backend.kind = kind;
  }
  VEPF_CONFIG_TRY(ifname, get_string(*tbl, where, "ifname"));
  VEPF_CONFIG_TRY(path, get_string(*tbl, where, "path"));
  if (backend.kind == BackendKind::kTap) {
    if (path) {
      return fail(where +
                  ".path is only for backend = \"seqpacket\": drop path, or set "
                  "backend = \"seqpacket\"");
    }
    if (ifname) {
      VEPF_CONFIG_CHECK(check_ifname(where + ".ifname", *ifname));
      backend.ifname = std::move(*ifname);
    }
    return backend;
  }
  if (ifname) {
    return fail(where +
                ".ifname is only for backend = \"tap\": drop ifname, or set "
                "backend = \"tap\"");
  }
  if (!path) return fail("missing required key " + where + ".path (backend = \"seqpacket\")");
  VEPF_CONFIG_CHECK(check_socket_path(where + ".path", *path));
  backend.ifname.clear();
  backend.path = std::move(*path);
  return backend;
}

Expected<RpmsgConfig> Reader::read_rpmsg(const toml::table& device, const std::string& where,
                                         std::size_t index) const {
  RpmsgConfig rpmsg;
  rpmsg.runtime_dir = "/run/vepf/rpmsg" + std::to_string(index);
  VEPF_CONFIG_TRY(table, get_table(device, where, "rpmsg"));
  if (table == nullptr) return rpmsg;
  const std::string in = where + ".rpmsg";
  VEPF_CONFIG_CHECK(check_keys(*table, in, {"runtime_dir"}));
  VEPF_CONFIG_TRY(dir, read_dir(*table, in, "runtime_dir", rpmsg.runtime_dir, kMaxRpmsgRuntimeDirLen));
  rpmsg.runtime_dir = std::move(dir);
  return rpmsg;
}

/// An optional directory path of 1..max_len characters (the sockets or links in it must fit
/// sun_path / PATH_MAX), or `fallback`.
Expected<std::string> Reader::read_dir(const toml::table& parent, const std::string& in, std::string_view key,
                                       std::string fallback, std::size_t max_len) const {
  VEPF_CONFIG_TRY(dir, get_string(parent, in, key));
  if (!dir) return fallback;
  const std::string path = child(in, key);
  if (dir->empty()) return fail(path + " is empty: write a directory such as " + in_quotes(fallback));
  if (dir->find('\0') != std::string::npos) {
    return fail(path + " = " + in_quotes(*dir) + " contains a NUL character: remove it");
  }
  if (dir->size() > max_len) {
    return fail(path + " = " + in_quotes(*dir) + " is " + std::to_string(dir->size()) + " characters long: use 1.." +
                std::to_string(max_len) + " characters (the paths made in it must fit sun_path)");
  }
  return std::move(*dir);
}

Expected<bool> Reader::get_bool(const toml::table& parent, std::string_view where, std::string_view key,
                                bool fallback) const {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return fallback;
  if (const auto* b = node->as_boolean()) return b->get();
  return fail(child(where, key) + " must be true or false (got " + std::string(type_name(node->type())) +
              "): write " + std::string(key) + " = " + (fallback ? "true" : "false"));
}

Expected<BlockConfig> Reader::read_block(const toml::table& device, const std::string& where,
                                         std::size_t index) const {
  VEPF_CONFIG_TRY(table, get_table(device, where, "block"));
  const std::string in = where + ".block";
  if (table == nullptr) {
    return fail("missing required table [" + in + "] (type = \"block\"): add path = \"/path/to/disk.img\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*table, in, {"path", "size", "read_only", "block_size", "nbd_socket"}));
  BlockConfig block;
  VEPF_CONFIG_TRY(path, required_string(*table, in, "path"));
  if (path.empty() || path.find('\0') != std::string::npos) {
    return fail(in + ".path must be a file or block device path such as \"/var/lib/vepf/disk0.img\"");
  }
  block.path = std::move(path);
  // TOML integers are int64: sizes up to 2^62 are plenty (VIRTIO capacity is 2^64 sectors).
  VEPF_CONFIG_TRY(size, get_integer(*table, in, "size", 0, 0, std::int64_t{1} << 62));
  if (size % 512 != 0) {
    return fail(in + ".size = " + std::to_string(size) + " is not a multiple of 512: use e.g. " +
                std::to_string((size / 512 + 1) * 512) + " (bytes)");
  }
  block.size = static_cast<std::uint64_t>(size);
  VEPF_CONFIG_TRY(ro, get_bool(*table, in, "read_only", false));
  block.read_only = ro;
  VEPF_CONFIG_TRY(bs, get_integer(*table, in, "block_size", 512, 512, 65536));
  if ((bs & (bs - 1)) != 0) {
    return fail(in + ".block_size = " + std::to_string(bs) + " is not a power of 2: use 512, 1024, ..., 65536");
  }
  block.block_size = static_cast<std::uint32_t>(bs);
  VEPF_CONFIG_TRY(sock, get_string(*table, in, "nbd_socket"));
  block.nbd_socket = sock ? std::move(*sock) : "/run/vepf/block" + std::to_string(index) + ".sock";
  VEPF_CONFIG_CHECK(check_socket_path(in + ".nbd_socket", block.nbd_socket));
  return block;
}

Expected<ConsolePort> Reader::read_console_port(const toml::table& t, const std::string& in, std::size_t index,
                                                std::size_t p) const {
  const std::string at = in + ".port[" + std::to_string(p) + "]";
  VEPF_CONFIG_CHECK(check_keys(t, at, {"name", "backend", "link", "program", "socket"}));
  ConsolePort port;
  VEPF_CONFIG_TRY(name, get_string(t, at, "name"));
  if (name) {
    const bool ok = !name->empty() && name->size() <= kMaxConsoleNameLen && *name != "." && *name != ".." &&
                    std::all_of(name->begin(), name->end(), is_ifname_char);
    if (!ok) {
      return fail(at + ".name = " + in_quotes(*name) + " is not a port name: use 1.." +
                  std::to_string(kMaxConsoleNameLen) + " letters, digits, '-', '_' or '.'");
    }
    port.name = std::move(*name);
  }
  VEPF_CONFIG_TRY(backend_text, get_string(t, at, "backend"));
  if (backend_text) {
    VEPF_CONFIG_TRY(b, choose(at + ".backend", *backend_text, kConsoleBackends, "console backend"));
    port.backend = b;
  }
  const auto only_for = [&](std::string_view key, ConsoleBackend b, std::string_view b_name) -> Expected<void> {
    if (t.get(key) == nullptr || port.backend == b) return {};
    return fail(at + "." + std::string(key) + " applies to backend = \"" + std::string(b_name) + "\" only: remove it");
  };
  VEPF_CONFIG_CHECK(only_for("link", ConsoleBackend::kPty, "pty"));
  VEPF_CONFIG_CHECK(only_for("program", ConsoleBackend::kProgram, "program"));
  VEPF_CONFIG_CHECK(only_for("socket", ConsoleBackend::kSocket, "socket"));
  switch (port.backend) {
    case ConsoleBackend::kPty: {
      VEPF_CONFIG_TRY(link, get_string(t, at, "link"));
      port.link = link ? std::move(*link)
                       : "/run/vepf/console" + std::to_string(index) + "-ep/port" + std::to_string(p);
      if (port.link.empty() || port.link.find('\0') != std::string::npos) {
        return fail(at + ".link must be a path such as \"/run/vepf/ttyVEPF0\"");
      }
      break;
    }
    case ConsoleBackend::kProgram: {
      const toml::node* node = t.get("program");
      const toml::array* argv = node ? node->as_array() : nullptr;
      if (argv == nullptr || argv->empty()) {
        return fail("missing or empty " + at + ".program (backend = \"program\"): write program = [\"/bin/login\", \"-f\", \"root\"]");
      }
      for (std::size_t i = 0; i < argv->size(); ++i) {
        const auto* arg = argv->get(i)->as_string();
        if (arg == nullptr || arg->get().find('\0') != std::string::npos || (i == 0 && arg->get().empty())) {
          return fail(at + ".program[" + std::to_string(i) + "] must be a string without NUL" +
                      (i == 0 ? " naming the program, e.g. \"/bin/sh\"" : ""));
        }
        port.program.push_back(arg->get());
      }
      break;
    }
    case ConsoleBackend::kSocket: {
      VEPF_CONFIG_TRY(sock, get_string(t, at, "socket"));
      if (!sock) return fail("missing required key " + at + ".socket (backend = \"socket\")");
      VEPF_CONFIG_CHECK(check_socket_path(at + ".socket", *sock));
      port.socket = std::move(*sock);
      break;
    }
  }
  return port;
}

Expected<ConsoleConfig> Reader::read_console(const toml::table& device, const std::string& where,
                                             std::size_t index) const {
  VEPF_CONFIG_TRY(table, get_table(device, where, "console"));
  const std::string in = where + ".console";
  if (table == nullptr) {
    return fail("missing required table [" + in + "] (type = \"console\"): add [[" + in + ".port]] with backend = \"pty\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*table, in, {"host_dir", "port"}));
  ConsoleConfig console;
  // <host_dir>/<63-character name> must fit PATH_MAX comfortably; 4095 - 64 is the real bound.
  VEPF_CONFIG_TRY(dir, read_dir(*table, in, "host_dir", "/run/vepf/console" + std::to_string(index), 1024));
  console.host_dir = std::move(dir);
  const toml::node* node = table->get("port");
  const toml::array* ports = node ? node->as_array() : nullptr;
  if (ports == nullptr || ports->empty()) {
    return fail("missing required array [[" + in + ".port]]: declare at least one port, e.g. backend = \"pty\"");
  }
  if (ports->size() > kMaxConsolePorts) {
    return fail(in + ".port has " + std::to_string(ports->size()) + " entries: use at most " +
                std::to_string(kMaxConsolePorts));
  }
  for (std::size_t p = 0; p < ports->size(); ++p) {
    const toml::table* t = ports->get(p)->as_table();
    if (t == nullptr) return fail(in + ".port[" + std::to_string(p) + "] must be a table: write [[" + in + ".port]]");
    VEPF_CONFIG_TRY(port, read_console_port(*t, in, index, p));
    for (std::size_t q = 0; q < console.ports.size(); ++q) {
      const ConsolePort& o = console.ports[q];
      const bool same_name = !port.name.empty() && o.name == port.name;
      const bool same_path = (port.backend == ConsoleBackend::kPty && o.backend == port.backend && o.link == port.link) ||
                             (port.backend == ConsoleBackend::kSocket && o.backend == port.backend && o.socket == port.socket);
      if (!same_name && !same_path) continue;
      return fail(in + ".port[" + std::to_string(p) + "] has the same " + (same_name ? "name" : "link or socket") +
                  " as port[" + std::to_string(q) + "]: give each port its own");
    }
    console.ports.push_back(std::move(port));
  }
  return console;
}

Expected<DeviceConfig> Reader::read_device(const toml::table& table, std::size_t index) const {
  const std::string where = "device[" + std::to_string(index) + "]";
  VEPF_CONFIG_TRY(type_text, required_string(table, where, "type"));
  VEPF_CONFIG_TRY(type, choose(where + ".type", type_text, kDeviceTypes, "device type"));
  if (type == DeviceType::kRpmsg) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "rpmsg"}));
  } else if (type == DeviceType::kBlock) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "block"}));
  } else if (type == DeviceType::kConsole) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "console"}));
  } else {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "net", "ep", "host"}));
  }
  DeviceConfig device;
  device.type = type;
  // VIRTIO 1.2 §2.7: split queue sizes are powers of 2, at most 32768.
  VEPF_CONFIG_TRY(queue_size, get_integer(table, where, "queue_size", device.queue_size, 2, 32768));
  if ((queue_size & (queue_size - 1)) != 0) {
    return fail(where + ".queue_size = " + std::to_string(queue_size) +
                " is not a power of 2: use one of 2, 4, 8, ..., 32768 (e.g. 256)");
  }
  device.queue_size = static_cast<std::uint16_t>(queue_size);
  if (type == DeviceType::kRpmsg) {
    VEPF_CONFIG_TRY(rpmsg, read_rpmsg(table, where, index));
    device.rpmsg = std::move(rpmsg);
    return device;
  }
  if (type == DeviceType::kBlock) {
    VEPF_CONFIG_TRY(block, read_block(table, where, index));
    device.block = std::move(block);
    return device;
  }
  if (type == DeviceType::kConsole) {
    VEPF_CONFIG_TRY(console, read_console(table, where, index));
    device.console = std::move(console);
    return device;
  }
  VEPF_CONFIG_TRY(net_table, get_table(table, where, "net"));
  if (net_table == nullptr) {
    return fail("missing required table [" + where + ".net] (type = \"net\"): add mac = \"...\"");
  }
  VEPF_CONFIG_TRY(net_config, read_net(*net_table, where + ".net"));
  device.net = net_config;
  const std::string n = std::to_string(index);
  VEPF_CONFIG_TRY(ep, read_backend(table, where, "ep", "vepf-ep" + n));
  device.ep = std::move(ep);
  VEPF_CONFIG_TRY(host, read_backend(table, where, "host", "vepf-host" + n));
  device.host = std::move(host);
  return device;
}

/// Two devices on one side must not share a tap ifname or a socket path.
Expected<void> Reader::check_unique(const std::vector<DeviceConfig>& devices,
                                    Backend DeviceConfig::*side, std::string_view side_name) const {
  for (std::size_t j = 1; j < devices.size(); ++j) {
    if (devices[j].type != DeviceType::kNet) continue;  // only net devices have backends
    const Backend& b = devices[j].*side;
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kNet) continue;
      const Backend& a = devices[i].*side;
      if (a.kind != b.kind) continue;
      const bool tap = b.kind == BackendKind::kTap;
      if ((tap ? a.ifname : a.path) != (tap ? b.ifname : b.path)) continue;
      const std::string key = std::string(side_name) + (tap ? ".ifname" : ".path");
      return fail("device[" + std::to_string(j) + "]." + key + " = " +
                  in_quotes(tap ? b.ifname : b.path) + " is already used by device[" +
                  std::to_string(i) + "]." + key + ": give each device its own");
    }
  }
  return {};
}

Expected<std::vector<DeviceConfig>> Reader::read_devices(const toml::table& root) const {
  const toml::node* node = root.get("device");
  if (node == nullptr)
    return fail("missing required table [[device]]: declare at least one device");
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return fail("device must be an array of tables (got " + std::string(type_name(node->type())) +
                "): write [[device]], not [device]");
  }
  if (array->empty()) return fail("device is empty: declare at least one [[device]]");
  if (array->size() > kMaxDevices) {
    return fail("device has " + std::to_string(array->size()) + " entries: use at most " +
                std::to_string(kMaxDevices));
  }
  std::vector<DeviceConfig> devices;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = array->get(i)->as_table();
    if (table == nullptr) {
      return fail("device[" + std::to_string(i) + "] must be a table (got " +
                  std::string(type_name(array->get(i)->type())) + "): write [[device]]");
    }
    VEPF_CONFIG_TRY(device_config, read_device(*table, i));
    devices.push_back(std::move(device_config));
  }
  VEPF_CONFIG_CHECK(check_unique(devices, &DeviceConfig::ep, "ep"));
  VEPF_CONFIG_CHECK(check_unique(devices, &DeviceConfig::host, "host"));
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kRpmsg || devices[j].type != DeviceType::kRpmsg) continue;
      if (devices[i].rpmsg.runtime_dir != devices[j].rpmsg.runtime_dir) continue;
      return fail("device[" + std::to_string(j) + "].rpmsg.runtime_dir = " + in_quotes(devices[j].rpmsg.runtime_dir) +
                  " is already used by device[" + std::to_string(i) + "]: give each device its own");
    }
  }
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kBlock || devices[j].type != DeviceType::kBlock) continue;
      for (auto key : {&BlockConfig::path, &BlockConfig::nbd_socket}) {
        if (devices[i].block.*key != devices[j].block.*key) continue;
        return fail("device[" + std::to_string(j) + "].block." + (key == &BlockConfig::path ? "path" : "nbd_socket") +
                    " = " + in_quotes(devices[j].block.*key) + " is already used by device[" + std::to_string(i) +
                    "]: give each device its own");
      }
    }
  }
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kConsole || devices[j].type != DeviceType::kConsole) continue;
      if (devices[i].console.host_dir != devices[j].console.host_dir) continue;
      return fail("device[" + std::to_string(j) + "].console.host_dir = " + in_quotes(devices[j].console.host_dir) +
                  " is already used by device[" + std::to_string(i) + "]: give each device its own");
    }
  }
  return devices;
}

Expected<BoardConfig> Reader::board_config(const toml::table& root) const {
  VEPF_CONFIG_CHECK(check_keys(root, "", {"board", "link", "loopback", "host", "ep", "gpio", "device"}));
  BoardConfig config;
  VEPF_CONFIG_TRY(section, read_board_section(root));
  config.name = std::move(section.name);
  config.platform = section.platform;
  VEPF_CONFIG_TRY(link_config, read_link(root));
  config.link = link_config;
  if (config.platform == Platform::kLoopback) {
    for (const char* t : {"host", "ep"}) {
      if (root.contains(t)) {
        return fail(std::string("[") + t + "] is for PCI platforms: remove it, or set board.platform = \"vfio\" or \"devmem\"");
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
  VEPF_CONFIG_TRY(gpio, read_gpio(root));
  config.gpio = std::move(gpio);
  VEPF_CONFIG_TRY(device_configs, read_devices(root));
  config.devices = std::move(device_configs);
  return config;
}

ConfigError error_from(std::string_view source, std::string_view what) {
  return ConfigError{std::string(source) + ": " + std::string(what)};
}

/// Reads all of `file` (at most kMaxFileSize bytes) with plain POSIX calls, so that errno
/// is exactly what the failing call set.
Expected<std::string> read_file(const std::filesystem::path& file) {
  const std::string name = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;  // before anything else can overwrite it
    return tl::unexpected(error_from(name, std::string("cannot open: ") + std::strerror(err)));
  }
  std::string text;
  char buffer[4096];
  int err = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxFileSize) break;
  }
  ::close(fd);
  if (err != 0) {
    return tl::unexpected(error_from(name, std::string("cannot read: ") + std::strerror(err)));
  }
  if (text.size() > kMaxFileSize) {
    return tl::unexpected(error_from(name, "is larger than 1 MiB: a board file is a few KiB"));
  }
  return text;
}

}  // namespace

/// Parses TOML text and hands the root table to `read`; turns every exception into a ConfigError.
template <class T, class F>
tl::expected<T, ConfigError> parse_with(std::string_view toml, std::string_view source, F read) {
  try {
    const toml::table root = toml::parse(toml, source);
    return read(root);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return tl::unexpected(ConfigError{std::string(source) + ":" + std::to_string(at.line) + ":" +
                                      std::to_string(at.column) +
                                      ": TOML syntax error: " + std::string(e.description())});
  } catch (const std::exception& e) {
    return tl::unexpected(error_from(source, std::string("cannot parse: ") + e.what()));
  } catch (...) {
    return tl::unexpected(error_from(source, "cannot parse: unknown error"));
  }
}

tl::expected<BoardConfig, ConfigError> parse_board_config(std::string_view toml,
                                                          std::string_view source) {
  return parse_with<BoardConfig>(toml, source, [&](const toml::table& root) { return Reader(source).board_config(root); });
}

tl::expected<DeviceConfig, ConfigError> parse_device_config(std::string_view toml, std::string_view source,
                                                            std::size_t index) {
  return parse_with<DeviceConfig>(toml, source,
                                  [&](const toml::table& root) { return Reader(source).device(root, index); });
}

tl::expected<BoardConfig, ConfigError> load_board_config(const std::filesystem::path& file) {
  try {
    VEPF_CONFIG_TRY(text, read_file(file));
    return parse_board_config(text, file.string());
  } catch (const std::exception& e) {
    return tl::unexpected(error_from(file.string(), std::string("cannot load: ") + e.what()));
  } catch (...) {
    return tl::unexpected(ConfigError{"cannot load board config: unknown error"});
  }
}

std::string_view to_string(Platform platform) {
  switch (platform) {
    case Platform::kLoopback:
      return "loopback";
    case Platform::kVfio:
      return "vfio";
    case Platform::kDevmem:
      return "devmem";
  }
  return "unknown";
}

std::string_view to_string(DoorbellKind kind) {
  switch (kind) {
    case DoorbellKind::kNone:
      return "none";
    case DoorbellKind::kIvshmem:
      return "ivshmem";
  }
  return "unknown";
}

std::string_view to_string(DeviceType type) {
  switch (type) {
    case DeviceType::kNet:
      return "net";
    case DeviceType::kRpmsg:
      return "rpmsg";
    case DeviceType::kBlock:
      return "block";
    case DeviceType::kConsole:
      return "console";
  }
  return "unknown";
}

std::string_view to_string(ConsoleBackend backend) {
  switch (backend) {
    case ConsoleBackend::kPty:
      return "pty";
    case ConsoleBackend::kProgram:
      return "program";
    case ConsoleBackend::kSocket:
      return "socket";
  }
  return "unknown";
}

std::string_view to_string(BackendKind kind) {
  switch (kind) {
    case BackendKind::kTap:
      return "tap";
    case BackendKind::kSeqpacket:
      return "seqpacket";
  }
  return "unknown";
}

}  // namespace vepf::config

#undef VEPF_CONFIG_TRY
#undef VEPF_CONFIG_CHECK
