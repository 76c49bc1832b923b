// The driver side of the C API: the host bus of the board config, with the chosen rpmsg
// device routed to the application's endpoints.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "bus/bus.hpp"
#include "device.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::rpmsg_api {
namespace {

/// How long opening (and, after the EP went, a turn) waits for the EP: vepf-host's default.
constexpr std::chrono::milliseconds kConnectTimeout{30000};

class DriverSide final : public Side {
 public:
  using Side::Side;
  ~DriverSide() override {
    if (!bus_) return;
    bus_->stop();
    while (bus_->step(0)) {
    }
  }
  DriverSide(const DriverSide&) = delete;
  DriverSide& operator=(const DriverSide&) = delete;

 private:
  bool start() override {
    host::Bus::Options o;
    o.connect_timeout = kConnectTimeout;
    o.rpmsg_router = [this](std::uint32_t slot) { return router_for(slot); };
    bus_.emplace(*cfg_, platform::make_host_link_source(*cfg_, vfio::find_function), loop_, o);
    // Attached (a session), or given up: the first connect waits up to kConnectTimeout, and
    // attaches that fail are tried again (the bus's back-off) until then too.
    const auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
    while (bus_->state() != host::Bus::State::kSession) {
      if (!bus_->step(50) || std::chrono::steady_clock::now() >= deadline) {
        set_error("the EP of " + cfg_->name + " could not be reached (the log says why)");
        return false;
      }
    }
    return true;
  }
  bool run(int timeout_ms) override { return bus_->step(timeout_ms); }

  std::optional<host::Bus> bus_;  // last: it goes first
};

}  // namespace

std::unique_ptr<rpmsg_device> open_driver_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind) {
  return open_side<DriverSide>(std::move(cfg), index, bind);
}

}  // namespace vepf::rpmsg_api
