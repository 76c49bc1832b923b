#pragma once
// What the rpmsg routing tests (Channels: sockets; Endpoints: in-process) share: a Port that
// records what is sent, and messages as the peer writes them.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "vepf/layout/rpmsg.hpp"
#include "vepf/rpmsg/channels.hpp"

namespace vepf::rpmsg::test_support {

using layout::kRpmsgNsAddr;

struct Sent {
  std::uint32_t src = 0, dst = 0;
  std::string payload;
};

class FakePort final : public Port {
 public:
  bool room = true;
  std::vector<Sent> sent;
  int flushes = 0;

  bool can_send() override { return room; }
  void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) override {
    std::string p(payload.size(), '\0');
    std::memcpy(p.data(), payload.data(), payload.size());
    sent.push_back({src, dst, std::move(p)});
  }
  void flush() override { ++flushes; }
  void receive_again() override { ++receive_agains; }
  int receive_agains = 0;
};

inline layout::RpmsgNsMsg ns_of(const Sent& s) {
  layout::RpmsgNsMsg ns{};
  EXPECT_EQ(s.payload.size(), sizeof(ns));
  std::memcpy(&ns, s.payload.data(), std::min(s.payload.size(), sizeof(ns)));
  return ns;
}

inline std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

/// An rpmsg as the peer would write it.
inline std::vector<std::byte> rpmsg(std::uint32_t src, std::uint32_t dst,
                                    std::span<const std::byte> payload) {
  std::vector<std::byte> m(layout::kRpmsgHdrSize + payload.size());
  encode(m, src, dst, payload);
  return m;
}

/// A name-service message from the peer: raw name bytes (copied as given, up to 32).
inline std::vector<std::byte> ns_msg(const std::string& name, std::uint32_t addr,
                                     std::uint32_t flags) {
  layout::RpmsgNsMsg ns{};
  std::memcpy(ns.name, name.data(), std::min(name.size(), sizeof(ns.name)));
  ns.addr = layout::le32::from_cpu(addr);
  ns.flags = layout::le32::from_cpu(flags);
  return rpmsg(addr, kRpmsgNsAddr, std::as_bytes(std::span{&ns, 1}));
}

}  // namespace vepf::rpmsg::test_support
