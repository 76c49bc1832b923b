// The board-config reader's internals, shared by its source files (reader.cc: the generic TOML
// getters and message helpers; read_board.cc: [board], [link], [loopback], [gpio], [host]/[ep];
// read_devices.cc: [[device]]; read_soc.cc: [soc]; board_config.cc: the public entry points). Not
// installed: no one outside common/config/src sees TOML.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// toml++ is built by Debian as a shared library with exceptions on (TOML_EXCEPTIONS=1): parse()
// throws toml::parse_error. Every entry point (board_config.cc) catches it; nothing escapes
// common/config.
#include <toml++/toml.h>

#include "vepf/config/board_config.hpp"

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

namespace vepf::config::detail {

template <class T>
using Expected = tl::expected<T, ConfigError>;
using Names = std::initializer_list<std::string_view>;

inline constexpr std::size_t kMaxIfnameLen = 15;  // IFNAMSIZ - 1 (the NUL)
inline constexpr std::size_t kMaxSocketPathLen =
    107;  // sizeof(sockaddr_un::sun_path) - 1 (the NUL)
inline constexpr std::int64_t kWindowAlign = 4096;
inline constexpr std::int64_t kMinWindow = std::int64_t{64} << 10;
inline constexpr std::int64_t kMaxWindow = std::int64_t{1} << 30;
inline constexpr std::size_t kMaxFileSize = std::size_t{1} << 20;  // a board file is a few KiB

inline constexpr std::array kPlatforms{Platform::kLoopback, Platform::kVfio, Platform::kDevmem};
inline constexpr std::array kDoorbellKinds{DoorbellKind::kNone, DoorbellKind::kIvshmem};
inline constexpr std::array kMemoryTypes{MemoryType::kCached, MemoryType::kDevice,
                                         MemoryType::kWriteCombining,
                                         MemoryType::kCachedNoncoherent};
inline constexpr std::int64_t kPageSize = 4096;
inline constexpr std::int64_t kMaxAddress = std::numeric_limits<std::int64_t>::max();
inline constexpr std::array kDeviceTypes{DeviceType::kNet, DeviceType::kRpmsg, DeviceType::kBlock,
                                         DeviceType::kConsole};
inline constexpr std::array kConsoleBackends{ConsoleBackend::kPty, ConsoleBackend::kProgram,
                                             ConsoleBackend::kSocket};
inline constexpr std::size_t kMaxConsolePorts = 32;    // vepf::layout::kConsoleMaxPorts
inline constexpr std::size_t kMaxConsoleNameLen = 63;  // vepf::layout::kConsoleMaxNameLen
inline constexpr std::array kBackendKinds{BackendKind::kTap, BackendKind::kSeqpacket};
inline constexpr std::array kBarKinds{BarKind::kProgrammable, BarKind::kFixed, BarKind::kReserved};
inline constexpr std::array kEpfKinds{EpfKind::kVntb, EpfKind::kTest};
inline constexpr std::array kRpmsgServes{RpmsgServe::kChannels, RpmsgServe::kApplication};

/// `s` between `q` quotes, with quotes, backslashes and control bytes escaped, for messages.
std::string in_quotes(std::string_view s, char q = '"');
/// "a, b, c".
std::string join(Names names);
/// `v` as 0x-prefixed hex.
std::string fmt_hex(std::uint64_t v);
/// TOML path of `key` inside the table at `where` ("" is the top level).
std::string child(std::string_view where, std::string_view key);
/// "a table", "an integer", ... for messages.
std::string_view type_name(toml::node_type type);
/// Parses exactly "xx:xx:xx:xx:xx:xx" (hex digits in either case).
std::optional<std::array<std::uint8_t, 6>> parse_mac(std::string_view text);
/// A character Linux accepts in our interface names (letters, digits, '-', '_', '.').
bool is_ifname_char(char c);

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
  Expected<ControlConfig> read_control(const toml::table& root) const;
  Expected<AffinityConfig> read_affinity(const toml::table& root) const;
  // read_soc.cc: [soc], then [link]/[host]/[ep] checked against it.
  Expected<SocConfig> read_soc(const toml::table& root, Platform platform) const;
  Expected<void> check_soc(const BoardConfig& config) const;
  Expected<PciSide> read_pci_side(const toml::table& root, std::string_view side, Platform platform,
                                  const LinkConfig& link) const;
  /// Where a window's memory comes from, for read_window_memory()'s rules.
  enum class MemorySource { kLoopback, kVfioBar, kDevmem };
  Expected<WindowMemory> read_window_memory(const toml::table& t, const std::string& path,
                                            MemorySource from) const;
  Expected<std::optional<Place>> read_place(const toml::table& parent, const std::string& where,
                                            std::string_view key, bool phys) const;
  Expected<std::vector<DeviceConfig>> read_devices(const toml::table& root) const;
  Expected<DeviceConfig> read_device(const toml::table& table, std::size_t index) const;
  Expected<NetConfig> read_net(const toml::table& table, const std::string& where) const;
  Expected<RpmsgConfig> read_rpmsg(const toml::table& device, const std::string& where,
                                   std::size_t index) const;
  Expected<BlockConfig> read_block(const toml::table& device, const std::string& where,
                                   std::size_t index) const;
  Expected<ConsoleConfig> read_console(const toml::table& device, const std::string& where,
                                       std::size_t index) const;
  Expected<ConsolePort> read_console_port(const toml::table& port, const std::string& in,
                                          std::size_t index, std::size_t p) const;
  Expected<std::string> read_dir(const toml::table& parent, const std::string& in,
                                 std::string_view key, std::string fallback,
                                 std::size_t max_len) const;
  Expected<bool> get_bool(const toml::table& parent, std::string_view where, std::string_view key,
                          bool fallback) const;
  Expected<Backend> read_backend(const toml::table& device, const std::string& device_where,
                                 std::string_view side, std::string default_ifname) const;
  Expected<void> check_unique(const std::vector<DeviceConfig>& devices, Backend DeviceConfig::*side,
                              std::string_view side_name) const;

  std::string_view source_;
};

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

}  // namespace vepf::config::detail
