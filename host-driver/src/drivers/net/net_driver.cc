#include "drivers/net/net_driver.hpp"

#include <linux/virtio_config.h>

#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr int kBudget = 256;  // frames per callback before returning to the event loop
auto log() { return spdlog::get("host.net"); }
}  // namespace

std::uint64_t NetDriver::wanted_features() noexcept {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC) |
         bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_STATUS);
}

NetDriver::NetDriver(transport::DriverTransport& t, const transport::DeviceInfo& info) : t_(t), info_(info) {}


Result<transport::Allocation> NetDriver::alloc(layout::WindowId w, std::size_t bytes) {
  auto a = (w == layout::WindowId::kEp ? t_.ep_alloc() : t_.rc_alloc()).alloc(bytes, 64);
  if (a) owned_.push_back(*a);
  return a;
}

Result<void> NetDriver::setup_queue(std::uint16_t index, Queue& q) {
  const std::uint16_t num = info_.max_queue_size;
  auto desc = alloc(layout::WindowId::kEp, layout::desc_table_size(num));
  auto avail = alloc(layout::WindowId::kEp, layout::avail_ring_size(num));
  auto used = alloc(layout::WindowId::kRc, layout::used_ring_size(num));
  if (!desc || !avail || !used) return fail(Errc::kNoSpace, "windows too small for the queues");
  q.desc = *desc;
  q.avail = *avail;
  q.used = *used;
  ring::VringParams p;
  p.num = num;
  p.desc = {&t_.link().ep_window(), desc->off, static_cast<std::uint32_t>(desc->len)};
  p.avail = {&t_.link().ep_window(), avail->off, static_cast<std::uint32_t>(avail->len)};
  p.used = {&t_.link().rc_window(), used->off, static_cast<std::uint32_t>(used->len)};
  p.event_idx = features_ & bit(VIRTIO_RING_F_EVENT_IDX);
  // One descriptor per frame: indirect tables would only add a level here.
  q.vq = std::make_unique<ring::Vring>(p);
  return t_.enable_queue(info_.slot, index, num, desc->link_addr, avail->link_addr, used->link_addr);
}

Result<void> NetDriver::probe() {
  if (auto r = t_.reset(info_.slot); !r) return r;
  auto f = t_.negotiate(info_.slot, info_.device_features, wanted_features());
  if (!f) return tl::unexpected(f.error());
  features_ = *f;
  if (auto r = t_.read_config(info_.slot, std::as_writable_bytes(std::span{&cfg_, 1})); !r) return r;
  mtu_ = (features_ & bit(VIRTIO_NET_F_MTU)) ? cfg_.mtu.to_cpu() : 1500;
  if (mtu_ < 68) return fail(Errc::kRejected, "device reports an MTU below 68");
  buf_size_ = layout::net_buffer_size(mtu_);
  buf_.resize(buf_size_);
  const std::uint16_t num = info_.max_queue_size;
  if (!layout::queue_size_valid(num)) return fail(Errc::kRejected, "device max queue size not a power of 2");
  if (auto r = setup_queue(layout::kNetRxQueue, rx_); !r) return r;
  if (auto r = setup_queue(layout::kNetTxQueue, tx_); !r) return r;
  auto rxp = alloc(layout::WindowId::kRc, std::size_t{num} * buf_size_);
  auto txp = alloc(layout::WindowId::kEp, std::size_t{num} * buf_size_);
  if (!rxp || !txp) return fail(Errc::kNoSpace, "windows too small for the frame buffers");
  rx_pool_ = *rxp;
  tx_pool_ = *txp;
  tx_free_.clear();
  for (std::uint16_t i = num; i > 0; --i) tx_free_.push_back(static_cast<std::uint16_t>(i - 1));
  // VIRTIO 1.2 §5.1.6.3: fill the receive queue before DRIVER_OK.
  for (std::uint16_t i = 0; i < num; ++i) refill_rx(i);
  (void)rx_.vq->kick_prepare();
  if (auto r = t_.driver_ok(info_.slot); !r) return r;
  driver_ok_ = true;
  (void)rx_.vq->enable_cb();
  return {};
}

NetDriver::~NetDriver() {
  for (const auto& a : owned_) {
    (layout::link_addr_window(a.link_addr) == static_cast<std::uint8_t>(layout::WindowId::kEp) ? t_.ep_alloc()
                                                                                              : t_.rc_alloc())
        .free(a);
  }
  if (backend_ == nullptr) return;
  backend_->set_link(false);
  backend_->set_rx_paused(true);
  backend_->set_tx_wait(false);
  (void)backend_->start(*loop_, {});  // the backend outlives us: unhook our callbacks
}

