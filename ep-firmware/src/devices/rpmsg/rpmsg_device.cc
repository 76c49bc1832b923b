#include "devices/rpmsg/rpmsg_device.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vepf/os/unix_socket.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::ep {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr int kBudget = 256;            // messages per call before returning to the event loop
constexpr int kConnBudget = 64;         // messages read from one connection per readable event
constexpr std::size_t kMaxOut = 256;    // queued messages before we stop reading the channels
constexpr std::size_t kRecvBuf = 4096;  // larger than any acceptable message: detects oversize
auto log() { return spdlog::get("ep.rpmsg"); }
}  // namespace

RpmsgDevice::RpmsgDevice(std::string runtime_dir, std::uint16_t queue_size)
    : dir_(std::move(runtime_dir)), queue_size_(queue_size), buf_(kRecvBuf) {}

RpmsgDevice::~RpmsgDevice() {
  if (loop_ == nullptr) return;
  for (auto& [fd, c] : conns_) loop_->remove(fd);
  if (listen_fd_.valid()) {
    loop_->remove(listen_fd_.get());
    ::unlink((dir_ + "/ep/announce.sock").c_str());
  }
}

Result<void> RpmsgDevice::start(os::EventLoop& loop) {
  loop_ = &loop;
  auto l = os::listen_seqpacket(dir_ + "/ep/announce.sock");
  if (!l) return tl::unexpected(l.error());
  listen_fd_ = std::move(*l);
  return loop.add(listen_fd_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
}

std::uint32_t RpmsgDevice::device_id() const { return VIRTIO_ID_RPMSG; }

std::uint64_t RpmsgDevice::device_features() const {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(layout::kVirtioRpmsgFNs);
}

void RpmsgDevice::on_driver_ok(transport::DeviceHandle& h) {
  h_ = h;
  log()->info("{}: driver ready, announcing {} channel(s)", dir_, by_addr_.size());
  for (const auto& [addr, fd] : by_addr_) queue_ns(conns_.at(fd).name, addr, layout::kRpmsgNsCreate);
  flush_out();
  update_reading();
}

void RpmsgDevice::on_reset() {
  if (h_) log()->info("{}: driver reset", dir_);
  h_.reset();
  out_.clear();
  announced_.clear();
  backlog_ = false;
  for (auto& [fd, c] : conns_) c.peer.reset();  // the next driver announces or writes first again
  update_reading();
}

void RpmsgDevice::on_notify(transport::DeviceHandle&) {
  process_tx();
  flush_out();
  update_reading();
}

void RpmsgDevice::broken(std::uint16_t q) {
  auto* vq = h_->queue(q);
  log()->error("{}: driver broke {} queue rules ({}); device needs reset", dir_, q == layout::kRpmsgRxQueue ? "rx" : "tx",
               vq ? vq->why() : "?");
  h_->queue_broken(q);
  out_.clear();
}

std::uint32_t RpmsgDevice::alloc_addr() {
  for (;;) {
    const std::uint32_t a = next_addr_++;
    if (next_addr_ == 0) next_addr_ = layout::kRpmsgFirstDynamicAddr;
    if (a >= layout::kRpmsgFirstDynamicAddr && !by_addr_.count(a)) return a;
  }
}

void RpmsgDevice::on_accept() {
  for (;;) {
    auto s = os::accept_seqpacket(listen_fd_.get());
    if (!s) {
      if (s.error().code != Errc::kNoSpace) log()->warn("{}: accept: {}", dir_, std::strerror(s.error().sys_errno));
      return;
    }
    const int fd = s->get();
    if (auto r = loop_->add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t ev) { on_conn(fd, ev); }); !r) {
      log()->warn("{}: cannot poll a new channel connection", dir_);
      continue;
    }
    conns_.emplace(fd, Conn{std::move(*s), {}, 0, {}, true});
  }
}

void RpmsgDevice::set_reading(Conn& c, bool on) {
  if (c.reading == on) return;
  c.reading = on;
  (void)loop_->modify(c.fd.get(), on ? EPOLLIN | EPOLLRDHUP : EPOLLRDHUP);
}

void RpmsgDevice::update_reading() {
  if (loop_ == nullptr) return;
  const bool room = h_.has_value() && out_.size() < kMaxOut;
  for (auto& [fd, c] : conns_) set_reading(c, c.name.empty() || (room && c.peer.has_value()));
}

