#pragma once
// rpmsg channels as unix SOCK_SEQPACKET sockets, the same on both sides of a virtio-rpmsg link
// (vepf-ep's RpmsgDevice and vepf-host's RpmsgDriver). One message on a socket = one rpmsg.
//
// Two kinds of channels, after Linux drivers/rpmsg (virtio_rpmsg_bus.c, rpmsg_ns.c):
//  - Local channels. Channels listens on <dir>/announce.sock; a local program connects and sends
//    one message, the channel name (1..31 of letters, digits, '-', '_', '.': rpmsg_name_valid();
//    "announce" is reserved; a name already open here is refused). The connection gets a local
//    address (>= 1024) and the peer a name-service CREATE {name, addr}, sent from addr to 53 as
//    rpmsg_ns does. Each following message is one rpmsg from addr to the channel's peer: the
//    address the peer announced for the same name, else the src of the latest rpmsg the peer
//    sent to addr. Until a peer is known the connection is not read. Closing it sends DESTROY.
//  - Peer channels. For each name-service CREATE {name, addr} from the peer, Channels listens on
//    <dir>/<name>.sock; every client connection gets a local address of its own; each message
//    from a client is one rpmsg from that address to `addr`; each rpmsg for that address is one
//    message to that client. DESTROY from the peer, or link_down(), closes the listener and its
//    clients and removes the socket file.
//
// The side's queues stay with the side: Channels sends through a Port (is there room, send one
// rpmsg, publish) and is handed each rpmsg the peer sent (on_message()). Name-service messages
// are built here. Everything the peer writes is untrusted: checked, counted in stats().bad,
// dropped; never a crash.
//
// Flow control, both ways, nothing dropped: while the Port has no room, connections are not read
// (their messages wait in the socket; a burst is read with recvmmsg() only as far as there is
// room); the side calls resume() when room appears. The peer's messages for a connection are
// gathered during the side's burst and written with one sendmmsg() at flush_received(); a
// program whose socket is full is waited for (EPOLLOUT), its messages held in order, and once
// kMaxHeld messages wait, can_take() turns false: the side leaves the peer's messages on its ring
// (the peer's sends wait for room) until Port::receive_again(). Only a program that closes its
// connection loses what was held for it (stats().dropped).

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vepf/error.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/log/limit.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/os/seqpacket_batch.hpp"
#include "vepf/rpmsg/router.hpp"

namespace vepf::rpmsg {

class Channels final : public Router {
 public:
  /// Most channels the peer may announce at once; further CREATEs count as bad (each one is a
  /// listening socket and a file here).
  static constexpr std::size_t kMaxPeerChannels = 256;
  /// Reserved: <dir>/announce.sock is the announce socket itself.
  static constexpr const char* kAnnounceName = "announce";

  /// `dir`: this side's socket directory (<runtime_dir>/ep or <runtime_dir>/host), created when
  /// missing. `logger`: the spdlog logger name ("ep.rpmsg"); `who`: a prefix for its messages.
  /// `max_connections`: connections open at once on all of this side's sockets together (board
  /// config [device.rpmsg] max_connections); more are closed at once (os::Acceptor).
  Channels(std::string dir, Port& port, std::string logger, std::string who,
           std::size_t max_connections = 64);
  /// Closes every connection and listener; removes announce.sock and the peer channels' socket
  /// files. Sends nothing (the link is going away with its owner).
  ~Channels() override;
  Channels(const Channels&) = delete;
  Channels& operator=(const Channels&) = delete;

  /// Listens on <dir>/announce.sock and registers with `loop`. Idempotent (a second call does
  /// nothing). Errors: as os::listen_seqpacket(), EventLoop::add().
  [[nodiscard]] Result<void> start(os::EventLoop& loop) override;

