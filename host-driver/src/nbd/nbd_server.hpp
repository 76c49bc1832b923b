#pragma once
// An NBD server on a unix stream socket: every connection gets its own NbdSession
// (nbd_session.hpp) in front of one BlockTarget, all driven by one vepf::os::EventLoop. Standard
// clients work unchanged: nbdinfo, nbdcopy, qemu-img and qemu-io with
// "nbd+unix:///?socket=PATH" (the NBD URI format, doc/uri.md of the NBD project).
//
// Single-threaded: create, use and destroy the server on the loop's thread; the target's
// `done` callbacks run there too.
//
// Logs to spdlog logger "host.blk" when it exists: connects, disconnects, protocol errors.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nbd/nbd_session.hpp"
#include "vepf/error.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"

namespace spdlog {
class logger;
}

namespace vepf::host::nbd {

/// NbdServer settings (outside the class so that `= {}` works as a default argument).
struct NbdServerOptions {
  SessionLimits limits;  ///< per connection
  int backlog = 16;      ///< listen(2) backlog
  /// Connections served at once ([device.block] max_nbd_clients); more are accepted and closed
  /// at once, counted in Stats::refused.
  std::size_t max_clients = 16;
};

class NbdServer {
 public:
  using Options = NbdServerOptions;

  /// Totals over every connection, closed ones included.
  struct Stats {
    std::uint64_t connections = 0;      ///< accepted (open and closed)
    std::uint64_t requests = 0;         ///< transmission requests received
    std::uint64_t bytes_read = 0;       ///< bytes of successful reads
    std::uint64_t bytes_written = 0;    ///< bytes of successful writes
    std::uint64_t errors = 0;           ///< error replies
    std::uint64_t protocol_errors = 0;  ///< connections dropped for breaking the protocol
    std::uint64_t refused = 0;          ///< not served: max_clients open, or out of descriptors
  };

  /// Listens on the unix stream socket `path` (nonblocking, close-on-exec, mode 0660), creating
  /// its parent directory and replacing a stale socket file, and serves `target` on `loop`.
  /// `loop` and `target` must outlive the server. Errors: kInvalidArgument when target.info()
  /// fails validate_export(), the path does not fit sockaddr_un, or names something that is not
  /// a socket; kSystem when a syscall fails; the loop's errors.
  [[nodiscard]] static Result<std::unique_ptr<NbdServer>> listen(const std::string& path,
                                                                 os::EventLoop& loop,
                                                                 BlockTarget& target,
                                                                 Options options = {});
  /// Closes every connection (requests in flight complete into nothing), removes every
  /// descriptor from the loop and unlinks the socket path (if it is still this server's).
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  /// Connections open now.
  std::size_t clients() const noexcept { return clients_.size(); }
  Stats stats() const noexcept;
  const std::string& path() const noexcept { return path_; }

 private:
  struct Client;

  NbdServer(std::string path, os::EventLoop& loop, BlockTarget& target, Options options);

  void on_accept(os::Fd fd);
  void refused(os::Acceptor::Refusal why);
  void on_client_event(std::uint64_t id, std::uint32_t revents);
  void on_completion(Client& c);
  /// Sends queued output. Returns false when the connection is broken.
  bool flush(Client& c);
  /// Reads while the session wants input. Returns false when the connection should close
  /// (`why` says why; `protocol` when the client broke the protocol).
  bool read_input(Client& c, const char*& why, bool& protocol);
  void update_events(Client& c);
  void close_client(std::uint64_t id, const char* why, bool protocol_error);
  void retire(const Client& c, bool protocol_error) noexcept;

  std::string path_;
  os::EventLoop& loop_;
  BlockTarget& target_;
  Options options_;
  std::unique_ptr<os::Acceptor> acceptor_;  // the listening socket
  dev_t sock_dev_ = 0;  // identity of the socket file we created, checked before unlinking it
  ino_t sock_ino_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::vector<std::byte> rbuf_;  // read buffer shared by all connections (one thread)
  Stats retired_;                // totals of closed connections
  std::shared_ptr<spdlog::logger> log_;
  log::Limit client_log_;  // refusals
};

}  // namespace vepf::host::nbd
