#include "drivers/blk/blk_driver.hpp"

#include <linux/virtio_config.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::size_t kTagEp =
    32;  // per tag in the EP window: request header + one discard segment
constexpr std::size_t kTagRc = 16;  // per tag in the RC window: the status byte (padded)
constexpr std::uint16_t kMaxTags = 32;
auto log() { return spdlog::get("host.blk"); }
}  // namespace

std::uint64_t BlockDriver::wanted_features() noexcept {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_BLK_F_SEG_MAX) |
         bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_RO) | bit(VIRTIO_BLK_F_FLUSH) |
         bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
}

BlockDriver::BlockDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                         std::string nbd_socket, os::EventLoop& loop, std::size_t max_clients)
    : Driver(t, info),
      socket_(std::move(nbd_socket)),
      max_clients_(max_clients),
      loop_(loop),
      space_(t, info_) {}

BlockDriver::~BlockDriver() {
  server_.reset();   // closes the clients first: nothing asks us for more
  waiting_.clear();  // pending `done` callbacks are destroyed, not called (BlockTarget contract)
  in_flight_.clear();
}

Result<void> BlockDriver::probe() {
  if (auto r = negotiate(wanted_features()); !r) return r;
  if (auto r = t_.read_config_wait(info_.slot, std::as_writable_bytes(std::span{&cfg_, 1})); !r)
    return r;
  capacity_ = cfg_.capacity.to_cpu() * layout::kSectorSize;
  if (capacity_ == 0) return fail(Errc::kRejected, "device reports capacity 0");
  const std::uint16_t num = info_.max_queue_size;
  // Each request takes up to 3 descriptors (header, data, status); no indirect tables.
  const std::uint16_t tags = std::min<std::uint16_t>(kMaxTags, num / 3);
  if (tags == 0) return fail(Errc::kRejected, "queue too small for one request (3 descriptors)");

  auto q = space_.make_queue(layout::kBlkRequestQueue, has(VIRTIO_RING_F_EVENT_IDX));
  if (!q) return tl::unexpected(q.error());
  vq_ = std::move(*q);
  auto tep = space_.alloc(layout::WindowId::kEp, std::size_t{tags} * kTagEp);
  auto trc = space_.alloc(layout::WindowId::kRc, std::size_t{tags} * kTagRc);
  // Requests in flight as the queue size allows (tags), each direction's data buffers to match
  // as far as a quarter of the window's free space goes.
  const auto bufs_for = [&](layout::WindowId w) {
    const std::size_t quarter = space_.largest_free(w) / 4 / kChunk;
    return static_cast<std::uint16_t>(
        std::max<std::size_t>(kMinBufs, std::min<std::size_t>(tags, quarter)));
  };
  read_bufs_ = bufs_for(layout::WindowId::kRc);
  write_bufs_ = bufs_for(layout::WindowId::kEp);
  auto rp = space_.alloc(layout::WindowId::kRc, std::size_t{read_bufs_} * kChunk);
  auto wp = space_.alloc(layout::WindowId::kEp, std::size_t{write_bufs_} * kChunk);
  if (!tep || !trc || !rp || !wp)
    return fail(Errc::kNoSpace, "windows too small for the block device's buffers");
  tags_ep_ = *tep;
  tags_rc_ = *trc;
  read_pool_ = *rp;
  write_pool_ = *wp;
  in_flight_.assign(tags, std::nullopt);
  for (std::uint16_t i = tags; i > 0; --i) free_tags_.push_back(static_cast<std::uint16_t>(i - 1));
  for (std::uint16_t i = read_bufs_; i > 0; --i)
    free_read_.push_back(static_cast<std::uint16_t>(i - 1));
  write_buf_.assign(write_bufs_, WriteBuf::kFree);
  write_free_ = write_bufs_;
  auto& ep = t_.link().ep_window();
  if (ep.fillable())
    write_view_ = ep.fill_view(write_pool_.off, std::size_t{write_bufs_} * kChunk).data();
  if (auto r = set_driver_ok(); !r) return r;
  (void)vq_->enable_cb();

  nbd::NbdServerOptions o;
  o.max_clients = max_clients_;
  auto server = nbd::NbdServer::listen(socket_, loop_, *this, o);
  if (!server) return tl::unexpected(server.error());
  server_ = std::move(*server);
  log()->info(
      "device {}: virtio-blk up: {} bytes ({} sectors){}, block size {}; {} requests in flight, "
      "{} KiB each way; NBD export on {}",
      info_.slot, capacity_, cfg_.capacity.to_cpu(), has(VIRTIO_BLK_F_RO) ? ", read-only" : "",
      has(VIRTIO_BLK_F_BLK_SIZE) ? cfg_.blk_size.to_cpu() : layout::kSectorSize, tags,
      std::size_t{read_bufs_} * kChunk >> 10, socket_);
  return {};
}

