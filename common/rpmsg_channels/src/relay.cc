// An rpmsg device lent to one application in another process (relay.hpp).
#include "vepf/rpmsg/relay.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vepf/os/unix_socket.hpp"
#include "vepf/rpmsg/name_service.hpp"

namespace vepf::rpmsg {

namespace {
constexpr int kAppBudget = 64;  // frames read from the application per readable event
constexpr std::uint32_t kHupEvents = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr const char* kHungUp = "the application hung up";  // compared by address

std::shared_ptr<spdlog::logger> log_of(const std::string& name) {
  auto l = spdlog::get(name);
  return l ? l : spdlog::default_logger();
}
}  // namespace

Relay::Relay(std::string dir, std::string logger, std::string who)
    : dir_(std::move(dir)),
      path_(dir_ + "/" + kRelaySocketName),
      logger_(std::move(logger)),
      who_(std::move(who)),
      recv_(kRelayMaxFrame + 1) {}

Relay::Relay(std::string dir, Port& port, std::string logger, std::string who)
    : Relay(std::move(dir), std::move(logger), std::move(who)) {
  port_ = &port;
}

Relay::~Relay() {
  end_attachment();
  if (app_.valid() && loop_ != nullptr) loop_->remove(app_.get());
  if (listen_) {
    listen_.reset();
    ::unlink(path_.c_str());
  }
}

Result<void> Relay::start(os::EventLoop& loop) {
  if (listen_) return {};
  loop_ = &loop;
  auto l = os::listen_seqpacket(path_);
  if (!l) return tl::unexpected(l.error());
  os::Acceptor::Handlers h;
  h.open = [this] { return app_.valid() ? std::size_t{1} : std::size_t{0}; };
  h.take = [this](os::Fd fd) { on_accept(std::move(fd)); };
  h.refuse = [this](int fd, os::Acceptor::Refusal why) {
    const auto kind = static_cast<std::byte>(RelayFrame::kTaken);
    if (why == os::Acceptor::Refusal::kFull)
      (void)::send(fd, &kind, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    ++stats_.refused_connections;
    log::limited(log_limit_, log_of(logger_), spdlog::level::warn,
                 "{}: {} refused an application: {}", who_, path_,
                 why == os::Acceptor::Refusal::kFull ? "another one has the device"
                                                     : "out of file descriptors");
  };
  auto a = os::Acceptor::create(loop, std::move(*l), 1, std::move(h));
  if (!a) {
    ::unlink(path_.c_str());
    return tl::unexpected(a.error());
  }
  listen_ = std::move(*a);
  return {};
}

void Relay::on_accept(os::Fd fd) {
  const int f = fd.get();
  if (auto r = loop_->add(f, EPOLLRDHUP, [this](std::uint32_t ev) { on_app(ev); }); !r) {
    log_of(logger_)->warn("{}: cannot poll the application's connection", who_);
    return;
  }
  app_ = std::move(fd);
  reading_ = blocked_ = false;
  log_of(logger_)->info("{}: an application attached ({})", who_, path_);
  // The first frame says how the link is.
  if (!up_) queue(RelayFrame::kLinkDown, {});
  if (up_) {
    const auto ns = static_cast<std::byte>(ns_feature_ ? 1 : 0);
    queue(RelayFrame::kLinkUp, std::span{&ns, 1});
    // What the peer announced before the application came.
    for (const auto& [name, addr] : peer_) {
      const auto m = make_ns(name, addr, layout::kRpmsgNsCreate);
      queue_rpmsg(addr, layout::kRpmsgNsAddr, std::as_bytes(std::span{&m, 1}));
    }
  }
  (void)flush_out();
  watch();
}

void Relay::watch() {
  if (!app_.valid()) return;
  reading_ = up_ && port_ != nullptr && ns_.empty() && port_->can_send();
  const std::uint32_t ev = EPOLLRDHUP | (reading_ ? static_cast<std::uint32_t>(EPOLLIN) : 0u) |
                           (blocked_ ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  (void)loop_->modify(app_.get(), ev);
}

void Relay::on_app(std::uint32_t events) {
  if ((events & EPOLLOUT) && blocked_ && flush_out() && port_ != nullptr) port_->receive_again();
  if (!app_.valid()) return;
  if ((events & EPOLLIN) && reading_) {
    read_app();  // it sees the end of the connection itself
  } else if (events & kHupEvents) {
    close_app(kHungUp);
  }
}

void Relay::read_app() {
  const char* why = nullptr;
  bool sent = false;
  for (int budget = kAppBudget; budget > 0 && why == nullptr;) {
    const std::size_t room = up_ && port_ != nullptr && ns_.empty() ? port_->send_room() : 0;
    const std::size_t want = std::min({room, static_cast<std::size_t>(budget), os::kBatch});
    if (want == 0) break;
    const auto got = recv_.recv(app_.get(), want);
    if (!got) {
      why = got.error().code == Errc::kLinkDown ? kHungUp : "receiving from the application failed";
      break;
    }
    budget -= static_cast<int>(*got);
    for (std::size_t i = 0; i < *got && why == nullptr; ++i) {
      // An empty message after others in the burst: the end of the connection.
      if (recv_.message(i).empty()) why = kHungUp;
      if (why == nullptr) why = from_app(recv_.message(i), recv_.truncated(i));
      sent = sent || why == nullptr;
    }
    if (*got < want) break;  // the socket is empty
  }
  if (sent) port_->flush();
  if (why != nullptr) close_app(why);
  watch();
}

const char* Relay::from_app(std::span<const std::byte> frame, bool truncated) {
  if (truncated || frame.size() > kRelayMaxFrame) return "a frame above 513 bytes";
  if (frame.empty() || frame[0] != static_cast<std::byte>(RelayFrame::kMessage)) {
    return "a frame that is not an rpmsg";
  }
  const auto m = layout::parse_rpmsg(frame.subspan(1));
  if (!m || m->payload.size() > layout::kRpmsgMaxPayload) return "a malformed rpmsg";
  if (m->dst == layout::kRpmsgNsAddr) {
    const auto ns = parse_ns(m->payload);
    if (!ns) return "a malformed name-service message";
    if (!ns->create) {
      announced_.erase(ns->name);
    } else if (announced_.size() >= kMaxAnnounced && !announced_.count(ns->name)) {
      return "more than 1024 names announced";
    } else {
      announced_[ns->name] = ns->addr;
    }
  }
  port_->send(m->src, m->dst, m->payload);
  ++stats_.sent;
  stats_.sent_bytes += m->payload.size();
  return nullptr;
}

void Relay::close_app(const char* why) {
  if (!app_.valid()) return;
  const bool was_full = !can_take();
  if (why != kHungUp) {
    ++stats_.refused;
    log_of(logger_)->error("{}: disconnected the application: it sent {}", who_, why);
  } else {
    log_of(logger_)->info("{}: the application detached", who_);
  }
  loop_->remove(app_.get());
  app_.reset();
  reading_ = blocked_ = false;
  stats_.dropped += out_.size();
  out_.clear();
  // The peer forgets what the application announced, even when it went without a word.
  if (up_ && ns_feature_) {
    for (const auto& [name, addr] : announced_) {
      ns_.emplace_back(addr, make_ns(name, addr, layout::kRpmsgNsDestroy));
    }
  }
  announced_.clear();
  send_pending();
  if (was_full && port_ != nullptr) port_->receive_again();
}

void Relay::send_pending() {
  bool sent = false;
  while (!ns_.empty() && up_ && port_ != nullptr && port_->can_send()) {
    const auto& [src, msg] = ns_.front();
    port_->send(src, layout::kRpmsgNsAddr, std::as_bytes(std::span{&msg, 1}));
    ++stats_.sent;
    stats_.sent_bytes += sizeof(msg);
    ns_.pop_front();
    sent = true;
  }
  if (sent) port_->flush();
}

void Relay::queue(RelayFrame kind, std::span<const std::byte> body) {
  std::vector<std::byte> f(1 + body.size());
  f[0] = static_cast<std::byte>(kind);
  if (!body.empty()) std::memcpy(f.data() + 1, body.data(), body.size());
  out_.push_back(std::move(f));
}

void Relay::queue_rpmsg(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) {
  std::vector<std::byte> f(1 + layout::kRpmsgHdrSize + payload.size());
  f[0] = static_cast<std::byte>(RelayFrame::kMessage);
  (void)encode(std::span{f}.subspan(1), src, dst, payload);
  out_.push_back(std::move(f));
}

bool Relay::flush_out() {
  if (!app_.valid()) return false;
  const bool was_full = !can_take();
  const auto r = os::send_queued(app_.get(), out_);
  stats_.dropped += r.dropped;
  if (r.blocked != blocked_) {
    blocked_ = r.blocked;
    if (blocked_) ++stats_.held;
    watch();
  }
  return was_full && can_take();
}

void Relay::link_up(bool name_service) {
  up_ = true;
  ns_feature_ = name_service;
  if (!app_.valid()) return;
  const auto ns = static_cast<std::byte>(name_service ? 1 : 0);
  queue(RelayFrame::kLinkUp, std::span{&ns, 1});
  (void)flush_out();
  watch();
}

void Relay::link_down() {
  up_ = false;
  ns_feature_ = false;
  ns_.clear();
  peer_.clear();
  announced_.clear();  // the application announces them again at the next kLinkUp
  if (!app_.valid()) return;
  queue(RelayFrame::kLinkDown, {});
  (void)flush_out();
  watch();
}

void Relay::detached() {
  if (up_) link_down();
}

void Relay::on_message(std::span<const std::byte> msg) {
  const auto m = layout::parse_rpmsg(msg);
  if (!m || m->payload.size() > layout::kRpmsgMaxPayload) return bad("malformed rpmsg");
  if (m->dst == layout::kRpmsgNsAddr) {
    const auto ns = parse_ns(m->payload);
    if (!ns) return bad(ns.error());
    if (!ns->create) {
      peer_.erase(ns->name);
    } else if (peer_.size() >= kMaxPeerChannels && !peer_.count(ns->name)) {
      return bad("announcement past the limit of peer channels");
    } else {
      peer_[ns->name] = ns->addr;
    }
  }
  ++stats_.received;
  stats_.received_bytes += m->payload.size();
  if (!app_.valid()) {
    ++stats_.no_endpoint;
    return;
  }
  queue_rpmsg(m->src, m->dst, m->payload);
}

void Relay::flush_received() {
  if (app_.valid() && !blocked_) (void)flush_out();
}

void Relay::resume() {
  send_pending();
  watch();
}

void Relay::bad(const char* what) {
  ++stats_.bad;
  // Rate-limited: the 1st, 2nd, 4th, 8th... bad message is logged.
  if (std::has_single_bit(stats_.bad)) {
    log_of(logger_)->warn("{}: {} from the peer dropped ({} so far)", who_, what, stats_.bad);
  }
}

}  // namespace vepf::rpmsg
