#pragma once
// A receive queue and a transmit queue with fixed-size buffers owned by the driver, placed
// consumer-local (ARCHITECTURE.md §1): both rings' descriptor tables and avail rings and the
// transmit buffers in the EP window (the driver only writes them), both used rings and the
// receive buffers in the RC window (the driver only reads them). Shared by the net and rpmsg
// drivers. Frees its window space when destroyed (devices come and go while the link is up).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "transport/window_space.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

class BufferQueues {
 public:
  BufferQueues(transport::DriverTransport& t, const transport::DeviceInfo& info)
      : t_(t), info_(info), space_(t, info) {}
  BufferQueues(const BufferQueues&) = delete;
  BufferQueues& operator=(const BufferQueues&) = delete;

  /// Allocates and enables queues `rx_index` and `tx_index` of max_queue_size entries, with one
  /// buffer of `buf_size` bytes per entry, and posts every receive buffer (not yet published:
  /// call kick(rx()) after DRIVER_OK, or before it as virtio-net and rpmsg want).
  /// Errors: kRejected (bad queue size, device refused a queue), kNoSpace (windows too small),
  /// any DriverTransport error.
  [[nodiscard]] Result<void> setup(std::uint16_t rx_index, std::uint16_t tx_index,
                                   std::size_t buf_size, bool event_idx);

  ring::Vring& rx() noexcept { return *rx_; }
  ring::Vring& tx() noexcept { return *tx_; }
  /// Both queues' states (after setup()), appended to `out`.
  void queue_states(std::vector<QueueState>& out) const {
    if (rx_) out.push_back(queue_state(rx_index_, *rx_));
    if (tx_) out.push_back(queue_state(tx_index_, *tx_));
  }
  std::size_t buf_size() const noexcept { return buf_size_; }

  /// Puts receive buffer `token` back on the receive queue.
  void refill_rx(std::uint64_t token);
  /// The first `len` bytes of receive buffer `token`: read in place when our window is cached
  /// memory (Window::viewable()), otherwise copied out of it into a buffer of ours, which stays
  /// valid until the next call (a syscall must not read device memory with its memcpy).
  std::span<const std::byte> rx_view(std::uint64_t token, std::uint32_t len) const;
  /// Takes back completed transmit buffers. Errors: kBadRing from the used ring.
  [[nodiscard]] Result<void> reclaim_tx();
  bool tx_full() const noexcept { return tx_free_.empty(); }
  /// Transmit buffers free now.
  std::size_t tx_free() const noexcept { return tx_free_.size(); }
  /// Copies `data` (at most buf_size() bytes) into a free transmit buffer (posted writes) and
  /// adds it to the transmit queue. Errors: kNoSpace when every buffer is in flight.
  [[nodiscard]] Result<void> send(std::span<const std::byte> data);
  /// A free transmit buffer for a syscall to fill in place (readv() from a TAP): its buf_size()
  /// bytes in the EP window, when that window is fillable() (cached memory: the loopback
  /// platform's memfd) and a buffer is free; empty otherwise (fill one of yours and send() it:
  /// a kernel's copy must not write device memory). Valid until send_filled() or send().
  std::span<std::byte> tx_fill_view();
  /// Adds the first `len` bytes of the buffer tx_fill_view() gave to the transmit queue, counted
  /// as one posted write burst. Errors: kInvalidArgument (no view taken, `len` > buf_size()).
  [[nodiscard]] Result<void> send_filled(std::size_t len);
  /// Publishes what was added and rings the doorbell if the device asked for it.
  void kick(ring::Vring& vq);

 private:
  Result<void> add_tx(
      std::size_t len);  // the last free transmit buffer, filled with `len` bytes, onto the queue

  transport::DriverTransport& t_;
  const transport::DeviceInfo& info_;
  WindowSpace space_;  // frees the window space when destroyed
  std::unique_ptr<ring::Vring> rx_, tx_;
  std::size_t buf_size_ = 0;
  std::uint16_t rx_index_ = 0, tx_index_ = 0;
  transport::Allocation rx_pool_, tx_pool_;
  std::vector<std::uint16_t> tx_free_;
  bool tx_viewed_ = false;                  // tx_free_.back() was handed out by tx_fill_view()
  mutable std::vector<std::byte> rx_copy_;  // rx_view()'s copy on a window that is not viewable
};

}  // namespace vepf::host