nbd::ExportInfo BlockDriver::info() const {
  nbd::ExportInfo e;
  e.size = capacity_;
  e.read_only = has(VIRTIO_BLK_F_RO);
  e.can_flush = has(VIRTIO_BLK_F_FLUSH);
  e.can_fua = has(VIRTIO_BLK_F_FLUSH);
  e.can_trim = has(VIRTIO_BLK_F_DISCARD);
  e.can_write_zeroes = has(VIRTIO_BLK_F_WRITE_ZEROES);
  // A virtio flush covers every write the device completed, whichever connection sent it.
  e.can_multi_conn = true;
  e.min_block = layout::kSectorSize;
  const std::uint32_t bs =
      has(VIRTIO_BLK_F_BLK_SIZE) ? cfg_.blk_size.to_cpu() : layout::kSectorSize;
  e.preferred_block = std::clamp<std::uint32_t>(bs, layout::kSectorSize, 65536);
  e.preferred_block = std::max<std::uint32_t>(e.preferred_block, 4096);
  e.max_block = 32u << 20;
  e.description = fmt::format("virtio-blk device {} over virtio-epf", info_.slot);
  return e;
}

bool BlockDriver::check(std::uint64_t offset, std::uint64_t length, const Done& done) const {
  if (!driver_ok_ || !vq_ || vq_->broken()) {
    done(ESHUTDOWN);
    return false;
  }
  if (offset % layout::kSectorSize != 0 || length % layout::kSectorSize != 0) {
    done(EINVAL);  // the export's minimum block size is 512: clients align (NBD_INFO_BLOCK_SIZE)
    return false;
  }
  if (offset > capacity_ || length > capacity_ - offset) {
    done(ENOSPC);
    return false;
  }
  return true;
}

void BlockDriver::split(const std::shared_ptr<Op>& op, std::uint32_t type, std::uint64_t offset,
                        std::uint64_t length, std::uint64_t max, std::byte* dst,
                        const std::byte* src, bool unmap, bool lent) {
  std::uint64_t done_bytes = 0;
  do {
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(length - done_bytes, max));
    Part p;
    p.op = op;
    p.type = type;
    p.offset = offset + done_bytes;
    p.length = n;
    p.dst = dst ? dst + done_bytes : nullptr;
    p.src = src ? src + done_bytes : nullptr;
    p.unmap = unmap;
    p.lent = lent;
    // A lent run holds the data of part i in its buffer i (parts are kChunk long but the last).
    if (lent) p.buf = static_cast<std::uint16_t>((src + done_bytes - write_view_) / kChunk);
    ++op->parts;
    waiting_.push_back(std::move(p));
    done_bytes += n;
  } while (done_bytes < length);
}

void BlockDriver::read(std::uint64_t offset, std::span<std::byte> dst, Done done) {
  if (!check(offset, dst.size(), done)) return;
  if (dst.empty()) return done(0);
  auto op = std::make_shared<Op>();
  op->done = std::move(done);
  split(op, VIRTIO_BLK_T_IN, offset, dst.size(), kChunk, dst.data(), nullptr, false);
  dispatch();
}

void BlockDriver::write(std::uint64_t offset, std::span<const std::byte> src, bool fua, Done done) {
  if (!check(offset, src.size(), done)) return;
  if (has(VIRTIO_BLK_F_RO)) return done(EROFS);
  if (src.empty()) return done(0);
  auto op = std::make_shared<Op>();
  op->done = std::move(done);
  op->fua = fua && has(VIRTIO_BLK_F_FLUSH);
  split(op, VIRTIO_BLK_T_OUT, offset, src.size(), kChunk, nullptr, src.data(), false,
        lent_run(src).has_value());
  dispatch();
}

