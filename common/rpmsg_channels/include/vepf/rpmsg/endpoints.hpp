#pragma once
// rpmsg endpoints in the application's own process, the OpenAMP way (open-amp lib/rpmsg:
// rpmsg_create_ept, rpmsg_send, rpmsg_destroy_ept and the name service), on either side of a
// virtio-rpmsg link: what an application that links the library uses instead of Channels (one
// unix socket per channel), with the same Port below it and the same wire format (Linux
// virtio_rpmsg_bus.c, rpmsg_ns.c).
//
// An endpoint is a local address with a receive callback and, once known, a destination:
//  - create(name, addr, dst, rx): addr kAddrAny takes a free address (>= 1024).
//  - dst kAddrAny: the endpoint learns its destination: the address the peer announced for the
//    same name, else the src of the first message it receives. Such an endpoint, when named and
//    VIRTIO_RPMSG_F_NS is negotiated, is announced to the peer (name-service CREATE {name, addr},
//    at once or at link_up()); destroy() sends DESTROY.
//  - A fixed dst with a name is an endpoint made for a service the peer announced (in the bind
//    callback): not announced back (as OpenAMP and Linux do), but bound to that announcement.
//  - A peer CREATE for a name no endpoint here has goes to the bind callback (OpenAMP's
//    ns_bind_cb), which may create one for it; a peer DESTROY calls the unbind callback of the
//    endpoint bound to that name (ns_unbind_cb); a learned destination is forgotten.
// Receiving: the callback gets the payload for the duration of the call only (a view of the
// buffer the message arrived in: no copy here), and the sender's address.
// Sending: trysend()/trysendto() put one message on the Port or fail at once with kNoSpace;
// waiting for room belongs to the caller (which runs its event loop until the side calls
// resume()).
//
// Lifetime: Endpoints(Port&) serves one Port for its whole life. A default-constructed Endpoints
// outlives the Ports it serves: attachment() is the RouterFactory to give a side (Bus::Options
// rpmsg_router, Server::Options rpmsg_router), and each probe of the device attaches the
// endpoints to its new Port; when that probe's Router goes, the link goes down for them (peer
// bindings are forgotten, unbind callbacks run) and they wait, created and named, for the next.
//
// Everything the peer writes is checked: a bad message is counted (stats().bad) and dropped,
// never a crash. Callbacks run on the side's thread from on_message(); they may call any method,
// destroy() of their own endpoint included.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vepf/error.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/rpmsg/name_service.hpp"
#include "vepf/rpmsg/router.hpp"

namespace vepf::rpmsg {

class Endpoints final : public AttachableRouter {
 public:
  /// The payload (valid during the call only) and the sender's address.
  using ReceiveFn = std::function<void(std::span<const std::byte> payload, std::uint32_t src)>;
  /// The peer destroyed the channel the endpoint was bound to.
  using UnbindFn = std::function<void()>;
  /// The peer announced `name` at `dst` and no endpoint here has that name.
  using BindFn = std::function<void(const std::string& name, std::uint32_t dst)>;
  /// The destination of endpoint `addr` changed to `dst` (kAddrAny: unknown again).
  using DestinationFn = std::function<void(std::uint32_t addr, std::uint32_t dst)>;

  /// Most endpoints at once, and most channels the peer may have announced at once.
  static constexpr std::size_t kMaxEndpoints = 1024;
  static constexpr std::size_t kMaxPeerChannels = 256;

  /// Endpoints with no Port yet: see attachment().
  Endpoints() = default;
  /// Endpoints that send through `port` for their whole life.
  explicit Endpoints(Port& port) : AttachableRouter(port) {}
  ~Endpoints() override;
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  void set_bind(BindFn f) { bind_ = std::move(f); }
  /// Called whenever an endpoint's destination changes (learned, bound, forgotten), so that a
  /// copy of it (the C API's rpmsg_endpoint::dest_addr) stays true.
  void set_destination_hook(DestinationFn f) { on_destination_ = std::move(f); }

