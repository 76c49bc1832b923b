#pragma once
// The fixture of the transport tests: DeviceTransport served to DriverTransport over fake links
// (one thread), with the handshake steps and an echo through a queue.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>
#include "support/fake_device.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {

using namespace std::chrono_literals;
using layout::ControlRegion;
using layout::DeviceLine;
using layout::DeviceSlot;
using layout::EpfHeader;

inline constexpr std::uint8_t kAck = VIRTIO_CONFIG_S_ACKNOWLEDGE;
inline constexpr std::uint8_t kDriver = VIRTIO_CONFIG_S_DRIVER;
inline constexpr std::uint8_t kFeaturesOk = VIRTIO_CONFIG_S_FEATURES_OK;
inline constexpr std::uint8_t kDriverOk = VIRTIO_CONFIG_S_DRIVER_OK;
inline constexpr std::uint8_t kNeedsReset = VIRTIO_CONFIG_S_NEEDS_RESET;
inline constexpr std::uint64_t kVersion1 = std::uint64_t{1} << VIRTIO_F_VERSION_1;
inline constexpr std::uint64_t kEventIdx = std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX;
inline constexpr std::uint16_t kQueueSize = 16;

inline constexpr std::size_t hdr_off(std::size_t field) {
  return offsetof(ControlRegion, header) + field;
}
inline constexpr std::size_t dev_line_off(std::uint32_t slot, std::size_t field) {
  return layout::device_slot_off(slot) + offsetof(DeviceSlot, device) + field;
}
/// QueueDeviceLine.enabled of a queue block.
inline constexpr std::size_t queue_enabled_off(std::uint32_t slot, std::uint32_t q) {
  return layout::queue_block_off(slot, q) + offsetof(layout::QueueBlock, device) +
         offsetof(layout::QueueDeviceLine, enabled);
}

/// A driver-side queue: where its parts are, and the Vring over them.
struct DriverQueue {
  transport::Allocation desc, avail, used;
  std::optional<ring::Vring> vring;
};

class TransportTest : public ::testing::Test {
 protected:
  static inline constexpr std::uint32_t kEpoch = 0x5eed0001;
  static inline constexpr std::chrono::milliseconds kTimeout{20};

  TransportTest() : dl(w), drl(w, dl), dev(dl, kEpoch), drv(drl, kTimeout) { drl.set_device(&dev); }

  void SetUp() override {
    ASSERT_TRUE(dev.init());
    auto s = dev.add_device(&fdev);
    ASSERT_TRUE(s);
    slot = *s;
  }

  // ---- handshake steps (each asserts success)
  void attach() {
    auto r = drv.attach();
    ASSERT_TRUE(r) << r.error().what;
  }
  void scan() {
    auto r = drv.scan();
    ASSERT_TRUE(r) << r.error().what;
    for (const auto& d : *r) {
      if (d.slot == slot) {
        info = d;
        return;
      }
    }
    FAIL() << "slot " << slot << " not in the device table";
  }
  void negotiate(std::uint64_t wanted = kFakeFeatures) {
    auto r = drv.negotiate(slot, info.device_features, wanted);
    ASSERT_TRUE(r) << r.error().what;
    features = *r;
  }
  /// Allocates queue q's parts, sets up the Vring over them, and asks the device to enable it.
  Result<void> enable(std::uint16_t q, std::uint16_t size = kQueueSize) {
    DriverQueue& dq = queues[q];
    dq.desc = *drv.ep_alloc().alloc(layout::desc_table_size(size), layout::kDescAlign);
    dq.avail = *drv.ep_alloc().alloc(layout::avail_ring_size(size), layout::kAvailAlign);
    dq.used = *drv.rc_alloc().alloc(layout::used_ring_size(size), layout::kUsedAlign);
    ring::VringParams p;
    p.num = size;
    p.desc = ring::Segment{&w.drv_ep, dq.desc.off, static_cast<std::uint32_t>(dq.desc.len)};
    p.avail = ring::Segment{&w.drv_ep, dq.avail.off, static_cast<std::uint32_t>(dq.avail.len)};
    p.used = ring::Segment{&w.drv_rc, dq.used.off, static_cast<std::uint32_t>(dq.used.len)};
    p.event_idx = (features & kEventIdx) != 0;
    dq.vring.emplace(p);
    return drv.enable_queue(slot, q, size, dq.desc.link_addr, dq.avail.link_addr,
                            dq.used.link_addr);
  }
  void enable_both() {
    for (std::uint16_t q = 0; q < 2; ++q) {
      auto r = enable(q);
      ASSERT_TRUE(r) << "queue " << q << ": " << r.error().what;
    }
  }
  void driver_ok() {
    auto r = drv.driver_ok(slot);
    ASSERT_TRUE(r) << r.error().what;
  }
  void bring_up() {
    ASSERT_NO_FATAL_FAILURE(attach());
    ASSERT_NO_FATAL_FAILURE(scan());
    ASSERT_NO_FATAL_FAILURE(negotiate());
    ASSERT_NO_FATAL_FAILURE(enable_both());
    ASSERT_NO_FATAL_FAILURE(driver_ok());
  }

  /// One request through queue q: the device echoes `msg`. Returns the echoed bytes, or
  /// kNoCompletion when the device did not complete the request.
  static constexpr const char* kNoCompletion = "<no completion>";
  std::string echo(std::uint16_t q, const std::string& msg) {
    ring::Vring& v = *queues[q].vring;
    const auto out = drv.ep_alloc().alloc(msg.size(), 64);
    const auto in = drv.rc_alloc().alloc(64, 64);
    if (!out || !in) {
      ADD_FAILURE() << "window exhausted";
      return "<window exhausted>";
    }
    w.drv_ep.write(out->off, std::as_bytes(std::span{msg}));
    const ring::Buf ob{out->link_addr, static_cast<std::uint32_t>(msg.size())};
    const ring::Buf ib{in->link_addr, 64};
    const std::uint64_t token = ++tokens;
    if (!v.add({&ob, 1}, {&ib, 1}, token)) {
      ADD_FAILURE() << "add failed";
      return "<add failed>";
    }
    (void)v.kick_prepare();
    (void)drl.ring_doorbell();  // always: a spurious doorbell is harmless, and it polls the device
    auto u = v.get_used();
    if (!u) {
      ADD_FAILURE() << "get_used: " << u.error().what;
      return "<get_used failed>";
    }
    if (!*u) return kNoCompletion;
    EXPECT_EQ((*u)->token, token);
    std::string back((*u)->len, '\0');
    w.drv_rc.read(in->off, std::as_writable_bytes(std::span{back}));
    return back;
  }

  LinkWindows w;
  FakeDeviceLink dl;
  FakeDriverLink drl;
  FakeVirtioDevice fdev;  // outlives dev: dev's destructor resets it
  FakeVirtioDevice fdev2;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  std::uint32_t slot = 0;
  transport::DeviceInfo info;
  std::uint64_t features = 0;
  std::array<DriverQueue, 2> queues;
  std::uint64_t tokens = 0;
};

}  // namespace vepf::test
