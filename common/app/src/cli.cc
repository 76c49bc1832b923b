#include "vepf/app/cli.hpp"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "vepf/app/app.hpp"
#include "vepf/os/signals.hpp"

namespace vepf::app {

void add_common_options(CLI::App& cli, CommonOptions& o) {
  cli.add_option("-b,--board", o.board, "Board config (TOML), e.g. board-configs/loopback.toml");
  cli.add_option("--check-config", o.check_config,
                 "Validate a board config without touching hardware, describe it, and exit (0: "
                 "valid, 2: not)");
  cli.add_option("--socket", o.socket,
                 "Loopback platform: override [loopback] socket (unix socket path)");
  cli.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  cli.add_flag(
         "--strict-link", o.strict_link,
         "Abort on any access to a link window that real device memory would fault on (unaligned, "
         "too wide, memcpy on device memory); the tests run with it")
      ->envname("VEPF_STRICT_LINK");
}

tl::expected<config::BoardConfig, int> parse_and_load(
    CLI::App& cli, int argc, char** argv, const CommonOptions& o,
    std::initializer_list<std::string_view> loggers) {
  const std::string prog = cli.get_name();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return tl::unexpected(rc == 0 ? kExitOk : kExitUsage);
  }
  if (!setup_logging(loggers, o.log_level)) {
    std::fprintf(stderr,
                 "%s: --log-level %s: unknown level; use trace, debug, info, warn, error or off\n",
                 prog.c_str(), o.log_level.c_str());
    return tl::unexpected(kExitUsage);
  }
  if (o.strict_link) {
    ring::set_strict_link([](const ring::LinkViolation& v) {
      std::fprintf(stderr, "%s; aborting (--strict-link)\n", ring::describe(v).c_str());
      std::abort();
    });
  }
  if (!o.check_config.empty()) {
    auto checked = config::load_board_config(o.check_config);
    if (!checked) {
      std::fprintf(stderr, "%s: %s\n", prog.c_str(), checked.error().message.c_str());
      return tl::unexpected(kExitUsage);
    }
    if (o.configfs_env) {
      auto env = config::configfs_env(*checked);
      if (!env) {
        std::fprintf(stderr, "%s: %s\n", prog.c_str(), env.error().message.c_str());
        return tl::unexpected(kExitUsage);
      }
      std::fputs(env->c_str(), stdout);
      return tl::unexpected(kExitOk);
    }
    std::fputs(config::describe(*checked).c_str(), stdout);
    std::printf("%s: %s is valid\n", prog.c_str(), o.check_config.c_str());
    return tl::unexpected(kExitOk);
  }
  if (o.board.empty()) {
    std::fprintf(stderr,
                 "%s: --board is required: name the board config, e.g. --board "
                 "board-configs/loopback.toml (or check one with --check-config FILE)\n",
                 prog.c_str());
    return tl::unexpected(kExitUsage);
  }
  auto cfg = config::load_board_config(o.board);
  if (!cfg) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), cfg.error().message.c_str());
    return tl::unexpected(kExitUsage);
  }
  if (!o.socket.empty()) cfg->loopback.socket = o.socket;
  return std::move(*cfg);
}

int apply_affinity(std::string_view prog, std::string_view field,
                   const std::vector<std::uint32_t>& cpus, std::string_view logger) {
  if (cpus.empty()) return kExitOk;
  const std::string list = fmt::format("[{}]", fmt::join(cpus, ", "));
  const char* fix =
      "name CPUs of this machine (lscpu, /sys/devices/system/cpu/online), or remove the list";
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const std::uint32_t cpu : cpus) {
    const std::string dir = fmt::format("/sys/devices/system/cpu/cpu{}", cpu);
    if (cpu >= CPU_SETSIZE || ::access(dir.c_str(), F_OK) != 0) {
      std::fprintf(stderr, "%.*s: %.*s = %s: this machine has no CPU %u: %s\n",
                   static_cast<int>(prog.size()), prog.data(), static_cast<int>(field.size()),
                   field.data(), list.c_str(), cpu, fix);
      return kExitUsage;
    }
    CPU_SET(cpu, &set);
  }
  if (::sched_setaffinity(0, sizeof set, &set) != 0) {
    const int err = errno;
    std::fprintf(
        stderr, "%.*s: %.*s = %s: sched_setaffinity: %s%s\n", static_cast<int>(prog.size()),
        prog.data(), static_cast<int>(field.size()), field.data(), list.c_str(), std::strerror(err),
        err == EINVAL ? ": none of them is online or in this process's cpuset; name others" : "");
    return err == EINVAL ? kExitUsage : kExitFailure;
  }
  if (auto log = spdlog::get(std::string(logger)))
    log->info("running on CPUs {} ({})", list, field);
  return kExitOk;
}

Result<Runtime> make_runtime() {
  auto sfd = os::block_and_signalfd({SIGINT, SIGTERM, SIGUSR1, SIGHUP});
  if (!sfd) return tl::unexpected(sfd.error());
  auto loop = os::EventLoop::create();
  if (!loop) return tl::unexpected(loop.error());
  std::signal(SIGPIPE, SIG_IGN);
  return Runtime{std::move(*sfd), std::move(*loop)};
}

}  // namespace vepf::app
