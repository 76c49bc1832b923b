// vepf::rpmsg::Endpoints, in-process rpmsg endpoints the OpenAMP way, against a fake Port:
// announcements both ways, destinations learned from the name service and from the first
// message, bind and unbind callbacks, trysend's refusals, a link reset, callbacks that destroy
// their own endpoint, and what a peer writes wrong (counted, dropped).

#include "vepf/rpmsg/endpoints.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "rpmsg_test_support.hpp"

namespace vepf::rpmsg {
namespace {

using namespace test_support;

std::string text(std::span<const std::byte> p) {
  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
}

class RpmsgEndpoints : public ::testing::Test {
 protected:
  /// A receive callback that records into `got`.
  Endpoints::ReceiveFn recorder() {
    return [this](std::span<const std::byte> p, std::uint32_t src) {
      got.push_back({src, 0, text(p)});
    };
  }

  FakePort port;
  Endpoints eps{port};
  std::vector<Sent> got;
};

TEST_F(RpmsgEndpoints, NamedEndpointIsAnnouncedAtLinkUpAndGoneAtDestroy) {
  auto a = eps.create("echo", kAddrAny, kAddrAny, recorder());
  ASSERT_TRUE(a);
  EXPECT_GE(*a, layout::kRpmsgFirstDynamicAddr);
  EXPECT_TRUE(port.sent.empty());  // link down: announced later
  eps.link_up(true);
  ASSERT_EQ(port.sent.size(), 1u);
  EXPECT_EQ(port.sent[0].src, *a);
  EXPECT_EQ(port.sent[0].dst, kRpmsgNsAddr);
  const auto ns = ns_of(port.sent[0]);
  EXPECT_STREQ(ns.name, "echo");
  EXPECT_EQ(ns.addr.to_cpu(), *a);
  EXPECT_EQ(ns.flags.to_cpu(), layout::kRpmsgNsCreate);

  EXPECT_TRUE(eps.destroy(*a));
  ASSERT_EQ(port.sent.size(), 2u);
  EXPECT_EQ(ns_of(port.sent[1]).flags.to_cpu(), layout::kRpmsgNsDestroy);
  EXPECT_FALSE(eps.destroy(*a));
  EXPECT_EQ(eps.size(), 0u);
}

TEST_F(RpmsgEndpoints, WithoutTheNameServiceNothingIsAnnounced) {
  ASSERT_TRUE(eps.create("echo", kAddrAny, kAddrAny, recorder()));
  eps.link_up(false);
  EXPECT_TRUE(port.sent.empty());
  eps.on_message(ns_msg("svc", 2000, layout::kRpmsgNsCreate));  // NS not negotiated: bad
  EXPECT_EQ(eps.stats().bad, 1u);
}

TEST_F(RpmsgEndpoints, DestinationComesFromThePeersAnnouncementOrItsFirstMessage) {
  eps.link_up(true);
  auto named = eps.create("svc", kAddrAny, kAddrAny, recorder());
  auto anon = eps.create("", 5000, kAddrAny, recorder());
  ASSERT_TRUE(named && anon);
  EXPECT_EQ(*anon, 5000u);
  EXPECT_EQ(eps.destination(*named), kAddrAny);
  const auto payload = bytes("hi");
  auto r = eps.trysend(*named, payload);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotReady);

  eps.on_message(ns_msg("svc", 700, layout::kRpmsgNsCreate));
  EXPECT_EQ(eps.destination(*named), 700u);
  port.sent.clear();
  ASSERT_TRUE(eps.trysend(*named, payload));
  ASSERT_EQ(port.sent.size(), 1u);
  EXPECT_EQ(port.sent[0].src, *named);
  EXPECT_EQ(port.sent[0].dst, 700u);
  EXPECT_EQ(port.sent[0].payload, "hi");

  eps.on_message(rpmsg(1234, 5000, bytes("first")));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].src, 1234u);
  EXPECT_EQ(got[0].payload, "first");
  EXPECT_EQ(eps.destination(5000), 1234u);  // learned
  eps.on_message(rpmsg(999, 5000, bytes("second")));
  EXPECT_EQ(eps.destination(5000), 1234u);  // the first sender stays
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].src, 999u);
}

