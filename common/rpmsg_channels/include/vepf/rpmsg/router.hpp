#pragma once
// What sits between one side's virtio-rpmsg queues (vepf-ep's RpmsgDevice, vepf-host's
// RpmsgDriver) and the programs that use its channels: a Router. The side hands it every rpmsg
// the peer wrote and tells it when the link comes and goes; the Router sends through the side's
// Port. Two Routers exist: Channels (one unix socket per channel, for separate programs) and
// Endpoints (callbacks in the application's own process, the OpenAMP way).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "vepf/error.hpp"
#include "vepf/os/event_loop.hpp"

namespace vepf::rpmsg {

/// One side's transmit path, as a Router sees it.
class Port {
 public:
  virtual ~Port() = default;
  /// True when one more rpmsg can be sent now (the link is up and the transmit path has room).
  /// When it returns false the side must call Router::resume() once room appears.
  virtual bool can_send() = 0;
  /// How many rpmsgs can be sent now, at least (0: as can_send() false). For reading a burst
  /// from a socket without taking more than can go.
  virtual std::size_t send_room() { return can_send() ? 1 : 0; }
  /// Sends one rpmsg from `src` to `dst` (host byte order) carrying `payload`
  /// (<= layout::kRpmsgMaxPayload bytes). Called only right after can_send() returned true.
  virtual void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) = 0;
  /// After a burst of send(): publish what was sent and notify the peer if it asked for it.
  virtual void flush() = 0;
  /// The Router can take messages again (Router::can_take() turned true): the side goes on
  /// taking the peer's messages from its ring. Called from the Router's event callbacks only,
  /// never from inside on_message().
  virtual void receive_again() {}
};

/// Writes one rpmsg (struct rpmsg_hdr, then `payload`) into `out`, which must hold
/// layout::kRpmsgHdrSize + payload.size() bytes (payload <= layout::kRpmsgMaxPayload).
/// Returns the message size in bytes. The one writer of rpmsg headers, for both Ports.
std::size_t encode(std::span<std::byte> out, std::uint32_t src, std::uint32_t dst,
                   std::span<const std::byte> payload) noexcept;

struct ChannelStats {
  std::uint64_t sent = 0,
                sent_bytes =
                    0;  // rpmsgs given to Port::send (name service included); payload bytes
  std::uint64_t received = 0,
                received_bytes = 0;  // well-formed rpmsgs from the peer (name service included)
  std::uint64_t bad = 0;          // malformed rpmsg or name-service message from the peer: dropped
  std::uint64_t no_endpoint = 0;  // rpmsg for an address no connection holds: dropped
  std::uint64_t dropped = 0;  // the local program's socket failed or closed (or an empty payload)
  std::uint64_t held = 0;     // times a local program's socket was full and messages waited
  std::uint64_t refused = 0;  // local connections closed: bad or duplicate name, oversize message
  std::uint64_t refused_connections = 0;  // not taken: max_connections open, or out of descriptors
  std::uint64_t no_room = 0;              // in-process endpoints: a trysend() found the Port full
};

class Router {
 public:
  virtual ~Router() = default;
  /// Registers what the Router polls with `loop` (sockets). Errors: the Router's own.
  [[nodiscard]] virtual Result<void> start(os::EventLoop& loop) {
    (void)loop;
    return {};
  }
  /// The queues are up (DRIVER_OK); `name_service`: VIRTIO_RPMSG_F_NS was negotiated.
  virtual void link_up(bool name_service) = 0;
  /// The link went down (reset, DEVICE_NEEDS_RESET): what the peer announced is forgotten.
  virtual void link_down() = 0;
  /// One rpmsg the peer wrote (header + payload, any length: the Router checks it). The bytes
  /// are valid during the call only.
  virtual void on_message(std::span<const std::byte> msg) = 0;
  /// The Port has room again.
  virtual void resume() = 0;
  /// The side's burst of on_message() calls is over (it drained its ring for now): deliver
  /// what was gathered. Every side calls it after each burst.
  virtual void flush_received() {}
  /// False while the Router holds as many undelivered messages as it may (a local program
  /// reads slower than the peer writes): the side then leaves the peer's messages on its ring,
  /// so the peer's sends wait for room and nothing is lost, until Port::receive_again().
  virtual bool can_take() const { return true; }
  virtual const ChannelStats& stats() const noexcept = 0;
  /// Channels (or named endpoints) of this side, and channels the peer announced.
  virtual std::size_t local_channels() const noexcept = 0;
  virtual std::size_t peer_channels() const noexcept = 0;
};

/// Makes a side's Router over its Port (the side is being constructed: store the reference,
/// do not call it yet).
using RouterFactory = std::function<std::unique_ptr<Router>(Port&)>;

/// A Router that outlives the probes of its device (vepf-host re-probes after NEEDS_RESET or an
/// EP restart, each probe with a new Port): attachment() is the RouterFactory to give the side
/// (Bus::Options / Server::Options rpmsg_router), and each Router it makes attaches this one to
/// its probe's Port for as long as it lives, passing every call on. One attachment at a time: a
/// second one made while the first lives takes its place. Endpoints and Relay are such Routers.
class AttachableRouter : public Router {
 public:
  AttachableRouter() = default;
  /// Attached to `port` for its whole life (no attachment()).
  explicit AttachableRouter(Port& port) : port_(&port) {}
  ~AttachableRouter() override = default;
  AttachableRouter(const AttachableRouter&) = delete;
  AttachableRouter& operator=(const AttachableRouter&) = delete;

  /// The factory; this Router must outlive what it makes.
  RouterFactory attachment();

 protected:
  /// The attachment is ending (its probe's Router goes, or another attachment takes its
  /// place): port_ is still the old Port during the call, null after it.
  virtual void detached() {}
  /// Ends the attachment, if any (detached() runs). Derived destructors call it first.
  void end_attachment() noexcept;

  Port* port_ = nullptr;

 private:
  class Attachment;
  Attachment* attachment_ = nullptr;
};

}  // namespace vepf::rpmsg
