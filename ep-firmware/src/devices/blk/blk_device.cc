#include "devices/blk/blk_device.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::ep {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 256;  // chains per call before returning to the event loop
// A DISCARD may carry this many segments of up to BlockConfig::max_range_bytes each (a hint the
// file system answers by deallocating); a WRITE_ZEROES one: on a file system that cannot zero a
// range, the EP writes it.
constexpr std::uint32_t kMaxDiscardSegments = 16;
// Reads up to this size are tried from the page cache on the device's thread (read_cached()).
constexpr std::uint64_t kInlineRead = 256 * 1024;
constexpr std::uint32_t kMaxWriteZeroesSegments = 1;
auto log() { return spdlog::get("ep.blk"); }
}  // namespace

BlockDevice::BlockDevice(BlockFile file, const config::BlockConfig& cfg, std::uint16_t queue_size,
                         unsigned io_threads)
    : file_(std::move(file)),
      read_only_(cfg.read_only),
      queue_size_(queue_size),
      io_threads_(std::max(1u, io_threads)) {
  cfg_.capacity = layout::le64::from_cpu(file_.size() / layout::kSectorSize);
  // Linux's virtio_blk needs seg_max <= queue size - 2 for requests without indirect tables.
  cfg_.seg_max = layout::le32::from_cpu(std::max(1, std::min<int>(queue_size_ - 2, 254)));
  cfg_.blk_size = layout::le32::from_cpu(cfg.block_size);
  range_sectors_ = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(cfg.max_range_bytes, 0xffffffffu) / layout::kSectorSize);
  cfg_.max_discard_sectors = layout::le32::from_cpu(range_sectors_);
  cfg_.max_discard_seg = layout::le32::from_cpu(kMaxDiscardSegments);
  cfg_.discard_sector_alignment = layout::le32::from_cpu(cfg.block_size / layout::kSectorSize);
  cfg_.max_write_zeroes_sectors = layout::le32::from_cpu(range_sectors_);
  cfg_.max_write_zeroes_seg = layout::le32::from_cpu(kMaxWriteZeroesSegments);
  cfg_.write_zeroes_may_unmap = 1;
  hdr_buf_.resize(sizeof(layout::VirtioBlkReqHdr) +
                  kMaxDiscardSegments * sizeof(layout::VirtioBlkDiscardWz));
}

BlockDevice::~BlockDevice() {
  {
    std::lock_guard lk(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  if (loop_ != nullptr && done_fd_.valid()) loop_->remove(done_fd_.fd());
}

Result<void> BlockDevice::start(os::EventLoop& loop) {
  auto efd = os::EventFd::create();
  if (!efd) return tl::unexpected(efd.error());
  done_fd_ = std::move(*efd);
  if (auto r = loop.add(done_fd_.fd(), EPOLLIN, [this](std::uint32_t) { on_completions(); }); !r)
    return r;
  loop_ = &loop;
  for (unsigned i = 0; i < io_threads_; ++i) threads_.emplace_back([this] { io_thread(); });
  return {};
}

std::uint32_t BlockDevice::device_id() const { return VIRTIO_ID_BLOCK; }

std::uint64_t BlockDevice::device_features() const {
  std::uint64_t f = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) |
                    bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_BLK_F_SEG_MAX) |
                    bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
  if (read_only_) return f | bit(VIRTIO_BLK_F_RO);
  return f | bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
}

void BlockDevice::on_driver_ok(transport::DeviceHandle& h) {
  h_ = h;
  const std::uint64_t f = h.features();
  lim_.capacity = cfg_.capacity.to_cpu();
  // A read-only device stays read-only whether or not the driver accepted VIRTIO_BLK_F_RO.
  lim_.read_only = read_only_;
  lim_.flush = f & bit(VIRTIO_BLK_F_FLUSH);
  lim_.discard = f & bit(VIRTIO_BLK_F_DISCARD);
  lim_.write_zeroes = f & bit(VIRTIO_BLK_F_WRITE_ZEROES);
  lim_.max_discard_sectors = lim_.max_write_zeroes_sectors = range_sectors_;
  lim_.max_discard_seg = kMaxDiscardSegments;
  lim_.max_write_zeroes_seg = kMaxWriteZeroesSegments;
  lim_.max_data = kMaxRequestData;
  log()->info("{}: driver ready, {} sectors{}", file_.path(), lim_.capacity,
              read_only_ ? ", read-only" : "");
}