TEST_F(RpmsgEndpoints, PeerAnnouncementsCallBindAndUnbind) {
  eps.link_up(true);
  std::vector<std::pair<std::string, std::uint32_t>> binds;
  int unbinds = 0;
  eps.set_bind([&](const std::string& name, std::uint32_t dst) {
    binds.emplace_back(name, dst);
    // OpenAMP's ns_bind_cb creates the endpoint for the service.
    auto e = eps.create(name, kAddrAny, dst, recorder(), [&] { ++unbinds; });
    ASSERT_TRUE(e);
  });
  eps.on_message(ns_msg("peer-svc", 77, layout::kRpmsgNsCreate));
  ASSERT_EQ(binds.size(), 1u);
  EXPECT_EQ(binds[0].first, "peer-svc");
  EXPECT_EQ(binds[0].second, 77u);
  ASSERT_EQ(eps.size(), 1u);

  // An endpoint created by name before the peer announced it gets bound and unbound.
  auto mine = eps.create("later", kAddrAny, kAddrAny, recorder(), [&] { ++unbinds; });
  ASSERT_TRUE(mine);
  eps.on_message(ns_msg("later", 88, layout::kRpmsgNsCreate));
  EXPECT_EQ(binds.size(), 1u);  // an endpoint has that name: no bind callback
  EXPECT_EQ(eps.destination(*mine), 88u);
  eps.on_message(ns_msg("later", 88, layout::kRpmsgNsDestroy));
  EXPECT_EQ(unbinds, 1);
  EXPECT_EQ(eps.destination(*mine), kAddrAny);
  eps.on_message(ns_msg("nobody", 90, layout::kRpmsgNsDestroy));  // never announced: ignored
  EXPECT_EQ(unbinds, 1);
  EXPECT_EQ(eps.stats().bad, 0u);
}

