#pragma once
// The VringTest fixture of the ring unit tests (vring_test.cc, vring_notify_test.cc): a RingPair
// over two windows placed as ARCHITECTURE.md §1 says, and the driver's and device's steps.

#include "vepf/ring/vring.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/error.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::test {

using ring::Buf;
using ring::Chain;

inline std::vector<std::byte> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<std::uint8_t>(seed + i * 7));
  return v;
}

class VringTest : public ::testing::Test {
 protected:
  RingPair& make(const RingOptions& o) { return q.emplace(w, o); }

  /// The driver fills a driver->device buffer (posted writes into the EP window).
  void driver_fill(std::size_t ep_off, std::span<const std::byte> data) {
    w.drv_ep.write(ep_off, data);
  }
  /// The driver reads a device->driver buffer (its own RC window).
  std::vector<std::byte> driver_read(std::size_t rc_off, std::size_t n) {
    std::vector<std::byte> v(n);
    w.drv_rc.read(rc_off, v);
    return v;
  }
  /// Pops exactly one chain; fails the test otherwise.
  Chain pop_one() {
    auto r = q->dev().pop();
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what);
    if (!r || !*r) {
      ADD_FAILURE() << "no chain available";
      return {};
    }
    return std::move(**r);
  }
  ring::Vring::Used used_one() {
    auto u = q->drv().get_used();
    EXPECT_TRUE(u.has_value()) << (u ? "" : u.error().what);
    if (!u || !*u) {
      ADD_FAILURE() << "no used entry";
      return {};
    }
    return **u;
  }

  LinkWindows w;
  std::optional<RingPair> q;
};

}  // namespace vepf::test
