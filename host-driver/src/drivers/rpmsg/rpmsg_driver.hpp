#pragma once
// virtio rpmsg driver (device ID 7) in the Linux virtio_rpmsg_bus wire format
// (vepf/layout/rpmsg.hpp), handing channels to the host OS as unix SOCK_SEQPACKET sockets under
// <runtime_dir>/host, one message = one rpmsg (vepf::rpmsg::Channels, the same code as vepf-ep's
// RpmsgDevice uses):
//  - <runtime_dir>/host/<name>.sock for each name-service CREATE {name, addr} from the device:
//    every client connection gets a local address (>= 1024); each message from a client is one
//    rpmsg from that address to `addr`, and each rpmsg for that address one message to the
//    client. DESTROY closes the channel and removes the socket file.
//  - <runtime_dir>/host/announce.sock: a local program connects and sends one message, the
//    channel name; the connection gets a local address and the device a name-service CREATE
//    {name, addr} from addr to 53, as Linux rpmsg_ns announces. Each following message is one
//    rpmsg from addr to the device's address for that name (the one it announced, then the src
//    of the latest message it sent to addr); until one is known the connection is not read.
//    Closing it sends DESTROY.
// Name-service messages need VIRTIO_RPMSG_F_NS, which this driver always asks for. An
// application that links the library can route the messages itself instead (an rpmsg::Router of
// its own, e.g. rpmsg::Endpoints: callbacks in its process, no sockets).
//
// Placement (ARCHITECTURE.md §1), as NetDriver: descriptor tables, avail rings and the transmit
// buffers in the EP window (written only); used rings and the receive buffers in the RC window.
// When every transmit buffer is in flight the channels are not read until the device frees one.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "drivers/driver.hpp"
#include "transport/buffer_queues.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/rpmsg/channels.hpp"
#include "vepf/rpmsg/router.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

/// Queue-level counts; the channel-level ones are channel_stats().
struct RpmsgStats {
  std::uint64_t bad =
      0;  // a used receive buffer of a length no rpmsg has (< 16 or > 512 bytes): dropped
};

class RpmsgDriver final : public Driver, private rpmsg::Port {
 public:
  static std::uint64_t wanted_features() noexcept;

  /// `runtime_dir`: where the channel sockets go (<runtime_dir>/host/...); `max_connections`:
  /// [device.rpmsg] max_connections (rpmsg::Channels).
  RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
              std::string runtime_dir, os::EventLoop& loop, std::size_t max_connections = 64);
  /// Messages routed by the Router `make` returns (given this driver's Port); `name` labels the
  /// device in logs (as runtime_dir does for socket channels).
  RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
              const rpmsg::RouterFactory& make, std::string name, os::EventLoop& loop);
  ~RpmsgDriver() override;

  /// Listens on <runtime_dir>/host/announce.sock, negotiates, sets up both queues and their
  /// buffers, DRIVER_OK, then announces the channels opened so far. Errors: kSystem or
  /// kInvalidArgument when the announce socket cannot be set up (as os::listen_seqpacket()),
  /// any DriverTransport error, kNoSpace when the windows cannot hold the queues and buffers.
  [[nodiscard]] Result<void> probe() override;
  /// Interrupt: take completions on both queues, refill, kick, resume reading the channels.
  void on_interrupt() override;
  bool backlog() const override { return backlog_; }
  Counts counts() const override { return {router_->stats().sent, router_->stats().received}; }
  std::vector<QueueState> queue_states() const override {
    std::vector<QueueState> out;
    if (q_) q_->queue_states(out);
    return out;
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters() const override {
    const rpmsg::ChannelStats& c = router_->stats();
    return {{"sent", c.sent},
            {"sent_bytes", c.sent_bytes},
            {"received", c.received},
            {"received_bytes", c.received_bytes},
            {"bad", c.bad + stats_.bad},
            {"no_endpoint", c.no_endpoint},
            {"dropped", c.dropped},
            {"held", c.held},
            {"refused", c.refused},
            {"refused_connections", c.refused_connections}};
  }
  void report(spdlog::level::level_enum lvl) const override;
  const RpmsgStats& stats() const noexcept { return stats_; }
  const rpmsg::ChannelStats& channel_stats() const noexcept { return router_->stats(); }
  const std::string& runtime_dir() const noexcept { return dir_; }

 private:
  void on_needs_reset() override;
  const char* logger() const override { return "host.rpmsg"; }

  // rpmsg::Port: one transmit buffer per message.
  bool can_send() override;
  std::size_t send_room() override { return can_send() ? q_->tx_free() : 0; }
  void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) override;
  void flush() override;
  void receive_again() override;

  void receive();
  void reclaim_tx();

  std::string dir_;
  std::string where_;  // for logs: the socket directory, or the in-process router's name
  os::EventLoop& loop_;
  std::unique_ptr<rpmsg::Router> router_;
  std::optional<BufferQueues> q_;  // from probe() on
  ring::UsedConsumer rx_;          // the receive queue's completions
  bool backlog_ = false;
  RpmsgStats stats_;
};

}  // namespace vepf::host
