#include "vepf/config/board_config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>

#include "reader.hpp"

namespace vepf::config {

using detail::Expected;
using detail::kMaxFileSize;
using detail::Reader;

namespace {

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
  return parse_with<BoardConfig>(
      toml, source, [&](const toml::table& root) { return Reader(source).board_config(root); });
}

tl::expected<DeviceConfig, ConfigError> parse_device_config(std::string_view toml,
                                                            std::string_view source,
                                                            std::size_t index) {
  return parse_with<DeviceConfig>(
      toml, source, [&](const toml::table& root) { return Reader(source).device(root, index); });
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

std::string_view to_string(MemoryType type) {
  switch (type) {
    case MemoryType::kCached:
      return "cached";
    case MemoryType::kDevice:
      return "device";
    case MemoryType::kWriteCombining:
      return "wc";
    case MemoryType::kCachedNoncoherent:
      return "cached-noncoherent";
  }
  return "unknown";
}

std::string_view to_string(BarKind kind) {
  switch (kind) {
    case BarKind::kProgrammable:
      return "programmable";
    case BarKind::kFixed:
      return "fixed";
    case BarKind::kReserved:
      return "reserved";
  }
  return "unknown";
}

std::string_view to_string(EpfKind kind) {
  switch (kind) {
    case EpfKind::kVntb:
      return "pci_epf_vntb";
    case EpfKind::kTest:
      return "pci_epf_test";
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

std::string_view to_string(RpmsgServe serve) {
  switch (serve) {
    case RpmsgServe::kChannels:
      return "channels";
    case RpmsgServe::kApplication:
      return "application";
  }
  return "unknown";
}

}  // namespace vepf::config

#undef VEPF_CONFIG_TRY
#undef VEPF_CONFIG_CHECK
