#include "vepf/app/control_server.hpp"

#include <grp.h>
#include <cstdio>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "vepf/os/unix_socket.hpp"

namespace vepf::app {

namespace {

/// The id of group `name` as /etc/group lists it. Read with fgetgrent(3), not getgrnam(3): a
/// static vepf-ep then needs no NSS modules (whose shared libraries a static binary cannot load);
/// groups from other sources (LDAP) are not seen.
std::optional<gid_t> group_id(const std::string& name) {
  std::FILE* f = std::fopen("/etc/group", "re");
  if (f == nullptr) return std::nullopt;
  std::optional<gid_t> id;
  while (const group* g = ::fgetgrent(f)) {
    if (name == g->gr_name) {
      id = g->gr_gid;
      break;
    }
  }
  std::fclose(f);
  return id;
}

}  // namespace

tl::expected<ControlServer::Policy, std::string> control_policy(const config::ControlConfig& c) {
  ControlServer::Policy policy;
  policy.max_clients = c.max_clients;
  if (!c.group.empty()) {
    const auto gid = group_id(c.group);
    if (!gid) {
      return tl::unexpected("control.group = \"" + c.group +
                            "\" is not a group of this system: create it (groupadd " + c.group +
                            ") or remove the key");
    }
    policy.group = *gid;
  }
  return policy;
}

namespace {
constexpr std::size_t kMaxMessage = 64 * 1024;  // bytes of one request or reply
}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(const std::string& path,
                                                             os::EventLoop& loop, Handler handler,
                                                             Policy policy) {
  auto l = os::listen_seqpacket(path);
  if (!l) return tl::unexpected(l.error());
  std::unique_ptr<ControlServer> s(new ControlServer(path, loop, std::move(handler), policy));
  ControlServer* raw = s.get();
  os::Acceptor::Handlers h;
  // The limit is checked here, after the credentials (take()): the acceptor's own is not used.
  h.open = [] { return std::size_t{0}; };
  h.take = [raw](os::Fd c) { raw->take(std::move(c)); };
  h.refuse = [raw](int fd, os::Acceptor::Refusal why) { raw->refused(fd, why); };
  auto a = os::Acceptor::create(loop, std::move(*l), 1, std::move(h));
  if (!a) {
    ::unlink(path.c_str());
    return tl::unexpected(a.error());
  }
  s->acceptor_ = std::move(*a);
  return s;
}

ControlServer::ControlServer(std::string path, os::EventLoop& loop, Handler handler, Policy policy)
    : path_(std::move(path)), loop_(loop), handler_(std::move(handler)), policy_(policy) {}

ControlServer::~ControlServer() {
  for (const auto& c : clients_) loop_.remove(c.get());
  acceptor_.reset();
  ::unlink(path_.c_str());
}

void ControlServer::refused(int fd, os::Acceptor::Refusal) {
  // Out of descriptors (the only refusal of the acceptor's here).
  ++counts_.refused_no_fds;
  refuse(fd, "vepf-ep is out of file descriptors: try again later",
         "out of file descriptors (EMFILE/ENFILE): a connection was refused");
}

void ControlServer::take(os::Fd c) {
  const int fd = c.get();
  std::string who;
  if (!allowed(fd, who)) {
    ++counts_.refused_credentials;
    return refuse(fd, "permission denied for " + who +
                          ": the control socket takes root, vepf-ep's own user and the members of "
                          "[control] group");
  }
  if (clients_.size() >= policy_.max_clients) {
    ++counts_.refused_full;
    return refuse(fd, "too many control connections (" + std::to_string(clients_.size()) +
                          "): close one, or raise [control] max_clients");
  }
  if (!loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { serve(fd); })) return;
  clients_.push_back(std::move(c));
}

bool ControlServer::allowed(int fd, std::string& who) const {
  ucred cr{};
  socklen_t len = sizeof cr;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
    who = "a peer whose credentials cannot be read";
    return false;
  }
  who = "uid " + std::to_string(cr.uid) + " gid " + std::to_string(cr.gid);
  if (cr.uid == 0 || cr.uid == ::geteuid()) return true;
  if (!policy_.group) return false;
  if (cr.gid == *policy_.group) return true;
  std::vector<gid_t> groups(64);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
    groups.resize(len / sizeof(gid_t));
    return std::find(groups.begin(), groups.end(), *policy_.group) != groups.end();
  }
  return false;
}

void ControlServer::refuse(int fd, const std::string& why, const std::string& log_why) {
  log::limited(log_limit_, spdlog::get("ep"), spdlog::level::warn, "control socket: {}",
               log_why.empty() ? why : log_why);
  const std::string reply = nlohmann::json{{"ok", false}, {"error", why}}.dump();
  (void)::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  // A request already queued would make the close reset the connection (ECONNRESET) before the
  // client reads the reply: drop it first.
  std::array<char, 256> sink{};
  while (::recv(fd, sink.data(), sink.size(), MSG_DONTWAIT | MSG_TRUNC) > 0) {
  }
  // `fd` belongs to the os::Fd that goes out of scope in take() or the acceptor: closed there.
}

void ControlServer::serve(int fd) {
  std::string buf(kMaxMessage, '\0');
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {  // closed or failed: forget the client
    loop_.remove(fd);
    clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                  [fd](const os::Fd& c) { return c.get() == fd; }),
                   clients_.end());
    return;
  }
  std::string reply = static_cast<std::size_t>(n) > buf.size()
                          ? std::string(R"({"ok": false, "error": "request larger than 64 KiB"})")
                          : handler_(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  (void)::send(fd, reply.data(), std::min(reply.size(), kMaxMessage), MSG_DONTWAIT | MSG_NOSIGNAL);
}

Result<std::string> control_request(const std::string& path, const std::string& request) {
  auto s = os::connect_seqpacket(path);
  if (!s) return tl::unexpected(s.error());
  if (::send(s->get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    return fail(Errc::kSystem, "send to the control socket", errno);
  }
  pollfd p{s->get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return fail(Errc::kTimeout, "no reply from vepf-ep within 5 s");
  std::string buf(kMaxMessage, '\0');
  const ssize_t n = ::recv(s->get(), buf.data(), buf.size(), 0);
  if (n <= 0)
    return fail(Errc::kLinkDown, "vepf-ep closed the control connection", n < 0 ? errno : 0);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

}  // namespace vepf::app
