// check_net_hdr(): the virtio_net_hdr a hostile peer wrote never reaches a kernel unless it is
// one the negotiated offloads allow and it stays inside its frame (VIRTIO 1.2 §5.1.6.2).

#include "vepf/layout/net.hpp"

#include <gtest/gtest.h>

#include <linux/virtio_config.h>

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace vepf::layout {
namespace {

constexpr NetOffloads kNone{};
constexpr NetOffloads kAll{true, true, true};
constexpr std::size_t kFrame = 1514;

VirtioNetHdr hdr(std::uint8_t flags, std::uint8_t gso, std::uint16_t hdr_len,
                 std::uint16_t gso_size, std::uint16_t start, std::uint16_t off) {
  VirtioNetHdr h{};
  h.flags = flags;
  h.gso_type = gso;
  h.hdr_len = le16::from_cpu(hdr_len);
  h.gso_size = le16::from_cpu(gso_size);
  h.csum_start = le16::from_cpu(start);
  h.csum_offset = le16::from_cpu(off);
  return h;
}

// A TCPv4 segment as Linux sends it: checksum from the TCP header (14 + 20) at offset 16.
VirtioNetHdr tso4() {
  return hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16);
}

TEST(NetHdr, APlainHeaderPassesWithOrWithoutOffloads) {
  EXPECT_EQ(check_net_hdr(VirtioNetHdr{}, kFrame, kNone, false), nullptr);
  EXPECT_EQ(check_net_hdr(VirtioNetHdr{}, kFrame, kAll, true), nullptr);
}

TEST(NetHdr, NegotiatedOffloadsPass) {
  EXPECT_EQ(check_net_hdr(tso4(), 65000, kAll, false), nullptr);
  auto v6 = tso4();
  v6.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  v6.csum_start = le16::from_cpu(54);
  EXPECT_EQ(check_net_hdr(v6, 65000, kAll, true), nullptr);
  EXPECT_EQ(check_net_hdr(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16), kFrame,
                          {true, false, false}, false),
            nullptr);
  EXPECT_EQ(check_net_hdr(hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0), kFrame,
                          {true, false, false}, true),
            nullptr);
}

struct Bad {
  std::string name;
  VirtioNetHdr h;
  std::size_t frame_len;
  NetOffloads allowed;
  bool towards_driver;
};

class NetHdrBad : public ::testing::TestWithParam<Bad> {};

TEST_P(NetHdrBad, IsRefusedWithAReason) {
  const Bad& b = GetParam();
  const char* why = check_net_hdr(b.h, b.frame_len, b.allowed, b.towards_driver);
  ASSERT_NE(why, nullptr) << "accepted: " << b.name;
  EXPECT_GT(std::string(why).size(), 5u);
}

std::vector<Bad> bad_headers() {
  const NetOffloads csum_only{true, false, false};
  auto no_csum_tso = tso4();
  no_csum_tso.flags = 0;
  auto zero_size = tso4();
  zero_size.gso_size = le16::from_cpu(0);
  auto ecn = tso4();
  ecn.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
  auto udp = tso4();
  udp.gso_type = VIRTIO_NET_HDR_GSO_UDP;
  auto unknown = tso4();
  unknown.gso_type = 9;
  auto v6 = tso4();
  v6.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  auto long_hdr = tso4();
  long_hdr.hdr_len = le16::from_cpu(2000);
  return {
      {"NEEDS_CSUM without the checksum offload", hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16),
       kFrame, kNone, false},
      {"DATA_VALID towards the device", hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0), kFrame,
       kAll, false},
      {"an unknown flag", hdr(0x80, 0, 0, 0, 0, 0), kFrame, kAll, true},
      {"checksum field past the frame end", hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 1500, 16),
       kFrame, kAll, false},
      {"csum_start + csum_offset wrapping",
       hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0xfff0, 0xfff0), kFrame, kAll, false},
      {"csum_start inside the Ethernet header", hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 4, 2),
       kFrame, kAll, false},
      {"TSO4 not negotiated", tso4(), 65000, csum_only, false},
      {"TSO6 not negotiated", v6, 65000, NetOffloads{true, true, false}, true},
      {"TSO without NEEDS_CSUM", no_csum_tso, 65000, kAll, false},
      {"TSO with gso_size 0", zero_size, 65000, kAll, false},
      {"ECN segmentation", ecn, 65000, kAll, false},
      {"UDP segmentation", udp, 65000, kAll, false},
      {"an unknown segmentation type", unknown, 65000, kAll, true},
      {"hdr_len beyond the frame", long_hdr, kFrame, kAll, false},
      {"a frame shorter than an Ethernet header", VirtioNetHdr{}, 10, kAll, false},
  };
}

INSTANTIATE_TEST_SUITE_P(Hostile, NetHdrBad, ::testing::ValuesIn(bad_headers()),
                         [](const auto& pi) {
                           std::string n;
                           for (char c : pi.param.name)
                             n += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(NetHdr, OffloadsFollowTheirDependencies) {
  const auto f = [](std::initializer_list<unsigned> bits) {
    std::uint64_t v = 0;
    for (unsigned b : bits) v |= std::uint64_t{1} << b;
    return v;
  };
  // VIRTIO 1.2 §5.1.3.1: TSO without its checksum feature is not an offload.
  EXPECT_FALSE(offloads_to_device(f({VIRTIO_NET_F_HOST_TSO4})).tso4);
  EXPECT_TRUE(offloads_to_device(f({VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4})).tso4);
  EXPECT_FALSE(offloads_to_driver(f({VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_TSO6})).tso6);
  EXPECT_TRUE(offloads_to_driver(f({VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO6})).tso6);
  EXPECT_FALSE(offloads_to_driver(f({VIRTIO_NET_F_CSUM})).any());
}

}  // namespace
}  // namespace vepf::layout
