#include "drivers/net/net_driver.hpp"

#include <linux/virtio_config.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 256;  // frames per callback before returning to the event loop
auto log() { return spdlog::get("host.net"); }
}  // namespace

std::uint64_t NetDriver::wanted_features(bool offloads, bool gso) noexcept {
  std::uint64_t f = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) |
                    bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_NET_F_MAC) |
                    bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_STATUS);
  if (offloads) f |= bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);
  if (offloads && gso) f |= layout::net_offload_features();
  return f;
}

NetDriver::NetDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                     bool offloads)
    : Driver(t, info), offloads_(offloads) {}

namespace {
std::size_t largest_free(const transport::WindowAllocator& a) {
  std::size_t best = 0;
  for (const auto& [off, len] : a.free_ranges()) best = std::max(best, len);
  return best;
}
}  // namespace

Result<void> NetDriver::probe() {
  // Segmentation needs 64 KiB buffers for every entry of both queues (no MRG_RXBUF): accepted
  // only when both windows still hold that much (with room for the rings).
  const std::size_t gso_bytes =
      std::size_t{info_.max_queue_size} * layout::kNetGsoBufferSize + 65536;
  const bool gso =
      largest_free(t_.rc_alloc()) >= gso_bytes && largest_free(t_.ep_alloc()) >= gso_bytes;
  if (auto r = negotiate(wanted_features(offloads_, gso)); !r) return r;
  to_device_ = layout::offloads_to_device(features_);
  to_driver_ = layout::offloads_to_driver(features_);
  if (auto r = t_.read_config_wait(info_.slot, std::as_writable_bytes(std::span{&cfg_, 1})); !r)
    return r;
  mtu_ = (features_ & bit(VIRTIO_NET_F_MTU)) ? cfg_.mtu.to_cpu() : 1500;
  if (mtu_ < 68) return fail(Errc::kRejected, "device reports an MTU below 68");
  const bool segments = to_device_.tso4 || to_device_.tso6 || to_driver_.tso4 || to_driver_.tso6;
  buf_size_ = segments ? layout::kNetGsoBufferSize : layout::net_buffer_size(mtu_);
  buf_.resize(buf_size_);
  rx_.drop();
  q_.emplace(t_, info_);
  // VIRTIO 1.2 §5.1.6.3: the receive queue is filled before DRIVER_OK.
  if (auto r = q_->setup(layout::kNetRxQueue, layout::kNetTxQueue, buf_size_,
                         features_ & bit(VIRTIO_RING_F_EVENT_IDX));
      !r) {
    return r;
  }
  (void)q_->rx().kick_prepare();
  if (auto r = set_driver_ok(); !r) return r;
  (void)q_->rx().enable_cb();
  return {};
}

NetDriver::~NetDriver() {
  if (backend_ == nullptr) return;
  backend_->set_link(false);
  backend_->set_rx_paused(true);
  backend_->set_tx_wait(false);
  (void)backend_->start(*loop_, {});  // the backend outlives us: unhook our callbacks
}

Result<void> NetDriver::attach_backend(netback::FrameBackend& backend, os::EventLoop& loop) {
  backend_ = &backend;
  loop_ = &loop;
  // Frames our TAP hands us go to the device: they may use what the device accepted.
  if (auto r = backend.set_offload(to_device_); !r) {
    log()->warn("device {}: offloads towards the device not set ({}): frames stay plain",
                info_.slot, r.error().what);
    to_device_ = {};
  }
  auto r = backend.start(loop, {[this] { transmit(); },
                                [this] {
                                  backend_->set_tx_wait(false);
                                  receive();
                                }});
  if (!r) return r;
  backend.set_rx_paused(false);
  update_carrier();
  return {};
}

void NetDriver::update_carrier() {
  if (backend_ == nullptr) return;
  const bool up = driver_ok_ && (!(features_ & bit(VIRTIO_NET_F_STATUS)) ||
                                 (cfg_.status.to_cpu() & VIRTIO_NET_S_LINK_UP));
  backend_->set_link(up);
}

void NetDriver::reclaim_tx() {
  if (auto r = q_->reclaim_tx(); !r)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: transmit queue: {}", info_.slot,
                 r.error().what);
}

