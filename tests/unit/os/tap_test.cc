#include "vepf/os/tap.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "vepf/layout/net.hpp"

namespace vepf::os {
namespace {

std::string read_sysfs(const std::string& ifname, const char* attr) {
  std::ifstream f("/sys/class/net/" + ifname + "/" + attr);
  std::string v;
  std::getline(f, v);
  return v;
}

/// sizeof(virtio_net_hdr_v1), VIRTIO 1.2 §5.1.6 (what netback asks for).
constexpr int kHdr = static_cast<int>(layout::kNetHdrSize);

/// Opens a tap or says why the test cannot run here.
Result<Tap> open_tap_or_skip_reason(std::string& reason) {
  Fd probe(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!probe.valid()) {
    reason = "cannot open /dev/net/tun: " + std::string(std::strerror(errno));
    return fail(Errc::kNotReady, "no tun");
  }
  auto tap = Tap::open("vepf-t%d", kHdr);
  if (!tap && (tap.error().sys_errno == EPERM || tap.error().sys_errno == EACCES)) {
    reason = "not allowed to create a tap (needs CAP_NET_ADMIN)";
  }
  return tap;
}

TEST(Tap, OpensConfiguresAndCloses) {
  std::string reason;
  auto tap = open_tap_or_skip_reason(reason);
  if (!reason.empty()) GTEST_SKIP() << reason;
  ASSERT_TRUE(tap) << tap.error().what << " errno " << tap.error().sys_errno;
  const std::string name = tap->name();
  EXPECT_EQ(name.rfind("vepf-t", 0), 0u) << name;
  EXPECT_EQ(name.find('%'), std::string::npos) << name;  // the kernel chose the number
  EXPECT_TRUE(::fcntl(tap->fd(), F_GETFL) & O_NONBLOCK);
  int hdr = 0;
  ASSERT_EQ(::ioctl(tap->fd(), TUNGETVNETHDRSZ, &hdr), 0);
  EXPECT_EQ(hdr, kHdr);  // the size the caller gave

  ASSERT_TRUE(tap->set_mtu(1400));
  EXPECT_EQ(read_sysfs(name, "mtu"), "1400");
  ASSERT_TRUE(tap->set_carrier(false));
  ASSERT_TRUE(tap->set_offload(0));

  // Down and never up: no frame can be waiting, so read() must say "try later".
  std::byte buf[2048];
  auto r = tap->read(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNoSpace);

  ASSERT_TRUE(tap->set_up(true));
  EXPECT_EQ(std::stoul(read_sysfs(name, "flags"), nullptr, 16) & 0x1, 1u);  // IFF_UP
  ASSERT_TRUE(tap->set_carrier(true));
  EXPECT_EQ(read_sysfs(name, "carrier"), "1");
  ASSERT_TRUE(tap->set_up(false));
  EXPECT_EQ(std::stoul(read_sysfs(name, "flags"), nullptr, 16) & 0x1, 0u);

  *tap = Tap{};  // closing a non-persistent tap deletes the interface
  EXPECT_TRUE(read_sysfs(name, "mtu").empty());
}

TEST(Tap, OverlongNameIsRefused) {
  auto tap = Tap::open("a-name-longer-than-ifnamsiz", kHdr);
  ASSERT_FALSE(tap);
  EXPECT_EQ(tap.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace vepf::os
