#pragma once
// What every virtio device of vepf-ep (net, rpmsg, console, block) offers besides the
// transport's VirtioDevice: work left over, a clean shutdown, and its description and
// statistics for `vepf-ep ctl list` and the SIGUSR1/exit report. ep::Server (server/server.hpp)
// holds devices only through this interface.

#include <cstdint>

#include <spdlog/common.h>
#include <nlohmann/json.hpp>

#include "vepf/log/limit.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

class Device : public transport::VirtioDevice {
 public:
  /// Units moved in each direction (frames, messages, requests), for the link report.
  struct Counts {
    std::uint64_t to_driver = 0;
    std::uint64_t from_driver = 0;
  };

  /// "net", "rpmsg", "console", "block": the board config's spelling.
  virtual const char* type_name() const = 0;
  /// A budget ran out with work left: poll the transport again before sleeping.
  virtual bool backlog() const { return false; }
  /// The program is exiting: tell the driver what it should see (e.g. link down).
  virtual void shutdown() {}
  /// Adds this device's fields (backend, statistics) to its `ctl list` entry.
  virtual void describe(nlohmann::json& out) const = 0;
  virtual Counts counts() const = 0;
  /// Logs this device's statistics at `lvl`.
  virtual void report(std::uint32_t slot, spdlog::level::level_enum lvl) const = 0;

 protected:
  /// Every message the driver can trigger goes through this (log::limited): a broken or
  /// hostile driver must not flood the log.
  mutable log::Limit peer_log_;
  /// The same for what a local client of the device's sockets can trigger (refusals).
  mutable log::Limit client_log_;
};

}  // namespace vepf::ep