void BlockDevice::on_reset() {
  // Requests of the old session are dropped: queued ones here, running ones when they return
  // (their generation no longer matches). Their chains belong to queues about to go.
  ++generation_;
  {
    std::lock_guard lk(m_);
    for (auto& j : todo_) {
      --in_flight_;
      in_flight_bytes_ -= j->data_bytes;
    }
    todo_.clear();
  }
  if (h_) log()->info("{}: driver reset", file_.path());
  h_.reset();
  consumer_.drop();
  backlog_ = false;
}

void BlockDevice::on_notify(transport::DeviceHandle&) { process(); }

void BlockDevice::broken() {
  auto* vq = h_->queue(layout::kBlkRequestQueue);
  log::limited(peer_log_, log(), spdlog::level::err,
               "{}: driver broke the request queue's rules ({}); device needs reset", file_.path(),
               vq ? vq->why() : "?");
  h_->queue_broken(layout::kBlkRequestQueue);
  backlog_ = false;
}

void BlockDevice::finish(Job& job, std::uint8_t status, std::uint32_t written) {
  ring::Vringh* q = h_ ? h_->queue(layout::kBlkRequestQueue) : nullptr;
  if (q == nullptr) return;
  // Data (IN, GET_ID), then the status byte, which is the last writable byte (VIRTIO 1.2
  // §5.2.6) however much room the driver gave. The room between is not written: a driver's
  // gigabytes of writable descriptors cost us nothing. The used length counts the bytes
  // written from the start (§2.7.8.1): the status too only when no gap is left before it.
  const std::uint64_t room = job.chain.write_len;  // >= 1: parse_blk_request() refuses less
  std::uint32_t len = 0;
  if (room > 0) {
    written =
        static_cast<std::uint32_t>(std::min<std::uint64_t>({written, room - 1, job.buf.size()}));
    ring::chain_write(job.chain, std::span{job.buf}.first(written));
    const std::byte s{status};
    ring::chain_write_at(job.chain, room - 1, std::span{&s, 1});
    len = written + (written == room - 1 ? static_cast<std::uint32_t>(layout::kBlkStatusSize) : 0u);
  }
  if (!q->complete(job.chain.head, len)) return broken();
  need_notify_ = true;
}

void BlockDevice::process() {
  if (!h_) return;
  ring::Vringh* q = h_->queue(layout::kBlkRequestQueue);
  if (q == nullptr) return;
  // While kMaxInFlightData or a queue's worth of requests is in flight no chain is taken:
  // on_completions() resumes us. Every request type counts: a driver that re-posts a FLUSH
  // head still in flight (its avail entries are its own to write) cannot grow the job queue.
  const std::uint64_t most = q->num();
  const auto d = consumer_.drain_while(
      *q, kBudget,
      [this, most] { return in_flight_bytes_ < kMaxInFlightData && in_flight_ < most; },
      [this](ring::Chain& c) { return take(c); });
  backlog_ = d.end == ring::Drained::End::kBudget;
  if (d.end == ring::Drained::End::kBroken || d.end == ring::Drained::End::kStopped)
    return broken();
  if (need_notify_ && q->need_notify()) h_->notify_driver();
  need_notify_ = false;
}

