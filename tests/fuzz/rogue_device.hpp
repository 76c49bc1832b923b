#pragma once
// What the rogue-device fuzz targets (net_driver_fuzz, blk_driver_fuzz, rpmsg_driver_fuzz) share:
// their loggers quiet, and the transports brought up around the rogue device as vepf-host's bus
// finds a real one (support/transport_pair.hpp).

#include <optional>

#include "fuzz_log.hpp"
#include "fuzz_support.hpp"
#include "support/transport_pair.hpp"

namespace vepf::fuzz {

/// The device side's init() with `rogue` in its table, the driver side attached: the one device
/// the driver's scan() finds, or nullopt when the scan fails (the rogue device's config, say).
inline std::optional<transport::DeviceInfo> attach_rogue(test::TransportPair& t,
                                                         transport::VirtioDevice& rogue) {
  FUZZ_CHECK(t.add(rogue).has_value());
  FUZZ_CHECK(t.drv.attach().has_value());
  auto devs = t.drv.scan();
  if (!devs || devs->size() != 1) return std::nullopt;
  return (*devs)[0];
}

}  // namespace vepf::fuzz