  /// Creates an endpoint at `addr` (kAddrAny: a free one >= 1024) sending to `dst` (kAddrAny:
  /// learned), named `name` (empty: not announced). Returns its address.
  /// Errors: kInvalidArgument (a name that is not 1..31 of [A-Za-z0-9._-], addr kRpmsgNsAddr,
  /// no receive callback), kRejected (the address or the name is taken), kNoSpace
  /// (kMaxEndpoints).
  [[nodiscard]] Result<std::uint32_t> create(std::string_view name, std::uint32_t addr,
                                             std::uint32_t dst, ReceiveFn rx, UnbindFn unbind = {});
  /// Destroys the endpoint at `addr` (a named one is announced gone); false when none is there.
  bool destroy(std::uint32_t addr);
  /// One message from endpoint `addr` to its destination. Errors: kInvalidArgument (no such
  /// endpoint, payload above layout::kRpmsgMaxPayload), kNotReady (link down, or no destination
  /// known yet), kNoSpace (the Port is full: try again after the side's resume()).
  [[nodiscard]] Result<void> trysend(std::uint32_t addr, std::span<const std::byte> payload);
  /// As trysend(), to `dst`.
  [[nodiscard]] Result<void> trysendto(std::uint32_t addr, std::uint32_t dst,
                                       std::span<const std::byte> payload);
  /// The destination of endpoint `addr` (kAddrAny while unknown); nullopt without the endpoint.
  std::optional<std::uint32_t> destination(std::uint32_t addr) const;
  /// True when one more message can be sent now.
  bool can_send() { return up_ && port_ && ns_pending_.empty() && port_->can_send(); }
  /// True between link_up() and link_down().
  bool up() const noexcept { return up_; }

  // Router
  /// Announces every named endpoint.
  void link_up(bool name_service) override;
  /// Destinations learned from the peer are forgotten (endpoints bound by a peer announcement
  /// get their unbind callback); nothing is sent until link_up().
  void link_down() override;
  void on_message(std::span<const std::byte> msg) override;
  /// Sends held name-service messages.
  void resume() override { flush_ns(); }
  const ChannelStats& stats() const noexcept override { return stats_; }
  std::size_t local_channels() const noexcept override { return by_name_.size(); }
  std::size_t peer_channels() const noexcept override { return peer_.size(); }

  /// Endpoints, named or not.
  std::size_t size() const noexcept { return by_addr_.size(); }

 private:
  struct Ept {
    std::string name;
    std::uint32_t addr = 0;
    std::uint32_t dst = kAddrAny;
    bool fixed_dst = false;  // given at create(): kept across link_down()
    bool bound = false;      // dst came from a peer CREATE for our name
    ReceiveFn rx;
    UnbindFn unbind;
  };
  struct PendingNs {
    std::uint32_t src = 0;
    layout::RpmsgNsMsg msg;
  };

  void handle_ns(std::span<const std::byte> payload);
  void announce(const Ept& e, std::uint32_t flags);
  void flush_ns();
  /// Endpoints this side announces: named, with no destination given.
  static bool announced(const Ept& e) { return !e.name.empty() && !e.fixed_dst; }
  void bad(const char* what);
  std::uint32_t alloc_addr();
  void set_dst(Ept& e, std::uint32_t dst);
  /// The probe's Port goes: the link is down for the endpoints.
  void detached() override;

  BindFn bind_;
  DestinationFn on_destination_;
  std::map<std::uint32_t, std::shared_ptr<Ept>> by_addr_;      // shared: a callback may destroy it
  std::map<std::string, std::uint32_t, std::less<>> by_name_;  // named endpoints -> addr
  std::map<std::string, std::uint32_t, std::less<>> peer_;     // peer announcements: name -> addr
  std::deque<PendingNs> ns_pending_;
  std::uint32_t next_addr_ = layout::kRpmsgFirstDynamicAddr;
  ChannelStats stats_;
  bool up_ = false;
  bool ns_ = false;
};

}  // namespace vepf::rpmsg
