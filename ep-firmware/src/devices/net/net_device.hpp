#pragma once
// virtio-net device (VIRTIO 1.2 §5.1), device ID 1, one queue pair: receiveq1 (0), transmitq1 (1).
// Frames from the backend (TAP or socket) go to the driver through the receive queue; frames the
// driver puts on the transmit queue go to the backend. Offers VERSION_1, EVENT_IDX,
// INDIRECT_DESC, MAC, MTU, STATUS, and with a TAP backend the checksum and TCP segmentation
// offloads (layout/net.hpp).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "devices/device.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

struct NetStats {
  std::uint64_t rx_frames = 0, rx_bytes = 0;  // backend -> driver (receiveq)
  std::uint64_t tx_frames = 0, tx_bytes = 0;  // driver -> backend (transmitq)
  std::uint64_t rx_dropped = 0;               // frame larger than the driver's buffer
  std::uint64_t tx_errors = 0;                // malformed frame from the driver, backend error
  std::uint64_t tx_bad_hdr = 0;  // of which: a virtio_net_hdr the offloads do not allow
};

class NetDevice final : public Device {
 public:
  NetDevice(std::unique_ptr<netback::FrameBackend> backend, const config::NetConfig& cfg,
            std::uint16_t queue_size);

  /// Registers the backend with the loop. Errors: as FrameBackend::start().
  [[nodiscard]] Result<void> start(os::EventLoop& loop);
  /// Link down for good (program exit): clears VIRTIO_NET_S_LINK_UP so the driver sees it.
  void shutdown() override;

  std::uint32_t device_id() const override;
  std::uint64_t device_features() const override;
  std::uint16_t num_queues() const override { return 2; }
  std::uint16_t max_queue_size() const override { return queue_size_; }
  std::span<const std::byte> config() const override;
  void on_driver_ok(transport::DeviceHandle& h) override;
  void on_reset() override;
  void on_notify(transport::DeviceHandle& h) override;

  const char* type_name() const override { return "net"; }
  bool backlog() const override { return backlog_tx_ || backlog_rx_; }
  void describe(nlohmann::json& out) const override;
  Counts counts() const override { return {stats_.rx_frames, stats_.tx_frames}; }
  void report(std::uint32_t slot, spdlog::level::level_enum lvl) const override;
  const NetStats& stats() const noexcept { return stats_; }
  const netback::FrameBackend& backend() const noexcept { return *backend_; }

 private:
  void process_tx();
  void process_rx();
  bool send_chain(const ring::Chain& c);  // false: backend busy, retry later
  ring::Handled fill_rx(ring::Chain& c);  // the next frame from the backend into a receive buffer
  void broken(std::uint16_t q);

  std::unique_ptr<netback::FrameBackend> backend_;
  layout::VirtioNetConfig cfg_{};
  std::uint16_t mtu_;
  std::uint16_t queue_size_;
  std::optional<transport::DeviceHandle> h_;  // between DRIVER_OK and reset
  ring::ChainConsumer rx_;                    // holds a receive buffer waiting for a frame
  ring::ChainConsumer tx_;                    // holds a frame the backend could not take yet
  std::vector<std::byte>
      buf_;                 // bounce buffer: frames whose buffers the kernel cannot use in place
  std::vector<iovec> iov_;  // a private header, then the chain's buffers (kMaxChainIov + 1)
  bool offloads_;           // offered: the config allows them and the backend is a TAP
  layout::NetOffloads to_device_;  // what the driver may send (negotiated at DRIVER_OK)
  layout::NetOffloads to_driver_;  // what the driver accepts from us
  NetStats stats_;
  bool backlog_tx_ = false, backlog_rx_ = false;
  // The backend may have a frame: false from a read that found none until its readable
  // callback, so polling the rings (a doorbell, a spin turn) costs no read of an empty backend.
  bool rx_maybe_ = true;
};

}  // namespace vepf::ep
