#pragma once
// virtio-net driver (VIRTIO 1.2 §5.1) over the virtio-pci-epf layout, handing the device to the
// host OS through a frame backend (a TAP interface whose MAC and MTU are the device's).
//
// Placement (ARCHITECTURE.md §1): both queues' descriptor tables and avail rings and the transmit
// buffers live in the EP window (we only write them); both used rings and the receive buffers
// live in the RC window (we only read them). The data path never reads the EP window.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "drivers/driver.hpp"
#include "transport/buffer_queues.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

struct NetStats {
  std::uint64_t tx_frames = 0, tx_bytes = 0;  // backend -> device (transmitq)
  std::uint64_t rx_frames = 0, rx_bytes = 0;  // device -> backend (receiveq)
  std::uint64_t tx_dropped = 0;               // frame larger than a transmit buffer
  std::uint64_t rx_errors = 0;                // used entry shorter than the header, or bad header
  std::uint64_t rx_bad_hdr = 0;  // of which: a virtio_net_hdr the offloads do not allow
};

class NetDriver final : public Driver {
 public:
  /// Features this driver asks for (VIRTIO 1.2 §5.1.3): with `offloads`, checksum offloads
  /// both ways, and TCP segmentation both ways when `gso` (the windows hold 64 KiB buffers).
  static std::uint64_t wanted_features(bool offloads, bool gso) noexcept;

  /// `offloads`: the config allows them and the backend will be a TAP (FrameBackend::
  /// carries_offloads()).
  NetDriver(transport::DriverTransport& t, const transport::DeviceInfo& info, bool offloads);
  ~NetDriver() override;

  /// Negotiates, reads the config, sets up both queues and their buffers, DRIVER_OK
  /// (VIRTIO 1.2 §3.1.1). Errors: any DriverTransport error, or kNoSpace when the windows cannot
  /// hold the queues and buffers.
  [[nodiscard]] Result<void> probe() override;
  /// The device config as read by probe() (MAC, MTU, status).
  const layout::VirtioNetConfig& net_config() const noexcept { return cfg_; }

  /// Connects the backend (created by the caller with this device's MAC and MTU) and starts
  /// moving frames. The backend outlives the driver (it survives a link restart).
  [[nodiscard]] Result<void> attach_backend(netback::FrameBackend& backend, os::EventLoop& loop);
  /// Interrupt: take completions on both queues, refill, kick.
  void on_interrupt() override;
  bool backlog() const override { return backlog_; }
  Counts counts() const override { return {stats_.tx_frames, stats_.rx_frames}; }
  std::vector<QueueState> queue_states() const override {
    std::vector<QueueState> out;
    if (q_) q_->queue_states(out);
    return out;
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters() const override {
    const NetStats& s = stats_;
    return {{"tx_frames", s.tx_frames},  {"tx_bytes", s.tx_bytes}, {"tx_dropped", s.tx_dropped},
            {"rx_frames", s.rx_frames},  {"rx_bytes", s.rx_bytes}, {"rx_errors", s.rx_errors},
            {"rx_bad_hdr", s.rx_bad_hdr}};
  }
  void report(spdlog::level::level_enum lvl) const override;
  const NetStats& stats() const noexcept { return stats_; }
  std::uint16_t mtu() const noexcept { return mtu_; }

 private:
  void on_needs_reset() override;
  void on_config_event() override;  // link status (VIRTIO_NET_S_LINK_UP) -> carrier
  const char* logger() const override { return "host.net"; }
  void transmit();
  void receive();
  ring::Handled deliver(const ring::Vring::Used& u);  // one received frame to the backend
  void reclaim_tx();
  void update_carrier();

  layout::VirtioNetConfig cfg_{};
  std::uint16_t mtu_ = 1500;
  std::size_t buf_size_ = 0;
  std::optional<BufferQueues> q_;  // from probe() on
  ring::UsedConsumer rx_;          // holds a frame the backend could not take yet
  netback::FrameBackend* backend_ = nullptr;
  os::EventLoop* loop_ = nullptr;
  std::vector<std::byte> buf_;
  NetStats stats_;
  bool backlog_ = false;
  bool offloads_;
  layout::NetOffloads to_device_;  // negotiated: what our frames to the device may use
  layout::NetOffloads to_driver_;  // negotiated: what the device's frames to us may use
};

}  // namespace vepf::host
