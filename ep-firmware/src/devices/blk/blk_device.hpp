#pragma once
// virtio-blk device (VIRTIO 1.2 §5.2), device ID 2, one request queue, on a BlockFile.
//
// Offers VERSION_1, EVENT_IDX, INDIRECT_DESC, SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES and
// RO (read-only backends). The event loop's thread pops and checks chains
// (layout::parse_blk_request) and copies OUT data out of the window; I/O threads run the
// syscalls, so several requests are in flight and complete in any order while the loop keeps
// serving the other devices. A request completes only after its syscall returned: a write
// after pwrite(2) reached the backend, a flush after fdatasync(2), whose coverage is every
// write completed before it.

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "devices/blk/block_file.hpp"
#include "devices/device.hpp"
#include "vepf/byte_buffer.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/layout/blk.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/ring/consume.hpp"

namespace vepf::ep {

struct BlkStats {
  std::uint64_t reads = 0, read_bytes = 0;
  std::uint64_t cached_reads = 0;  // of those, read from the page cache on the device's thread
  std::uint64_t writes = 0, write_bytes = 0;
  std::uint64_t flushes = 0, discards = 0, write_zeroes = 0, get_ids = 0;
  std::uint64_t io_errors = 0;      // the backend failed (VIRTIO_BLK_S_IOERR)
  std::uint64_t refused = 0;        // bad request from the driver (IOERR/UNSUPP without I/O)
  std::uint64_t max_in_flight = 0;  // most requests handed to the I/O threads at once
};

class BlockDevice final : public Device {
 public:
  /// Requests carrying more data than this are refused (bytes).
  static constexpr std::uint64_t kMaxRequestData = 16u << 20;
  /// The loop stops taking requests while this much data is in flight (bytes), or as many
  /// requests of any type as the queue has entries.
  static constexpr std::uint64_t kMaxInFlightData = 64u << 20;

  BlockDevice(BlockFile file, const config::BlockConfig& cfg, std::uint16_t queue_size,
              unsigned io_threads = 2);
  ~BlockDevice() override;  // stops the I/O threads (requests queued but not started are dropped)

  /// Starts the I/O threads and watches their completions. Errors: kSystem (eventfd, loop).
  [[nodiscard]] Result<void> start(os::EventLoop& loop);

  std::uint32_t device_id() const override;
  std::uint64_t device_features() const override;
  std::uint16_t num_queues() const override { return 1; }
  std::uint16_t max_queue_size() const override { return queue_size_; }
  std::span<const std::byte> config() const override { return std::as_bytes(std::span{&cfg_, 1}); }
  void on_driver_ok(transport::DeviceHandle& h) override;
  void on_reset() override;
  void on_notify(transport::DeviceHandle& h) override;

  const char* type_name() const override { return "block"; }
  bool backlog() const override { return backlog_; }
  void describe(nlohmann::json& out) const override;
  Counts counts() const override;
  void report(std::uint32_t slot, spdlog::level::level_enum lvl) const override;
  const BlkStats& stats() const noexcept { return stats_; }

 private:
  struct Job {
    std::uint64_t generation = 0;  // the driver session it belongs to (see on_reset())
    ring::Chain chain;             // loop thread only
    layout::BlkRequest req;
    ByteBuffer buf;                // OUT: header + data as read; IN: data (not zeroed first)
    std::vector<iovec> iov;        // OUT, when gathered: the data where it lies in our window
    bool gathered = false;         // OUT: iov rather than buf
    std::uint64_t data_bytes = 0;  // counted against kMaxInFlightData
    int err = 0;                   // set by the I/O thread
  };

  void process();
  ring::Handled take(ring::Chain& c);  // one request chain: refused, answered, or submitted
  void submit(std::unique_ptr<Job> job);
  void finish(Job& job, std::uint8_t status, std::uint32_t written);
  void on_completions();
  void io_thread();
  void execute(Job& job) const;  // on an I/O thread
  void broken();

  BlockFile file_;
  layout::VirtioBlkConfig cfg_{};
  bool read_only_;
  std::uint16_t queue_size_;
  unsigned io_threads_;
  std::uint32_t range_sectors_ =
      0;  // max_discard_sectors = max_write_zeroes_sectors (sectors of 512 B)
  std::optional<transport::DeviceHandle> h_;
  ring::ChainConsumer consumer_;
  layout::BlkLimits lim_{};
  std::uint64_t generation_ = 1;
  std::uint64_t in_flight_ = 0, in_flight_bytes_ = 0;
  std::vector<std::byte> hdr_buf_;
  os::EventLoop* loop_ = nullptr;
  os::EventFd done_fd_;
  BlkStats stats_;
  bool backlog_ = false;
  bool need_notify_ = false;

  // Shared with the I/O threads.
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> todo_, done_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace vepf::ep
