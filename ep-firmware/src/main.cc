// vepf-ep: the EP side. Serves the virtio-pci-epf control region in the EP window and runs the
// virtio devices the board config names. main() only wires: CLI -> config -> objects -> loop.

#include <linux/virtio_config.h>
#include <sys/epoll.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "devices/net/net_device.hpp"
#include "vepf/app/app.hpp"
#include "vepf/app/cli.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/signals.hpp"
#include "vepf/platform/loopback.hpp"
#include "vepf/transport/device_transport.hpp"

namespace {

using namespace vepf;

struct Options {
  app::CommonOptions common;
};

std::uint32_t new_epoch() {
  std::random_device rd;
  std::uint32_t e = 0;
  while (e == 0) e = rd();
  return e;
}

class EpProgram {
 public:
  EpProgram(const config::BoardConfig& cfg, os::EventLoop& loop) : cfg_(cfg), loop_(loop), report_("vepf-ep") {}

  int run(int sfd);

 private:
  Result<void> setup();
  void on_peer();
  void on_poll();
  void print_report(spdlog::level::level_enum lvl);

  const config::BoardConfig& cfg_;
  os::EventLoop& loop_;
  // Destroyed in reverse: the transport resets its devices, which need the link.
  std::unique_ptr<platform::LoopbackEp> link_;
  std::vector<std::unique_ptr<ep::NetDevice>> nets_;
  std::unique_ptr<transport::DeviceTransport> transport_;
  app::LinkReport report_;
  bool quit_ = false;
};

Result<void> EpProgram::setup() {
  auto log = spdlog::get("ep");
  auto link = platform::LoopbackEp::create(cfg_.loopback.socket, cfg_.link.ep_window_size);
  if (!link) return tl::unexpected(link.error());
  link_ = std::move(*link);
  transport_ = std::make_unique<transport::DeviceTransport>(*link_, new_epoch());
  if (auto r = transport_->init(); !r) return r;
  for (std::size_t i = 0; i < cfg_.devices.size(); ++i) {
    const auto& d = cfg_.devices[i];
    // The EP's interface is the far end of the link: a MAC of its own, stable across restarts
    // (the device MAC with the last octet's lowest bit flipped) so the host's neighbour entry
    // stays valid when the EP firmware restarts.
    std::array<std::uint8_t, 6> ep_mac = d.net.mac;
    ep_mac[5] ^= 0x01;
    auto backend = netback::make_backend(d.ep, {d.net.mtu, &ep_mac});
    if (!backend) {
      log->error("device[{}]: cannot set up backend {} {}: {} ({})", i, config::to_string(d.ep.kind),
                 d.ep.kind == config::BackendKind::kTap ? d.ep.ifname : d.ep.path, backend.error().what,
                 std::strerror(backend.error().sys_errno));
      return tl::unexpected(backend.error());
    }
    auto net = std::make_unique<ep::NetDevice>(std::move(*backend), d.net, d.queue_size);
    if (auto r = net->start(loop_); !r) return r;
    auto slot = transport_->add_device(net.get());
    if (!slot) return tl::unexpected(slot.error());
    log->info("device[{}]: virtio-net in slot {} on {}, queue size {}, mtu {}", i, *slot, net->backend().name(),
              d.queue_size, d.net.mtu);
    nets_.push_back(std::move(net));
  }
  if (auto r = loop_.add(link_->listen_fd(), EPOLLIN, [this](std::uint32_t) { on_peer(); }); !r) return r;
  if (auto r = loop_.add(link_->doorbell_fd(), EPOLLIN, [this](std::uint32_t) {
        (void)link_->drain_doorbell();
        on_poll();
      });
      !r) {
    return r;
  }
  // Requests whose doorbell was lost, and the polled mode of platforms without a doorbell IRQ.
  if (auto r = loop_.add_timer(std::chrono::milliseconds(10), [this] { on_poll(); }); !r) return tl::unexpected(r.error());
  log->info("EP window {} KiB at {}; waiting for the host (epoch {:#010x})", cfg_.link.ep_window_size >> 10,
            cfg_.loopback.socket, transport_->epoch());
  return {};
}

void EpProgram::on_peer() {
  auto log = spdlog::get("ep");
  if (auto r = link_->accept_peer(); !r) {
    log->warn("host connection refused: {}", r.error().what);
    return;
  }
  log->info("host connected");
  const int fd = link_->peer_fd();
  (void)loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this, fd, log](std::uint32_t) {
    log->info("host went away: resetting devices");
    loop_.remove(fd);
    transport_->link_down();
    link_->drop_peer();
  });
}