TEST_F(RpmsgEndpoints, TrysendRefusesWhatCannotGo) {
  auto a = eps.create("", kAddrAny, 600, recorder());
  ASSERT_TRUE(a);
  const auto small = bytes("x");
  EXPECT_EQ(eps.trysend(*a, small).error().code, Errc::kNotReady);  // link down
  eps.link_up(true);
  std::vector<std::byte> big(layout::kRpmsgMaxPayload + 1);
  EXPECT_EQ(eps.trysend(*a, big).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(eps.trysend(4242, small).error().code, Errc::kInvalidArgument);  // no endpoint
  EXPECT_EQ(eps.trysendto(*a, kRpmsgNsAddr, small).error().code, Errc::kInvalidArgument);
  port.room = false;
  EXPECT_EQ(eps.trysend(*a, small).error().code, Errc::kNoSpace);
  EXPECT_EQ(eps.stats().no_room, 1u);
  port.room = true;
  std::vector<std::byte> full(layout::kRpmsgMaxPayload, std::byte{7});
  ASSERT_TRUE(eps.trysend(*a, full));
  EXPECT_EQ(port.sent.back().payload.size(), layout::kRpmsgMaxPayload);
}

TEST_F(RpmsgEndpoints, CreateRefusesBadNamesAddressesAndDuplicates) {
  EXPECT_EQ(eps.create("bad name", kAddrAny, kAddrAny, recorder()).error().code,
            Errc::kInvalidArgument);
  EXPECT_EQ(eps.create(std::string(32, 'a'), kAddrAny, kAddrAny, recorder()).error().code,
            Errc::kInvalidArgument);
  EXPECT_EQ(eps.create("x", kRpmsgNsAddr, kAddrAny, recorder()).error().code,
            Errc::kInvalidArgument);
  EXPECT_EQ(eps.create("x", kAddrAny, kAddrAny, nullptr).error().code, Errc::kInvalidArgument);
  ASSERT_TRUE(eps.create("x", 2000, kAddrAny, recorder()));
  EXPECT_EQ(eps.create("y", 2000, kAddrAny, recorder()).error().code, Errc::kRejected);
  EXPECT_EQ(eps.create("x", 2001, kAddrAny, recorder()).error().code, Errc::kRejected);
  EXPECT_EQ(eps.size(), 1u);
}

TEST_F(RpmsgEndpoints, HeldAnnouncementsGoWhenRoomComesBack) {
  eps.link_up(true);
  port.room = false;
  auto a = eps.create("one", kAddrAny, kAddrAny, recorder());
  auto b = eps.create("two", kAddrAny, kAddrAny, recorder());
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(port.sent.empty());
  EXPECT_FALSE(eps.can_send());
  port.room = true;
  EXPECT_FALSE(eps.can_send());  // the announcements go first
  eps.resume();
  ASSERT_EQ(port.sent.size(), 2u);
  EXPECT_STREQ(ns_of(port.sent[0]).name, "one");
  EXPECT_STREQ(ns_of(port.sent[1]).name, "two");
  EXPECT_TRUE(eps.can_send());
}

TEST_F(RpmsgEndpoints, LinkDownForgetsWhatThePeerSaidAndAnnouncesAgain) {
  eps.link_up(true);
  int unbinds = 0;
  auto named = eps.create("svc", kAddrAny, kAddrAny, recorder(), [&] { ++unbinds; });
  auto fixed = eps.create("", kAddrAny, 600, recorder());
  ASSERT_TRUE(named && fixed);
  eps.on_message(ns_msg("svc", 700, layout::kRpmsgNsCreate));
  eps.link_down();
  EXPECT_EQ(unbinds, 1);
  EXPECT_EQ(eps.destination(*named), kAddrAny);
  EXPECT_EQ(eps.destination(*fixed), 600u);  // given at create(): kept
  port.sent.clear();
  eps.link_up(true);
  ASSERT_EQ(port.sent.size(), 1u);  // "svc" announced to the new driver
  EXPECT_STREQ(ns_of(port.sent[0]).name, "svc");
}

TEST_F(RpmsgEndpoints, ACallbackMayDestroyItsOwnEndpoint) {
  eps.link_up(true);
  std::uint32_t self = 0;
  auto a = eps.create("", kAddrAny, kAddrAny, [&](std::span<const std::byte>, std::uint32_t) {
    EXPECT_TRUE(eps.destroy(self));
  });
  ASSERT_TRUE(a);
  self = *a;
  eps.on_message(rpmsg(1, self, bytes("bye")));
  EXPECT_EQ(eps.size(), 0u);
  eps.on_message(rpmsg(1, self, bytes("again")));
  EXPECT_EQ(eps.stats().no_endpoint, 1u);
}

TEST_F(RpmsgEndpoints, WhatThePeerWritesWrongIsCountedAndDropped) {
  eps.link_up(true);
  int binds = 0;
  eps.set_bind([&](const std::string&, std::uint32_t) { ++binds; });
  std::vector<std::byte> shorty(layout::kRpmsgHdrSize - 1);
  eps.on_message(shorty);
  auto lying = rpmsg(1, 2, bytes("abc"));
  lying[0x0c] = std::byte{200};  // hdr.len beyond the message
  eps.on_message(lying);
  eps.on_message(ns_msg("bad name", 70, layout::kRpmsgNsCreate));
  eps.on_message(ns_msg(std::string(32, 'n'), 70, layout::kRpmsgNsCreate));  // no NUL
  eps.on_message(ns_msg("svc", kRpmsgNsAddr, layout::kRpmsgNsCreate));
  eps.on_message(ns_msg("svc", kAddrAny, layout::kRpmsgNsCreate));
  eps.on_message(ns_msg("svc", 70, 7));  // unknown flags
  eps.on_message(rpmsg(70, kRpmsgNsAddr, bytes("short")));
  EXPECT_EQ(eps.stats().bad, 8u);
  EXPECT_EQ(binds, 0);
  for (std::uint32_t i = 0; i < Endpoints::kMaxPeerChannels + 5; ++i) {
    eps.on_message(ns_msg("s" + std::to_string(i), 3000 + i, layout::kRpmsgNsCreate));
  }
  EXPECT_EQ(binds, static_cast<int>(Endpoints::kMaxPeerChannels));
  EXPECT_EQ(eps.stats().bad, 8u + 5u);
}

TEST_F(RpmsgEndpoints, AnEndpointMadeForAPeerServiceIsBoundNotAnnounced) {
  eps.link_up(true);
  int unbinds = 0;
  std::uint32_t made = 0;
  eps.set_bind([&](const std::string& name, std::uint32_t dst) {
    auto e = eps.create(name, kAddrAny, dst, recorder(), [&] { ++unbinds; });
    ASSERT_TRUE(e);
    made = *e;
  });
  eps.on_message(ns_msg("svc", 77, layout::kRpmsgNsCreate));
  ASSERT_NE(made, 0u);
  EXPECT_TRUE(port.sent.empty());  // the peer knows its own service: nothing announced back
  EXPECT_EQ(eps.destination(made), 77u);
  eps.on_message(ns_msg("svc", 77, layout::kRpmsgNsDestroy));
  EXPECT_EQ(unbinds, 1);
  EXPECT_EQ(eps.destination(made), 77u);  // given at create(): kept
  EXPECT_TRUE(eps.destroy(made));
  EXPECT_TRUE(port.sent.empty());  // and no DESTROY for what was never announced
}

TEST_F(RpmsgEndpoints, TheDestinationHookFollowsEveryChange) {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> seen;
  eps.set_destination_hook([&](std::uint32_t a, std::uint32_t d) { seen.emplace_back(a, d); });
  eps.link_up(true);
  auto named = eps.create("svc", kAddrAny, kAddrAny, recorder());
  auto anon = eps.create("", 5000, kAddrAny, recorder());
  ASSERT_TRUE(named && anon);
  EXPECT_TRUE(seen.empty());
  eps.on_message(ns_msg("svc", 88, layout::kRpmsgNsCreate));
  eps.on_message(rpmsg(1234, 5000, bytes("hi")));
  eps.on_message(ns_msg("svc", 88, layout::kRpmsgNsDestroy));
  eps.link_down();
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> want{
      {*named, 88}, {5000, 1234}, {*named, kAddrAny}, {5000, kAddrAny}};
  EXPECT_EQ(seen, want);
}

TEST(RpmsgEndpointsAttachment, EndpointsMoveFromPortToPort) {
  Endpoints eps;  // no Port yet
  const auto attach = eps.attachment();
  auto a = eps.create("svc", kAddrAny, kAddrAny, [](std::span<const std::byte>, std::uint32_t) {});
  ASSERT_TRUE(a);
  EXPECT_EQ(eps.trysendto(*a, 600, bytes("x")).error().code, Errc::kNotReady);

  FakePort first, second;
  auto r1 = attach(first);
  r1->link_up(true);
  ASSERT_EQ(first.sent.size(), 1u);
  EXPECT_EQ(ns_of(first.sent[0]).flags.to_cpu(), layout::kRpmsgNsCreate);
  r1->on_message(ns_msg("peer", 70, layout::kRpmsgNsCreate));
  EXPECT_EQ(eps.peer_channels(), 1u);
  EXPECT_TRUE(eps.trysendto(*a, 600, bytes("x")));
  EXPECT_EQ(first.sent.size(), 2u);

  // The probe ends: the link goes down for the endpoints, which stay.
  r1.reset();
  EXPECT_FALSE(eps.up());
  EXPECT_EQ(eps.peer_channels(), 0u);
  EXPECT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps.trysendto(*a, 600, bytes("x")).error().code, Errc::kNotReady);

  // The next probe: announced again, on the new Port only.
  auto r2 = attach(second);
  r2->link_up(true);
  ASSERT_EQ(second.sent.size(), 1u);
  EXPECT_EQ(ns_of(second.sent[0]).addr.to_cpu(), *a);
  EXPECT_EQ(first.sent.size(), 2u);
  // A newer attachment takes over from one that is still there.
  FakePort third;
  auto r3 = attach(third);
  EXPECT_FALSE(eps.up());
  r2->on_message(ns_msg("late", 71, layout::kRpmsgNsCreate));  // the old one forwards nothing
  EXPECT_EQ(eps.peer_channels(), 0u);
  r3->link_up(true);
  EXPECT_EQ(third.sent.size(), 1u);
  r2.reset();  // the old one going does not take the new one's Port
  EXPECT_TRUE(eps.up());
}

}  // namespace
}  // namespace vepf::rpmsg
