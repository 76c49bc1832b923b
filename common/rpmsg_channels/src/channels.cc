#include "vepf/rpmsg/channels.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vepf/os/unix_socket.hpp"
#include "vepf/rpmsg/name_service.hpp"

namespace vepf::rpmsg {

namespace {
constexpr int kConnBudget = 64;        // messages read from one connection per readable event
constexpr std::size_t kRecvBuf = 512;  // larger than any acceptable message: detects oversize
constexpr std::uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP;
constexpr std::uint32_t kHupEvents = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

std::shared_ptr<spdlog::logger> log_of(const std::string& name) {
  auto l = spdlog::get(name);
  return l ? l : spdlog::default_logger();
}
}  // namespace

std::size_t encode(std::span<std::byte> out, std::uint32_t src, std::uint32_t dst,
                   std::span<const std::byte> payload) noexcept {
  assert(payload.size() <= layout::kRpmsgMaxPayload &&
         out.size() >= layout::kRpmsgHdrSize + payload.size());
  layout::RpmsgHdr hdr{};
  hdr.src = layout::le32::from_cpu(src);
  hdr.dst = layout::le32::from_cpu(dst);
  hdr.len = layout::le16::from_cpu(static_cast<std::uint16_t>(payload.size()));
  std::memcpy(out.data(), &hdr, sizeof(hdr));
  if (!payload.empty()) std::memcpy(out.data() + sizeof(hdr), payload.data(), payload.size());
  return sizeof(hdr) + payload.size();
}

Channels::Channels(std::string dir, Port& port, std::string logger, std::string who,
                   std::size_t max_connections)
    : dir_(std::move(dir)),
      port_(port),
      logger_(std::move(logger)),
      who_(std::move(who)),
      max_conns_(max_connections ? max_connections : 1),
      recv_(kRecvBuf) {}

Channels::~Channels() {
  if (loop_ != nullptr) {
    for (const auto& [fd, c] : conns_) loop_->remove(fd);
  }
  for (auto& [name, p] : peers_) {
    if (p.listen) {
      p.listen.reset();
      ::unlink(p.path.c_str());
    }
  }
  if (announce_) {
    announce_.reset();
    ::unlink((dir_ + "/announce.sock").c_str());
  }
}

Result<std::unique_ptr<os::Acceptor>> Channels::listen(const std::string& path,
                                                       const std::string& channel) {
  auto l = os::listen_seqpacket(path);
  if (!l) return tl::unexpected(l.error());
  os::Acceptor::Handlers h;
  h.open = [this] { return conns_.size(); };
  h.take = [this, channel](os::Fd fd) { on_accept(channel, std::move(fd)); };
  h.refuse = [this, channel](int, os::Acceptor::Refusal why) {
    ++stats_.refused_connections;
    log::limited(
        client_log_, log_of(logger_), spdlog::level::warn,
        "{}: {} refused a connection: {} ({} so far)", who_,
        channel.empty() ? std::string("announce.sock") : "channel '" + channel + "'",
        why == os::Acceptor::Refusal::kFull
            ? std::to_string(max_conns_) + " open, the limit ([device.rpmsg] max_connections)"
            : std::string("out of file descriptors"),
        stats_.refused_connections);
  };
  auto a = os::Acceptor::create(*loop_, std::move(*l), max_conns_, std::move(h));
  if (!a) ::unlink(path.c_str());
  return a;
}

Result<void> Channels::start(os::EventLoop& loop) {
  if (announce_) return {};
  loop_ = &loop;
  auto a = listen(dir_ + "/announce.sock", {});
  if (!a) return tl::unexpected(a.error());
  announce_ = std::move(*a);
  return {};
}

std::size_t Channels::local_channels() const noexcept {
  return static_cast<std::size_t>(std::count_if(conns_.begin(), conns_.end(), [](const auto& e) {
    return e.second.local && e.second.addr != 0;
  }));
}

void Channels::link_up(bool name_service) {
  up_ = true;
  ns_ = name_service;
  log_of(logger_)->info("{}: link up, announcing {} channel(s){}", who_, local_channels(),
                        name_service ? "" : " (no name service negotiated: nothing is announced)");
  for (const auto& [fd, c] : conns_) {
    if (c.local && c.addr != 0) announce(c, layout::kRpmsgNsCreate);
  }
  update_reading();
}

void Channels::link_down() {
  up_ = false;
  ns_ = false;
  ns_pending_.clear();
  while (!peers_.empty()) close_peer(peers_.begin()->first);
  for (auto& [fd, c] : conns_) c.peer.reset();  // the next peer announces or writes first again
  update_reading();
}

void Channels::resume() {
  flush_ns();
  update_reading();
}

std::uint32_t Channels::alloc_addr() {
  for (;;) {
    const std::uint32_t a = next_addr_++;
    if (next_addr_ == kAddrAny) next_addr_ = layout::kRpmsgFirstDynamicAddr;
    if (a >= layout::kRpmsgFirstDynamicAddr && !by_addr_.count(a)) return a;
  }
}

bool Channels::room() { return up_ && ns_pending_.empty() && port_.can_send(); }

std::size_t Channels::room_count() { return up_ && ns_pending_.empty() ? port_.send_room() : 0; }

void Channels::set_reading(Conn& c, bool on) {
  if (c.reading == on) return;
  c.reading = on;
  watch(c);
}

void Channels::watch(Conn& c) {
  const std::uint32_t out = c.blocked ? static_cast<std::uint32_t>(EPOLLOUT) : 0u;
  (void)loop_->modify(c.fd.get(), (c.reading ? kReadEvents : EPOLLRDHUP) | out);
}

bool Channels::flush_held(Conn& c) {
  const bool was_full = !can_take();
  const bool was_blocked = c.blocked;
  c.blocked = false;
  // A message that failed to go went with its program (its connection closes on the hang-up).
  const auto r = os::send_queued(c.fd.get(), c.held);
  held_total_ -= r.sent + r.dropped;
  stats_.dropped += r.dropped;
  if (r.blocked) {
    c.blocked = true;  // full: EPOLLOUT brings us back (on_conn)
    ++stats_.held;
  }
  if (c.blocked != was_blocked) watch(c);
  return was_full && can_take();
}

void Channels::flush_received() {
  // Copies: a connection may close meanwhile.
  const auto fds = std::move(to_flush_);
  to_flush_.clear();
  for (int fd : fds) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) continue;
    it->second.queued = false;
    if (!it->second.blocked) (void)flush_held(it->second);
  }
}

