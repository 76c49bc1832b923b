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
    : t_(t), info_(info), dir_(std::move(runtime_dir)), loop_(loop), buf_(kRecvBuf) {}

RpmsgDriver::~RpmsgDriver() {
  while (!channels_.empty()) close_channel(channels_.begin()->first);
  for (auto& [fd, c] : clients_) loop_.remove(fd);
  for (const auto& a : owned_) {
    (layout::link_addr_window(a.link_addr) == static_cast<std::uint8_t>(layout::WindowId::kEp) ? t_.ep_alloc()
                                                                                              : t_.rc_alloc())
        .free(a);
  }
}

Result<transport::Allocation> RpmsgDriver::alloc(layout::WindowId w, std::size_t bytes) {
  auto a = (w == layout::WindowId::kEp ? t_.ep_alloc() : t_.rc_alloc()).alloc(bytes, 64);
  if (a) owned_.push_back(*a);
  return a;
}

Result<void> RpmsgDriver::setup_queue(std::uint16_t index, Queue& q) {
  const std::uint16_t num = info_.max_queue_size;
  auto desc = alloc(layout::WindowId::kEp, layout::desc_table_size(num));
  auto avail = alloc(layout::WindowId::kEp, layout::avail_ring_size(num));
  auto used = alloc(layout::WindowId::kRc, layout::used_ring_size(num));
  if (!desc || !avail || !used) return fail(Errc::kNoSpace, "windows too small for the queues");
  ring::VringParams p;
  p.num = num;
  p.desc = {&t_.link().ep_window(), desc->off, static_cast<std::uint32_t>(desc->len)};
  p.avail = {&t_.link().ep_window(), avail->off, static_cast<std::uint32_t>(avail->len)};
  p.used = {&t_.link().rc_window(), used->off, static_cast<std::uint32_t>(used->len)};
  p.event_idx = features_ & bit(VIRTIO_RING_F_EVENT_IDX);
  q.vq = std::make_unique<ring::Vring>(p);
  return t_.enable_queue(info_.slot, index, num, desc->link_addr, avail->link_addr, used->link_addr);
}

Result<void> RpmsgDriver::probe() {
  if (auto r = t_.reset(info_.slot); !r) return r;
  auto f = t_.negotiate(info_.slot, info_.device_features, wanted_features());
  if (!f) return tl::unexpected(f.error());
  features_ = *f;
  const std::uint16_t num = info_.max_queue_size;
  if (!layout::queue_size_valid(num)) return fail(Errc::kRejected, "device max queue size not a power of 2");
  if (auto r = setup_queue(layout::kRpmsgRxQueue, rx_); !r) return r;
  if (auto r = setup_queue(layout::kRpmsgTxQueue, tx_); !r) return r;
  auto rxp = alloc(layout::WindowId::kRc, std::size_t{num} * kBuf);
  auto txp = alloc(layout::WindowId::kEp, std::size_t{num} * kBuf);
  if (!rxp || !txp) return fail(Errc::kNoSpace, "windows too small for the message buffers");
  rx_pool_ = *rxp;
  tx_pool_ = *txp;
  tx_free_.clear();
  for (std::uint16_t i = num; i > 0; --i) tx_free_.push_back(static_cast<std::uint16_t>(i - 1));
  // virtio_rpmsg_bus.c posts every receive buffer before the device is told DRIVER_OK.
  for (std::uint16_t i = 0; i < num; ++i) refill_rx(i);
  (void)rx_.vq->kick_prepare();
  if (auto r = t_.driver_ok(info_.slot); !r) return r;
  driver_ok_ = true;
  (void)rx_.vq->enable_cb();
  log()->info("device {}: virtio-rpmsg up, channels in {}/host{}", info_.slot, dir_,
              (features_ & bit(layout::kVirtioRpmsgFNs)) ? "" : " (no name service negotiated)");
  return {};
}

