// vepf-ivshmem-server: the ivshmem server QEMU's `-device ivshmem-doorbell,chardev=ID` talks to
// through `-chardev socket,path=SOCK,id=ID` (Debian ships no ivshmem-server). The protocol
// is QEMU's docs/specs/ivshmem-spec.rst; see ivshmem_server.hpp. main() only wires:
// CLI -> socket -> shared memory -> server -> loop. Runs in the foreground until SIGINT or
// SIGTERM, then removes its socket. Prints "listening on PATH" on stdout once it accepts.
// Exit codes: 0 after a signal or --help, 1 on a runtime failure, 2 for a bad command line.

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <tl/expected.hpp>

#include "ivshmem_server.hpp"
#include "shm.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/os/unix_socket.hpp"

namespace {

using namespace vepf;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr std::uint64_t kMinSize = 4096;                    // one page: mmap granularity
constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 40;  // 1 TiB: a typo guard
constexpr const char* kProg = "vepf-ivshmem-server";

struct Options {
  std::string socket;
  std::string shm_path;
  std::string size = "4194304";
  std::string vectors = "2";
  std::string log_level = "info";
  bool foreground = false;  // the only mode; accepted so command lines can say so
};

struct Config {
  std::string socket;
  std::string shm_path;
  std::uint64_t size = 0;
  unsigned vectors = 0;
  spdlog::level::level_enum level = spdlog::level::info;
};

std::optional<std::uint64_t> parse_u64(const std::string& s) {
  std::uint64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || p != end) return std::nullopt;
  return v;
}

/// Checks the values CLI11 took as strings. Returns the one-line complaint on bad input.
tl::expected<Config, std::string> validate(const Options& o) {
  Config c;
  c.socket = o.socket;
  if (o.socket.empty() || o.socket.size() >= sizeof(sockaddr_un::sun_path)) {
    return tl::unexpected(fmt::format("--socket '{}': give a path of 1..{} bytes", o.socket,
                                      sizeof(sockaddr_un::sun_path) - 1));
  }
  c.shm_path = o.shm_path;
  const std::uint64_t size = parse_u64(o.size).value_or(0);
  if (size < kMinSize || size > kMaxSize || (size & (size - 1)) != 0) {
    return tl::unexpected(
        fmt::format("--size {}: give a power of 2 from {} to {} bytes, e.g. --size 4194304", o.size,
                    kMinSize, kMaxSize));
  }
  c.size = size;
  const std::uint64_t vectors = parse_u64(o.vectors).value_or(0);
  if (vectors < 1 || vectors > ivshmem::kMaxVectors) {
    return tl::unexpected(
        fmt::format("--vectors {}: give 1..{} (the vectors= of -device ivshmem-doorbell)",
                    o.vectors, ivshmem::kMaxVectors));
  }
  c.vectors = static_cast<unsigned>(vectors);
  c.level = spdlog::level::from_str(o.log_level);
  if (c.level == spdlog::level::off && o.log_level != "off") {
    return tl::unexpected(
        fmt::format("--log-level {}: give trace, debug, info, warn, error or off", o.log_level));
  }
  return c;
}

std::string describe(const Error& e) {
  return e.sys_errno != 0 ? fmt::format("{}: {}", e.what, std::strerror(e.sys_errno))
                          : std::string(e.what);
}

/// Removes the socket file if it is still the one we bound (not one a later server made).
void remove_socket(const std::string& path, const struct stat& ours) {
  struct stat now {};
  if (::lstat(path.c_str(), &now) == 0 && now.st_dev == ours.st_dev && now.st_ino == ours.st_ino)
    ::unlink(path.c_str());
}

