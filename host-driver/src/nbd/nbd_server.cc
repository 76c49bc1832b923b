#include "nbd/nbd_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <span>
#include <system_error>
#include <utility>

#include "vepf/os/unix_socket.hpp"

namespace vepf::host::nbd {
namespace {

constexpr std::size_t kReadChunk = 64u << 10;  // bytes per read(2)
constexpr int kMaxReadsPerEvent = 16;          // then let other connections run
constexpr std::size_t kMaxIov = 16;            // output chunks per sendmsg(2)

}  // namespace

struct NbdServer::Client {
  Client(std::uint64_t i, os::Fd f, NbdSession s) noexcept
      : id(i), fd(std::move(f)), session(std::move(s)) {}
  std::uint64_t id;
  os::Fd fd;
  NbdSession session;        // after fd: destroyed first, so its hook never meets a closed socket
  std::uint32_t events = 0;  // registered with the loop
  bool broken = false;       // a send from a completion failed: close at the next event
};

NbdServer::NbdServer(std::string path, os::EventLoop& loop, BlockTarget& target, Options options)
    : path_(std::move(path)),
      loop_(loop),
      target_(target),
      options_(options),
      rbuf_(kReadChunk),
      log_(spdlog::get("host.blk")) {}

Result<std::unique_ptr<NbdServer>> NbdServer::listen(const std::string& path, os::EventLoop& loop,
                                                     BlockTarget& target, Options options) {
  if (auto v = validate_export(target.info()); !v) return tl::unexpected(v.error());
  auto lfd = os::listen_stream(path, options.backlog);
  if (!lfd) return tl::unexpected(lfd.error());
  os::Fd fd = std::move(*lfd);
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return fail(Errc::kSystem, "stat of the nbd socket", err);
  }
  std::unique_ptr<NbdServer> s(new NbdServer(path, loop, target, options));
  s->sock_dev_ = st.st_dev;
  s->sock_ino_ = st.st_ino;
  // From here on ~NbdServer unlinks the path on failure.
  NbdServer* raw = s.get();
  os::Acceptor::Handlers h;
  h.open = [raw] { return raw->clients_.size(); };
  h.take = [raw](os::Fd c) { raw->on_accept(std::move(c)); };
  h.refuse = [raw](int, os::Acceptor::Refusal why) { raw->refused(why); };
  auto a = os::Acceptor::create(loop, std::move(fd), std::max<std::size_t>(options.max_clients, 1),
                                std::move(h));
  if (!a) return tl::unexpected(a.error());
  s->acceptor_ = std::move(*a);
  if (s->log_) s->log_->info("nbd: serving on {}", path);
  return Result<std::unique_ptr<NbdServer>>(std::move(s));
}

NbdServer::~NbdServer() {
  acceptor_.reset();
  // Move the table out first: nothing can reach a connection while it is torn down.
  auto clients = std::move(clients_);
  clients_.clear();
  for (auto& [id, c] : clients) {
    loop_.remove(c->fd.get());
    retire(*c, false);
  }
  if (log_ && !clients.empty())
    log_->info("nbd {}: shutting down, closing {} connection(s)", path_, clients.size());
  clients.clear();  // sessions first (late completions are dropped), then the sockets
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == sock_dev_ && st.st_ino == sock_ino_)
    ::unlink(path_.c_str());
}

NbdServer::Stats NbdServer::stats() const noexcept {
  Stats s = retired_;
  s.refused = refused_;
  for (const auto& [id, c] : clients_) {
    const SessionStats& t = c->session.stats();
    s.requests += t.requests;
    s.bytes_read += t.bytes_read;
    s.bytes_written += t.bytes_written;
    s.errors += t.errors;
  }
  return s;
}

void NbdServer::retire(const Client& c, bool protocol_error) noexcept {
  const SessionStats& t = c.session.stats();
  retired_.requests += t.requests;
  retired_.bytes_read += t.bytes_read;
  retired_.bytes_written += t.bytes_written;
  retired_.errors += t.errors;
  if (protocol_error) ++retired_.protocol_errors;
}

void NbdServer::refused(os::Acceptor::Refusal why) {
  ++refused_;
  log::limited(client_log_, log_, spdlog::level::warn, "nbd {}: refused a client: {} ({} so far)",
               path_,
               why == os::Acceptor::Refusal::kFull
                   ? std::to_string(clients_.size()) +
                         " connected, the limit ([device.block] max_nbd_clients)"
                   : std::string("out of file descriptors"),
               refused_);
}

void NbdServer::on_accept(os::Fd fd) {
  auto session = NbdSession::create(target_, options_.limits);
  if (!session) {
    if (log_) log_->warn("nbd {}: refusing a client: {}", path_, session.error().what);
    return;
  }
  const std::uint64_t id = next_id_++;
  auto c = std::make_unique<Client>(id, std::move(fd), std::move(*session));
  Client* raw = c.get();
  c->session.set_on_completion([this, raw] { on_completion(*raw); });
  c->events = EPOLLIN | EPOLLOUT;  // the greeting is queued
  if (auto r = loop_.add(c->fd.get(), c->events,
                         [this, id](std::uint32_t ev) { on_client_event(id, ev); });
      !r) {
    if (log_) log_->warn("nbd {}: cannot watch a client: {}", path_, r.error().what);
    return;
  }
  clients_.emplace(id, std::move(c));
  ++retired_.connections;
  if (log_) log_->info("nbd {}: client {} connected ({} open)", path_, id, clients_.size());
}

