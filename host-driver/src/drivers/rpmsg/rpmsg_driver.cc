#include "drivers/rpmsg/rpmsg_driver.hpp"

#include <linux/virtio_config.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vepf/os/unix_socket.hpp"

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr int kBudget = 256;            // messages per callback before returning to the event loop
constexpr std::size_t kRecvBuf = 4096;  // larger than any acceptable message: detects oversize
constexpr std::size_t kBuf = layout::kRpmsgBufSize;
auto log() { return spdlog::get("host.rpmsg"); }
}  // namespace

std::uint64_t RpmsgDriver::wanted_features() noexcept {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(layout::kVirtioRpmsgFNs);
}

RpmsgDriver::RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info, std::string runtime_dir,
                         os::EventLoop& loop)
    : Driver(t, info), dir_(std::move(runtime_dir)), loop_(loop), buf_(kRecvBuf) {}

RpmsgDriver::~RpmsgDriver() {
  while (!channels_.empty()) close_channel(channels_.begin()->first);
  for (auto& [fd, c] : clients_) loop_.remove(fd);
}

Result<void> RpmsgDriver::probe() {
  if (auto r = negotiate(wanted_features()); !r) return r;
  // virtio_rpmsg_bus.c posts every receive buffer before the device is told DRIVER_OK.
  q_.emplace(t_, info_);
  if (auto r = q_->setup(layout::kRpmsgRxQueue, layout::kRpmsgTxQueue, kBuf, features_ & bit(VIRTIO_RING_F_EVENT_IDX));
      !r) {
    return r;
  }
  (void)q_->rx().kick_prepare();
  if (auto r = set_driver_ok(); !r) return r;
  (void)q_->rx().enable_cb();
  log()->info("device {}: virtio-rpmsg up, channels in {}/host{}", info_.slot, dir_,
              (features_ & bit(layout::kVirtioRpmsgFNs)) ? "" : " (no name service negotiated)");
  return {};
}

void RpmsgDriver::reclaim_tx() {
  if (auto r = q_->reclaim_tx(); !r) log()->error("device {}: transmit queue: {}", info_.slot, r.error().what);
}

std::uint32_t RpmsgDriver::alloc_addr() {
  for (;;) {
    const std::uint32_t a = next_addr_++;
    if (next_addr_ == 0) next_addr_ = layout::kRpmsgFirstDynamicAddr;
    if (a >= layout::kRpmsgFirstDynamicAddr && !by_addr_.count(a)) return a;
  }
}

void RpmsgDriver::set_reading(bool on) {
  if (reading_ == on) return;
  reading_ = on;
  for (auto& [fd, c] : clients_) {
    c.reading = on;
    (void)loop_.modify(fd, on ? EPOLLIN | EPOLLRDHUP : EPOLLRDHUP);
  }
}

void RpmsgDriver::open_channel(const std::string& name, std::uint32_t remote) {
  if (auto it = channels_.find(name); it != channels_.end()) {
    it->second.remote = remote;  // announced again: the device's new address
    for (auto& [fd, c] : clients_) {
      if (c.channel == name) c.remote = remote;
    }
    return;
  }
  Channel ch;
  ch.remote = remote;
  ch.path = dir_ + "/host/" + name + ".sock";
  auto l = os::listen_seqpacket(ch.path);
  if (!l) {
    log()->error("device {}: channel '{}': cannot listen on {}: {}{}", info_.slot, name, ch.path, l.error().what,
                 l.error().sys_errno ? std::string(": ") + std::strerror(l.error().sys_errno) : "");
    return;
  }
  ch.listen = std::move(*l);
  const int lfd = ch.listen.get();
  if (auto r = loop_.add(lfd, EPOLLIN, [this, name](std::uint32_t) { on_accept(name); }); !r) return;
  log()->info("device {}: channel '{}' (device addr {}) on {}", info_.slot, name, remote, ch.path);
  channels_.emplace(name, std::move(ch));
}

void RpmsgDriver::close_channel(const std::string& name) {
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  loop_.remove(it->second.listen.get());
  ::unlink(it->second.path.c_str());
  log()->info("device {}: channel '{}' gone", info_.slot, name);
  std::vector<int> fds;
  for (const auto& [fd, c] : clients_) {
    if (c.channel == name) fds.push_back(fd);
  }
  for (int fd : fds) close_client(fd);
  channels_.erase(it);
}

void RpmsgDriver::on_accept(const std::string& name) {
  auto ch = channels_.find(name);
  if (ch == channels_.end()) return;
  for (;;) {
    auto s = os::accept_seqpacket(ch->second.listen.get());
    if (!s) return;
    const int fd = s->get();
    if (auto r = loop_.add(fd, reading_ ? EPOLLIN | EPOLLRDHUP : EPOLLRDHUP,
                           [this, fd](std::uint32_t ev) { on_client(fd, ev); });
        !r) {
      continue;
    }
    const std::uint32_t addr = alloc_addr();
    by_addr_[addr] = fd;
    clients_.emplace(fd, Client{std::move(*s), name, ch->second.remote, reading_, addr});
    log()->debug("device {}: channel '{}': client at addr {}", info_.slot, name, addr);
  }
}

void RpmsgDriver::close_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  by_addr_.erase(it->second.addr);
  loop_.remove(fd);
  clients_.erase(it);
}

