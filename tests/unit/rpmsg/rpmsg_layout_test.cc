// rpmsg wire structures: sizes and offsets as Linux drivers/rpmsg/virtio_rpmsg_bus.c, byte
// order on the wire, and the channel name rules.

#include "vepf/layout/rpmsg.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include <cstring>
#include <string>

namespace vepf::layout {
namespace {

TEST(RpmsgLayout, HeaderOffsets) {
  EXPECT_EQ(sizeof(RpmsgHdr), 16u);
  EXPECT_EQ(offsetof(RpmsgHdr, src), 0u);
  EXPECT_EQ(offsetof(RpmsgHdr, dst), 4u);
  EXPECT_EQ(offsetof(RpmsgHdr, reserved), 8u);
  EXPECT_EQ(offsetof(RpmsgHdr, len), 12u);
  EXPECT_EQ(offsetof(RpmsgHdr, flags), 14u);
}

TEST(RpmsgLayout, NsMsgOffsets) {
  EXPECT_EQ(sizeof(RpmsgNsMsg), 40u);
  EXPECT_EQ(offsetof(RpmsgNsMsg, name), 0u);
  EXPECT_EQ(offsetof(RpmsgNsMsg, addr), 32u);
  EXPECT_EQ(offsetof(RpmsgNsMsg, flags), 36u);
}

TEST(RpmsgLayout, Constants) {
  EXPECT_EQ(kRpmsgNsAddr, 53u);
  EXPECT_EQ(kVirtioRpmsgFNs, 0u);
  EXPECT_EQ(kRpmsgBufSize, 512u);
  EXPECT_EQ(kRpmsgMaxPayload, 496u);
  EXPECT_EQ(kRpmsgNsCreate, 0u);
  EXPECT_EQ(kRpmsgNsDestroy, 1u);
  EXPECT_EQ(kRpmsgRxQueue, 0);
  EXPECT_EQ(kRpmsgTxQueue, 1);
}

TEST(RpmsgLayout, LittleEndianOnTheWire) {
  RpmsgHdr h{};
  h.src = le32::from_cpu(0x01020304);
  h.len = le16::from_cpu(0x0506);
  unsigned char b[sizeof(h)];
  std::memcpy(b, &h, sizeof(h));
  EXPECT_EQ(b[0], 0x04);
  EXPECT_EQ(b[3], 0x01);
  EXPECT_EQ(b[12], 0x06);
  EXPECT_EQ(b[13], 0x05);
}

TEST(RpmsgLayout, NameRules) {
  auto ok = [](const std::string& s) { return rpmsg_name_valid(s.data(), s.size()); };
  EXPECT_TRUE(ok("echo"));
  EXPECT_TRUE(ok("rpmsg-client-sample"));
  EXPECT_TRUE(ok(std::string(31, 'a')));
  EXPECT_FALSE(ok(std::string(32, 'a')));
  EXPECT_FALSE(ok(""));
  EXPECT_FALSE(ok("."));
  EXPECT_FALSE(ok(".."));
  EXPECT_FALSE(ok("a/b"));
  EXPECT_FALSE(ok(std::string("a\0b", 3)));
}

// parse_rpmsg() is the one parser of peer-written rpmsg headers: a short message or a len
// reaching past the buffer is refused, never read beyond.
TEST(RpmsgParse, SplitsAWellFormedMessage) {
  std::array<std::byte, kRpmsgHdrSize + 4> buf{};
  RpmsgHdr hdr{};
  hdr.src = le32::from_cpu(1024);
  hdr.dst = le32::from_cpu(kRpmsgNsAddr);
  hdr.len = le16::from_cpu(3);
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  buf[kRpmsgHdrSize] = std::byte{0x61};
  auto m = parse_rpmsg(buf);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->src, 1024u);
  EXPECT_EQ(m->dst, kRpmsgNsAddr);
  ASSERT_EQ(m->payload.size(), 3u) << "hdr.len, not the buffer length";
  EXPECT_EQ(m->payload[0], std::byte{0x61});
}

TEST(RpmsgParse, RefusesShortMessagesAndOverlongLen) {
  std::array<std::byte, kRpmsgHdrSize + 4> buf{};
  EXPECT_FALSE(parse_rpmsg(std::span{buf}.first(kRpmsgHdrSize - 1)));
  RpmsgHdr hdr{};
  hdr.len = le16::from_cpu(5);
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  EXPECT_FALSE(parse_rpmsg(buf)) << "len 5 with 4 bytes after the header";
  hdr.len = le16::from_cpu(4);
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  EXPECT_TRUE(parse_rpmsg(buf));
}

}  // namespace
}  // namespace vepf::layout
