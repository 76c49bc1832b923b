#include "devices/net/net_device.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::ep {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
// Frames handled per call before returning to the event loop (fairness between directions).
constexpr std::uint32_t kBudget = 256;
}  // namespace

NetDevice::NetDevice(std::unique_ptr<netback::FrameBackend> backend, const config::NetConfig& cfg,
                     std::uint16_t queue_size)
    : backend_(std::move(backend)),
      mtu_(cfg.mtu),
      queue_size_(queue_size),
      offloads_(cfg.offloads && backend_->carries_offloads()) {
  // With offloads a frame may be a 64 KiB TCP segment (GSO) in either direction.
  buf_.resize(offloads_ ? layout::kNetGsoBufferSize : layout::net_buffer_size(cfg.mtu));
  iov_.reserve(ring::kMaxChainIov + 1);
  std::memcpy(cfg_.mac, cfg.mac.data(), sizeof(cfg_.mac));
  cfg_.status = layout::le16::from_cpu(VIRTIO_NET_S_LINK_UP);
  cfg_.max_virtqueue_pairs = layout::le16::from_cpu(1);
  cfg_.mtu = layout::le16::from_cpu(cfg.mtu);
}

Result<void> NetDevice::start(os::EventLoop& loop) {
  return backend_->start(loop, {[this] {
                                  rx_maybe_ = true;
                                  process_rx();
                                },
                                [this] {
                                  backend_->set_tx_wait(false);
                                  process_tx();
                                }});
}

void NetDevice::shutdown() {
  cfg_.status = layout::le16::from_cpu(0);
  if (h_) h_->config_changed();
  backend_->set_link(false);
}

std::uint32_t NetDevice::device_id() const { return VIRTIO_ID_NET; }

std::uint64_t NetDevice::device_features() const {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC) |
         bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_STATUS) |
         (offloads_ ? layout::net_offload_features() : 0);
}

std::span<const std::byte> NetDevice::config() const { return std::as_bytes(std::span{&cfg_, 1}); }

void NetDevice::on_driver_ok(transport::DeviceHandle& h) {
  h_ = h;
  to_device_ = layout::offloads_to_device(h.features());
  to_driver_ = layout::offloads_to_driver(h.features());
  // Frames our TAP hands us go to the driver: they may use what the driver accepted.
  if (auto r = backend_->set_offload(to_driver_); !r) {
    spdlog::get("ep.net")->warn("{}: offloads towards the driver not set ({}): frames stay plain",
                                backend_->name(), r.error().what);
    to_driver_ = {};
  }
  backend_->set_link(true);
  rx_maybe_ = true;
  backend_->set_rx_paused(false);
  spdlog::get("ep.net")->info("{}: driver ready, link up", backend_->name());
}

void NetDevice::on_reset() {
  backlog_tx_ = backlog_rx_ = false;
  if (h_) spdlog::get("ep.net")->info("{}: driver reset, link down", backend_->name());
  h_.reset();
  rx_.drop();
  tx_.drop();
  backend_->set_link(false);
  to_device_ = to_driver_ = {};
  (void)backend_->set_offload({});  // the next driver may accept none
  backend_->set_rx_paused(true);    // frames wait in the OS queue (or are dropped by it)
  backend_->set_tx_wait(false);
}

void NetDevice::on_notify(transport::DeviceHandle&) {
  process_tx();
  process_rx();
}

void NetDevice::broken(std::uint16_t q) {
  auto* vq = h_->queue(q);
  log::limited(peer_log_, spdlog::get("ep.net"), spdlog::level::err,
               "{}: driver broke {} queue rules ({}); device needs reset", backend_->name(),
               q == layout::kNetRxQueue ? "receive" : "transmit", vq ? vq->why() : "?");
  h_->queue_broken(q);
  (q == layout::kNetRxQueue ? rx_ : tx_).drop();
}

bool NetDevice::send_chain(const ring::Chain& c) {
  // VIRTIO 1.2 §5.1.6.2: header then frame. The header may use only the offloads the driver
  // negotiated and must stay inside the frame before it reaches our kernel; anything else is
  // the driver's error: drop the frame, not the queue.
  if (c.read_len < layout::kNetHdrSize || c.read_len > buf_.size()) {
    ++stats_.tx_errors;
    return true;
  }
  // The driver may rewrite its buffers until we complete the chain: the header is checked in
  // a private copy and that copy is what the kernel gets. The frame goes to the kernel in place
  // when the backend takes iovecs and the buffers are in our own cached window.
  layout::VirtioNetHdr hdr;
  iov_.assign(1, iovec{});
  const bool direct = backend_->vectored() && ring::chain_gather(c, layout::kNetHdrSize, iov_);
  std::size_t n = c.read_len;
  if (direct) {
    ring::chain_read(c, std::as_writable_bytes(std::span{&hdr, 1}));
  } else {
    n = ring::chain_read(c, buf_);
    std::memcpy(&hdr, buf_.data(), sizeof(hdr));
  }
  if (const char* why = layout::check_net_hdr(hdr, n - layout::kNetHdrSize, to_device_, false)) {
    ++stats_.tx_errors;
    ++stats_.tx_bad_hdr;
    log::limited(peer_log_, spdlog::get("ep.net"), spdlog::level::warn,
                 "{}: frame from the driver dropped: {} ({} so far)", backend_->name(), why,
                 stats_.tx_bad_hdr);
    return true;
  }
  hdr.num_buffers = layout::le16::from_cpu(0);
  Result<void> r;
  if (direct) {
    iov_[0] = iovec{&hdr, sizeof(hdr)};
    r = backend_->sendv(iov_);
  } else {
    std::memcpy(buf_.data(), &hdr, sizeof(hdr));
    r = backend_->send(std::span{buf_}.first(n));
  }
  if (!r && r.error().code == Errc::kNoSpace) return false;
  if (!r) {
    ++stats_.tx_errors;
    return true;
  }
  ++stats_.tx_frames;
  stats_.tx_bytes += n - layout::kNetHdrSize;
  return true;
}

