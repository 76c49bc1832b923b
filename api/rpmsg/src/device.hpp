#pragma once
// What a struct rpmsg_device of the C API (vepf/rpmsg.h) is: the application's endpoints
// (rpmsg::Endpoints, which outlive re-probes) and the side that runs the link under them (the EP
// server on the device side, the host bus on the driver side).

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "vepf/config/board_config.hpp"
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

/// The sides. `cfg` is owned by the device from here on. Errors: set_error() and null.
std::unique_ptr<rpmsg_device> open_device_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind);
std::unique_ptr<rpmsg_device> open_driver_side(std::unique_ptr<config::BoardConfig> cfg,
                                               std::uint32_t index, rpmsg_ns_bind_cb bind);

}  // namespace vepf::rpmsg_api
