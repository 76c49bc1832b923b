#include "vepf/app/cli.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "vepf/app/app.hpp"
#include "vepf/os/signals.hpp"

namespace vepf::app {

void add_common_options(CLI::App& cli, CommonOptions& o) {
  cli.add_option("-b,--board", o.board, "Board config (TOML), e.g. board-configs/loopback.toml")->required();
  cli.add_option("--socket", o.socket, "Loopback platform: override [loopback] socket (unix socket path)");
  cli.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  cli.add_flag("--strict-link", o.strict_link,
               "Abort on any access to a link window that real device memory would fault on (unaligned, "
               "too wide, memcpy on device memory); the tests run with it")
      ->envname("VEPF_STRICT_LINK");
}

tl::expected<config::BoardConfig, int> parse_and_load(CLI::App& cli, int argc, char** argv, const CommonOptions& o,
                                                      std::initializer_list<std::string_view> loggers) {
  const std::string prog = cli.get_name();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return tl::unexpected(rc == 0 ? kExitOk : kExitUsage);
  }
  if (!setup_logging(loggers, o.log_level)) {
    std::fprintf(stderr, "%s: --log-level %s: unknown level; use trace, debug, info, warn, error or off\n",
                 prog.c_str(), o.log_level.c_str());
    return tl::unexpected(kExitUsage);
  }
  if (o.strict_link) {
    ring::set_strict_link([](const ring::LinkViolation& v) {
      std::fprintf(stderr, "%s; aborting (--strict-link)\n", ring::describe(v).c_str());
      std::abort();
    });
  }
  auto cfg = config::load_board_config(o.board);
  if (!cfg) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), cfg.error().message.c_str());
    return tl::unexpected(kExitUsage);
  }
  if (!o.socket.empty()) cfg->loopback.socket = o.socket;
  return std::move(*cfg);
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
