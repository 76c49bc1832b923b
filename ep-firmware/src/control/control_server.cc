#include "control/control_server.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "vepf/os/unix_socket.hpp"

namespace vepf::ep {

namespace {
constexpr std::size_t kMaxMessage = 64 * 1024;  // bytes of one request or reply
}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(const std::string& path, os::EventLoop& loop,
                                                             Handler handler) {
  auto l = os::listen_seqpacket(path);
  if (!l) return tl::unexpected(l.error());
  std::unique_ptr<ControlServer> s(new ControlServer(std::move(*l), path, loop, std::move(handler)));
  if (auto r = loop.add(s->listener_.get(), EPOLLIN, [p = s.get()](std::uint32_t) { p->accept_client(); }); !r) {
    return tl::unexpected(r.error());
  }
  return s;
}

ControlServer::ControlServer(os::Fd listener, std::string path, os::EventLoop& loop, Handler handler)
    : listener_(std::move(listener)), path_(std::move(path)), loop_(loop), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  for (const auto& c : clients_) loop_.remove(c.get());
  loop_.remove(listener_.get());
  ::unlink(path_.c_str());
}

void ControlServer::accept_client() {
  auto c = os::accept_seqpacket(listener_.get());
  if (!c) return;
  const int fd = c->get();
  if (!loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { serve(fd); })) return;
  clients_.push_back(std::move(*c));
}

void ControlServer::serve(int fd) {
  std::string buf(kMaxMessage, '\0');
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {  // closed or failed: forget the client
    loop_.remove(fd);
    clients_.erase(std::remove_if(clients_.begin(), clients_.end(), [fd](const os::Fd& c) { return c.get() == fd; }),
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
  if (n <= 0) return fail(Errc::kLinkDown, "vepf-ep closed the control connection", n < 0 ? errno : 0);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

}  // namespace vepf::ep
