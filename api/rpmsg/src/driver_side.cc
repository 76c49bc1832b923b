// The driver side of the C API: the host bus of the board config, with the chosen rpmsg
// device routed to the application's endpoints.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "bus/bus.hpp"
#include "device.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::rpmsg_api {
namespace {

/// How long opening (and, after the EP went, a turn) waits for the EP: vepf-host's default.
constexpr std::chrono::milliseconds kConnectTimeout{30000};

class DriverSide final : public rpmsg_device {
 public:
  DriverSide(std::unique_ptr<config::BoardConfig> cfg, std::uint32_t index, rpmsg_ns_bind_cb bind)
      : rpmsg_device(bind), cfg_(std::move(cfg)), index_(index) {}
  ~DriverSide() override {
    if (!bus_) return;
    bus_->stop();
    while (bus_->step(0)) {
    }
  }
  DriverSide(const DriverSide&) = delete;
  DriverSide& operator=(const DriverSide&) = delete;

  bool open() {
    auto loop = os::EventLoop::create();
    if (!loop) {
      set_error(std::string("cannot create an event loop: ") + loop.error().what);
      return false;
    }
    loop_ = std::move(*loop);
    host::Bus::Options o;
    o.connect_timeout = kConnectTimeout;
    o.rpmsg_router = [this](std::uint32_t slot) -> rpmsg::RouterFactory {
      return slot == index_ ? endpoints.attachment() : nullptr;
    };
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

  int fd() const override { return loop_.fd(); }

 private:
  bool run(int timeout_ms) override { return bus_->step(timeout_ms); }

  std::unique_ptr<config::BoardConfig> cfg_;
  std::uint32_t index_;
  os::EventLoop loop_;
  std::optional<host::Bus> bus_;  // last: it goes first
};

}  // namespace

std::unique_ptr<rpmsg_device> open_driver_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind) {
  auto d = std::make_unique<DriverSide>(std::move(cfg), index, bind);
  if (!d->open()) return nullptr;
  return d;
}

}  // namespace vepf::rpmsg_api
