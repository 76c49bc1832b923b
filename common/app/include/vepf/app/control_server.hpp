#pragma once
// A program's control socket: a unix SOCK_SEQPACKET socket on which `vepf-ep ctl`, `vepf-ep
// status`, `vepf-host status` (or any program) send one JSON request per message and read one
// JSON reply; the program's handler decides the requests (vepf-ep: ep::Server::handle_control;
// vepf-host: host::Bus::handle_control). Replies: {"ok": true, ...} or {"ok": false, "error":
// "<what is wrong and what to do>"}.
// Who may connect is checked on the peer's credentials (SO_PEERCRED, SO_PEERGROUPS), not only on
// the socket file's mode: root, the program's own user, and the members of one configured group.
// A client refused is told why in one reply and closed.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "vepf/config/board_config.hpp"
#include "vepf/error.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::app {

class ControlServer {
 public:
  /// Maps a request message to its reply message.
  using Handler = std::function<std::string(std::string_view request)>;
  struct Policy {
    std::optional<gid_t> group;    // its members may connect too (root and our own user always)
    std::size_t max_clients = 16;  // connections at once; more are refused
  };
  /// What was refused, for the report and the tests.
  struct Counts {
    std::uint64_t refused_credentials = 0;
    std::uint64_t refused_full = 0;
    std::uint64_t refused_no_fds = 0;  // accept() ran out of descriptors (EMFILE/ENFILE)
  };

  /// Listens on `path` and serves requests from `loop`. Errors: as os::listen_seqpacket().
  [[nodiscard]] static Result<std::unique_ptr<ControlServer>> listen(const std::string& path,
                                                                     os::EventLoop& loop,
                                                                     Handler handler,
                                                                     Policy policy);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const noexcept { return path_; }
  const Counts& counts() const noexcept { return counts_; }

 private:
  ControlServer(std::string path, os::EventLoop& loop, Handler handler, Policy policy);
  void take(os::Fd c);
  void refused(int fd, os::Acceptor::Refusal why);
  /// Whether the peer of `fd` may use the socket; `who` says who it is.
  bool allowed(int fd, std::string& who) const;
  /// Tells the client `why` (and logs `log_why`, or `why`), for it to be closed.
  void refuse(int fd, const std::string& why, const std::string& log_why = {});
  void serve(int fd);

  std::string path_;
  os::EventLoop& loop_;
  Handler handler_;
  Policy policy_;
  Counts counts_;
  log::Limit log_limit_;
  std::vector<os::Fd> clients_;
  std::unique_ptr<os::Acceptor> acceptor_;  // last: gone first, with the listener
};

/// The Policy of board config [control]: its max_clients, and its group resolved in /etc/group.
/// Errors: the group does not exist (the message names control.group and the fix).
tl::expected<ControlServer::Policy, std::string> control_policy(const config::ControlConfig& c);

/// Client side: sends `request` to the control socket at `path` and returns the reply.
/// Errors: kSystem/kLinkDown when the socket cannot be reached, kTimeout without a reply in 5 s.
[[nodiscard]] Result<std::string> control_request(const std::string& path,
                                                  const std::string& request);

}  // namespace vepf::app
