// vepf-ep and vepf-host in one process, from the installed libraries (pkg-config vepf-ep
// vepf-host): an ep::Server on one thread and a host::Bus on another, joined by the board
// config's link (the loopback platform: a socket and shared memory, as between the two programs).
// Waits until the bus has probed every device of the board config, prints what it found, stops
// both and exits 0; exits 1 when that does not happen within 20 s.
//
//   c++ in_process.cc $(pkg-config --cflags --libs vepf-ep vepf-host) -o in_process
//   ./in_process board.toml

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "bus/bus.hpp"
#include "server/server.hpp"
#include "vepf/app/app.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

int main(int argc, char** argv) {
  using namespace vepf;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s BOARD.toml\n", argv[0]);
    return 2;
  }
  auto cfg = config::load_board_config(argv[1]);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
    return 2;
  }
  app::setup_logging({"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console", "host", "host.net",
                      "host.rpmsg", "host.blk", "host.console"},
                     "warn");

  // The EP side: its own thread and event loop.
  auto ep_loop = os::EventLoop::create();
  auto link = platform::open_ep_link(*cfg, vfio::find_function);
  if (!ep_loop || !link) {
    std::fprintf(stderr, "EP: %s\n", link ? "cannot create an event loop" : link.error().c_str());
    return 1;
  }
  ep::Server server(*cfg, std::move(*link), *ep_loop, {});
  if (!server.start()) return 1;
  std::atomic<bool> stop_ep{false};
  std::thread ep([&] {
    while (!stop_ep) (void)server.run_once(50);
    server.stop();
  });

  // The host side, on this thread.
  auto host_loop = os::EventLoop::create();
  if (!host_loop) return 1;
  host::Bus::Options bo;
  bo.connect_timeout = std::chrono::milliseconds(5000);
  bo.once = true;
  host::Bus bus(*cfg, platform::make_host_link_source(*cfg, vfio::find_function), *host_loop, bo);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool all = false;
  while (!all && std::chrono::steady_clock::now() < deadline && bus.step(50)) {
    all = bus.driver_count() == cfg->devices.size();
  }
  if (all) {
    std::printf("attached to epoch %#010x; %zu device(s) probed:", bus.epoch(), bus.driver_count());
    for (std::uint32_t slot = 0; slot < cfg->devices.size(); ++slot) {
      std::printf(" %u:%s", slot, std::string(config::to_string(cfg->devices[slot].type)).c_str());
    }
    std::printf("\n");
  }
  bus.stop();
  while (bus.step(50)) {
  }
  stop_ep = true;
  ep.join();
  return all ? 0 : 1;
}