void Channels::forget_held(Conn& c) {
  stats_.dropped += c.held.size();  // the program closed its connection before reading them
  held_total_ -= c.held.size();
  c.held.clear();
}

void Channels::update_reading() {
  if (loop_ == nullptr || conns_.empty()) return;
  const bool r = room();
  // An unnamed connection is read for its name whatever the link does (announced at link_up).
  for (auto& [fd, c] : conns_) set_reading(c, c.addr == 0 || (r && c.peer.has_value()));
}

void Channels::bad(const char* what) {
  ++stats_.bad;
  // Rate-limited: the 1st, 2nd, 4th, 8th... bad message is logged.
  if (std::has_single_bit(stats_.bad))
    log_of(logger_)->warn("{}: {} dropped ({} so far)", who_, what, stats_.bad);
}

// `channel` empty: the announce socket; else a peer channel's socket.
void Channels::on_accept(const std::string& channel, os::Fd fd_owned) {
  if (!channel.empty() && peers_.find(channel) == peers_.end()) return;  // gone meanwhile: closed
  Conn c;
  c.fd = std::move(fd_owned);
  c.name = channel;
  c.local = channel.empty();
  if (!c.local) {
    c.addr = alloc_addr();
    c.peer = peers_.at(channel).addr;
    c.reading = room();
  }
  const int fd = c.fd.get();
  auto cb = [this, fd](std::uint32_t ev) { on_conn(fd, ev); };
  if (auto r = loop_->add(fd, c.reading ? kReadEvents : EPOLLRDHUP, std::move(cb)); !r) {
    log_of(logger_)->warn("{}: cannot poll a new connection", who_);
    return;
  }
  if (!c.local) {
    by_addr_[c.addr] = fd;
    log_of(logger_)->debug("{}: channel '{}': client at addr {}", who_, channel, c.addr);
  }
  conns_.emplace(fd, std::move(c));
}

