#pragma once
// Test fixture: a small virtio device function for DeviceTransport. Device ID 1, two queues,
// VERSION_1 | EVENT_IDX | INDIRECT_DESC, 8 bytes of config. On a notification it echoes every
// chain's readable bytes into its writable bytes and completes it; a chain the peer broke makes
// it call DeviceHandle::queue_broken(), as a real device function must.

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vepf/layout/ring.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::test {

inline constexpr std::uint64_t kFakeFeatures = (std::uint64_t{1} << VIRTIO_F_VERSION_1) |
                                               (std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX) |
                                               (std::uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);

class FakeVirtioDevice final : public transport::VirtioDevice {
 public:
  static constexpr std::uint16_t kQueues = 2;
  static constexpr std::uint16_t kMaxQueueSize = 256;

  FakeVirtioDevice() {
    for (std::size_t i = 0; i < config_.size(); ++i) config_[i] = std::byte(0x10 + i);
  }

  std::uint32_t device_id() const override { return id_; }
  std::uint64_t device_features() const override { return features_; }
  std::uint16_t num_queues() const override { return kQueues; }
  std::uint16_t max_queue_size() const override { return kMaxQueueSize; }
  std::span<const std::byte> config() const override { return config_; }

  void on_driver_ok(transport::DeviceHandle& h) override {
    ++driver_ok_calls;
    handle.emplace(h);
  }
  void on_reset() override {
    ++reset_calls;
    handle.reset();
  }
  void on_notify(transport::DeviceHandle& h) override {
    ++notify_calls;
    for (std::uint16_t q = 0; q < kQueues; ++q) serve(h, q);
  }

  /// Serves queue q through h: echo, complete, interrupt when the driver wants one.
  void serve(transport::DeviceHandle& h, std::uint16_t q) {
    ring::Vringh* v = h.queue(q);
    if (v == nullptr) return;
    for (;;) {
      auto r = v->pop();
      if (!r) {
        ++bad_ring[q];
        h.queue_broken(q);
        return;
      }
      if (!*r) break;
      const ring::Chain& c = **r;
      std::vector<std::byte> buf(static_cast<std::size_t>(c.read_len));
      ring::chain_read(c, buf);
      const std::size_t n = ring::chain_write(c, buf);
      if (!v->complete(c.head, static_cast<std::uint32_t>(n))) return;
      ++served[q];
    }
    if (v->need_notify()) h.notify_driver();
  }

  void set_device_id(std::uint32_t id) { id_ = id; }

  int driver_ok_calls = 0;
  int reset_calls = 0;
  int notify_calls = 0;
  std::array<int, kQueues> served{};
  std::array<int, kQueues> bad_ring{};
  std::optional<transport::DeviceHandle> handle;  // kept from on_driver_ok, dropped on reset

 private:
  std::uint32_t id_ = VIRTIO_ID_NET;  // 1
  std::uint64_t features_ = kFakeFeatures;
  std::array<std::byte, 8> config_{};
};

}  // namespace vepf::test