void EpProgram::on_poll() {
  transport_->poll();
  if (!report_.link_up_marked()) {
    for (std::uint32_t s = 0; s < nets_.size(); ++s) {
      if (transport_->status(s) & VIRTIO_CONFIG_S_DRIVER_OK) report_.mark_link_up(link_->counters());
    }
  }
}

void EpProgram::print_report(spdlog::level::level_enum lvl) {
  std::uint64_t tx = 0, rx = 0;
  for (const auto& n : nets_) {
    const auto& s = n->stats();
    // From this side: frames sent to the driver (receiveq) and received from it (transmitq).
    tx += s.rx_frames;
    rx += s.tx_frames;
    spdlog::get("ep.net")->log(lvl, "{}: to driver {} frames {} B (dropped {}), from driver {} frames {} B (errors {})",
                               n->backend().name(), s.rx_frames, s.rx_bytes, s.rx_dropped, s.tx_frames, s.tx_bytes,
                               s.tx_errors);
  }
  spdlog::get("ep")->log(lvl, "{}", report_.format(link_->counters(), tx, rx));
}

int EpProgram::run(int sfd) {
  if (auto r = setup(); !r) {
    spdlog::get("ep")->error("setup failed: {} ({}{})", r.error().what, errc_name(r.error().code),
                             r.error().sys_errno ? std::string(": ") + std::strerror(r.error().sys_errno) : "");
    return app::kExitFailure;
  }
  (void)loop_.add(sfd, EPOLLIN, [this, sfd](std::uint32_t) {
    while (auto sig = os::read_signal(sfd)) {
      if (*sig == 0) break;
      if (*sig == SIGUSR1) {
        print_report(spdlog::level::info);
      } else {
        spdlog::get("ep")->info("signal {}: shutting down", *sig);
        quit_ = true;
      }
    }
  });
  while (!quit_) {
    const bool backlog = std::any_of(nets_.begin(), nets_.end(), [](const auto& n) { return n->backlog(); });
    if (backlog) transport_->poll();
    if (auto r = loop_.run_once(backlog ? 0 : 1000); !r) {
      spdlog::get("ep")->error("event loop: {}", r.error().what);
      return app::kExitFailure;
    }
  }
  for (auto& n : nets_) n->shutdown();  // the driver sees link down before the link goes
  print_report(spdlog::level::info);
  return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "vepf-ep: the PCIe endpoint side of virtio-epf. Serves virtio devices (net) behind the\n"
      "virtio-pci-epf register layout in the EP window, for vepf-host on the root complex.\n"
      "Example: vepf-ep --board board-configs/loopback.toml\n"
      "Signals: SIGUSR1 prints the link-model counters; SIGINT/SIGTERM stop cleanly.",
      "vepf-ep"};
  vepf::app::add_common_options(cli, o.common);
  auto cfg = vepf::app::parse_and_load(cli, argc, argv, o.common, {"ep", "ep.net"});
  if (!cfg) return cfg.error();
  auto rt = vepf::app::make_runtime();
  if (!rt) {
    std::fprintf(stderr, "vepf-ep: cannot set up the event loop: %s\n", std::strerror(rt.error().sys_errno));
    return vepf::app::kExitFailure;
  }
  EpProgram p(*cfg, rt->loop);
  return p.run(rt->signals.get());
}
