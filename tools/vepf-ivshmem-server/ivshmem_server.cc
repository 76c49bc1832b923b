#include "ivshmem_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "vepf/layout/le.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::ivshmem {
namespace {

constexpr std::uint32_t kPeerEvents = EPOLLIN | EPOLLRDHUP;
constexpr std::chrono::milliseconds kAcceptPause{100};

std::string errno_text(const Error& e) {
  return e.sys_errno != 0 ? std::string(": ") + std::strerror(e.sys_errno) : std::string();
}

}  // namespace

std::array<std::byte, 8> encode_message(std::int64_t value) noexcept {
  // Two's complement: -1 travels as eight 0xff bytes.
  const auto le = layout::le64::from_cpu(static_cast<std::uint64_t>(value));
  std::array<std::byte, 8> out{};
  std::memcpy(out.data(), &le, sizeof le);
  return out;
}

std::int64_t decode_message(std::span<const std::byte, 8> bytes) noexcept {
  layout::le64 le;
  std::memcpy(&le, bytes.data(), sizeof le);
  return static_cast<std::int64_t>(le.to_cpu());
}

IvshmemServer::IvshmemServer(os::EventLoop& loop, os::Fd listener, os::Fd shm, unsigned vectors)
    : loop_(loop),
      listener_(std::move(listener)),
      shm_(std::make_shared<const os::Fd>(std::move(shm))),
      vectors_(vectors),
      log_(spdlog::get("ivshmem")) {
  if (!log_) log_ = spdlog::default_logger();
}

IvshmemServer::~IvshmemServer() {
  if (resume_timer_ >= 0) loop_.remove(resume_timer_);
  if (started_) loop_.remove(listener_.get());
  for (auto& [id, p] : peers_) loop_.remove(p.sock.get());
}

Result<void> IvshmemServer::start() {
  if (vectors_ < 1 || vectors_ > kMaxVectors)
    return fail(Errc::kInvalidArgument, "ivshmem server: vectors must be 1..64");
  if (!listener_.valid() || !shm_->valid())
    return fail(Errc::kInvalidArgument, "ivshmem server: no listening socket or shared memory");
  if (started_) return fail(Errc::kInvalidArgument, "ivshmem server: already started");
  if (auto r = loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_listener(); }); !r)
    return r;
  started_ = true;
  return {};
}

std::vector<std::uint16_t> IvshmemServer::peer_ids() const {
  std::vector<std::uint16_t> ids;
  for (const auto& [id, p] : peers_) {
    if (!p.dead) ids.push_back(id);
  }
  return ids;
}

void IvshmemServer::on_listener() {
  // Level-triggered: stop at EAGAIN so nothing waits in the backlog for the next batch.
  for (;;) {
    auto sock = os::accept_seqpacket(listener_.get());  // accepts stream sockets as well
    if (!sock) {
      if (sock.error().code == Errc::kNoSpace) return;
      log_->warn("accept failed ({}{}); pausing for {} ms", sock.error().what,
                 errno_text(sock.error()), kAcceptPause.count());
      pause_accepting();
      return;
    }
    accept_one(std::move(*sock));
    drop_dead();
  }
}

void IvshmemServer::pause_accepting() {
  if (resume_timer_ >= 0) return;
  auto t = loop_.add_timer(kAcceptPause, [this] { resume_accepting(); });
  if (!t) return;  // cannot pause: keep accepting (and retrying) rather than stop for good
  loop_.remove(listener_.get());
  resume_timer_ = *t;
}

void IvshmemServer::resume_accepting() {
  loop_.remove(resume_timer_);
  resume_timer_ = -1;
  if (auto r = loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_listener(); }); !r) {
    log_->error("cannot watch the listening socket again ({}{}); no new clients will be accepted",
                r.error().what, errno_text(r.error()));
  }
}

std::int64_t IvshmemServer::pick_id() const noexcept {
  // Spec: "The first client to connect to the server receives ID zero"; IDs are "unique among
  // all clients". Connect order, wrapping after 65535, skipping ids still connected.
  for (std::uint32_t i = 0; i <= kMaxPeerId; ++i) {
    const std::uint32_t id = (next_id_ + i) % (kMaxPeerId + 1);
    if (peers_.count(static_cast<std::uint16_t>(id)) == 0) return id;
  }
  return -1;
}

