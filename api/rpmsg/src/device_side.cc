// The device side of the C API: the EP server of the board config, with the chosen rpmsg
// device routed to the application's endpoints.
#include <memory>
#include <optional>
#include <string>

#include "device.hpp"
#include "server/server.hpp"
#include "vepf/platform/links.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::rpmsg_api {
namespace {

class DeviceSide final : public Side {
 public:
  using Side::Side;
  ~DeviceSide() override {
    if (server_) server_->stop();
  }
  DeviceSide(const DeviceSide&) = delete;
  DeviceSide& operator=(const DeviceSide&) = delete;

 private:
  bool start() override {
    auto link = platform::open_ep_link(*cfg_, vfio::find_function);
    if (!link) {
      set_error(link.error());
      return false;
    }
    ep::Server::Options o;
    o.rpmsg_router = [this](std::uint32_t i) { return router_for(i); };
    server_.emplace(*cfg_, std::move(*link), loop_, o);
    if (auto r = server_->start(); !r) {
      set_error(std::string("the EP server did not start: ") + r.error().what +
                " (the log says more)");
      return false;
    }
    return true;
  }
  bool run(int timeout_ms) override { return server_->run_once(timeout_ms).has_value(); }

  std::optional<ep::Server> server_;  // last: it goes first
};

}  // namespace

std::unique_ptr<rpmsg_device> open_device_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind) {
  return open_side<DeviceSide>(std::move(cfg), index, bind);
}

}  // namespace vepf::rpmsg_api
