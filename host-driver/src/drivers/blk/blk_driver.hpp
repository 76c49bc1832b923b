#pragma once
// virtio-blk driver (VIRTIO 1.2 §5.2), handing the device to the host OS as an NBD export on a
// unix socket (nbd/nbd_server.hpp), so that nbdinfo, nbdcopy, qemu-img, qemu-io and the
// kernel's nbd-client work unchanged.
//
// NBD requests are split into virtio requests of at most kChunk bytes, several in flight; an
// NBD request completes when all its parts have. Offsets and lengths must be multiples of 512
// (the export advertises a minimum block size of 512; clients honour it, others get EINVAL).
// FUA is a write followed by a flush.
//
// Placement (ARCHITECTURE.md §1): descriptor table, avail ring, request headers, discard
// segments and write data in the EP window (we only write them); used ring, status bytes and
// read data in the RC window (we only read them).
//
// Copies: an NBD WRITE's data is received from the client's socket straight into write buffers
// lent to the NBD session (lend_write_buffer()) when the EP window is cached coherent memory,
// so vepf-host copies nothing (the EP then writes it to the file from its own memory); on other
// memory types, or when no run of buffers is free, it is received into the session's memory and
// copied into a buffer as the window's memory type allows. READ data: one copy out of our window.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/driver.hpp"
#include "nbd/nbd_server.hpp"
#include "transport/window_space.hpp"
#include "vepf/layout/blk.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/ring/consume.hpp"

namespace vepf::host {

struct BlkStats {
  std::uint64_t reads = 0, read_bytes = 0;    // virtio IN requests completed
  std::uint64_t writes = 0, write_bytes = 0;  // virtio OUT requests completed
  std::uint64_t flushes = 0, discards = 0, write_zeroes = 0;
  std::uint64_t errors = 0;       // requests the device answered with IOERR/UNSUPP
  std::uint64_t lent_writes = 0;  // NBD WRITEs received straight into EP-window buffers
};

class BlockDriver final : public Driver, public nbd::BlockTarget {
 public:
  static constexpr std::uint32_t kChunk = 128u << 10;  // bytes of data per virtio request
  /// kChunk data buffers per direction (RC window: reads, EP window: writes): one per request
  /// tag as the queue size allows, but at most a quarter of the window's free space (other
  /// devices come later), and never fewer than kMinBufs.
  static constexpr std::uint16_t kMinBufs = 8;
  /// Write buffers never lent to an NBD session (lend_write_buffer()), so that writes received
  /// into memory of the session's own still have buffers to be copied into.
  static constexpr std::uint16_t kLendReserve = 2;

  static std::uint64_t wanted_features() noexcept;

  /// `nbd_socket`: where the NBD server listens (unix stream socket); `max_clients`: NBD
  /// connections served at once ([device.block] max_nbd_clients).
  BlockDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
              std::string nbd_socket, os::EventLoop& loop, std::size_t max_clients = 16);
  ~BlockDriver() override;

