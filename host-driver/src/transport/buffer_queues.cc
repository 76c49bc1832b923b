#include "transport/buffer_queues.hpp"

namespace vepf::host {

Result<void> BufferQueues::setup(std::uint16_t rx_index, std::uint16_t tx_index,
                                 std::size_t buf_size, bool event_idx) {
  const std::uint16_t num = info_.max_queue_size;
  auto rx = space_.make_queue(rx_index, event_idx);
  if (!rx) return tl::unexpected(rx.error());
  auto tx = space_.make_queue(tx_index, event_idx);
  if (!tx) return tl::unexpected(tx.error());
  rx_ = std::move(*rx);
  tx_ = std::move(*tx);
  rx_index_ = rx_index;
  tx_index_ = tx_index;
  buf_size_ = buf_size;
  auto rxp = space_.alloc(layout::WindowId::kRc, std::size_t{num} * buf_size);
  auto txp = space_.alloc(layout::WindowId::kEp, std::size_t{num} * buf_size);
  if (!rxp || !txp) return fail(Errc::kNoSpace, "windows too small for the buffers");
  rx_pool_ = *rxp;
  tx_pool_ = *txp;
  tx_free_.clear();
  for (std::uint16_t i = num; i > 0; --i) tx_free_.push_back(static_cast<std::uint16_t>(i - 1));
  for (std::uint16_t i = 0; i < num; ++i) refill_rx(i);
  return {};
}

void BufferQueues::refill_rx(std::uint64_t token) {
  const ring::Buf b{rx_pool_.link_addr + token * buf_size_, static_cast<std::uint32_t>(buf_size_)};
  // Cannot fail for lack of space: each of the num buffers owns one descriptor.
  (void)rx_->add({}, std::span{&b, 1}, token);
}

std::span<const std::byte> BufferQueues::rx_view(std::uint64_t token, std::uint32_t len) const {
  const ring::Window& rc = t_.link().rc_window();
  const std::size_t off = rx_pool_.off + token * buf_size_;
  if (rc.viewable()) return rc.local_view(off, len);
  rx_copy_.resize(len);
  rc.read(off, rx_copy_);
  return rx_copy_;
}

Result<void> BufferQueues::reclaim_tx() {
  for (;;) {
    auto u = tx_->get_used();
    if (!u) return tl::unexpected(u.error());
    if (!*u) return {};
    tx_free_.push_back(static_cast<std::uint16_t>((*u)->token));
  }
}

Result<void> BufferQueues::send(std::span<const std::byte> data) {
  if (tx_free_.empty()) return fail(Errc::kNoSpace, "every transmit buffer is in flight");
  if (data.size() > buf_size_) return fail(Errc::kInvalidArgument, "larger than a transmit buffer");
  tx_viewed_ = false;
  t_.link().ep_window().write(tx_pool_.off + std::size_t{tx_free_.back()} * buf_size_,
                              data);  // one posted write burst
  return add_tx(data.size());
}

std::span<std::byte> BufferQueues::tx_fill_view() {
  ring::Window& ep = t_.link().ep_window();
  if (tx_free_.empty() || !ep.fillable()) return {};
  tx_viewed_ = true;
  return ep.fill_view(tx_pool_.off + std::size_t{tx_free_.back()} * buf_size_, buf_size_);
}

Result<void> BufferQueues::send_filled(std::size_t len) {
  if (!tx_viewed_ || tx_free_.empty())
    return fail(Errc::kInvalidArgument, "no transmit buffer was handed out");
  if (len > buf_size_) return fail(Errc::kInvalidArgument, "larger than a transmit buffer");
  tx_viewed_ = false;
  t_.link().ep_window().filled(len);
  return add_tx(len);
}

Result<void> BufferQueues::add_tx(std::size_t len) {
  const std::uint16_t slot = tx_free_.back();
  const ring::Buf b{tx_pool_.link_addr + std::size_t{slot} * buf_size_,
                    static_cast<std::uint32_t>(len)};
  if (auto r = tx_->add(std::span{&b, 1}, {}, slot); !r) return tl::make_unexpected(r.error());
  tx_free_.pop_back();
  return {};
}

void BufferQueues::kick(ring::Vring& vq) {
  if (vq.kick_prepare()) (void)t_.link().ring_device_doorbell(info_.slot);
}

}  // namespace vepf::host