nbd::LentBuffer BlockDriver::lend_write_buffer(std::size_t length) {
  if (write_view_ == nullptr || length == 0 || !driver_ok_ || !vq_ || vq_->broken() ||
      has(VIRTIO_BLK_F_RO))
    return {};
  const std::size_t k = (length + kChunk - 1) / kChunk;
  if (k + kLendReserve > write_free_) return {};
  for (std::size_t first = 0; first + k <= write_buf_.size(); ++first) {
    std::size_t n = 0;
    while (n < k && write_buf_[first + n] == WriteBuf::kFree) ++n;
    if (n < k) {
      first += n;  // the run breaks at first + n
      continue;
    }
    for (std::size_t i = 0; i < k; ++i) write_buf_[first + i] = WriteBuf::kLent;
    write_free_ -= k;
    ++stats_.lent_writes;
    // Given back when the NBD request is over (after the write's `done`, or when dropped);
    // every holder of the buffer goes before this driver does (~BlockDriver).
    return {std::span{write_view_ + first * kChunk, length}, [this, first, k] {
              for (std::size_t i = 0; i < k; ++i) write_buf_[first + i] = WriteBuf::kFree;
              write_free_ += k;
            }};
  }
  return {};  // no run that long: the session receives into its own memory
}

std::optional<std::uint16_t> BlockDriver::lent_run(std::span<const std::byte> src) const noexcept {
  if (write_view_ == nullptr || src.empty()) return std::nullopt;
  const auto p = reinterpret_cast<std::uintptr_t>(src.data());
  const auto base = reinterpret_cast<std::uintptr_t>(write_view_);
  const std::size_t pool = write_buf_.size() * std::size_t{kChunk};
  if (p < base || p - base >= pool || src.size() > pool - (p - base)) return std::nullopt;
  if ((p - base) % kChunk != 0) return std::nullopt;
  const std::size_t first = (p - base) / kChunk;
  const std::size_t k = (src.size() + kChunk - 1) / kChunk;
  for (std::size_t i = 0; i < k; ++i) {
    if (write_buf_[first + i] != WriteBuf::kLent) return std::nullopt;
  }
  return static_cast<std::uint16_t>(first);
}

std::optional<std::uint16_t> BlockDriver::take_write_buf() noexcept {
  if (write_free_ == 0) return std::nullopt;
  for (std::size_t i = 0; i < write_buf_.size(); ++i) {
    if (write_buf_[i] == WriteBuf::kFree) {
      write_buf_[i] = WriteBuf::kCopy;
      --write_free_;
      return static_cast<std::uint16_t>(i);
    }
  }
  return std::nullopt;
}

void BlockDriver::flush(Done done) {
  if (!driver_ok_ || !vq_ || vq_->broken()) return done(ESHUTDOWN);
  if (!has(VIRTIO_BLK_F_FLUSH)) return done(0);  // no volatile cache to flush
  auto op = std::make_shared<Op>();
  op->done = std::move(done);
  split(op, VIRTIO_BLK_T_FLUSH, 0, 0, 1, nullptr, nullptr, false);
  dispatch();
}

void BlockDriver::trim(std::uint64_t offset, std::uint32_t length, Done done) {
  // A hint (NBD proto.md NBD_CMD_TRIM; VIRTIO 1.2 §5.2.6.2): discard the whole sectors inside
  // the range; partial sectors at either end keep their data.
  const std::uint64_t end = offset + length;
  const std::uint64_t first =
      (offset + layout::kSectorSize - 1) / layout::kSectorSize * layout::kSectorSize;
  const std::uint64_t last = end / layout::kSectorSize * layout::kSectorSize;
  if (end > capacity_) return done(ENOSPC);
  if (first >= last) return done(driver_ok_ ? 0 : ESHUTDOWN);
  offset = first;
  length = static_cast<std::uint32_t>(last - first);
  if (!check(offset, length, done)) return;
  if (!has(VIRTIO_BLK_F_DISCARD)) return done(0);  // nothing to do
  auto op = std::make_shared<Op>();
  op->done = std::move(done);
  const std::uint64_t max = std::uint64_t{cfg_.max_discard_sectors.to_cpu()} * layout::kSectorSize;
  split(op, VIRTIO_BLK_T_DISCARD, offset, length, std::max<std::uint64_t>(max, layout::kSectorSize),
        nullptr, nullptr, false);
  dispatch();
}

