#pragma once
// The server side of QEMU's ivshmem client-server protocol (QEMU docs/specs/ivshmem-spec.rst,
// "The ivshmem server" and "The ivshmem Client-Server Protocol"). Every client (a QEMU
// `-device ivshmem-doorbell`, or any process that speaks the protocol) gets an id, the shared
// memory, and one eventfd per vector for itself and for every other client; from then on the
// clients interrupt each other through the eventfds, without the server.
//
// The wire, as the spec gives it: the server only sends; each message is one little-endian
// signed 64-bit number, with at most one descriptor (SCM_RIGHTS). To a new client, in order:
//   1. the protocol version (0), no fd;
//   2. the client's id (0..65535), no fd;
//   3. -1 with the shared-memory fd;
//   4. for each other client: its id once per vector, each with its eventfd for that vector
//      (vector 0..N-1 in order);
//   5. the client's own id once per vector, each with its own eventfd for that vector.
// Every other client meanwhile gets the new client's step-4 messages, and, when a client
// leaves, its id with no fd (step 6 of the spec).

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/os/fd.hpp"

namespace spdlog {
class logger;
}

namespace vepf::ivshmem {

/// ivshmem-spec, Client-Server Protocol, message 1: "currently zero".
inline constexpr std::int64_t kProtocolVersion = 0;
/// Message 3: the number -1 comes with the shared-memory descriptor.
inline constexpr std::int64_t kShmMessage = -1;
/// Message 2: "IDs must be between 0 and 65535, because the Doorbell register provides only 16
/// bits for them".
inline constexpr std::uint32_t kMaxPeerId = 65535;
/// Most interrupt vectors per client (QEMU's own server has the same limit).
inline constexpr unsigned kMaxVectors = 64;
/// Most messages waiting for one client that does not read them; past this it is dropped.
/// A newcomer among P clients is owed 3 + (P + 1) * vectors messages at once.
inline constexpr std::size_t kMaxQueuedMessages = std::size_t{1} << 16;

/// One message of the protocol: 8 bytes, little-endian (spec: "a single 8 byte little-endian
/// signed number").
[[nodiscard]] std::array<std::byte, 8> encode_message(std::int64_t value) noexcept;
[[nodiscard]] std::int64_t decode_message(std::span<const std::byte, 8> bytes) noexcept;

class IvshmemServer {
 public:
  /// `listener`: a listening, nonblocking SOCK_STREAM unix socket (os::listen_stream()).
  /// `shm`: the shared memory every client gets. `vectors`: eventfds per client,
  /// 1..kMaxVectors. Nothing happens until start().
  IvshmemServer(os::EventLoop& loop, os::Fd listener, os::Fd shm, unsigned vectors);
  /// Stops watching every descriptor and closes the connections (clients see EOF).
  ~IvshmemServer();
  IvshmemServer(const IvshmemServer&) = delete;
  IvshmemServer& operator=(const IvshmemServer&) = delete;

  /// Starts accepting clients on the loop. Errors: kInvalidArgument (vectors out of range, no
  /// listener or no shared memory), those of EventLoop::add().
  [[nodiscard]] Result<void> start();

  /// Ids of the connected clients, ascending.
  [[nodiscard]] std::vector<std::uint16_t> peer_ids() const;
  unsigned vectors() const noexcept { return vectors_; }

 private:
  struct Message {
    std::int64_t value = 0;
    int fd = -1;                        // -1: no descriptor
    std::shared_ptr<const void> owner;  // keeps `fd` open while the message waits

    static Message number(std::int64_t v) { return Message{v, -1, nullptr}; }
    static Message with_fd(std::int64_t v, int fd, std::shared_ptr<const void> owner) {
      return Message{v, fd, std::move(owner)};
    }
  };
  struct Peer {
    std::uint16_t id = 0;
    os::Fd sock;
    std::vector<std::shared_ptr<const os::EventFd>> eventfds;  // one per vector
    std::deque<Message> out;
    bool want_out = false;  // EPOLLOUT is watched
    bool dead = false;      // queued for drop_dead()
  };

  void on_listener();
  /// Stops accepting for a moment after a failed accept (EMFILE, ...): the connection stays
  /// in the backlog, and a level-triggered listener would otherwise spin.
  void pause_accepting();
  void resume_accepting();
  void accept_one(os::Fd sock);
  void on_peer_event(std::uint16_t id, std::uint32_t revents);
  /// Lowest free id at or after next_id_ (wrapping), or -1 when all 65536 are taken.
  [[nodiscard]] std::int64_t pick_id() const noexcept;
  /// The step-4 messages announcing `about` (its id, once per vector, with its eventfds).
  void enqueue_connect(Peer& to, const Peer& about);
  void enqueue(Peer& to, Message m);
  /// Sends what `p` has queued until the socket is full (then waits for EPOLLOUT).
  void flush(Peer& p);
  /// Queues `p` for drop_dead() after an error (logged as a warning with `why`).
  void mark_dead(Peer& p, const char* why);
  /// Queues `p` for drop_dead() after it closed its connection.
  void mark_gone(Peer& p);
  /// Removes dead peers and tells the others (which may find more dead peers).
  void drop_dead();

  os::EventLoop& loop_;
  os::Fd listener_;
  std::shared_ptr<const os::Fd> shm_;
  unsigned vectors_;
  bool started_ = false;
  int resume_timer_ = -1;      // EventLoop timer id while accepting is paused
  std::uint32_t next_id_ = 0;  // ids follow connect order, wrapping after kMaxPeerId
  std::map<std::uint16_t, Peer> peers_;
  std::vector<std::uint16_t> dead_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace vepf::ivshmem
