#pragma once
// virtio-net driver (VIRTIO 1.2 §5.1) over the virtio-pci-epf layout, handing the device to the
// host OS through a frame backend (a TAP interface whose MAC and MTU are the device's).
//
// Placement (ARCHITECTURE.md §1): both queues' descriptor tables and avail rings and the transmit
// buffers live in the EP window (we only write them); both used rings and the receive buffers
// live in the RC window (we only read them). The data path never reads the EP window.

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "vepf/layout/net.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/os/event_loop.hpp"
#include "transport/buffer_queues.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

struct NetStats {
  std::uint64_t tx_frames = 0, tx_bytes = 0;  // backend -> device (transmitq)
  std::uint64_t rx_frames = 0, rx_bytes = 0;  // device -> backend (receiveq)
  std::uint64_t tx_dropped = 0;               // frame larger than a transmit buffer
  std::uint64_t rx_errors = 0;                // used entry shorter than the header
};

class NetDriver {
 public:
  /// Features this driver asks for (VIRTIO 1.2 §5.1.3).
  static std::uint64_t wanted_features() noexcept;

  NetDriver(transport::DriverTransport& t, const transport::DeviceInfo& info);
  ~NetDriver();
  NetDriver(const NetDriver&) = delete;
  NetDriver& operator=(const NetDriver&) = delete;

  /// Negotiates, reads the config, sets up both queues and their buffers, DRIVER_OK
  /// (VIRTIO 1.2 §3.1.1). Errors: any DriverTransport error, or kNoSpace when the windows cannot
  /// hold the queues and buffers.
  [[nodiscard]] Result<void> probe();
  /// The device config as read by probe() (MAC, MTU, status).
  const layout::VirtioNetConfig& net_config() const noexcept { return cfg_; }

  /// Connects the backend (created by the caller with this device's MAC and MTU) and starts
  /// moving frames. The backend outlives the driver (it survives a link restart).
  [[nodiscard]] Result<void> attach_backend(netback::FrameBackend& backend, os::EventLoop& loop);
  /// Interrupt: take completions on both queues, refill, kick.
  void on_interrupt();
  /// Control-path event (mailbox moved): re-read status and config; returns false when the
  /// device needs a reset (NEEDS_RESET) and this driver must be torn down.
  [[nodiscard]] bool on_control_event();

  /// A budget ran out with completions left: call on_interrupt() again before sleeping.
  bool backlog() const noexcept { return backlog_; }
  const NetStats& stats() const noexcept { return stats_; }
  std::uint32_t slot() const noexcept { return info_.slot; }
  const transport::DeviceInfo& info() const noexcept { return info_; }
  std::uint16_t mtu() const noexcept { return mtu_; }

 private:
  void transmit();
  void receive();
  void reclaim_tx();
  void update_carrier();

  transport::DriverTransport& t_;
  transport::DeviceInfo info_;
  std::uint64_t features_ = 0;
  layout::VirtioNetConfig cfg_{};
  std::uint16_t mtu_ = 1500;
  std::size_t buf_size_ = 0;
  std::optional<BufferQueues> q_;                // from probe() on
  std::optional<std::uint64_t> rx_pending_;      // received buffer the backend could not take yet
  std::uint32_t rx_pending_len_ = 0;
  netback::FrameBackend* backend_ = nullptr;
  os::EventLoop* loop_ = nullptr;
  std::vector<std::byte> buf_;
  bool driver_ok_ = false;
  NetStats stats_;
  bool backlog_ = false;
};

}  // namespace vepf::host
