#pragma once
// A test playing the driver: support/driver_queue_core.hpp's make_driver_queue() with the
// failure recorded in GoogleTest.

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

#include "support/driver_queue_core.hpp"

namespace vepf::test {

/// As make_driver_queue(); empty, with a GoogleTest failure recorded, when the windows are full
/// or the device refused the queue.
inline std::optional<ring::VringParams> enable_driver_queue(transport::DriverTransport& drv,
                                                            LinkWindows& w, std::uint32_t slot,
                                                            std::uint16_t index,
                                                            std::uint16_t num) {
  auto p = make_driver_queue(drv, w, slot, index, num);
  if (!p) {
    ADD_FAILURE() << p.error();
    return std::nullopt;
  }
  return *p;
}

}  // namespace vepf::test
