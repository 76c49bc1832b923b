// The device side of the C API: the EP server of the board config, with the chosen rpmsg
// device routed to the application's endpoints.
#include <memory>
#include <optional>
#include <string>

#include "device.hpp"
#include "server/server.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::rpmsg_api {
namespace {

class DeviceSide final : public rpmsg_device {
 public:
  DeviceSide(std::unique_ptr<config::BoardConfig> cfg, std::uint32_t index, rpmsg_ns_bind_cb bind)
      : rpmsg_device(bind), cfg_(std::move(cfg)), index_(index) {}
  ~DeviceSide() override {
    if (server_) server_->stop();
  }
  DeviceSide(const DeviceSide&) = delete;
  DeviceSide& operator=(const DeviceSide&) = delete;

  bool open() {
    auto loop = os::EventLoop::create();
    if (!loop) {
      set_error(std::string("cannot create an event loop: ") + loop.error().what);
      return false;
    }
    loop_ = std::move(*loop);
    auto link = platform::open_ep_link(*cfg_, vfio::find_function);
    if (!link) {
      set_error(link.error());
      return false;
    }
    ep::Server::Options o;
    o.rpmsg_router = [this](std::uint32_t i) -> rpmsg::RouterFactory {
      return i == index_ ? endpoints.attachment() : nullptr;
    };
    server_.emplace(*cfg_, std::move(*link), loop_, o);
    if (auto r = server_->start(); !r) {
      set_error(std::string("the EP server did not start: ") + r.error().what +
                " (the log says more)");
      return false;
    }
    return true;
  }

  int fd() const override { return loop_.fd(); }

 private:
  bool run(int timeout_ms) override { return server_->run_once(timeout_ms).has_value(); }

  std::unique_ptr<config::BoardConfig> cfg_;
  std::uint32_t index_;
  os::EventLoop loop_;
  std::optional<ep::Server> server_;  // last: it goes first
};

}  // namespace

std::unique_ptr<rpmsg_device> open_device_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind) {
  auto d = std::make_unique<DeviceSide>(std::move(cfg), index, bind);
  if (!d->open()) return nullptr;
  return d;
}

}  // namespace vepf::rpmsg_api