ring::Handled BlockDevice::take(ring::Chain& c) {
  auto job = std::make_unique<Job>();
  job->generation = generation_;
  job->chain = std::move(c);
  const auto& ch = job->chain;
  // Read the header and any DISCARD/WRITE_ZEROES segments; OUT data is read below.
  const std::size_t head =
      static_cast<std::size_t>(std::min<std::uint64_t>(ch.read_len, hdr_buf_.size()));
  ring::chain_read(ch, std::span{hdr_buf_}.first(head));
  auto p =
      layout::parse_blk_request(std::span{hdr_buf_}.first(head), ch.read_len, ch.write_len, lim_);
  if (p.kind == layout::BlkParse::Kind::kMalformed) {
    log::limited(
        peer_log_, log(), spdlog::level::err,
        "{}: request chain without room for header and status ({} B readable, {} B writable)",
        file_.path(), ch.read_len, ch.write_len);
    return ring::Handled::stop();
  }
  if (p.kind == layout::BlkParse::Kind::kStatus) {
    ++stats_.refused;
    finish(*job, p.status, 0);
    return ring::Handled::taken();
  }
  job->req = std::move(p.request);
  if (job->req.type == VIRTIO_BLK_T_OUT) {
    job->data_bytes = job->req.length;
    // The I/O thread writes the data from where it lies in our own window (pwritev), when that
    // memory is viewable (cached); else one copy out of the window. The bytes stay the driver's
    // to rewrite until we complete the chain, as with any device that reads guest memory.
    job->gathered = ring::chain_gather(ch, sizeof(layout::VirtioBlkReqHdr), job->iov);
    if (!job->gathered) {
      job->iov.clear();
      job->buf.resize(ch.read_len);  // header + data
      ring::chain_read(ch, job->buf);
    }
  } else if (job->req.type == VIRTIO_BLK_T_IN) {
    job->buf.resize(job->req.length);
    job->data_bytes = job->req.length;
    // All in the page cache: read at once, without the round trip through an I/O thread (two
    // thread wake-ups). Requests complete in any order (VIRTIO 1.2 §5.2.6), so this one may pass
    // others in flight.
    if (job->req.length <= kInlineRead && file_.read_cached(job->req.offset, job->buf) == 0) {
      ++stats_.reads;
      ++stats_.cached_reads;
      stats_.read_bytes += job->req.length;
      finish(*job, VIRTIO_BLK_S_OK, static_cast<std::uint32_t>(job->req.length));
      return ring::Handled::taken();
    }
  } else if (job->req.type == VIRTIO_BLK_T_GET_ID) {
    ++stats_.get_ids;
    std::string id = "vepf:" + file_.path().substr(file_.path().find_last_of('/') + 1);
    id.resize(VIRTIO_BLK_ID_BYTES, '\0');  // NUL-padded; not NUL-terminated when 20 long
    job->buf.assign(reinterpret_cast<const std::byte*>(id.data()),
                    reinterpret_cast<const std::byte*>(id.data()) + job->req.length);
    finish(*job, VIRTIO_BLK_S_OK, static_cast<std::uint32_t>(job->req.length));
    return ring::Handled::taken();
  }
  submit(std::move(job));
  return ring::Handled::taken();  // completed by on_completions()
}

void BlockDevice::submit(std::unique_ptr<Job> job) {
  ++in_flight_;
  in_flight_bytes_ += job->data_bytes;
  stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight_);
  {
    std::lock_guard lk(m_);
    todo_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void BlockDevice::io_thread() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lk(m_);
      cv_.wait(lk, [this] { return stopping_ || !todo_.empty(); });
      if (stopping_) return;
      job = std::move(todo_.front());
      todo_.pop_front();
    }
    execute(*job);
    {
      std::lock_guard lk(m_);
      done_.push_back(std::move(job));
    }
    (void)done_fd_.signal();
  }
}