// Client -> device: one message, one rpmsg on the transmit queue.
void RpmsgDriver::on_client(int fd, std::uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  if (!(events & EPOLLIN) || !it->second.reading || !driver_ok_ || q_->tx().broken()) {
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) close_client(fd);
    return;
  }
  const std::uint32_t src = it->second.addr;
  for (int budget = kBudget; budget > 0; --budget) {
    if (q_->tx_full()) reclaim_tx();
    if (q_->tx_full()) {
      // Ring full: stop reading clients, ask for an interrupt when the device catches up.
      set_reading(false);
      if (q_->tx().enable_cb()) break;
      continue;
    }
    if (!reading_) set_reading(true);
    std::byte* payload = buf_.data() + layout::kRpmsgHdrSize;
    const ssize_t n = ::recv(fd, payload, buf_.size() - layout::kRpmsgHdrSize, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      close_client(fd);
      break;
    }
    const auto len = static_cast<std::size_t>(n);
    if (len > layout::kRpmsgMaxPayload) {
      log()->error("device {}: channel '{}': a client sent {} bytes (at most {}); closing it", info_.slot,
                   it->second.channel, len, layout::kRpmsgMaxPayload);
      close_client(fd);
      break;
    }
    layout::RpmsgHdr hdr{};
    hdr.src = layout::le32::from_cpu(src);
    hdr.dst = layout::le32::from_cpu(it->second.remote);
    hdr.len = layout::le16::from_cpu(static_cast<std::uint16_t>(len));
    std::memcpy(buf_.data(), &hdr, sizeof(hdr));
    (void)q_->send(std::span{buf_}.first(layout::kRpmsgHdrSize + len));  // a free buffer was checked above
    ++stats_.tx;
    stats_.tx_bytes += len;
  }
  q_->kick(q_->tx());
}

// Device -> clients: completed receive buffers, then back on the ring.
void RpmsgDriver::receive() {
  if (!driver_ok_) return;
  backlog_ = true;
  std::byte msg[kBuf];
  for (int budget = kBudget; budget > 0; --budget) {
    auto u = q_->rx().get_used();
    if (!u) {
      log()->error("device {}: receive queue: {}", info_.slot, u.error().what);
      backlog_ = false;
      break;
    }
    if (!*u) {
      if (!q_->rx().enable_cb()) continue;
      backlog_ = false;
      break;
    }
    const std::uint64_t token = (*u)->token;
    const std::uint32_t len = (*u)->len;
    if (len < layout::kRpmsgHdrSize || len > kBuf) {
      ++stats_.bad;
    } else {
      // Our own window, but the device may still write it: validate a private copy.
      const auto view = q_->rx_view(token, len);
      std::memcpy(msg, view.data(), len);
      handle_msg(std::span{msg, len});
    }
    q_->refill_rx(token);
  }
  q_->kick(q_->rx());
}

void RpmsgDriver::handle_msg(std::span<const std::byte> msg) {
  const auto m = layout::parse_rpmsg(msg);
  if (!m) {
    ++stats_.bad;
    return;
  }
  const auto payload = m->payload;
  const std::size_t len = payload.size();
  ++stats_.rx;
  stats_.rx_bytes += len;
  const std::uint32_t dst = m->dst;
  if (dst == layout::kRpmsgNsAddr) return handle_ns(payload);
  auto a = by_addr_.find(dst);
  if (a == by_addr_.end()) {
    ++stats_.no_endpoint;
    return;
  }
  if (len == 0 || ::send(a->second, payload.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) ++stats_.dropped;
}

void RpmsgDriver::handle_ns(std::span<const std::byte> payload) {
  layout::RpmsgNsMsg ns;
  if (!(features_ & bit(layout::kVirtioRpmsgFNs)) || payload.size() < sizeof(ns)) {
    ++stats_.bad;
    return;
  }
  std::memcpy(&ns, payload.data(), sizeof(ns));
  const std::size_t n = ::strnlen(ns.name, sizeof(ns.name));
  if (n == sizeof(ns.name) || !layout::rpmsg_name_valid(ns.name, n)) {
    log()->warn("device {}: name-service message with an unusable name dropped", info_.slot);
    ++stats_.bad;
    return;
  }
  const std::string name(ns.name, n);
  const std::uint32_t flags = ns.flags.to_cpu();
  if (flags == layout::kRpmsgNsCreate) {
    open_channel(name, ns.addr.to_cpu());
  } else if (flags == layout::kRpmsgNsDestroy) {
    close_channel(name);
  } else {
    ++stats_.bad;
  }
}

void RpmsgDriver::on_interrupt() {
  if (!driver_ok_) return;
  receive();
  reclaim_tx();
  if (!reading_ && !q_->tx_full()) set_reading(true);
}

void RpmsgDriver::on_needs_reset() {
  if (q_) {
    q_->rx().mark_broken();
    q_->tx().mark_broken();
  }
}

void RpmsgDriver::report(spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  log()->log(lvl, "device {}: sent {} msgs {} B, received {} msgs {} B (bad {}, no endpoint {}, dropped {})", info_.slot,
             s.tx, s.tx_bytes, s.rx, s.rx_bytes, s.bad, s.no_endpoint, s.dropped);
}

}  // namespace vepf::host