// Backend -> device: frames from the TAP onto the transmit queue.
void NetDriver::transmit() {
  if (!driver_ok_ || q_->tx().broken()) return backend_->set_rx_paused(true);
  for (int budget = kBudget; budget > 0; --budget) {
    reclaim_tx();
    if (!q_->tx_full()) backend_->set_rx_paused(false);
    if (q_->tx_full()) {
      // Ring full: stop reading the TAP and ask for an interrupt when the device catches up.
      backend_->set_rx_paused(true);
      if (q_->tx().enable_cb()) break;
      continue;
    }
    // Straight from the kernel into a transmit buffer when the backend takes iovecs and the EP
    // window is cached memory (loopback); through buf_ and posted writes otherwise.
    std::span<std::byte> frame = backend_->vectored() ? q_->tx_fill_view() : std::span<std::byte>{};
    const bool direct = !frame.empty();
    if (!direct) frame = buf_;
    const iovec iov{frame.data(), frame.size()};
    auto n = direct ? backend_->recvv(std::span{&iov, 1}) : backend_->recv(frame);
    if (!n) break;
    if (*n < layout::kNetHdrSize) continue;
    // Our kernel wrote the header; it may use only what the device accepted (TUNSETOFFLOAD),
    // and DATA_VALID does not go towards a device (VIRTIO 1.2 §5.1.6.2).
    layout::VirtioNetHdr hdr{};
    if (to_device_.any()) std::memcpy(&hdr, frame.data(), sizeof(hdr));
    hdr.flags &= static_cast<std::uint8_t>(~VIRTIO_NET_HDR_F_DATA_VALID);
    hdr.num_buffers = layout::le16::from_cpu(0);
    if (layout::check_net_hdr(hdr, *n - layout::kNetHdrSize, to_device_, false) != nullptr) {
      ++stats_.tx_dropped;
      continue;
    }
    std::memcpy(frame.data(), &hdr, sizeof(hdr));
    if (!(direct ? q_->send_filled(*n) : q_->send(frame.first(*n)))) {
      ++stats_.tx_dropped;
      continue;
    }
    ++stats_.tx_frames;
    stats_.tx_bytes += *n - layout::kNetHdrSize;
  }
  q_->kick(q_->tx());
}

// Device -> backend: completed receive buffers to the TAP, then back on the ring.
void NetDriver::receive() {
  if (!driver_ok_) return;
  Error err;
  const auto d = rx_.drain(
      q_->rx(), kBudget, [this](const ring::Vring::Used& u) { return deliver(u); }, &err);
  backlog_ = d.end == ring::Drained::End::kBudget;
  if (d.end == ring::Drained::End::kBroken)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: receive queue: {}", info_.slot,
                 err.what);
  q_->kick(q_->rx());
}

ring::Handled NetDriver::deliver(const ring::Vring::Used& u) {
  if (u.len < layout::kNetHdrSize) {
    ++stats_.rx_errors;
    q_->refill_rx(u.token);
    return ring::Handled::used();
  }
  // The receive buffer is in our own window: hand it to the backend without a copy, once the
  // header the device wrote is one the negotiated offloads allow.
  auto frame = q_->rx_view(u.token, u.len);
  layout::VirtioNetHdr hdr;
  std::memcpy(&hdr, frame.data(), sizeof(hdr));
  if (const char* why =
          layout::check_net_hdr(hdr, frame.size() - layout::kNetHdrSize, to_driver_, true)) {
    ++stats_.rx_errors;
    ++stats_.rx_bad_hdr;
    log::limited(peer_log_, log(), spdlog::level::warn,
                 "device {}: frame from the device dropped: {} ({} so far)", info_.slot, why,
                 stats_.rx_bad_hdr);
    q_->refill_rx(u.token);
    return ring::Handled::used();
  }
  auto r = backend_->send(frame);
  if (!r && r.error().code == Errc::kNoSpace) {
    backend_->set_tx_wait(true);  // the TAP is full: resumes from the writable callback
    return ring::Handled::hold();
  }
  if (r) {
    ++stats_.rx_frames;
    stats_.rx_bytes += u.len - layout::kNetHdrSize;
  }
  q_->refill_rx(u.token);
  return ring::Handled::used();
}

void NetDriver::on_interrupt() {
  if (!driver_ok_) return;
  receive();
  const bool was_full = q_->tx_full();
  reclaim_tx();
  if (was_full && !q_->tx_full()) {
    backend_->set_rx_paused(false);
    transmit();
  }
}

void NetDriver::on_needs_reset() {
  if (q_) {
    q_->rx().mark_broken();
    q_->tx().mark_broken();
  }
  update_carrier();
}

void NetDriver::on_config_event() {
  const auto old = cfg_.status.to_cpu();
  if (!read_config_or_retry(std::as_writable_bytes(std::span{&cfg_, 1}))) return;
  if (old != cfg_.status.to_cpu()) {
    log()->info("device {}: link {}", info_.slot,
                (cfg_.status.to_cpu() & VIRTIO_NET_S_LINK_UP) ? "up" : "down");
  }
  update_carrier();
}

void NetDriver::report(spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  log()->log(
      lvl, "device {}: sent {} frames {} B (dropped {}), received {} frames {} B (errors {})",
      info_.slot, s.tx_frames, s.tx_bytes, s.tx_dropped, s.rx_frames, s.rx_bytes, s.rx_errors);
}

}  // namespace vepf::host