  /// Negotiates, reads the config, sets up the queue and buffers, DRIVER_OK, starts the NBD
  /// server. Errors: any DriverTransport error; kNoSpace (windows too small); kRejected
  /// (capacity 0, queue too small); the NBD server's listen errors.
  [[nodiscard]] Result<void> probe() override;
  void on_interrupt() override;
  bool backlog() const override { return backlog_; }
  Counts counts() const override { return {stats_.writes, stats_.reads}; }
  std::vector<QueueState> queue_states() const override {
    if (!vq_) return {};
    return {queue_state(layout::kBlkRequestQueue, *vq_)};
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters() const override {
    const BlkStats& s = stats_;
    return {{"reads", s.reads},
            {"read_bytes", s.read_bytes},
            {"writes", s.writes},
            {"write_bytes", s.write_bytes},
            {"flushes", s.flushes},
            {"discards", s.discards},
            {"write_zeroes", s.write_zeroes},
            {"errors", s.errors},
            {"lent_writes", s.lent_writes}};
  }
  void report(spdlog::level::level_enum lvl) const override;
  const BlkStats& stats() const noexcept { return stats_; }
  const layout::VirtioBlkConfig& blk_config() const noexcept { return cfg_; }
  /// Write buffers (kChunk bytes each, in the EP window), and those neither lent nor in flight.
  std::size_t write_bufs() const noexcept { return write_buf_.size(); }
  std::size_t free_write_bufs() const noexcept { return write_free_; }
  const std::string& nbd_socket() const noexcept { return socket_; }

  // nbd::BlockTarget
  nbd::ExportInfo info() const override;
  void read(std::uint64_t offset, std::span<std::byte> dst, Done done) override;
  void write(std::uint64_t offset, std::span<const std::byte> src, bool fua, Done done) override;
  /// Lends a run of contiguous write buffers in the EP window (receive the data there and the
  /// write needs no copy), when that window is cached coherent memory (ring::Window::fillable():
  /// a kernel copy into device memory would break its access rules), the queue works, and
  /// kLendReserve buffers stay unlent. Empty otherwise.
  nbd::LentBuffer lend_write_buffer(std::size_t length) override;
  void flush(Done done) override;
  void trim(std::uint64_t offset, std::uint32_t length, Done done) override;
  void write_zeroes(std::uint64_t offset, std::uint32_t length, bool may_trim, Done done) override;

 private:
  /// One NBD request: done when `parts` reaches 0.
  struct Op {
    Done done;
    std::size_t parts = 0;
    int err = 0;
    bool fua = false;  // flush once every part is written
  };
  /// One virtio request, waiting for a tag (and a data buffer) or in flight.
  struct Part {
    std::shared_ptr<Op> op;
    std::uint32_t type = 0;          // VIRTIO_BLK_T_*
    std::uint64_t offset = 0;        // bytes
    std::uint32_t length = 0;        // bytes
    std::byte* dst = nullptr;        // IN: where the data goes
    const std::byte* src = nullptr;  // OUT: where it comes from
    bool lent = false;               // OUT: the data lies in write buffer `buf` already
    bool unmap = false;              // WRITE_ZEROES
    std::uint16_t buf = 0;           // data buffer while in flight
  };

  void on_needs_reset() override;
  const char* logger() const override { return "host.blk"; }
  /// Splits [offset, offset + length) into parts of at most `max` bytes for `op`.
  void split(const std::shared_ptr<Op>& op, std::uint32_t type, std::uint64_t offset,
             std::uint64_t length, std::uint64_t max, std::byte* dst, const std::byte* src,
             bool unmap, bool lent = false);
  /// The first write buffer of `src` when it is a run lend_write_buffer() lent, else nullopt.
  std::optional<std::uint16_t> lent_run(std::span<const std::byte> src) const noexcept;
  std::optional<std::uint16_t> take_write_buf() noexcept;
  void release_buf(const Part& p) noexcept;  // a copy buffer (read or write) back to its pool
  bool check(std::uint64_t offset, std::uint64_t length, const Done& done) const;
  void dispatch();
  bool start(Part& p, std::uint16_t tag);
  void complete(std::uint16_t tag);
  void finish_part(Part& p, int err);
  void fail_all(int err);

  std::string socket_;
  std::size_t max_clients_;
  os::EventLoop& loop_;
  layout::VirtioBlkConfig cfg_{};
  std::uint64_t capacity_ = 0;  // bytes
  WindowSpace space_;           // frees the window space when destroyed, after everything below
  std::unique_ptr<ring::Vring> vq_;
  ring::UsedConsumer used_;  // the request queue's completions
  bool backlog_ = false;
  transport::Allocation tags_ep_, tags_rc_, read_pool_, write_pool_;
  std::vector<std::optional<Part>> in_flight_;  // by tag
  std::vector<std::uint16_t> free_tags_, free_read_;
  enum class WriteBuf : std::uint8_t { kFree, kCopy, kLent };
  std::vector<WriteBuf> write_buf_;  // by write buffer: free, data copied in, or lent
  std::size_t write_free_ = 0;       // kFree entries in write_buf_
  std::byte* write_view_ = nullptr;  // the write buffers' bytes, when the EP window is fillable
  std::uint16_t read_bufs_ = kMinBufs, write_bufs_ = kMinBufs;  // chosen at probe()
  std::deque<Part> waiting_;
  std::unique_ptr<nbd::NbdServer> server_;
  BlkStats stats_;
};

}  // namespace vepf::host
