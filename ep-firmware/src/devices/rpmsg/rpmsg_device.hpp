#pragma once
// virtio rpmsg device (device ID 7) in the Linux virtio_rpmsg_bus wire format
// (vepf/layout/rpmsg.hpp): queue 0 carries messages to the driver, queue 1 from it; the driver
// posts every buffer. Offers VERSION_1, EVENT_IDX and VIRTIO_RPMSG_F_NS.
//
// Channels are unix SOCK_SEQPACKET sockets under <runtime_dir>/ep, one message = one rpmsg
// (vepf::rpmsg::Channels, the same code as vepf-host's RpmsgDriver uses):
//  - <runtime_dir>/ep/announce.sock: a local program connects and sends one message, the
//    channel name; the connection gets a local address (>= 1024) and the driver a name-service
//    CREATE {name, addr}. Each following message is one rpmsg from addr to the driver's address
//    for that name (the one it announced, then the src of the latest message it sent to addr).
//    Closing the connection sends DESTROY. Channels named before DRIVER_OK are announced then.
//  - <runtime_dir>/ep/<name>.sock for each name the driver announces: every connection gets a
//    local address; each message is one rpmsg from it to the driver's announced address, and
//    each rpmsg for it one message on that connection. DESTROY from the driver, or a driver
//    reset, closes the socket and its connections and removes the file.
// An application that links the library can route the messages itself instead (an rpmsg::Router
// of its own, e.g. rpmsg::Endpoints: callbacks in its process, no sockets).
// What this file keeps is the queue handling: messages for the driver wait in a queue of at most
// about 256 (then the channels are not read) until the driver posts receive buffers on queue 0.

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/rpmsg/channels.hpp"
#include "vepf/rpmsg/router.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

/// Queue-level counts; the channel-level ones are channel_stats().
struct RpmsgStats {
  std::uint64_t to_driver = 0,
                to_driver_bytes =
                    0;             // rpmsgs written to queue 0 (name service incl.); payload bytes
  std::uint64_t short_buffer = 0;  // a receive buffer too small for the message: message dropped
  std::uint64_t bad = 0;  // a transmit buffer of a size no rpmsg has (< 16 or > 512 bytes): dropped
};

class RpmsgDevice final : public Device, private rpmsg::Port {
 public:
  /// Channels as sockets under <runtime_dir>/ep; `max_connections`: [device.rpmsg]
  /// max_connections (rpmsg::Channels).
  RpmsgDevice(std::string runtime_dir, std::uint16_t queue_size, std::size_t max_connections = 64);
  /// Messages routed by the Router `make` returns (given this device's Port); `name` labels the
  /// device in logs and `ctl list` (as runtime_dir does for socket channels).
  RpmsgDevice(std::uint16_t queue_size, const rpmsg::RouterFactory& make, std::string name);
  ~RpmsgDevice() override;

  /// Starts the Router (socket channels: listens on <runtime_dir>/ep/announce.sock). Errors: as
  /// os::listen_seqpacket(), EventLoop::add().
  [[nodiscard]] Result<void> start(os::EventLoop& loop);

  std::uint32_t device_id() const override;
  std::uint64_t device_features() const override;
  std::uint16_t num_queues() const override { return 2; }
  std::uint16_t max_queue_size() const override { return queue_size_; }
  std::span<const std::byte> config() const override { return {}; }
  void on_driver_ok(transport::DeviceHandle& h) override;
  void on_reset() override;
  void on_notify(transport::DeviceHandle& h) override;

  const char* type_name() const override { return "rpmsg"; }
  bool backlog() const override { return backlog_ || backlog_tx_; }
  void describe(nlohmann::json& out) const override;
  Counts counts() const override { return {stats_.to_driver, router_->stats().received}; }
  void report(std::uint32_t slot, spdlog::level::level_enum lvl) const override;
  const RpmsgStats& stats() const noexcept { return stats_; }
  const rpmsg::ChannelStats& channel_stats() const noexcept { return router_->stats(); }
  const std::string& runtime_dir() const noexcept { return dir_; }
  /// Channels opened through announce.sock (or named endpoints).
  std::size_t channels() const noexcept { return router_->local_channels(); }

 private:
  // rpmsg::Port: messages for the driver go to out_, then into queue 0 as buffers come.
  bool can_send() override;
  std::size_t send_room() override;
  void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) override;
  void flush() override { flush_out(); }
  void receive_again() override { process_tx(); }

  void flush_out();
  void process_tx();
  void broken(std::uint16_t q);

  std::string dir_;
  std::uint16_t queue_size_;
  std::unique_ptr<rpmsg::Router> router_;
  std::deque<std::vector<std::byte>> out_;  // messages waiting for a receive buffer
  std::optional<transport::DeviceHandle> h_;
  ring::ChainConsumer rx_, tx_;  // queue 0 (our messages into the driver's buffers), queue 1
  std::array<std::byte, layout::kRpmsgBufSize> buf_{};
  RpmsgStats stats_;
  bool backlog_ = false;     // flush_out() ran out of budget
  bool backlog_tx_ = false;  // process_tx() ran out of budget
};

}  // namespace vepf::ep