void RpmsgDevice::close_conn(int fd, const char* why) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (!c.name.empty()) {
    log()->info("{}: channel '{}' (addr {}) closed: {}", dir_, c.name, c.addr, why);
    if (h_) queue_ns(c.name, c.addr, layout::kRpmsgNsDestroy);
    by_addr_.erase(c.addr);
  }
  loop_->remove(fd);
  conns_.erase(it);
  flush_out();
}

void RpmsgDevice::on_conn(int fd, std::uint32_t events) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (!(events & EPOLLIN) || !c.reading) {
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) close_conn(fd, "peer hung up");
    return;
  }
  for (int budget = kConnBudget; budget > 0 && c.reading; --budget) {
    const ssize_t n = ::recv(fd, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return close_conn(fd, n == 0 ? "peer hung up" : std::strerror(errno));
    const auto len = static_cast<std::size_t>(n);
    if (c.name.empty()) {
      const std::string name(reinterpret_cast<const char*>(buf_.data()), len);
      if (!layout::rpmsg_name_valid(name.data(), name.size())) {
        log()->error("{}: refused a channel: name must be 1..31 letters, digits, '-', '_' or '.'", dir_);
        return close_conn(fd, "bad name");
      }
      for (const auto& [a, other] : by_addr_) {
        if (conns_.at(other).name == name) {
          log()->error("{}: refused a second channel named '{}'", dir_, name);
          return close_conn(fd, "duplicate name");
        }
      }
      c.name = name;
      c.addr = alloc_addr();
      by_addr_[c.addr] = fd;
      if (auto a = announced_.find(name); a != announced_.end()) c.peer = a->second;
      log()->info("{}: channel '{}' at addr {}", dir_, name, c.addr);
      if (h_) queue_ns(name, c.addr, layout::kRpmsgNsCreate);
      update_reading();
      continue;
    }
    if (len > layout::kRpmsgMaxPayload) {
      log()->error("{}: channel '{}': message of {} bytes refused (at most {}); closing it", dir_, c.name, len,
                   layout::kRpmsgMaxPayload);
      return close_conn(fd, "message too large");
    }
    queue_msg(c.addr, *c.peer, std::span{buf_}.first(len));
    if (out_.size() >= kMaxOut) break;
  }
  flush_out();
  update_reading();
}

void RpmsgDevice::queue_msg(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  layout::RpmsgHdr hdr{};
  hdr.src = layout::le32::from_cpu(src);
  hdr.dst = layout::le32::from_cpu(dst);
  hdr.len = layout::le16::from_cpu(static_cast<std::uint16_t>(payload.size()));
  std::vector<std::byte> m(sizeof(hdr) + payload.size());
  std::memcpy(m.data(), &hdr, sizeof(hdr));
  if (!payload.empty()) std::memcpy(m.data() + sizeof(hdr), payload.data(), payload.size());
  out_.push_back(std::move(m));
}

void RpmsgDevice::queue_ns(const std::string& name, std::uint32_t addr, std::uint32_t flags) {
  layout::RpmsgNsMsg ns{};
  std::memcpy(ns.name, name.data(), std::min(name.size(), sizeof(ns.name) - 1));
  ns.addr = layout::le32::from_cpu(addr);
  ns.flags = layout::le32::from_cpu(flags);
  // Linux announces from the channel's own address to the name service (rpmsg_ns.c).
  queue_msg(addr, layout::kRpmsgNsAddr, std::as_bytes(std::span{&ns, 1}));
}

// Device -> driver: queued messages into the driver's receive buffers (queue 0).
void RpmsgDevice::flush_out() {
  if (!h_ || out_.empty()) return;
  ring::Vringh* q = h_->queue(layout::kRpmsgRxQueue);
  if (q == nullptr) return;
  bool completed = false;
  backlog_ = true;
  for (int budget = kBudget; budget > 0; --budget) {
    if (out_.empty()) {
      backlog_ = false;
      break;
    }
    auto c = q->pop();
    if (!c) return broken(layout::kRpmsgRxQueue);
    if (!*c) {
      if (!q->notify_enable()) continue;  // buffers arrived meanwhile
      backlog_ = false;                   // the driver rings when it adds buffers
      break;
    }
    const auto& m = out_.front();
    std::uint32_t len = 0;
    if ((*c)->write_len >= m.size()) {
      len = static_cast<std::uint32_t>(ring::chain_write(**c, m));
      ++stats_.to_driver;
      stats_.to_driver_bytes += m.size() - layout::kRpmsgHdrSize;
    } else {
      ++stats_.dropped;  // a receive buffer smaller than the message: the driver's choice
    }
    if (!q->complete((*c)->head, len)) return broken(layout::kRpmsgRxQueue);
    out_.pop_front();
    completed = true;
  }
  if (completed && q->need_notify()) h_->notify_driver();
}

