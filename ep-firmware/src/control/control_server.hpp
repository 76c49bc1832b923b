#pragma once
// The EP's control socket: a unix SOCK_SEQPACKET socket on which `vepf-ep ctl` (or any program)
// sends one JSON request per message and reads one JSON reply. Requests:
//   {"op": "list"}
//   {"op": "add", "device": "<the keys of a [[device]] table, as TOML>"}
//   {"op": "remove", "slot": N}
// Replies: {"ok": true, ...} or {"ok": false, "error": "<what is wrong and what to do>"}.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "vepf/error.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::ep {

class ControlServer {
 public:
  /// Maps a request message to its reply message.
  using Handler = std::function<std::string(std::string_view request)>;

  /// Listens on `path` and serves requests from `loop`. Errors: as os::listen_seqpacket().
  [[nodiscard]] static Result<std::unique_ptr<ControlServer>> listen(const std::string& path, os::EventLoop& loop,
                                                                     Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const noexcept { return path_; }

 private:
  ControlServer(os::Fd listener, std::string path, os::EventLoop& loop, Handler handler);
  void accept_client();
  void serve(int fd);

  os::Fd listener_;
  std::string path_;
  os::EventLoop& loop_;
  Handler handler_;
  std::vector<os::Fd> clients_;
};

/// Client side: sends `request` to the control socket at `path` and returns the reply.
/// Errors: kSystem/kLinkDown when the socket cannot be reached, kTimeout without a reply in 5 s.
[[nodiscard]] Result<std::string> control_request(const std::string& path, const std::string& request);

}  // namespace vepf::ep
