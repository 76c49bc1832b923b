// vepf-host: the RC side. Attaches to the EP's virtio-pci-epf layout, drives every device in its
// device table, and hands each to the host OS (net: a TAP interface). Survives an EP restart:
// when the link goes down it waits for the EP to come back. main() only wires: CLI -> config ->
// a host::Bus (bus/bus.hpp) over the board's link -> its run().

#include <sys/epoll.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "bus/bus.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"
#include "vepf/app/control_server.hpp"
#include "vepf/app/status.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

namespace {

struct Options {
  vepf::app::CommonOptions common;
  std::string ctl_socket;  // --ctl-socket; default: host::control_socket_path()
  bool json = false;       // status --json
  unsigned connect_timeout_ms = 30000;
  bool once = false;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "vepf-host: the root-complex side of virtio-epf. Attaches to the EP's virtio-pci-epf layout\n"
      "and drives its virtio devices; each virtio-net device becomes a TAP interface with the\n"
      "device's MAC and MTU; each virtio-rpmsg device's channels become unix sockets; each\n"
      "virtio-console port a pty (linked in the device's host_dir); each virtio-blk device an NBD "
      "export.\n"
      "Example: vepf-host --board board-configs/loopback.toml\n"
      "While it runs, `vepf-host status --board FILE [--json]` shows its devices.\n"
      "Signals: SIGUSR1 prints the link-model counters; SIGINT/SIGTERM stop cleanly.",
      "vepf-host"};
  vepf::app::add_common_options(cli, o.common);
  cli.add_option("--connect-timeout-ms", o.connect_timeout_ms,
                 "How long to wait for the EP to appear")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600000u));
  cli.add_flag("--once", o.once,
               "Exit (status 1) when the link goes down instead of waiting for the EP");
  cli.add_option("--ctl-socket", o.ctl_socket,
                 "Control socket path (default: the [loopback] socket + \".host.ctl\", or "
                 "/run/vepf/vepf-host.ctl on PCI platforms)");
  cli.fallthrough();  // `vepf-host status --board FILE` takes the main options after it
  auto* status = cli.add_subcommand(
      "status",
      "Print what a running vepf-host is doing: the link, the link-model counters, each device's "
      "negotiated features, queues and counters");
  status->add_flag("--json", o.json, "The same as one JSON document, for scripts");
  auto cfg = vepf::app::parse_and_load(
      cli, argc, argv, o.common, {"host", "host.net", "host.rpmsg", "host.blk", "host.console"});
  if (!cfg) return cfg.error();
  const std::string ctl_path = vepf::host::control_socket_path(*cfg, o.ctl_socket);
  if (status->parsed()) return vepf::app::print_status("vepf-host", ctl_path, o.json);
  if (const int rc =
          vepf::app::apply_affinity("vepf-host", "affinity.host", cfg->affinity.host, "host");
      rc != 0) {
    return rc;
  }
  auto rt = vepf::app::make_runtime();
  if (!rt) {
    std::fprintf(stderr, "vepf-host: cannot set up the event loop: %s\n",
                 std::strerror(rt.error().sys_errno));
    return vepf::app::kExitFailure;
  }
  vepf::host::Bus::Options bo;
  bo.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  bo.once = o.once;
  std::string ctl_error;  // set below when the control socket cannot be opened
  bo.on_session = [&ctl_error, &ctl_path] {
    if (ctl_error.empty()) return;
    spdlog::get("host")->warn(
        "no control socket at {}: {}; `vepf-host status` cannot reach this vepf-host (name another "
        "path with --ctl-socket)",
        ctl_path, ctl_error);
    ctl_error.clear();
  };
  vepf::host::Bus bus(*cfg, vepf::platform::make_host_link_source(*cfg, vepf::vfio::find_function),
                      rt->loop, bo);
  // `vepf-host status`: served from the loop, in every state of the bus (it runs the loop while
  // it waits for the EP too). Without the socket the devices still work, and only status cannot
  // reach this vepf-host (an unprivileged user cannot bind in /run/vepf): said once the link is
  // up, so that a link that cannot be opened stays a one-line error.
  auto policy = vepf::app::control_policy(cfg->control);
  if (!policy) {
    std::fprintf(stderr, "vepf-host: %s\n", policy.error().c_str());
    return vepf::app::kExitUsage;
  }
  auto ctl = vepf::app::ControlServer::listen(
      ctl_path, rt->loop, [&bus](std::string_view r) { return bus.handle_control(r); }, *policy);
  if (!ctl) {
    ctl_error = std::string(ctl.error().what) +
                (ctl.error().sys_errno ? std::string(": ") + std::strerror(ctl.error().sys_errno)
                                       : std::string());
  }
  const int sfd = rt->signals.get();
  (void)rt->loop.add(sfd, EPOLLIN, [&bus, sfd](std::uint32_t) {
    while (auto sig = vepf::os::read_signal(sfd)) {
      if (*sig == 0) break;
      if (*sig == SIGUSR1) {
        bus.print_report(spdlog::level::info);
      } else {
        spdlog::get("host")->info("signal {}: shutting down", *sig);
        bus.stop();
      }
    }
  });
  const int rc = bus.run();
  rt->loop.remove(sfd);
  return rc;
}
