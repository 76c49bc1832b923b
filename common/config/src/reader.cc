// The board-config reader: message helpers and the generic getters every table uses.
#include "reader.hpp"

#include <cinttypes>
#include <cstdio>

namespace vepf::config::detail {

/// `s` between `q` quotes, with quotes, backslashes and control bytes escaped, for messages.
std::string in_quotes(std::string_view s, char q) {
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

namespace {
std::optional<std::uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
  return std::nullopt;
}
}  // namespace

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

/// An optional directory path of 1..max_len characters (the sockets or links in it must fit
/// sun_path / PATH_MAX), or `fallback`.
Expected<std::string> Reader::read_dir(const toml::table& parent, const std::string& in,
                                       std::string_view key, std::string fallback,
                                       std::size_t max_len) const {
  VEPF_CONFIG_TRY(dir, get_string(parent, in, key));
  if (!dir) return fallback;
  const std::string path = child(in, key);
  if (dir->empty())
    return fail(path + " is empty: write a directory such as " + in_quotes(fallback));
  if (dir->find('\0') != std::string::npos) {
    return fail(path + " = " + in_quotes(*dir) + " contains a NUL character: remove it");
  }
  if (dir->size() > max_len) {
    return fail(path + " = " + in_quotes(*dir) + " is " + std::to_string(dir->size()) +
                " characters long: use 1.." + std::to_string(max_len) +
                " characters (the paths made in it must fit sun_path)");
  }
  return std::move(*dir);
}

Expected<bool> Reader::get_bool(const toml::table& parent, std::string_view where,
                                std::string_view key, bool fallback) const {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return fallback;
  if (const auto* b = node->as_boolean()) return b->get();
  return fail(child(where, key) + " must be true or false (got " +
              std::string(type_name(node->type())) + "): write " + std::string(key) + " = " +
              (fallback ? "true" : "false"));
}

}  // namespace vepf::config::detail
