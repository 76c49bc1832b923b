#pragma once
// What a struct rpmsg_device of the C API (vepf/rpmsg.h) is: the application's endpoints
// (rpmsg::Endpoints, which outlive re-probes) and the side that runs the link under them (the EP
// server on the device side, the host bus on the driver side).

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "vepf/config/board_config.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/rpmsg.h"
#include "vepf/rpmsg/endpoints.hpp"

struct rpmsg_device {
  explicit rpmsg_device(rpmsg_ns_bind_cb bind);
  virtual ~rpmsg_device() = default;
  rpmsg_device(const rpmsg_device&) = delete;
  rpmsg_device& operator=(const rpmsg_device&) = delete;

  /// One turn of the side's event loop, waiting up to `timeout_ms`; callbacks run inside.
  /// Returns false once the device is gone for good.
  bool turn(int timeout_ms);
  virtual int fd() const = 0;

  vepf::rpmsg::Endpoints endpoints;                  // outlives the side (declared first)
  std::map<std::uint32_t, rpmsg_endpoint*> by_addr;  // the application's structs
  int in_turn = 0;                                   // > 0 while callbacks may run
  bool gone = false;

 private:
  virtual bool run(int timeout_ms) = 0;
  rpmsg_ns_bind_cb bind_;
};

namespace vepf::rpmsg_api {

/// Remembers why the current call failed (vepf_rpmsg_last_error()).
void set_error(std::string what);

/// What both sides keep: the board config, the index of the device taken, the event loop.
class Side : public rpmsg_device {
 public:
  Side(std::unique_ptr<config::BoardConfig> cfg, std::uint32_t index, rpmsg_ns_bind_cb bind)
      : rpmsg_device(bind), cfg_(std::move(cfg)), index_(index) {}
  int fd() const override { return loop_.fd(); }
  /// Creates the loop, then the side (its server or bus). Errors: set_error() and false.
  bool open();

 protected:
  /// The side's own set-up, with the loop made.
  virtual bool start() = 0;
  /// The Router factory for device `i`: the application's endpoints for the one taken.
  rpmsg::RouterFactory router_for(std::uint32_t i) {
    return i == index_ ? endpoints.attachment() : nullptr;
  }

  std::unique_ptr<config::BoardConfig> cfg_;
  std::uint32_t index_;
  os::EventLoop loop_;
};

/// Makes side T and opens it: null (and set_error()) on failure.
template <class T>
std::unique_ptr<rpmsg_device> open_side(std::unique_ptr<config::BoardConfig> cfg,
                                        std::uint32_t index, rpmsg_ns_bind_cb bind) {
  auto d = std::make_unique<T>(std::move(cfg), index, bind);
  if (!d->open()) return nullptr;
  return d;
}

/// The sides. `cfg` is owned by the device from here on. Errors: set_error() and null.
std::unique_ptr<rpmsg_device> open_device_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind);
std::unique_ptr<rpmsg_device> open_driver_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind);
/// Attached to the program that lends device `index` on the socket at `path` (rpmsg::Relay).
std::unique_ptr<rpmsg_device> attach_side(std::unique_ptr<config::BoardConfig> cfg,
                                          std::uint32_t index, rpmsg_ns_bind_cb bind,
                                          std::string path);

}  // namespace vepf::rpmsg_api