// A local connection's first message: its channel name. Returns why it is refused, or nullptr.
const char* Channels::name_conn(Conn& c, std::span<const std::byte> msg) {
  std::string name(msg.size(), '\0');
  std::memcpy(name.data(), msg.data(), msg.size());
  const auto log = log_of(logger_);
  if (!layout::rpmsg_name_valid(name.data(), name.size()) || name == kAnnounceName) {
    // The name itself is not logged: it may hold any bytes.
    ++stats_.refused;
    log::limited(client_log_, log, spdlog::level::err,
                 "{}: refused a channel: its name ({} bytes) must be 1..31 letters, digits, '-', "
                 "'_' or '.', "
                 "and not \"{}\" ({} refused so far)",
                 who_, name.size(), kAnnounceName, stats_.refused);
    return "bad name";
  }
  for (const auto& [fd, o] : conns_) {
    if (o.local && o.addr != 0 && o.name == name) {
      log::limited(client_log_, log, spdlog::level::err, "{}: refused a second channel named '{}'",
                   who_, name);
      ++stats_.refused;
      return "duplicate name";
    }
  }
  c.name = std::move(name);
  c.addr = alloc_addr();
  by_addr_[c.addr] = c.fd.get();
  if (auto p = peers_.find(c.name); p != peers_.end()) c.peer = p->second.addr;
  log->info("{}: channel '{}' at addr {}", who_, c.name, c.addr);
  announce(c, layout::kRpmsgNsCreate);
  return nullptr;
}

void Channels::on_conn(int fd, std::uint32_t events) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if ((events & EPOLLOUT) && c.blocked && flush_held(c)) {
    port_.receive_again();  // may deliver to (and close) connections: look `fd` up again
    it = conns_.find(fd);
    if (it == conns_.end()) return;
  }
  Conn& conn = it->second;
  if (!(events & EPOLLIN) || !conn.reading) {
    if (events & kHupEvents) close_conn(fd, "peer hung up");
    return;
  }
  read_conn(fd, conn);
}

void Channels::read_conn(int fd, Conn& c) {
  const char* why = nullptr;
  for (int budget = kConnBudget; budget > 0 && why == nullptr;) {
    // A named channel reads a burst (recvmmsg) of at most what can go now; an unnamed one reads
    // its name alone.
    std::size_t want = 1;
    if (c.addr != 0) {
      const std::size_t r = c.peer ? room_count() : 0;
      if (r == 0) break;  // no peer yet, or no room: leave it in the socket
      want = std::min({r, static_cast<std::size_t>(budget), os::kBatch});
    }
    const auto got = recv_.recv(fd, want);
    if (!got) {
      why = got.error().code == Errc::kLinkDown ? "peer hung up"
                                                : std::strerror(got.error().sys_errno);
      break;
    }
    if (*got == 0) break;
    budget -= static_cast<int>(*got);
    for (std::size_t i = 0; i < *got && why == nullptr; ++i) {
      const auto msg = recv_.message(i);
      if (msg.empty()) {
        why = "peer hung up";
        break;
      }
      if (c.addr == 0) {
        why = name_conn(c, msg);
      } else if (msg.size() > layout::kRpmsgMaxPayload || recv_.truncated(i)) {
        log_of(logger_)->error(
            "{}: channel '{}': message of {} bytes or more refused (at most {}); closing the "
            "connection",
            who_, c.name, msg.size(), layout::kRpmsgMaxPayload);
        ++stats_.refused;
        why = "message too large";
      } else {
        send_one(c.addr, *c.peer, msg);
      }
    }
    if (*got < want) break;  // the socket is empty
  }
  const bool was_full = !can_take();
  if (why != nullptr) close_conn(fd, why);
  port_.flush();
  update_reading();
  if (was_full && can_take()) port_.receive_again();
}

void Channels::close_conn(int fd, const char* why) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  const Conn& c = it->second;
  if (c.local && c.addr != 0) {
    log_of(logger_)->info("{}: channel '{}' (addr {}) closed: {}", who_, c.name, c.addr, why);
    announce(c, layout::kRpmsgNsDestroy);
  }
  if (c.addr != 0) by_addr_.erase(c.addr);
  forget_held(it->second);
  loop_->remove(fd);
  conns_.erase(it);
}

void Channels::send_one(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  port_.send(src, dst, payload);
  ++stats_.sent;
  stats_.sent_bytes += payload.size();
}

// rpmsg_ns.c: the announcement goes from the channel's own address to the name service.
void Channels::announce(const Conn& c, std::uint32_t flags) {
  if (!up_ || !ns_) return;  // announced at link_up(), or never without VIRTIO_RPMSG_F_NS
  ns_pending_.push_back(PendingNs{c.addr, make_ns(c.name, c.addr, flags)});
  flush_ns();
}

