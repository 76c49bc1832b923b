// In-process rpmsg endpoints (endpoints.hpp).
#include "vepf/rpmsg/endpoints.hpp"

#include <vector>

namespace vepf::rpmsg {

namespace {

bool name_ok(std::string_view name) { return layout::rpmsg_name_valid(name.data(), name.size()); }

}  // namespace

Endpoints::~Endpoints() {
  on_destination_ = nullptr;  // nothing of ours is called while we go
  end_attachment();
}

void Endpoints::detached() {
  if (up_) link_down();
}

void Endpoints::set_dst(Ept& e, std::uint32_t dst) {
  if (e.dst == dst) return;
  e.dst = dst;
  if (on_destination_) on_destination_(e.addr, dst);
}

std::uint32_t Endpoints::alloc_addr() {
  for (;;) {
    const std::uint32_t a = next_addr_++;
    if (next_addr_ == kAddrAny) next_addr_ = layout::kRpmsgFirstDynamicAddr;
    if (a >= layout::kRpmsgFirstDynamicAddr && !by_addr_.count(a)) return a;
  }
}

void Endpoints::bad(const char* what) {
  (void)what;  // counted; the side logs its stats (a peer must not flood our log)
  ++stats_.bad;
}

Result<std::uint32_t> Endpoints::create(std::string_view name, std::uint32_t addr,
                                        std::uint32_t dst, ReceiveFn rx, UnbindFn unbind) {
  if (!rx) return fail(Errc::kInvalidArgument, "an endpoint needs a receive callback");
  if (!name.empty() && !name_ok(name)) {
    return fail(Errc::kInvalidArgument,
                "an endpoint name is 1..31 of letters, digits, '-', '_', '.'");
  }
  if (addr == layout::kRpmsgNsAddr || dst == layout::kRpmsgNsAddr) {
    return fail(Errc::kInvalidArgument, "address 53 is the name service's");
  }
  if (by_addr_.size() >= kMaxEndpoints) return fail(Errc::kNoSpace, "too many endpoints");
  if (addr != kAddrAny && by_addr_.count(addr)) {
    return fail(Errc::kRejected, "the address has an endpoint already");
  }
  if (!name.empty() && by_name_.count(name)) {
    return fail(Errc::kRejected, "the name has an endpoint already");
  }
  auto e = std::make_shared<Ept>();
  e->name = std::string(name);
  e->addr = addr == kAddrAny ? alloc_addr() : addr;
  e->fixed_dst = dst != kAddrAny;
  e->dst = dst;
  e->rx = std::move(rx);
  e->unbind = std::move(unbind);
  if (!e->name.empty()) {
    if (auto p = peer_.find(e->name); p != peer_.end()) {
      if (!e->fixed_dst) {
        e->dst = p->second;  // the peer announced this name already: that is where it goes
        e->bound = true;
      } else if (e->dst == p->second) {
        e->bound = true;  // made for the peer's announcement (in the bind callback)
      }
    }
    by_name_.emplace(e->name, e->addr);
    if (announced(*e)) announce(*e, layout::kRpmsgNsCreate);
  }
  by_addr_.emplace(e->addr, e);
  return e->addr;
}

bool Endpoints::destroy(std::uint32_t addr) {
  const auto it = by_addr_.find(addr);
  if (it == by_addr_.end()) return false;
  const auto e = it->second;
  by_addr_.erase(it);
  if (!e->name.empty()) {
    by_name_.erase(e->name);
    if (announced(*e)) announce(*e, layout::kRpmsgNsDestroy);
  }
  return true;
}

std::optional<std::uint32_t> Endpoints::destination(std::uint32_t addr) const {
  const auto it = by_addr_.find(addr);
  if (it == by_addr_.end()) return std::nullopt;
  return it->second->dst;
}

Result<void> Endpoints::trysend(std::uint32_t addr, std::span<const std::byte> payload) {
  const auto it = by_addr_.find(addr);
  if (it == by_addr_.end()) return fail(Errc::kInvalidArgument, "no endpoint at that address");
  if (it->second->dst == kAddrAny) {
    return fail(Errc::kNotReady, "the endpoint has no destination yet");
  }
  return trysendto(addr, it->second->dst, payload);
}

Result<void> Endpoints::trysendto(std::uint32_t addr, std::uint32_t dst,
                                  std::span<const std::byte> payload) {
  if (!by_addr_.count(addr)) return fail(Errc::kInvalidArgument, "no endpoint at that address");
  if (payload.size() > layout::kRpmsgMaxPayload) {
    return fail(Errc::kInvalidArgument, "an rpmsg payload is at most 496 bytes");
  }
  if (dst == kAddrAny || dst == layout::kRpmsgNsAddr) {
    return fail(Errc::kInvalidArgument, "not an address to send to");
  }
  if (!up_ || !port_) return fail(Errc::kNotReady, "the link is down");
  if (!can_send()) {
    ++stats_.no_room;
    return fail(Errc::kNoSpace, "no room on the link: try again after resume()");
  }
  port_->send(addr, dst, payload);
  port_->flush();
  ++stats_.sent;
  stats_.sent_bytes += payload.size();
  return {};
}

void Endpoints::announce(const Ept& e, std::uint32_t flags) {
  if (!up_ || !ns_) return;  // announced at link_up(), or never without VIRTIO_RPMSG_F_NS
  ns_pending_.push_back(PendingNs{e.addr, make_ns(e.name, e.addr, flags)});
  flush_ns();
}

void Endpoints::flush_ns() {
  bool sent = false;
  while (!ns_pending_.empty() && up_ && port_ && port_->can_send()) {
    const PendingNs& p = ns_pending_.front();
    port_->send(p.src, layout::kRpmsgNsAddr, std::as_bytes(std::span{&p.msg, 1}));
    ++stats_.sent;
    stats_.sent_bytes += sizeof(p.msg);
    ns_pending_.pop_front();
    sent = true;
  }
  if (sent) port_->flush();
}

void Endpoints::link_up(bool name_service) {
  up_ = true;
  ns_ = name_service;
  for (const auto& [addr, e] : by_addr_) {
    if (announced(*e)) announce(*e, layout::kRpmsgNsCreate);
  }
}

void Endpoints::link_down() {
  up_ = false;
  ns_pending_.clear();
  peer_.clear();
  // Copies: an unbind callback may create or destroy endpoints.
  std::vector<std::shared_ptr<Ept>> unbound;
  for (auto& [addr, e] : by_addr_) {
    if (e->bound) unbound.push_back(e);
    e->bound = false;
    if (!e->fixed_dst) set_dst(*e, kAddrAny);
  }
  for (const auto& e : unbound) {
    // Not for an endpoint an earlier callback destroyed.
    const auto it = by_addr_.find(e->addr);
    if (it != by_addr_.end() && it->second == e && e->unbind) e->unbind();
  }
}

void Endpoints::on_message(std::span<const std::byte> msg) {
  const auto m = layout::parse_rpmsg(msg);
  if (!m) return bad("malformed rpmsg");
  ++stats_.received;
  stats_.received_bytes += m->payload.size();
  if (m->dst == layout::kRpmsgNsAddr) return handle_ns(m->payload);
  const auto it = by_addr_.find(m->dst);
  if (it == by_addr_.end()) {
    ++stats_.no_endpoint;
    return;
  }
  const auto e = it->second;  // the callback may destroy the endpoint
  if (e->dst == kAddrAny && m->src != layout::kRpmsgNsAddr && m->src != kAddrAny) {
    set_dst(*e, m->src);
  }
  e->rx(m->payload, m->src);
}

// struct rpmsg_ns_msg from the peer (rpmsg_ns.c rpmsg_ns_cb).
void Endpoints::handle_ns(std::span<const std::byte> payload) {
  if (!ns_) return bad("name-service message without VIRTIO_RPMSG_F_NS");
  const auto a = parse_ns(payload);
  if (!a) return bad(a.error());
  const auto local = by_name_.find(a->name);
  if (!a->create) {
    if (peer_.erase(a->name) == 0) return;  // nothing was announced under that name
    if (local == by_name_.end()) return;
    const auto e = by_addr_.at(local->second);
    if (!e->bound) return;
    e->bound = false;
    if (!e->fixed_dst) set_dst(*e, kAddrAny);
    if (e->unbind) e->unbind();
    return;
  }
  if (!peer_.count(a->name) && peer_.size() >= kMaxPeerChannels) {
    return bad("name-service CREATE beyond the channel limit");
  }
  peer_[a->name] = a->addr;
  if (local != by_name_.end()) {
    const auto e = by_addr_.at(local->second);  // the hook may destroy the endpoint
    if (!e->fixed_dst) {
      e->bound = true;
      set_dst(*e, a->addr);  // announced (again): the peer's address for our name
    } else if (e->dst == a->addr) {
      e->bound = true;
    }
    return;
  }
  if (bind_) bind_(a->name, a->addr);
}

}  // namespace vepf::rpmsg