// Driver -> device: the driver's transmit buffers (queue 1).
void RpmsgDevice::process_tx() {
  if (!h_) return;
  ring::Vringh* q = h_->queue(layout::kRpmsgTxQueue);
  if (q == nullptr) return;
  bool completed = false;
  for (int budget = kBudget; budget > 0; --budget) {
    auto c = q->pop();
    if (!c) return broken(layout::kRpmsgTxQueue);
    if (!*c) {
      if (!q->notify_enable()) continue;
      break;
    }
    const ring::Chain& ch = **c;
    if (ch.read_len < layout::kRpmsgHdrSize || ch.read_len > layout::kRpmsgBufSize) {
      ++stats_.bad;
    } else {
      const std::size_t n = ring::chain_read(ch, std::span{buf_}.first(layout::kRpmsgBufSize));
      handle_msg(std::span{buf_}.first(n));
    }
    if (!q->complete(ch.head, 0)) return broken(layout::kRpmsgTxQueue);
    completed = true;
  }
  if (completed && q->need_notify()) h_->notify_driver();
}

void RpmsgDevice::handle_msg(std::span<const std::byte> msg) {
  const auto m = layout::parse_rpmsg(msg);
  if (!m) {
    ++stats_.bad;
    return;
  }
  const auto payload = m->payload;
  const std::size_t len = payload.size();
  const std::uint32_t src = m->src, dst = m->dst;
  ++stats_.from_driver;
  stats_.from_driver_bytes += len;
  if (dst == layout::kRpmsgNsAddr) return handle_ns(src, payload);
  auto a = by_addr_.find(dst);
  if (a == by_addr_.end()) {
    ++stats_.no_endpoint;
    return;
  }
  Conn& c = conns_.at(a->second);
  // Replies go to the driver endpoint that wrote last: each host client has an address of its
  // own, and a service answers whoever asked (several clients at once may see crossed replies).
  if (c.peer != src) {
    const bool resume = !c.peer;
    c.peer = src;
    if (resume) update_reading();
  }
  if (len == 0) {             // an empty seqpacket message reads as end of file: not deliverable
    ++stats_.dropped;
    return;
  }
  if (::send(c.fd.get(), payload.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) ++stats_.dropped;
}

void RpmsgDevice::handle_ns(std::uint32_t src, std::span<const std::byte> payload) {
  (void)src;
  layout::RpmsgNsMsg ns;
  if (payload.size() < sizeof(ns)) {
    ++stats_.bad;
    return;
  }
  std::memcpy(&ns, payload.data(), sizeof(ns));
  const std::size_t n = ::strnlen(ns.name, sizeof(ns.name));
  if (n == sizeof(ns.name) || !layout::rpmsg_name_valid(ns.name, n)) {
    ++stats_.bad;
    return;
  }
  const std::string name(ns.name, n);
  const std::uint32_t flags = ns.flags.to_cpu(), addr = ns.addr.to_cpu();
  if (flags == layout::kRpmsgNsDestroy) {
    announced_.erase(name);
    return;
  }
  if (flags != layout::kRpmsgNsCreate) {
    ++stats_.bad;
    return;
  }
  announced_[name] = addr;
  for (auto& [fd, c] : conns_) {
    if (c.name == name && !c.peer) c.peer = addr;
  }
  update_reading();
}

void RpmsgDevice::describe(nlohmann::json& out) const {
  out["runtime_dir"] = dir_;
  out["channels"] = by_addr_.size();
  out["messages_to_driver"] = stats_.to_driver;
  out["messages_from_driver"] = stats_.from_driver;
}

void RpmsgDevice::report(std::uint32_t slot, spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  spdlog::get("ep.rpmsg")->log(lvl, "slot {}: to driver {} msgs {} B (dropped {}), from driver {} msgs {} B (bad {}, no endpoint {})",
                               slot, s.to_driver, s.to_driver_bytes, s.dropped, s.from_driver, s.from_driver_bytes, s.bad,
                               s.no_endpoint);
}

}  // namespace vepf::ep
