#pragma once
// One rpmsg device lent by vepf-ep or vepf-host to one application in another process
// ([device.rpmsg] ep_serve or host_serve = "application"): the program keeps the link and the other
// devices, the application runs its own endpoints on this device (libvepf-rpmsg:
// vepf_rpmsg_attach(), the same OpenAMP-style calls as in-process) as if it had the device to
// itself: addresses, the name service both ways, rpmsg_sendto() to any address. Relay is the
// program's half: it listens on <dir>/device.sock (unix SOCK_SEQPACKET) and passes every rpmsg both
// ways unchanged, with the link's state.
//
// Protocol: one socket message = one frame; its first byte is a RelayFrame:
//   program -> application  kLinkUp {kind, u8 name_service (VIRTIO_RPMSG_F_NS: 0 or 1)}
//                           kLinkDown {kind}
//                           kMessage {kind, struct rpmsg_hdr, payload}: one rpmsg the peer wrote
//                           kTaken {kind}: another application has the device; closed after it
//   application -> program  kMessage {kind, struct rpmsg_hdr, payload}: one rpmsg for the peer
// The first frame an application gets is kLinkUp or kLinkDown (how the link is now), or kTaken.
// A frame is at most kRelayMaxFrame bytes (1 + 16 + 496).
//
// What the application cannot do for itself:
//  - it attaches after the peer announced its services: the relay remembers the peer's
//    announcements (name-service CREATE/DESTROY to address 53) and replays the live ones, as
//    CREATEs after kLinkUp, to each application that attaches;
//  - it goes away without a word (killed, crashed): the relay remembers the names the
//    application announced and sends the peer a DESTROY for each when its connection closes.
// Flow control, nothing dropped while the application reads: its socket is read only while the
// Port has room; the peer's messages wait in order for a full application socket, and once
// kMaxHeld wait, can_take() turns false (the side leaves them on its ring) until there is room.
// With no application attached the peer's messages are dropped (stats().no_endpoint), as for an
// address no endpoint holds. Everything either side writes is checked (rpmsg header, lengths,
// name-service messages): a bad frame from the peer is dropped and counted (stats().bad); an
// application that sends one is disconnected (stats().refused).
//
// Lifetime: as Endpoints, a Relay outlives the probes of its device (AttachableRouter): the
// application's connection stays across link resets and re-probes and sees kLinkDown, kLinkUp.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
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

/// The first byte of every frame on <dir>/device.sock.
enum class RelayFrame : std::uint8_t {
  kMessage = 1,
  kLinkUp = 2,
  kLinkDown = 3,
  kTaken = 4,
};
/// The socket's file name under the side's directory.
inline constexpr const char* kRelaySocketName = "device.sock";
/// Largest frame, bytes: the kind, struct rpmsg_hdr, the largest payload.
inline constexpr std::size_t kRelayMaxFrame = 1 + layout::kRpmsgHdrSize + layout::kRpmsgMaxPayload;

class Relay final : public AttachableRouter {
 public:
  /// Messages from the peer that may wait for a full application socket.
  static constexpr std::size_t kMaxHeld = 256;
  /// Announcements of the peer remembered for replay (as Channels::kMaxPeerChannels).
  static constexpr std::size_t kMaxPeerChannels = 256;
  /// Names the application may have announced at once (as Endpoints::kMaxEndpoints).
  static constexpr std::size_t kMaxAnnounced = 1024;

  /// `dir`: the side's socket directory (<runtime_dir>/ep or <runtime_dir>/host), created when
  /// missing. `logger`: the spdlog logger name ("ep.rpmsg"); `who`: a prefix for its messages.
  Relay(std::string dir, std::string logger, std::string who);
  /// As above, attached to `port` for its whole life (vepf-ep: the device outlives its resets).
  Relay(std::string dir, Port& port, std::string logger, std::string who);
  /// Closes the application's connection and the listener; removes the socket file.
  ~Relay() override;
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  /// Listens on <dir>/device.sock and registers with `loop`. Idempotent. Errors: as
  /// os::listen_seqpacket(), os::Acceptor::create().
  [[nodiscard]] Result<void> start(os::EventLoop& loop) override;
  void link_up(bool name_service) override;
  void link_down() override;
  void on_message(std::span<const std::byte> msg) override;
  void resume() override;
  void flush_received() override;
  bool can_take() const override { return out_.size() < kMaxHeld; }
  const ChannelStats& stats() const noexcept override { return stats_; }
  /// Names the application has announced.
  std::size_t local_channels() const noexcept override { return announced_.size(); }
  std::size_t peer_channels() const noexcept override { return peer_.size(); }

  /// True while an application is attached.
  bool attached() const noexcept { return app_.valid(); }
  const std::string& path() const noexcept { return path_; }

 private:
  void detached() override;
  void on_accept(os::Fd fd);
  void on_app(std::uint32_t events);
  void read_app();
  /// Checks one frame from the application and sends its rpmsg. Returns why it is refused.
  const char* from_app(std::span<const std::byte> frame, bool truncated);
  void close_app(const char* why);
  void queue(RelayFrame kind, std::span<const std::byte> body);
  void queue_rpmsg(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload);
  /// Sends what waits for the application. True when can_take() turned true meanwhile.
  bool flush_out();
  void watch();
  void send_pending();
  void bad(const char* what);

  std::string dir_, path_, logger_, who_;
  os::EventLoop* loop_ = nullptr;
  std::unique_ptr<os::Acceptor> listen_;
  os::Fd app_;
  bool reading_ = false;                    // EPOLLIN registered on app_
  bool blocked_ = false;                    // app_ was full: EPOLLOUT registered
  std::deque<std::vector<std::byte>> out_;  // frames for the application, in order
  std::deque<std::pair<std::uint32_t, layout::RpmsgNsMsg>> ns_;  // DESTROYs (src, msg) for the
                                                                 // peer that wait for room
  std::map<std::string, std::uint32_t> announced_;  // by the application: name -> its address
  std::map<std::string, std::uint32_t> peer_;       // by the peer: name -> its address
  os::RecvBatch recv_;
  log::Limit log_limit_;
  ChannelStats stats_;
  bool up_ = false;
  bool ns_feature_ = false;
};

}  // namespace vepf::rpmsg
