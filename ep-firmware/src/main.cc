// vepf-ep: the EP side. Serves the virtio-pci-epf control region in the EP window and runs the
// virtio devices the board config names; devices can be added and removed while the link is up
// through the control socket (`vepf-ep ctl`). main() only wires: CLI -> config -> the link ->
// an ep::Server (server/server.hpp) -> its loop.

#include <sys/epoll.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "server/server.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"
#include "vepf/app/control_server.hpp"
#include "vepf/app/status.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/platform/links.hpp"

namespace {

using namespace vepf;
using nlohmann::json;

struct Options {
  app::CommonOptions common;
  std::string ctl_socket;               // --ctl-socket; default: the link socket + ".ctl"
  std::vector<std::string> ctl_device;  // ctl add: TOML lines of a [[device]] table
  std::uint32_t ctl_slot = 0;           // ctl remove
  bool json = false;                    // status --json
};

/// vendor:device lookup for the vfio platform: libpci, except in the static build (Debian ships
/// no libpci.a), which takes the function by its address only.
tl::expected<vfio::PciAddress, std::string> find_ep_function(const vfio::PciMatch& m) {
#ifdef VEPF_HAVE_LIBPCI
  return vfio::find_function(m);
#else
  return tl::unexpected(
      "this vepf-ep is built without libpci (the static build): name the function " + m.str() +
      " by its PCI address in ep.device, e.g. \"0000:01:00.0\"");
#endif
}

/// Runs the server until SIGINT/SIGTERM; SIGUSR1 prints the report.
int serve(const config::BoardConfig& cfg, const Options& o, app::Runtime& rt) {
  auto link = platform::open_ep_link(cfg, find_ep_function);
  if (!link) {
    spdlog::get("ep")->error("{}", link.error());
    return app::kExitFailure;
  }
  ep::Server::Options so;
  so.control_socket = ep::control_socket_path(cfg, o.ctl_socket);
  ep::Server server(cfg, std::move(*link), rt.loop, so);
  if (auto r = server.start(); !r) {
    spdlog::get("ep")->error(
        "setup failed: {} ({}{})", r.error().what, errc_name(r.error().code),
        r.error().sys_errno ? std::string(": ") + std::strerror(r.error().sys_errno) : "");
    return app::kExitFailure;
  }
  bool quit = false;
  const int sfd = rt.signals.get();
  (void)rt.loop.add(sfd, EPOLLIN, [&](std::uint32_t) {
    while (auto sig = os::read_signal(sfd)) {
      if (*sig == 0) break;
      if (*sig == SIGUSR1) {
        server.print_report(spdlog::level::info);
      } else {
        spdlog::get("ep")->info("signal {}: shutting down", *sig);
        quit = true;
      }
    }
  });
  int rc = app::kExitOk;
  while (!quit) {
    if (auto r = server.run_once(1000); !r) {
      spdlog::get("ep")->error("event loop: {}", r.error().what);
      rc = app::kExitFailure;
      break;
    }
  }
  rt.loop.remove(sfd);
  server.stop();
  server.print_report(spdlog::level::info);
  return rc;
}

/// `vepf-ep ctl ...`: one request to a running vepf-ep, its reply printed. Exit 0 when the
/// reply says ok, 2 when vepf-ep refused the request (bad device spec, no such slot), 1 when
/// vepf-ep could not be reached.
int run_ctl(const config::BoardConfig& cfg, const Options& o, const std::string& op) {
  json req{{"op", op}};
  if (op == "add") {
    std::string toml;
    for (const auto& line : o.ctl_device) toml += line + "\n";
    req["device"] = toml;
  } else if (op == "remove") {
    req["slot"] = o.ctl_slot;
  }
  const std::string path = ep::control_socket_path(cfg, o.ctl_socket);
  auto reply = app::control_request(path, req.dump());
  if (!reply) {
    std::fprintf(
        stderr,
        "vepf-ep ctl: cannot reach vepf-ep at %s: %s%s%s; is it running with this board config?\n",
        path.c_str(), reply.error().what, reply.error().sys_errno ? ": " : "",
        reply.error().sys_errno ? std::strerror(reply.error().sys_errno) : "");
    return app::kExitFailure;
  }
  const json r = json::parse(*reply, nullptr, false);
  if (!r.is_object() || !r.value("ok", false)) {
    std::fprintf(stderr, "vepf-ep ctl %s: %s\n", op.c_str(),
                 r.is_object() ? r.value("error", std::string("malformed reply")).c_str()
                               : "malformed reply");
    return app::kExitUsage;
  }
  std::printf("%s\n", r.dump(2).c_str());
  return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "vepf-ep: the PCIe endpoint side of virtio-epf. Serves virtio devices (net, rpmsg, console, "
      "block) behind the\n"
      "virtio-pci-epf register layout in the EP window, for vepf-host on the root complex.\n"
      "Example: vepf-ep --board board-configs/loopback.toml\n"
      "Signals: SIGUSR1 prints the link-model counters; SIGINT/SIGTERM stop cleanly.\n"
      "While it runs, `vepf-ep ctl --board FILE list|add|remove` changes its devices and\n"
      "`vepf-ep status --board FILE [--json]` shows them.",
      "vepf-ep"};
  vepf::app::add_common_options(cli, o.common);
  cli.add_option("--ctl-socket", o.ctl_socket,
                 "Control socket path (default: the [loopback] socket + \".ctl\", or "
                 "/run/vepf/vepf-ep.ctl on PCI platforms)");
  cli.fallthrough();
  cli.add_flag("--configfs-env", o.common.configfs_env,
               "With --check-config: print what scripts/ep-configfs.sh writes into configfs "
               "(shell assignments) instead of the description");
  auto* ctl = cli.add_subcommand("ctl", "Talk to a running vepf-ep: list, add or remove devices");
  ctl->require_subcommand(1);
  ctl->add_subcommand("list", "Print the device table as JSON");
  auto* add = ctl->add_subcommand(
      "add",
      "Add a device; give the keys of a [[device]] table as TOML lines, e.g.\n"
      "  vepf-ep ctl --board B add 'type = \"net\"' 'net = { mac = \"02:00:00:00:00:02\" }'");
  add->add_option("device", o.ctl_device, "TOML lines of the device")->required();
  auto* rm = ctl->add_subcommand("remove", "Remove the device in a slot");
  rm->add_option("slot", o.ctl_slot, "Slot number (see ctl list)")->required();
  auto* status = cli.add_subcommand(
      "status",
      "Print what a running vepf-ep is doing: the link, the link-model counters, each device's "
      "negotiated features, queues and counters");
  status->add_flag("--json", o.json, "The same as one JSON document, for scripts");
  auto cfg = vepf::app::parse_and_load(cli, argc, argv, o.common,
                                       {"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console"});
  if (!cfg) return cfg.error();
  if (status->parsed()) {
    return vepf::app::print_status("vepf-ep", ep::control_socket_path(*cfg, o.ctl_socket), o.json);
  }
  if (ctl->parsed()) {
    const std::string op = ctl->get_subcommands().front()->get_name();
    return run_ctl(*cfg, o, op);
  }
  if (const int rc = vepf::app::apply_affinity("vepf-ep", "affinity.ep", cfg->affinity.ep, "ep");
      rc != 0)
    return rc;
  auto rt = vepf::app::make_runtime();
  if (!rt) {
    std::fprintf(stderr, "vepf-ep: cannot set up the event loop: %s\n",
                 std::strerror(rt.error().sys_errno));
    return vepf::app::kExitFailure;
  }
  return serve(*cfg, o, *rt);
}