  /// The queues are up (DRIVER_OK). `name_service`: VIRTIO_RPMSG_F_NS was negotiated; without it
  /// nothing is announced and name-service messages from the peer count as bad. Announces every
  /// local channel named so far.
  void link_up(bool name_service) override;
  /// The link went down (device reset, DEVICE_NEEDS_RESET): closes the peer channels (listener,
  /// clients, socket file), forgets every peer address, stops reading local channels. Local
  /// connections stay open and are announced again at the next link_up().
  void link_down() override;
  /// One rpmsg the peer wrote (header + payload, any length: checked here). Routes it to the
  /// connection holding its dst, or to the name service (dst 53).
  void on_message(std::span<const std::byte> msg) override;
  /// The Port has room again: sends held name-service messages, resumes reading.
  void resume() override;
  /// Sends what the burst of on_message() calls gathered for each connection (sendmmsg()).
  void flush_received() override;
  /// False while kMaxHeld messages wait for full local sockets.
  bool can_take() const override { return held_total_ < kMaxHeld; }

  /// Messages the peer sent that wait, over every connection, for a local program's socket
  /// to have room (beyond this the side stops taking the peer's messages).
  static constexpr std::size_t kMaxHeld = 256;

  const ChannelStats& stats() const noexcept override { return stats_; }
  /// Named local channels (opened through announce.sock).
  std::size_t local_channels() const noexcept override;
  /// Channels the peer announced (each with a socket <dir>/<name>.sock).
  std::size_t peer_channels() const noexcept override { return peers_.size(); }
  const std::string& dir() const noexcept { return dir_; }

 private:
  struct Conn {
    os::Fd fd;
    std::string name;                         // channel; empty for a local connection not yet named
    bool local = true;                        // opened through announce.sock (announced by us)
    std::uint32_t addr = 0;                   // local address; 0 until named
    std::optional<std::uint32_t> peer;        // where its messages go
    bool reading = true;                      // EPOLLIN registered
    std::deque<std::vector<std::byte>> held;  // for the program, not yet in its socket
    bool queued = false;                      // in to_flush_
    bool blocked = false;  // its socket was full: EPOLLOUT registered, held waits for it
  };
  struct Peer {  // a channel the peer announced
    std::uint32_t addr = 0;
    std::unique_ptr<os::Acceptor> listen;  // none when listening failed (the address is still used)
    std::string path;
  };
  struct PendingNs {
    std::uint32_t src = 0;
    layout::RpmsgNsMsg msg;
  };

  /// Listens on `path` for connections to `channel` (empty: announce.sock). Errors: as
  /// os::listen_seqpacket(), os::Acceptor::create().
  Result<std::unique_ptr<os::Acceptor>> listen(const std::string& path, const std::string& channel);
  void on_accept(const std::string& channel, os::Fd fd);
  void on_conn(int fd, std::uint32_t events);
  void read_conn(int fd, Conn& c);
  const char* name_conn(Conn& c, std::span<const std::byte> msg);
  void close_conn(int fd, const char* why);
  void open_peer(const std::string& name, std::uint32_t addr);
  void close_peer(const std::string& name);
  void handle_ns(std::span<const std::byte> payload);
  void deliver(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload);
  void announce(const Conn& c, std::uint32_t flags);
  void send_one(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload);
  void flush_ns();
  bool room();
  std::size_t room_count();
  void set_reading(Conn& c, bool on);
  void watch(Conn& c);
  /// Sends what `c` holds while its socket takes it. Returns true when the Router went from
  /// full to able to take messages again.
  bool flush_held(Conn& c);
  void forget_held(Conn& c);
  void update_reading();
  void bad(const char* what);
  std::uint32_t alloc_addr();
  void unregister(int fd);

  std::string dir_;
  Port& port_;
  std::string logger_, who_;
  os::EventLoop* loop_ = nullptr;
  std::size_t max_conns_;
  std::unique_ptr<os::Acceptor> announce_;  // announce.sock
  log::Limit client_log_;                   // refusals of local clients
  std::map<int, Conn> conns_;               // by socket
  std::map<std::uint32_t, int> by_addr_;    // local address -> socket
  std::map<std::string, Peer> peers_;       // by name
  std::deque<PendingNs> ns_pending_;        // announcements waiting for room, in order
  std::uint32_t next_addr_ = layout::kRpmsgFirstDynamicAddr;
  os::RecvBatch recv_;          // bursts from local programs
  std::vector<int> to_flush_;   // connections given messages since the last flush_received()
  std::size_t held_total_ = 0;  // messages held over every connection
  ChannelStats stats_;
  bool up_ = false;
  bool ns_ = false;
};

}  // namespace vepf::rpmsg