int run(const Config& c) {
  auto log = std::make_shared<spdlog::logger>(
      "ivshmem", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  log->set_level(c.level);
  log->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  spdlog::register_logger(log);

  // Signals first (no thread exists yet), then the socket before anything slow: scripts start
  // QEMU as soon as the socket file exists, and QEMU waits in the backlog until we accept.
  auto sfd = os::block_and_signalfd({SIGINT, SIGTERM});
  if (!sfd) {
    log->error("cannot block SIGINT/SIGTERM: {}", describe(sfd.error()));
    return kExitFailure;
  }
  std::signal(SIGPIPE, SIG_IGN);
  auto listener = os::listen_stream(c.socket);
  if (!listener) {
    log->error("cannot listen on {}: {}", c.socket, describe(listener.error()));
    return kExitFailure;
  }
  struct stat ours {};
  if (::lstat(c.socket.c_str(), &ours) < 0) {
    log->error("cannot stat {}: {}", c.socket, std::strerror(errno));
    return kExitFailure;
  }
  auto shm = ivshmem::create_shared_memory(c.shm_path, c.size);
  if (!shm) {
    log->error("cannot create the shared memory{}{}: {}", c.shm_path.empty() ? "" : " ", c.shm_path,
               describe(shm.error()));
    remove_socket(c.socket, ours);
    return kExitFailure;
  }
  auto loop = os::EventLoop::create();
  if (!loop) {
    log->error("cannot create the event loop: {}", describe(loop.error()));
    remove_socket(c.socket, ours);
    return kExitFailure;
  }
  int rc = kExitOk;
  {
    ivshmem::IvshmemServer server(*loop, std::move(*listener), std::move(*shm), c.vectors);
    auto started = server.start();
    auto sig = loop->add(sfd->get(), EPOLLIN, [&](std::uint32_t) {
      auto s = os::read_signal(sfd->get());
      if (s && *s != 0) {
        log->info("{}: shutting down", strsignal(*s));
        loop->stop();
      }
    });
    if (!started || !sig) {
      log->error("cannot start: {}", describe(!started ? started.error() : sig.error()));
      rc = kExitFailure;
    } else {
      log->info("{} bytes of shared memory{}{}, {} vectors per client", c.size,
                c.shm_path.empty() ? " (memfd)" : " in ", c.shm_path, c.vectors);
      std::printf("listening on %s\n", c.socket.c_str());
      std::fflush(stdout);
      if (auto r = loop->run(); !r) {
        log->error("event loop failed: {}", describe(r.error()));
        rc = kExitFailure;
      }
    }
    loop->remove(sfd->get());
  }
  remove_socket(c.socket, ours);
  return rc;
}

int parse_and_run(int argc, char** argv) {
  CLI::App cli{
      "vepf-ivshmem-server: the ivshmem server for QEMU's ivshmem-doorbell device "
      "(protocol: QEMU docs/specs/ivshmem-spec.rst)",
      kProg};
  Options o;
  cli.add_option("--socket", o.socket, "Unix socket to listen on (QEMU: -chardev socket,path=PATH)")
      ->type_name("PATH")
      ->required();
  cli.add_option("--shm-path", o.shm_path,
                 "Shared memory as this file (created or truncated, zeroed; e.g. under /dev/shm); "
                 "default: an anonymous memfd")
      ->type_name("PATH");
  cli.add_option("--size", o.size, "Shared memory bytes, a power of 2 (4096..2^40)")
      ->type_name("BYTES")
      ->capture_default_str();
  cli.add_option("--vectors", o.vectors, "Interrupt vectors (eventfds) per client, 1..64")
      ->type_name("N")
      ->capture_default_str();
  cli.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")
      ->type_name("LEVEL")
      ->capture_default_str();
  cli.add_flag("--foreground", o.foreground,
               "Run in the foreground (the only mode; never daemonizes)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    std::fprintf(stderr, "%s: %s; see --help\n", kProg, e.what());
    return kExitUsage;
  }
  auto c = validate(o);
  if (!c) {
    std::fprintf(stderr, "%s: %s\n", kProg, c.error().c_str());
    return kExitUsage;
  }
  return run(*c);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& e) {  // CLI11 set-up, spdlog, the allocator
    std::fprintf(stderr, "%s: %s\n", kProg, e.what());
    return kExitFailure;
  }
}
