#include "drivers/rpmsg/rpmsg_driver.hpp"

#include <linux/virtio_config.h>

#include <array>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 256;  // messages per callback before returning to the event loop
constexpr std::size_t kBuf = layout::kRpmsgBufSize;
auto log() { return spdlog::get("host.rpmsg"); }
}  // namespace

std::uint64_t RpmsgDriver::wanted_features() noexcept {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(layout::kVirtioRpmsgFNs);
}

RpmsgDriver::RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                         std::string runtime_dir, os::EventLoop& loop, std::size_t max_connections)
    : Driver(t, info),
      dir_(std::move(runtime_dir)),
      where_(dir_ + "/host"),
      loop_(loop),
      router_(std::make_unique<rpmsg::Channels>(dir_ + "/host", static_cast<rpmsg::Port&>(*this),
                                                "host.rpmsg", "device " + std::to_string(info.slot),
                                                max_connections)) {}

RpmsgDriver::RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                         const rpmsg::RouterFactory& make, std::string name, os::EventLoop& loop)
    : Driver(t, info), dir_(std::move(name)), where_(dir_), loop_(loop), router_(make(*this)) {}

RpmsgDriver::~RpmsgDriver() = default;

Result<void> RpmsgDriver::probe() {
  if (auto r = router_->start(loop_); !r) return r;
  if (auto r = negotiate(wanted_features()); !r) return r;
  // virtio_rpmsg_bus.c posts every receive buffer before the device is told DRIVER_OK.
  q_.emplace(t_, info_);
  if (auto r = q_->setup(layout::kRpmsgRxQueue, layout::kRpmsgTxQueue, kBuf,
                         has(VIRTIO_RING_F_EVENT_IDX));
      !r) {
    return r;
  }
  (void)q_->rx().kick_prepare();
  if (auto r = set_driver_ok(); !r) return r;
  (void)q_->rx().enable_cb();
  log()->info("device {}: virtio-rpmsg up, channels in {}{}", info_.slot, where_,
              has(layout::kVirtioRpmsgFNs) ? "" : " (no name service negotiated)");
  router_->link_up(has(layout::kVirtioRpmsgFNs));
  return {};
}

void RpmsgDriver::reclaim_tx() {
  if (auto r = q_->reclaim_tx(); !r)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: transmit queue: {}", info_.slot,
                 r.error().what);
}

bool RpmsgDriver::can_send() {
  for (;;) {
    if (!driver_ok_ || !q_ || q_->tx().broken()) return false;
    if (!q_->tx_full()) return true;
    reclaim_tx();
    if (!q_->tx_full()) return true;
    // Ring full: ask for an interrupt when the device catches up (false: it already has).
    if (q_->tx().enable_cb()) return false;
  }
}

void RpmsgDriver::send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  std::array<std::byte, kBuf> m{};
  const std::size_t n = rpmsg::encode(m, src, dst, payload);
  (void)q_->send(std::span{m}.first(n));  // can_send() saw a free buffer
}

void RpmsgDriver::flush() {
  if (q_) q_->kick(q_->tx());
}

// Device -> channels: completed receive buffers, then back on the ring.
void RpmsgDriver::receive() {
  Error err;
  const auto d = rx_.drain(
      q_->rx(), kBudget,
      [this](const ring::Vring::Used& u) {
        // A slow local program: the device's messages wait on the ring until receive_again().
        if (!router_->can_take()) return ring::Handled::hold();
        if (u.len < layout::kRpmsgHdrSize || u.len > kBuf) {
          ++stats_.bad;
        } else {
          // Our own window, but the device may still write it: validate a private copy.
          std::array<std::byte, kBuf> msg{};
          const auto view = q_->rx_view(u.token, u.len);
          std::memcpy(msg.data(), view.data(), u.len);
          router_->on_message(std::span{msg}.first(u.len));
        }
        q_->refill_rx(u.token);
        return ring::Handled::used();
      },
      &err);
  router_->flush_received();
  // Held back, but the flush made room: go on at the next poll.
  backlog_ = d.end == ring::Drained::End::kBudget ||
             (d.end == ring::Drained::End::kHeld && router_->can_take());
  if (d.end == ring::Drained::End::kBroken)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: receive queue: {}", info_.slot,
                 err.what);
  q_->kick(q_->rx());
}

void RpmsgDriver::receive_again() {
  if (driver_ok_ && q_) receive();
}

void RpmsgDriver::on_interrupt() {
  if (!driver_ok_) return;
  receive();
  reclaim_tx();
  router_->resume();
}

void RpmsgDriver::on_needs_reset() {
  if (q_) {
    q_->rx().mark_broken();
    q_->tx().mark_broken();
  }
  router_->link_down();
}

void RpmsgDriver::report(spdlog::level::level_enum lvl) const {
  const auto& c = router_->stats();
  log()->log(lvl,
             "device {}: sent {} msgs {} B, received {} msgs {} B (bad {}, no endpoint {}, socket "
             "full {}); "
             "channels: {} ours, {} the device's, {} refused",
             info_.slot, c.sent, c.sent_bytes, c.received, c.received_bytes, stats_.bad + c.bad,
             c.no_endpoint, c.dropped, router_->local_channels(), router_->peer_channels(),
             c.refused);
}

}  // namespace vepf::host