void BlockDevice::execute(Job& job) const {
  const auto& r = job.req;
  switch (r.type) {
    case VIRTIO_BLK_T_IN:
      job.err = file_.read(r.offset, std::span{job.buf}.first(r.length));
      break;
    case VIRTIO_BLK_T_OUT:
      job.err = job.gathered
                    ? file_.write(r.offset, std::span<iovec>(job.iov))
                    : file_.write(r.offset, std::span{job.buf}.subspan(
                                                sizeof(layout::VirtioBlkReqHdr), r.length));
      break;
    case VIRTIO_BLK_T_FLUSH:
      job.err = file_.flush();
      break;
    case VIRTIO_BLK_T_DISCARD:
      for (const auto& rg : r.ranges) {
        const int e = file_.discard(rg.offset, rg.length);
        // Discard is a hint (VIRTIO 1.2 §5.2.6.2): a backend that cannot deallocate keeps the data.
        if (e != 0 && e != EOPNOTSUPP) job.err = e;
      }
      break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
      for (const auto& rg : r.ranges) {
        if (const int e = file_.write_zeroes(rg.offset, rg.length, rg.unmap); e != 0) job.err = e;
      }
      break;
    default:
      job.err = EINVAL;  // parse_blk_request() lets no other type through
  }
}

void BlockDevice::on_completions() {
  (void)done_fd_.drain();
  std::deque<std::unique_ptr<Job>> done;
  {
    std::lock_guard lk(m_);
    done.swap(done_);
  }
  for (auto& job : done) {
    --in_flight_;
    in_flight_bytes_ -= job->data_bytes;
    if (job->generation != generation_) continue;  // its driver session is gone
    const auto& r = job->req;
    if (job->err != 0) {
      ++stats_.io_errors;
      log::limited(peer_log_, log(), spdlog::level::warn,
                   "{}: request type {} at byte {} failed: {}", file_.path(), r.type, r.offset,
                   std::strerror(job->err));
      finish(*job, VIRTIO_BLK_S_IOERR, 0);
      continue;
    }
    switch (r.type) {
      case VIRTIO_BLK_T_IN:
        ++stats_.reads;
        stats_.read_bytes += r.length;
        finish(*job, VIRTIO_BLK_S_OK, static_cast<std::uint32_t>(r.length));
        break;
      case VIRTIO_BLK_T_OUT:
        ++stats_.writes;
        stats_.write_bytes += r.length;
        finish(*job, VIRTIO_BLK_S_OK, 0);
        break;
      case VIRTIO_BLK_T_FLUSH:
        ++stats_.flushes;
        finish(*job, VIRTIO_BLK_S_OK, 0);
        break;
      case VIRTIO_BLK_T_DISCARD:
        ++stats_.discards;
        finish(*job, VIRTIO_BLK_S_OK, 0);
        break;
      default:
        ++stats_.write_zeroes;
        finish(*job, VIRTIO_BLK_S_OK, 0);
    }
  }
  if (h_) {
    if (ring::Vringh* q = h_->queue(layout::kBlkRequestQueue);
        q && need_notify_ && q->need_notify())
      h_->notify_driver();
  }
  need_notify_ = false;
  process();  // room in flight again: take what waited
}

BlockDevice::Counts BlockDevice::counts() const {
  return {stats_.reads, stats_.writes};  // data requests each way
}

void BlockDevice::describe(nlohmann::json& out) const {
  out["path"] = file_.path();
  out["capacity_bytes"] = file_.size();
  out["read_only"] = read_only_;
  out["reads"] = stats_.reads;
  out["cached_reads"] = stats_.cached_reads;
  out["writes"] = stats_.writes;
  out["read_bytes"] = stats_.read_bytes;
  out["write_bytes"] = stats_.write_bytes;
  out["flushes"] = stats_.flushes;
  out["in_flight"] = in_flight_;
}

void BlockDevice::report(std::uint32_t slot, spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  log()->log(
      lvl,
      "slot {} {}: read {} req {} B, wrote {} req {} B, {} flushes, {} discards, {} write-zeroes, "
      "{} I/O errors, {} refused, at most {} in flight",
      slot, file_.path(), s.reads, s.read_bytes, s.writes, s.write_bytes, s.flushes, s.discards,
      s.write_zeroes, s.io_errors, s.refused, s.max_in_flight);
}

}  // namespace vepf::ep
