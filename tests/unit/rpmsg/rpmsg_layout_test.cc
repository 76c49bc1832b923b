// rpmsg wire structures: sizes and offsets as Linux drivers/rpmsg/virtio_rpmsg_bus.c, byte
// order on the wire, and the channel name rules.

#include "vepf/layout/rpmsg.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace vepf::layout