void NbdServer::on_client_event(std::uint64_t id, std::uint32_t revents) {
  const auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  if (c.broken) return close_client(id, "send failed", false);
  if ((revents & EPOLLERR) != 0) return close_client(id, "socket error", false);
  if ((revents & (EPOLLIN | EPOLLHUP)) != 0 && c.session.wants_input()) {
    const char* why = "";
    bool protocol = false;
    if (!read_input(c, why, protocol)) return close_client(id, why, protocol);
  } else if ((revents & EPOLLHUP) != 0) {
    return close_client(id, "client hung up", false);
  }
  if (c.session.can_resume()) {
    if (auto r = c.session.resume(); !r) return close_client(id, r.error().what, true);
  }
  if (!flush(c)) return close_client(id, "send failed", false);
  if (c.session.finished() &&
      (c.session.phase() == NbdSession::Phase::kFailed || !c.session.has_output()))
    return close_client(id, "session finished", false);
  update_events(c);
}

bool NbdServer::read_input(Client& c, const char*& why, bool& protocol) {
  for (int i = 0; i < kMaxReadsPerEvent && c.session.wants_input(); ++i) {
    // A WRITE's data goes straight into its request buffer; what follows it (the next
    // request header, ...) into rbuf_.
    const std::span<std::byte> direct = c.session.direct_input();
    std::array<iovec, 2> iov{};
    std::size_t niov = 0;
    if (!direct.empty()) iov[niov++] = {direct.data(), direct.size()};
    iov[niov++] = {rbuf_.data(), std::min(rbuf_.size(), c.session.read_hint())};
    const ssize_t n = ::readv(c.fd.get(), iov.data(), static_cast<int>(niov));
    if (n > 0) {
      const auto got = static_cast<std::size_t>(n);
      const std::size_t in_direct = std::min(got, direct.size());
      Result<void> r;
      if (in_direct != 0) r = c.session.received_direct(in_direct);
      if (r && got > in_direct)
        r = c.session.receive(std::span<const std::byte>(rbuf_.data(), got - in_direct));
      if (!r) {
        why = r.error().what;
        protocol = true;
        return false;
      }
      if (got < direct.size() + iov[niov - 1].iov_len) return true;  // drained
      continue;
    }
    if (n == 0) {
      why = "client disconnected";
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    why = "read failed";
    return false;
  }
  return true;
}

bool NbdServer::flush(Client& c) {
  std::array<std::span<const std::byte>, kMaxIov> chunks;
  std::array<iovec, kMaxIov> iov{};
  while (c.session.has_output()) {
    const std::size_t n = c.session.peek_output(chunks);
    for (std::size_t i = 0; i < n; ++i) {
      // iovec serves reads and writes alike, so its base is not const; sendmsg only reads it.
      iov[i].iov_base = const_cast<std::byte*>(chunks[i].data());
      iov[i].iov_len = chunks[i].size();
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n;
    // MSG_NOSIGNAL: a client that went away is an EPIPE here, not a SIGPIPE.
    const ssize_t sent = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      c.session.consume_output(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent == 0 || errno == EAGAIN || errno == EWOULDBLOCK) return true;  // EPOLLOUT resumes
    return false;
  }
  return true;
}

void NbdServer::update_events(Client& c) {
  std::uint32_t want = 0;
  if (c.session.wants_input()) want |= EPOLLIN;
  if (c.session.has_output() || c.session.can_resume() || c.session.finished() || c.broken)
    want |= EPOLLOUT;
  if (want == c.events) return;
  if (auto r = loop_.modify(c.fd.get(), want); !r) {
    if (log_) log_->warn("nbd {}: client {}: epoll_ctl: {}", path_, c.id, r.error().what);
    return;
  }
  c.events = want;
}

void NbdServer::on_completion(Client& c) {
  // Runs inside the target's `done`: send what is ready, never close here (the caller may
  // still be working with this connection); the next event closes a broken one.
  if (!c.broken && !flush(c)) c.broken = true;
  update_events(c);
}

void NbdServer::close_client(std::uint64_t id, const char* why, bool protocol_error) {
  const auto it = clients_.find(id);
  if (it == clients_.end()) return;
  std::unique_ptr<Client> c = std::move(it->second);
  clients_.erase(it);
  loop_.remove(c->fd.get());
  retire(*c, protocol_error);
  if (log_) {
    if (protocol_error) {
      log_->warn("nbd {}: client {} dropped: {}", path_, id, why);
    } else {
      log_->info("nbd {}: client {} closed: {} ({} request(s) in flight abandoned)", path_, id, why,
                 c->session.in_flight());
    }
  }
}  // c: the session goes first (late completions are dropped), then the socket

}  // namespace vepf::host::nbd