void BlockDriver::write_zeroes(std::uint64_t offset, std::uint32_t length, bool may_trim,
                               Done done) {
  if (!check(offset, length, done)) return;
  if (has(VIRTIO_BLK_F_RO)) return done(EROFS);
  if (!has(VIRTIO_BLK_F_WRITE_ZEROES)) return done(EOPNOTSUPP);
  if (length == 0) return done(0);
  auto op = std::make_shared<Op>();
  op->done = std::move(done);
  const std::uint64_t max =
      std::uint64_t{cfg_.max_write_zeroes_sectors.to_cpu()} * layout::kSectorSize;
  split(op, VIRTIO_BLK_T_WRITE_ZEROES, offset, length,
        std::max<std::uint64_t>(max, layout::kSectorSize), nullptr, nullptr,
        may_trim && cfg_.write_zeroes_may_unmap != 0);
  dispatch();
}

// Starts waiting parts in order while tags and data buffers last.
void BlockDriver::dispatch() {
  if (!vq_ || vq_->broken()) return;
  bool added = false;
  while (!waiting_.empty() && !free_tags_.empty()) {
    Part& p = waiting_.front();
    const bool in = p.type == VIRTIO_BLK_T_IN;
    const bool needs_buf = in || (p.type == VIRTIO_BLK_T_OUT && !p.lent);
    if (needs_buf) {
      // In order: the head waits for a buffer.
      if (in) {
        if (free_read_.empty()) break;
        p.buf = free_read_.back();
        free_read_.pop_back();
      } else {
        const auto b = take_write_buf();
        if (!b) break;
        p.buf = *b;
      }
    }
    const std::uint16_t tag = free_tags_.back();
    if (!start(p, tag)) {
      if (needs_buf) release_buf(p);
      break;  // ring full or broken: wait for completions
    }
    free_tags_.pop_back();
    in_flight_[tag] = std::move(p);
    waiting_.pop_front();
    added = true;
  }
  if (added && vq_->kick_prepare()) (void)t_.link().ring_device_doorbell(info_.slot);
}

void BlockDriver::release_buf(const Part& p) noexcept {
  if (p.type == VIRTIO_BLK_T_IN) {
    free_read_.push_back(p.buf);
  } else if (write_buf_[p.buf] == WriteBuf::kCopy) {
    write_buf_[p.buf] = WriteBuf::kFree;
    ++write_free_;
  }
}