Result<void> NetDriver::attach_backend(netback::FrameBackend& backend, os::EventLoop& loop) {
  backend_ = &backend;
  loop_ = &loop;
  auto r = backend.start(loop, {[this] { transmit(); }, [this] {
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
  const bool up = driver_ok_ && (!(features_ & bit(VIRTIO_NET_F_STATUS)) || (cfg_.status.to_cpu() & VIRTIO_NET_S_LINK_UP));
  backend_->set_link(up);
}

void NetDriver::kick(ring::Vring& vq) {
  if (vq.kick_prepare()) (void)t_.link().ring_doorbell();
}

void NetDriver::refill_rx(std::uint64_t token) {
  const ring::Buf b{rx_pool_.link_addr + token * buf_size_, static_cast<std::uint32_t>(buf_size_)};
  // Cannot fail for lack of space: each of the num buffers owns one descriptor.
  (void)rx_.vq->add({}, std::span{&b, 1}, token);
}

void NetDriver::reclaim_tx() {
  for (;;) {
    auto u = tx_.vq->get_used();
    if (!u) {
      log()->error("device {}: transmit queue: {}", info_.slot, u.error().what);
      return;
    }
    if (!*u) return;
    tx_free_.push_back(static_cast<std::uint16_t>((*u)->token));
  }
}

// Backend -> device: frames from the TAP onto the transmit queue.
void NetDriver::transmit() {
  if (!driver_ok_ || tx_.vq->broken()) return backend_->set_rx_paused(true);
  ring::Window& ep = t_.link().ep_window();
  for (int budget = kBudget; budget > 0; --budget) {
    reclaim_tx();
    if (!tx_free_.empty()) backend_->set_rx_paused(false);
    if (tx_free_.empty()) {
      // Ring full: stop reading the TAP and ask for an interrupt when the device catches up.
      backend_->set_rx_paused(true);
      if (tx_.vq->enable_cb()) break;
      continue;
    }
    auto n = backend_->recv(buf_);
    if (!n) break;
    if (*n < layout::kNetHdrSize) continue;
    layout::VirtioNetHdr hdr{};  // no offloads negotiated: a plain header
    std::memcpy(buf_.data(), &hdr, sizeof(hdr));
    const std::uint16_t slot = tx_free_.back();
    tx_free_.pop_back();
    const std::size_t off = tx_pool_.off + std::size_t{slot} * buf_size_;
    ep.write(off, std::span{buf_}.first(*n));  // one posted write burst
    const ring::Buf b{tx_pool_.link_addr + std::size_t{slot} * buf_size_, static_cast<std::uint32_t>(*n)};
    (void)tx_.vq->add(std::span{&b, 1}, {}, slot);
    ++stats_.tx_frames;
    stats_.tx_bytes += *n - layout::kNetHdrSize;
  }
  kick(*tx_.vq);
}

// Device -> backend: completed receive buffers to the TAP, then back on the ring.
void NetDriver::receive() {
  if (!driver_ok_) return;
  const ring::Window& rc = t_.link().rc_window();
  backlog_ = true;  // cleared when the loop ends for any reason but the budget
  for (int budget = kBudget; budget > 0; --budget) {
    if (!rx_pending_) {
      auto u = rx_.vq->get_used();
      if (!u) {
        log()->error("device {}: receive queue: {}", info_.slot, u.error().what);
        backlog_ = false;
        break;
      }
      if (!*u) {
        if (!rx_.vq->enable_cb()) continue;
        backlog_ = false;  // nothing more: wait for the interrupt
        break;
      }
      rx_pending_ = (*u)->token;
      rx_pending_len_ = (*u)->len;
    }
    const std::uint64_t token = *rx_pending_;
    if (rx_pending_len_ < layout::kNetHdrSize) {
      ++stats_.rx_errors;
    } else {
      // The receive buffer is in our own window: hand it to the backend without a copy.
      auto frame = rc.local_view(rx_pool_.off + token * buf_size_, rx_pending_len_);
      auto r = backend_->send(frame);
      if (!r && r.error().code == Errc::kNoSpace) {
        backend_->set_tx_wait(true);  // resumes from the writable callback
        backlog_ = false;
        break;
      }
      ++stats_.rx_frames;
      stats_.rx_bytes += rx_pending_len_ - layout::kNetHdrSize;
    }
    rx_pending_.reset();
    refill_rx(token);
  }
  kick(*rx_.vq);
}

void NetDriver::on_interrupt() {
  if (!driver_ok_) return;
  receive();
  const bool was_full = tx_free_.empty();
  reclaim_tx();
  if (was_full && !tx_free_.empty()) {
    backend_->set_rx_paused(false);
    transmit();
  }
}

bool NetDriver::on_control_event() {
  const std::uint8_t st = t_.device_status(info_.slot);
  if (st & VIRTIO_CONFIG_S_NEEDS_RESET) {
    log()->error("device {}: device reports DEVICE_NEEDS_RESET (broken queues {:#x})", info_.slot,
                 t_.broken_queues(info_.slot));
    rx_.vq->mark_broken();
    tx_.vq->mark_broken();
    driver_ok_ = false;
    update_carrier();
    return false;
  }
  const auto old = cfg_.status.to_cpu();
  if (auto r = t_.read_config(info_.slot, std::as_writable_bytes(std::span{&cfg_, 1})); !r) return true;
  if (old != cfg_.status.to_cpu()) {
    log()->info("device {}: link {}", info_.slot, (cfg_.status.to_cpu() & VIRTIO_NET_S_LINK_UP) ? "up" : "down");
  }
  update_carrier();
  return true;
}

}  // namespace vepf::host
