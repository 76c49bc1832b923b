#pragma once
// Both transports over the fake links, wired as the programs wire them: the EP side's
// DeviceTransport and the RC side's DriverTransport on one pair of LinkWindows. What a test or a
// fuzz target that plays the driver of a real EP device starts from. Without GoogleTest (the
// fuzz targets use it too).
//
// Declare the device under test before the TransportPair: DeviceTransport's destructor resets
// the devices it holds, so they must outlive it. A device whose threads still read the windows
// after a reset (BlockDevice's I/O threads) needs windows that outlive it in turn: declare a
// LinkWindows first and let the TransportPair borrow it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <linux/virtio_config.h>

#include <tl/expected.hpp>

#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {

struct TransportPair {
  /// `epoch`: the device side's epoch; `ack_timeout`: how long the driver side waits for an
  /// acknowledgement; window sizes in bytes.
  explicit TransportPair(std::uint32_t epoch,
                         std::chrono::milliseconds ack_timeout = std::chrono::milliseconds(20),
                         std::size_t ep_size = kDefaultWindowSize,
                         std::size_t rc_size = kDefaultWindowSize)
      : own_(std::in_place, ep_size, rc_size),
        w(*own_),
        dl(w),
        drl(w, dl),
        dev(dl, epoch),
        drv(drl, ack_timeout) {
    drl.set_device(&dev);
  }
  /// As above, on windows the caller keeps (large ones made once for many fuzz inputs; the
  /// caller zeroes them as it needs).
  TransportPair(std::uint32_t epoch, std::chrono::milliseconds ack_timeout, LinkWindows& windows)
      : w(windows), dl(w), drl(w, dl), dev(dl, epoch), drv(drl, ack_timeout) {
    drl.set_device(&dev);
  }
  TransportPair(const TransportPair&) = delete;
  TransportPair& operator=(const TransportPair&) = delete;

  /// The device side's init(), then `d` added to its table: the slot. Errors: which step failed.
  tl::expected<std::uint32_t, std::string> add(transport::VirtioDevice& d) {
    if (auto r = dev.init(); !r) return tl::unexpected(std::string("init: ") + r.error().what);
    auto s = dev.add_device(&d);
    if (!s) return tl::unexpected(std::string("add_device: ") + s.error().what);
    return *s;
  }

  /// The driver scans the devices and negotiates VERSION_1 and `want` (of what the device in
  /// `slot` offers): the features agreed. Errors: which step failed.
  tl::expected<std::uint64_t, std::string> negotiate(std::uint32_t slot, std::uint64_t want) {
    auto devs = drv.scan();
    if (!devs) return tl::unexpected(std::string("scan: ") + devs.error().what);
    for (const auto& d : *devs) {
      if (d.slot != slot) continue;
      auto f =
          drv.negotiate(slot, d.device_features, (std::uint64_t{1} << VIRTIO_F_VERSION_1) | want);
      if (!f) return tl::unexpected(std::string("negotiate: ") + f.error().what);
      return *f;
    }
    return tl::unexpected("scan: no device in slot " + std::to_string(slot));
  }

 private:
  std::optional<LinkWindows> own_;  // the windows, unless borrowed

 public:
  LinkWindows& w;
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
};

}  // namespace vepf::test