void RpmsgDriver::kick(ring::Vring& vq) {
  if (vq.kick_prepare()) (void)t_.link().ring_doorbell();
}

void RpmsgDriver::refill_rx(std::uint64_t token) {
  const ring::Buf b{rx_pool_.link_addr + token * kBuf, static_cast<std::uint32_t>(kBuf)};
  (void)rx_.vq->add({}, std::span{&b, 1}, token);
}

void RpmsgDriver::reclaim_tx() {
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
  if (!(events & EPOLLIN) || !it->second.reading || !driver_ok_ || tx_.vq->broken()) {
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) close_client(fd);
    return;
  }
  const std::uint32_t src = it->second.addr;
  ring::Window& ep = t_.link().ep_window();
  for (int budget = kBudget; budget > 0; --budget) {
    if (tx_free_.empty()) reclaim_tx();
    if (tx_free_.empty()) {
      // Ring full: stop reading clients, ask for an interrupt when the device catches up.
      set_reading(false);
      if (tx_.vq->enable_cb()) break;
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
    const std::uint16_t slot = tx_free_.back();
    tx_free_.pop_back();
    const std::size_t total = layout::kRpmsgHdrSize + len;
    ep.write(tx_pool_.off + std::size_t{slot} * kBuf, std::span{buf_}.first(total));  // one posted burst
    const ring::Buf b{tx_pool_.link_addr + std::size_t{slot} * kBuf, static_cast<std::uint32_t>(total)};
    (void)tx_.vq->add(std::span{&b, 1}, {}, slot);
    ++stats_.tx;
    stats_.tx_bytes += len;
  }
  kick(*tx_.vq);
}

// Device -> clients: completed receive buffers, then back on the ring.
void RpmsgDriver::receive() {
  if (!driver_ok_) return;
  const ring::Window& rc = t_.link().rc_window();
  backlog_ = true;
  std::byte msg[kBuf];
  for (int budget = kBudget; budget > 0; --budget) {
    auto u = rx_.vq->get_used();
    if (!u) {
      log()->error("device {}: receive queue: {}", info_.slot, u.error().what);
      backlog_ = false;
      break;
    }
    if (!*u) {
      if (!rx_.vq->enable_cb()) continue;
      backlog_ = false;
      break;
    }
    const std::uint64_t token = (*u)->token;
    const std::uint32_t len = (*u)->len;
    if (len < layout::kRpmsgHdrSize || len > kBuf) {
      ++stats_.bad;
    } else {
      // Our own window, but the device may still write it: validate a private copy.
      const auto view = rc.local_view(rx_pool_.off + token * kBuf, len);
      std::memcpy(msg, view.data(), len);
      handle_msg(std::span{msg, len});
    }
    refill_rx(token);
  }
  kick(*rx_.vq);
}

void RpmsgDriver::handle_msg(std::span<const std::byte> msg) {
  layout::RpmsgHdr hdr;
  std::memcpy(&hdr, msg.data(), sizeof(hdr));
  const std::size_t len = hdr.len.to_cpu();
  if (len > msg.size() - layout::kRpmsgHdrSize) {
    ++stats_.bad;
    return;
  }
  const auto payload = msg.subspan(layout::kRpmsgHdrSize, len);
  ++stats_.rx;
  stats_.rx_bytes += len;
  const std::uint32_t dst = hdr.dst.to_cpu();
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
  if (!reading_ && !tx_free_.empty()) set_reading(true);
}

bool RpmsgDriver::on_control_event() {
  const std::uint8_t st = t_.device_status(info_.slot);
  if (st & VIRTIO_CONFIG_S_NEEDS_RESET) {
    log()->error("device {}: device reports DEVICE_NEEDS_RESET (broken queues {:#x})", info_.slot,
                 t_.broken_queues(info_.slot));
    rx_.vq->mark_broken();
    tx_.vq->mark_broken();
    driver_ok_ = false;
    return false;
  }
  return true;
}

}  // namespace vepf::host
