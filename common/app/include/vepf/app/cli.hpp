#pragma once
// Command-line start-up shared by vepf-ep and vepf-host: the common options, logging, the board
// config, the event loop and signals. Prints to stderr (it stands in for main()).

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <tl/expected.hpp>

#include "vepf/config/board_config.hpp"
#include "vepf/error.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::app {

struct CommonOptions {
  std::string board;               // --board FILE (required, unless --check-config)
  std::string check_config;        // --check-config FILE: validate, describe, exit
  bool configfs_env = false;       // with --check-config: print config::configfs_env() instead
  std::string socket;              // --socket PATH: overrides [loopback] socket
  std::string log_level = "info";  // --log-level
  bool strict_link = false;        // --strict-link, or VEPF_STRICT_LINK=1 in the environment
};

/// Adds --board, --check-config, --socket, --log-level and --strict-link to `cli`, bound to `o`.
void add_common_options(CLI::App& cli, CommonOptions& o);

/// Parses argv, creates `loggers`, loads and validates the board config (--socket applied), and
/// with --strict-link turns the strict link model on: an access to a link window that real
/// device memory would fault on is printed to stderr and aborts the program (SIGABRT), as the
/// alignment fault of a real arm64 board would end it.
/// On failure prints why to stderr and returns the exit code to leave with (0 after --help,
/// kExitUsage for a bad command line or config).
/// With --check-config FILE it only loads and validates FILE, touching no hardware: a valid
/// config is described on stdout (config::describe()) and the exit code is 0; an invalid one is
/// printed to stderr with exit code kExitUsage (2).
tl::expected<config::BoardConfig, int> parse_and_load(
    CLI::App& cli, int argc, char** argv, const CommonOptions& o,
    std::initializer_list<std::string_view> loggers);

/// Board config [affinity]: runs the calling process on `cpus` (sched_setaffinity(2) on its
/// thread; call it before starting any thread, which inherits it) and logs them to `logger`.
/// `field` ("affinity.ep", "affinity.host") names the list in messages. Empty `cpus`: nothing.
/// Returns kExitOk, or prints why to stderr and returns kExitUsage when a CPU does not exist on
/// this machine (/sys/devices/system/cpu/cpuN) or the kernel refuses the set (EINVAL: none of
/// them online or allowed by the process's cpuset), kExitFailure for any other error.
int apply_affinity(std::string_view prog, std::string_view field,
                   const std::vector<std::uint32_t>& cpus, std::string_view logger);

/// The loop a program runs on: SIGINT, SIGTERM, SIGUSR1 and SIGHUP arrive through `signals`
/// (a signalfd), SIGPIPE is ignored. Errors: kSystem.
struct Runtime {
  os::Fd signals;
  os::EventLoop loop;
};
[[nodiscard]] Result<Runtime> make_runtime();

}  // namespace vepf::app
