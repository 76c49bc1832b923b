#include "devices/rpmsg/rpmsg_device.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <spdlog/spdlog.h>

namespace vepf::ep {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 256;  // messages per call before returning to the event loop
constexpr std::size_t kMaxOut = 256;    // queued messages before we stop reading the channels
auto log() { return spdlog::get("ep.rpmsg"); }
}  // namespace

RpmsgDevice::RpmsgDevice(std::string runtime_dir, std::uint16_t queue_size,
                         std::size_t max_connections)
    : dir_(std::move(runtime_dir)),
      queue_size_(queue_size),
      router_(std::make_unique<rpmsg::Channels>(dir_ + "/ep", static_cast<rpmsg::Port&>(*this),
                                                "ep.rpmsg", dir_, max_connections)) {}

RpmsgDevice::RpmsgDevice(std::uint16_t queue_size, const rpmsg::RouterFactory& make,
                         std::string name)
    : dir_(std::move(name)), queue_size_(queue_size), router_(make(*this)) {}

RpmsgDevice::~RpmsgDevice() = default;

Result<void> RpmsgDevice::start(os::EventLoop& loop) { return router_->start(loop); }

std::uint32_t RpmsgDevice::device_id() const { return VIRTIO_ID_RPMSG; }

std::uint64_t RpmsgDevice::device_features() const {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(layout::kVirtioRpmsgFNs);
}

void RpmsgDevice::on_driver_ok(transport::DeviceHandle& h) {
  h_ = h;
  router_->link_up(h.features() & bit(layout::kVirtioRpmsgFNs));
  flush_out();
}

void RpmsgDevice::on_reset() {
  if (h_) log()->info("{}: driver reset", dir_);
  h_.reset();
  out_.clear();
  rx_.drop();
  tx_.drop();
  backlog_ = backlog_tx_ = false;
  router_->link_down();  // the driver's channels go; ours are announced to the next driver
}

void RpmsgDevice::on_notify(transport::DeviceHandle&) {
  process_tx();
  flush_out();
  router_->resume();
}

bool RpmsgDevice::can_send() { return h_.has_value() && out_.size() < kMaxOut; }

std::size_t RpmsgDevice::send_room() { return can_send() ? kMaxOut - out_.size() : 0; }

void RpmsgDevice::send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  std::vector<std::byte> m(layout::kRpmsgHdrSize + payload.size());
  (void)rpmsg::encode(m, src, dst, payload);
  out_.push_back(std::move(m));
}

void RpmsgDevice::broken(std::uint16_t q) {
  auto* vq = h_->queue(q);
  log::limited(peer_log_, log(), spdlog::level::err,
               "{}: driver broke {} queue rules ({}); device needs reset", dir_,
               q == layout::kRpmsgRxQueue ? "rx" : "tx", vq ? vq->why() : "?");
  h_->queue_broken(q);
  out_.clear();
}

// Device -> driver: queued messages into the driver's receive buffers (queue 0).
void RpmsgDevice::flush_out() {
  if (!h_ || out_.empty()) return;
  ring::Vringh* q = h_->queue(layout::kRpmsgRxQueue);
  if (q == nullptr) return;
  const auto d = rx_.drain_while(
      *q, kBudget, [this] { return !out_.empty(); },
      [this](ring::Chain& c) {
        const auto& m = out_.front();
        std::uint32_t len = 0;
        if (c.write_len >= m.size()) {
          len = static_cast<std::uint32_t>(ring::chain_write(c, m));
          ++stats_.to_driver;
          stats_.to_driver_bytes += m.size() - layout::kRpmsgHdrSize;
        } else {
          ++stats_.short_buffer;  // a receive buffer smaller than the message: the driver's choice
        }
        out_.pop_front();
        return ring::Handled::used(len);
      });
  backlog_ = d.end == ring::Drained::End::kBudget;  // empty ring: the driver rings when it adds
  if (d.notify) h_->notify_driver();
  if (d.end == ring::Drained::End::kBroken) broken(layout::kRpmsgRxQueue);
}

// Driver -> device: the driver's transmit buffers (queue 1), each one rpmsg for the channels.
void RpmsgDevice::process_tx() {
  if (!h_) return;
  ring::Vringh* q = h_->queue(layout::kRpmsgTxQueue);
  if (q == nullptr) return;
  // While the Router cannot take more (a local program is slow), the driver's messages stay on
  // the ring: its sends wait for room, and Port::receive_again() brings us back.
  const auto d = tx_.drain_while(
      *q, kBudget, [this] { return router_->can_take(); },
      [this](ring::Chain& c) {
        if (c.read_len < layout::kRpmsgHdrSize || c.read_len > layout::kRpmsgBufSize) {
          ++stats_.bad;
        } else {
          const std::size_t n = ring::chain_read(c, buf_);
          router_->on_message(std::span{buf_}.first(n));
        }
        return ring::Handled::used();
      });
  // The budget can be the whole queue: what the driver added since comes without a doorbell
  // (EVENT_IDX asked for none), so poll again before sleeping.
  router_->flush_received();
  // Held back, but the flush made room: go on at the next poll.
  backlog_tx_ = d.end == ring::Drained::End::kBudget ||
                (d.end == ring::Drained::End::kHeld && router_->can_take());
  if (d.notify) h_->notify_driver();
  if (d.end == ring::Drained::End::kBroken) broken(layout::kRpmsgTxQueue);
}

void RpmsgDevice::describe(nlohmann::json& out) const {
  out["runtime_dir"] = dir_;
  out["channels"] = router_->local_channels();
  out["driver_channels"] = router_->peer_channels();
  out["messages_to_driver"] = stats_.to_driver;
  out["messages_from_driver"] = router_->stats().received;
  out["refused_connections"] = router_->stats().refused_connections;
}

void RpmsgDevice::report(std::uint32_t slot, spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  const auto& c = router_->stats();
  log()->log(lvl,
             "slot {}: to driver {} msgs {} B (short buffer {}), from driver {} msgs {} B (bad {}, "
             "no endpoint {}, "
             "socket full {}); channels: {} ours, {} the driver's, {} refused",
             slot, s.to_driver, s.to_driver_bytes, s.short_buffer, c.received, c.received_bytes,
             s.bad + c.bad, c.no_endpoint, c.dropped, router_->local_channels(),
             router_->peer_channels(), c.refused);
}

}  // namespace vepf::ep