void Channels::flush_ns() {
  bool sent = false;
  while (!ns_pending_.empty() && up_ && port_.can_send()) {
    const PendingNs& p = ns_pending_.front();
    send_one(p.src, layout::kRpmsgNsAddr, std::as_bytes(std::span{&p.msg, 1}));
    ns_pending_.pop_front();
    sent = true;
  }
  if (sent) port_.flush();
}

void Channels::on_message(std::span<const std::byte> msg) {
  const auto m = layout::parse_rpmsg(msg);
  if (!m) return bad("malformed rpmsg");
  ++stats_.received;
  stats_.received_bytes += m->payload.size();
  if (m->dst == layout::kRpmsgNsAddr) return handle_ns(m->payload);
  deliver(m->src, m->dst, m->payload);
}

void Channels::deliver(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  auto a = by_addr_.find(dst);
  if (a == by_addr_.end()) {
    ++stats_.no_endpoint;
    return;
  }
  Conn& c = conns_.at(a->second);
  // A local channel answers whoever wrote last: each client on the other side has an address
  // of its own (several clients at once may see crossed replies).
  if (c.local && c.peer != src) {
    const bool resume = !c.peer;
    c.peer = src;
    if (resume) update_reading();
  }
  if (payload.empty()) {  // an empty seqpacket message reads as end of file: not deliverable
    ++stats_.dropped;
    return;
  }
  // Gathered, in order, for flush_received() at the end of the side's burst (one sendmmsg()),
  // or for on_conn() once a full socket has room again.
  c.held.emplace_back(payload.begin(), payload.end());
  ++held_total_;
  if (!c.queued) {
    c.queued = true;
    to_flush_.push_back(a->second);
  }
}

// struct rpmsg_ns_msg from the peer (rpmsg_ns.c rpmsg_ns_cb), every field checked.
void Channels::handle_ns(std::span<const std::byte> payload) {
  if (!ns_) return bad("name-service message without VIRTIO_RPMSG_F_NS");
  const auto a = parse_ns(payload);
  if (!a) return bad(a.error());
  if (a->name == kAnnounceName) {
    return bad("name-service message for the reserved name \"announce\"");
  }
  if (!a->create) return close_peer(a->name);
  open_peer(a->name, a->addr);
}

void Channels::open_peer(const std::string& name, std::uint32_t addr) {
  if (auto it = peers_.find(name); it != peers_.end()) {
    it->second.addr = addr;  // announced again: the peer's new address
    for (auto& [fd, c] : conns_) {
      if (!c.local && c.name == name) c.peer = addr;
    }
  } else {
    if (peers_.size() >= kMaxPeerChannels)
      return bad("name-service CREATE beyond the channel limit");
    Peer p;
    p.addr = addr;
    p.path = dir_ + "/" + name + ".sock";
    const auto log = log_of(logger_);
    if (loop_ != nullptr) {
      auto l = listen(p.path, name);
      if (!l) {
        log->error(
            "{}: channel '{}': cannot listen on {}: {}{}", who_, name, p.path, l.error().what,
            l.error().sys_errno ? std::string(": ") + std::strerror(l.error().sys_errno) : "");
      } else {
        p.listen = std::move(*l);
      }
    }
    log->info("{}: peer channel '{}' (peer addr {}) on {}", who_, name, addr, p.path);
    peers_.emplace(name, std::move(p));
  }
  for (auto& [fd, c] : conns_) {
    if (c.local && c.name == name && !c.peer) c.peer = addr;
  }
  update_reading();
}

void Channels::close_peer(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;  // DESTROY for a name never announced: nothing to do
  Peer& p = it->second;
  if (p.listen) {
    p.listen.reset();
    ::unlink(p.path.c_str());
  }
  log_of(logger_)->info("{}: peer channel '{}' gone", who_, name);
  std::vector<int> clients;
  for (auto& [fd, c] : conns_) {
    if (!c.local && c.name == name) clients.push_back(fd);
    if (c.local && c.name == name && c.peer == p.addr) c.peer.reset();  // wait for a new owner
  }
  for (int fd : clients) close_conn(fd, "channel destroyed");
  peers_.erase(it);
  update_reading();
}

}  // namespace vepf::rpmsg