void IvshmemServer::accept_one(os::Fd sock) {
  const std::int64_t picked = pick_id();
  if (picked < 0) {
    log_->warn("refusing a client: all {} ids are in use", kMaxPeerId + 1);
    return;  // closing the socket tells the client
  }
  Peer p;
  p.id = static_cast<std::uint16_t>(picked);
  p.sock = std::move(sock);
  for (unsigned v = 0; v < vectors_; ++v) {
    auto e = os::EventFd::create();
    if (!e) {
      log_->warn("refusing a client: cannot create its eventfds ({}{})", e.error().what,
                 errno_text(e.error()));
      return;
    }
    p.eventfds.push_back(std::make_shared<const os::EventFd>(std::move(*e)));
  }
  const std::uint16_t id = p.id;
  if (auto r = loop_.add(p.sock.get(), kPeerEvents,
                         [this, id](std::uint32_t ev) { on_peer_event(id, ev); });
      !r) {
    log_->warn("refusing a client: cannot watch its socket ({}{})", r.error().what,
               errno_text(r.error()));
    return;
  }
  next_id_ = (static_cast<std::uint32_t>(id) + 1) % (kMaxPeerId + 1);
  Peer& n = peers_.emplace(id, std::move(p)).first->second;

  // Spec "The ivshmem server": ID and shared memory to the new client; connect notifications
  // for it to the others; those for the others to it; then its interrupt setup. Each client's
  // own stream is what the protocol orders (messages 1-5); the interleaving across clients is free.
  enqueue(n, Message::number(kProtocolVersion));
  enqueue(n, Message::number(id));
  enqueue(n, Message::with_fd(kShmMessage, shm_->get(), shm_));
  for (auto& [oid, o] : peers_) {
    if (oid == id || o.dead) continue;
    enqueue_connect(o, n);
    flush(o);
  }
  // Every other client, dead ones included: they are still in peers_, so the newcomer will get
  // their disconnect notice from drop_dead() and must have heard of them first.
  for (auto& [oid, o] : peers_) {
    if (oid != id) enqueue_connect(n, o);
  }
  enqueue_connect(n, n);
  flush(n);
  if (!n.dead) log_->info("client {} connected ({} connected)", id, peer_ids().size());
}

void IvshmemServer::enqueue_connect(Peer& to, const Peer& about) {
  // Messages 4 and 5: the id once per vector, vector 0..N-1 in order, one eventfd each.
  for (const auto& e : about.eventfds) enqueue(to, Message::with_fd(about.id, e->fd(), e));
}

void IvshmemServer::enqueue(Peer& to, Message m) {
  if (to.dead) return;
  if (to.out.size() >= kMaxQueuedMessages) {
    mark_dead(to, "does not read its messages");
    return;
  }
  to.out.push_back(std::move(m));
}

void IvshmemServer::flush(Peer& p) {
  while (!p.dead && !p.out.empty()) {
    const Message& m = p.out.front();
    const auto bytes = encode_message(m.value);
    const int fd = m.fd;
    const std::span<const int> fds =
        fd >= 0 ? std::span<const int>(&fd, 1) : std::span<const int>();
    auto r = os::send_with_fds(p.sock.get(), bytes, fds);
    if (r) {
      p.out.pop_front();
      continue;
    }
    if (r.error().code != Errc::kNoSpace) {
      if (r.error().code == Errc::kLinkDown) {
        mark_gone(p);
      } else {
        mark_dead(p, "cannot be sent to");
      }
      return;
    }
    // Socket buffer full (a newcomer among many clients with many vectors): resume on EPOLLOUT.
    if (!p.want_out) {
      if (!loop_.modify(p.sock.get(), kPeerEvents | EPOLLOUT)) {
        mark_dead(p, "cannot be watched for EPOLLOUT");
        return;
      }
      p.want_out = true;
    }
    return;
  }
  if (!p.dead && p.want_out) {
    if (!loop_.modify(p.sock.get(), kPeerEvents)) {
      mark_dead(p, "cannot be watched");
      return;
    }
    p.want_out = false;
  }
}

void IvshmemServer::on_peer_event(std::uint16_t id, std::uint32_t revents) {
  const auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer& p = it->second;
  if (revents & EPOLLOUT) flush(p);
  if (!p.dead && (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
    // Spec: "The connection is one-way: the server sends messages to the client." Anything but
    // EOF is an error, and "both client and server close the connection on error".
    std::array<std::byte, 64> buf{};
    std::vector<os::Fd> fds;  // a client that passes descriptors gets them closed here
    auto n = os::recv_with_fds(p.sock.get(), buf, fds, 0);
    // A client that closes with our messages unread makes us read ECONNRESET instead of EOF.
    const Errc code = n ? Errc::kOk : n.error().code;
    if ((n && *n == 0) || code == Errc::kLinkDown) {
      mark_gone(p);
    } else if (n || code == Errc::kOutOfRange) {
      mark_dead(p, "sent data on the one-way connection");
    } else if (code != Errc::kNoSpace) {
      mark_dead(p, "cannot be read");
    }
  }
  drop_dead();
}

void IvshmemServer::mark_dead(Peer& p, const char* why) {
  if (p.dead) return;
  p.dead = true;
  p.out.clear();
  dead_.push_back(p.id);
  log_->warn("client {} {}: dropping it", p.id, why);
}

void IvshmemServer::mark_gone(Peer& p) {
  if (p.dead) return;
  p.dead = true;
  p.out.clear();
  dead_.push_back(p.id);
  log_->info("client {} disconnected", p.id);
}

void IvshmemServer::drop_dead() {
  while (!dead_.empty()) {
    const std::uint16_t id = dead_.back();
    dead_.pop_back();
    const auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    loop_.remove(it->second.sock.get());
    peers_.erase(it);  // closes the socket and our references to its eventfds
    // Message 6: the id with no descriptor is a disconnect notice. Sending it may find more
    // dead clients; the loop drops those too.
    for (auto& [oid, o] : peers_) {
      if (o.dead) continue;
      enqueue(o, Message::number(id));
      flush(o);
    }
  }
}

}  // namespace vepf::ivshmem
