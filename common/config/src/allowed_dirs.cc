#include <filesystem>
#include <string>
#include <system_error>

#include "vepf/config/board_config.hpp"

namespace vepf::config {

namespace {

namespace fs = std::filesystem;

/// `p` with the symbolic links of its existing parts resolved and "." / ".." folded; empty when
/// that fails.
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::path(p), ec);
  return ec ? fs::path() : r.lexically_normal();
}

bool under(const fs::path& p, const fs::path& dir) {
  if (p.empty() || dir.empty()) return false;
  auto pi = p.begin();
  for (auto di = dir.begin(); di != dir.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator of dir
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

std::string list(const std::vector<std::string>& dirs) {
  std::string s;
  for (const auto& d : dirs) s += (s.empty() ? "" : ", ") + d;
  return s;
}

}  // namespace

std::optional<ConfigError> check_allowed_dirs(const DeviceConfig& d,
                                              const std::vector<std::string>& allowed_dirs,
                                              std::string_view where) {
  const std::string at(where);
  auto check = [&](const std::string& field, const std::string& path,
                   bool program) -> std::optional<ConfigError> {
    if (program && (path.empty() || path.front() != '/')) {
      return ConfigError{
          at + "." + field + " = \"" + path +
          "\": a program started through the control socket is named by its absolute path, "
          "under [control] allowed_dirs (" +
          list(allowed_dirs) + ")"};
    }
    const fs::path p = resolved(path.empty() || path.front() == '/' ? path : "/" + path);
    for (const auto& dir : allowed_dirs) {
      if (under(p, resolved(dir))) return std::nullopt;
    }
    return ConfigError{at + "." + field + " = \"" + path +
                       "\" is outside [control] allowed_dirs (" + list(allowed_dirs) +
                       "): use a path under one of them, or add its directory to " +
                       "allowed_dirs in vepf-ep's board config"};
  };
  std::optional<ConfigError> e;
  if (d.ep.kind == BackendKind::kSeqpacket && (e = check("ep.path", d.ep.path, false))) return e;
  switch (d.type) {
    case DeviceType::kNet:
      break;
    case DeviceType::kBlock:
      if ((e = check("block.path", d.block.path, false))) return e;
      break;
    case DeviceType::kRpmsg:
      if ((e = check("rpmsg.runtime_dir", d.rpmsg.runtime_dir, false))) return e;
      break;
    case DeviceType::kConsole:
      for (std::size_t i = 0; i < d.console.ports.size(); ++i) {
        const ConsolePort& p = d.console.ports[i];
        const std::string port = "console.port[" + std::to_string(i) + "]";
        switch (p.backend) {
          case ConsoleBackend::kPty:
            if ((e = check(port + ".link", p.link, false))) return e;
            break;
          case ConsoleBackend::kProgram:
            if ((e = check(port + ".program[0]", p.program.empty() ? std::string() : p.program[0],
                           true)))
              return e;
            break;
          case ConsoleBackend::kSocket:
            if ((e = check(port + ".socket", p.socket, false))) return e;
            break;
        }
      }
      break;
  }
  return std::nullopt;
}

}  // namespace vepf::config