bool BlockDriver::start(Part& p, std::uint16_t tag) {
  auto& ep = t_.link().ep_window();
  const std::size_t hdr_off = tags_ep_.off + std::size_t{tag} * kTagEp;
  layout::VirtioBlkReqHdr hdr{};
  hdr.type = layout::le32::from_cpu(p.type);
  hdr.sector = layout::le64::from_cpu(p.offset / layout::kSectorSize);
  ep.write_struct(hdr_off, hdr);  // posted write
  ring::Buf out[2], in[2];
  std::size_t nout = 0, nin = 0;
  out[nout++] = {tags_ep_.link_addr + std::size_t{tag} * kTagEp, sizeof(hdr)};
  switch (p.type) {
    case VIRTIO_BLK_T_IN:
      in[nin++] = {read_pool_.link_addr + std::size_t{p.buf} * kChunk, p.length};
      break;
    case VIRTIO_BLK_T_OUT: {
      const std::size_t off = std::size_t{p.buf} * kChunk;
      if (p.lent) {
        ep.filled(p.length);  // received there by read(2): one posted write burst
      } else {
        ep.write(write_pool_.off + off, std::span{p.src, p.length});  // one posted write burst
      }
      out[nout++] = {write_pool_.link_addr + off, p.length};
      break;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      layout::VirtioBlkDiscardWz seg{};
      seg.sector = layout::le64::from_cpu(p.offset / layout::kSectorSize);
      seg.num_sectors = layout::le32::from_cpu(p.length / layout::kSectorSize);
      seg.flags = layout::le32::from_cpu(p.unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
      ep.write_struct(hdr_off + sizeof(hdr), seg);
      out[nout++] = {tags_ep_.link_addr + std::size_t{tag} * kTagEp + sizeof(hdr), sizeof(seg)};
      break;
    }
    default:  // FLUSH: header and status only
      break;
  }
  in[nin++] = {tags_rc_.link_addr + std::size_t{tag} * kTagRc, layout::kBlkStatusSize};
  return vq_->add(std::span{out, nout}, std::span{in, nin}, tag).has_value();
}

void BlockDriver::finish_part(Part& p, int err) {
  auto op = std::move(p.op);
  if (err != 0 && op->err == 0) op->err = err;
  if (--op->parts != 0) return;
  if (op->fua && op->err == 0) {
    op->fua = false;  // every part is written: now the flush, then the answer
    split(op, VIRTIO_BLK_T_FLUSH, 0, 0, 1, nullptr, nullptr, false);
    return;
  }
  if (op->done) op->done(op->err);
}

void BlockDriver::complete(std::uint16_t tag) {
  if (tag >= in_flight_.size() || !in_flight_[tag]) return;  // Vring validated the token
  Part p = std::move(*in_flight_[tag]);
  in_flight_[tag].reset();
  free_tags_.push_back(tag);
  const ring::Window& rc = t_.link().rc_window();
  std::byte status_byte{};
  rc.read(tags_rc_.off + std::size_t{tag} * kTagRc, std::span{&status_byte, 1});
  const auto status = static_cast<std::uint8_t>(status_byte);
  int err = 0;
  if (status == VIRTIO_BLK_S_OK) {
    switch (p.type) {
      case VIRTIO_BLK_T_IN: {
        // One copy out of our own window, made as its memory type allows.
        rc.read(read_pool_.off + std::size_t{p.buf} * kChunk, std::span{p.dst, p.length});
        ++stats_.reads;
        stats_.read_bytes += p.length;
        break;
      }
      case VIRTIO_BLK_T_OUT:
        ++stats_.writes;
        stats_.write_bytes += p.length;
        break;
      case VIRTIO_BLK_T_FLUSH:
        ++stats_.flushes;
        break;
      case VIRTIO_BLK_T_DISCARD:
        ++stats_.discards;
        break;
      default:
        ++stats_.write_zeroes;
    }
  } else {
    ++stats_.errors;
    err = status == VIRTIO_BLK_S_UNSUPP ? EOPNOTSUPP : EIO;
  }
  if (p.type == VIRTIO_BLK_T_IN || (p.type == VIRTIO_BLK_T_OUT && !p.lent)) release_buf(p);
  finish_part(p, err);  // a lent run is given back when its NBD request is over
}

void BlockDriver::on_interrupt() {
  if (!driver_ok_ || !vq_) return;
  Error err;
  // A queue's worth per call: a device completing as fast as dispatch() adds cannot keep us here.
  const auto d = used_.drain(
      *vq_, vq_->num(),
      [this](const ring::Vring::Used& u) {
        complete(static_cast<std::uint16_t>(u.token));
        dispatch();  // a tag and a buffer came free
        return ring::Handled::used();
      },
      &err);
  backlog_ = d.end == ring::Drained::End::kBudget;
  if (d.end == ring::Drained::End::kBroken) {
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: request queue: {}", info_.slot,
                 err.what);
    fail_all(EIO);
    return;
  }
  dispatch();
}

void BlockDriver::fail_all(int err) {
  std::deque<Part> waiting;
  waiting.swap(waiting_);
  for (auto& p : in_flight_) {
    if (p) waiting.push_back(std::move(*p));
    p.reset();
  }
  for (auto& p : waiting) {
    if (p.op && p.op->done) {
      auto op = p.op;
      if (op->err == 0) op->err = err;
      if (--op->parts == 0) op->done(op->err);
    }
  }
}

void BlockDriver::on_needs_reset() {
  if (vq_) vq_->mark_broken();
  fail_all(EIO);
}

void BlockDriver::report(spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  log()->log(lvl,
             "device {}: read {} req {} B, wrote {} req {} B, {} flushes, {} discards, {} "
             "write-zeroes, {} errors; "
             "{} NBD clients; {} writes received straight into the EP window",
             info_.slot, s.reads, s.read_bytes, s.writes, s.write_bytes, s.flushes, s.discards,
             s.write_zeroes, s.errors, server_ ? server_->clients() : 0, s.lent_writes);
}

}  // namespace vepf::host