void NetDevice::process_tx() {
  if (!h_) return;
  ring::Vringh* q = h_->queue(layout::kNetTxQueue);
  if (q == nullptr) return;
  const auto d = tx_.drain(*q, kBudget, [this](ring::Chain& c) {
    if (send_chain(c)) return ring::Handled::used();
    backend_->set_tx_wait(true);  // the backend is full: resumes from the writable callback
    return ring::Handled::hold();
  });
  backlog_tx_ = d.end == ring::Drained::End::kBudget;
  if (d.notify) h_->notify_driver();
  if (d.end == ring::Drained::End::kBroken) broken(layout::kNetTxQueue);
}

ring::Handled NetDevice::fill_rx(ring::Chain& c) {
  // Straight from the kernel into the driver's buffer when the backend takes iovecs, the
  // buffer holds the largest frame we can get, and its window is cached memory; the header
  // goes to a private copy first, to be checked (VIRTIO 1.2 §5.1.6.4).
  if (!rx_maybe_) return ring::Handled::hold();  // the readable callback brings the next frame
  layout::VirtioNetHdr got{};
  iov_.assign(1, iovec{&got, sizeof(got)});
  const bool direct = backend_->vectored() && c.write_len >= buf_.size() &&
                      ring::chain_scatter(c, layout::kNetHdrSize, iov_);
  auto n = direct ? backend_->recvv(iov_) : backend_->recv(buf_);
  if (!n) {  // nothing waiting (kNoSpace) or a backend error: wait for readable
    rx_maybe_ = false;
    return ring::Handled::hold();
  }
  if (*n > c.write_len || *n < layout::kNetHdrSize) {
    ++stats_.rx_dropped;
    return ring::Handled::retry();  // the frame is gone, the buffer stays ours
  }
  // Our kernel wrote the header; it may use only what the driver accepted (TUNSETOFFLOAD says
  // so), and a plain one is all a driver without offloads gets.
  layout::VirtioNetHdr hdr{};
  if (to_driver_.any())
    std::memcpy(&hdr, direct ? static_cast<const void*>(&got) : buf_.data(), sizeof(hdr));
  if (layout::check_net_hdr(hdr, *n - layout::kNetHdrSize, to_driver_, true) != nullptr) {
    ++stats_.rx_dropped;
    return ring::Handled::retry();
  }
  hdr.num_buffers = layout::le16::from_cpu(1);
  if (direct) {
    ring::chain_filled(c, layout::kNetHdrSize, *n - layout::kNetHdrSize);
    ring::chain_write(c, std::as_bytes(std::span{&hdr, 1}));
  } else {
    std::memcpy(buf_.data(), &hdr, sizeof(hdr));
    ring::chain_write(c, std::span{buf_}.first(*n));
  }
  ++stats_.rx_frames;
  stats_.rx_bytes += *n - layout::kNetHdrSize;
  return ring::Handled::used(static_cast<std::uint32_t>(*n));
}

void NetDevice::process_rx() {
  if (!h_) {
    backend_->set_rx_paused(true);
    return;
  }
  ring::Vringh* q = h_->queue(layout::kNetRxQueue);
  if (q == nullptr) return backend_->set_rx_paused(true);
  const auto d = rx_.drain(*q, kBudget, [this](ring::Chain& c) { return fill_rx(c); });
  backlog_rx_ = d.end == ring::Drained::End::kBudget;
  // Without a receive buffer, frames wait in the OS queue until the driver adds one (it rings);
  // with one held, the backend's readable callback brings the next frame.
  backend_->set_rx_paused(d.end == ring::Drained::End::kEmpty ||
                          d.end == ring::Drained::End::kBroken);
  if (d.notify) h_->notify_driver();
  if (d.end == ring::Drained::End::kBroken) broken(layout::kNetRxQueue);
}

void NetDevice::describe(nlohmann::json& out) const {
  out["backend"] = backend_->name();
  out["frames_to_driver"] = stats_.rx_frames;
  out["frames_from_driver"] = stats_.tx_frames;
}

void NetDevice::report(std::uint32_t slot, spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  // From this side: frames sent to the driver (receiveq) and received from it (transmitq).
  spdlog::get("ep.net")->log(
      lvl,
      "slot {} {}: to driver {} frames {} B (dropped {}), from driver {} frames {} B (errors {})",
      slot, backend_->name(), s.rx_frames, s.rx_bytes, s.rx_dropped, s.tx_frames, s.tx_bytes,
      s.tx_errors);
}

}  // namespace vepf::ep
