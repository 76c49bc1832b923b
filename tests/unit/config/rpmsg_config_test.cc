// [device.rpmsg]: where the channel sockets go, how many connections they take, and who is
// served on each side (socket channels, or one application through the relay).
#include <gtest/gtest.h>

#include <string>

#include "config_test_support.hpp"
#include "vepf/config/board_config.hpp"

namespace vepf::config {
namespace {

using test::board;
using test::error_of;
using test::has;
using test::kBoard;
using test::kSource;

// ---- type = "rpmsg" ----

TEST(BoardConfig, RpmsgDeviceDefaultsRuntimeDir) {
  const auto cfg =
      parse_board_config(std::string(kBoard) + "[[device]]\ntype = \"rpmsg\"\n", kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->devices.size(), 1u);
  EXPECT_EQ(cfg->devices[0].type, DeviceType::kRpmsg);
  EXPECT_EQ(cfg->devices[0].rpmsg.runtime_dir, "/run/vepf/rpmsg0");
  EXPECT_EQ(cfg->devices[0].rpmsg.max_connections, 64u);
  EXPECT_EQ(to_string(DeviceType::kRpmsg), "rpmsg");
}

TEST(BoardConfig, RpmsgRuntimeDirParsesNextToNet) {
  const auto cfg = parse_board_config(board() +
                                          "[[device]]\ntype = \"rpmsg\"\nqueue_size = 64\n"
                                          "[device.rpmsg]\nruntime_dir = \"/tmp/r\"\n"
                                          "[[device]]\ntype = \"rpmsg\"\n",
                                      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->devices.size(), 3u);
  EXPECT_EQ(cfg->devices[0].type, DeviceType::kNet);
  EXPECT_EQ(cfg->devices[1].rpmsg.runtime_dir, "/tmp/r");
  EXPECT_EQ(cfg->devices[1].queue_size, 64);
  EXPECT_EQ(cfg->devices[2].rpmsg.runtime_dir, "/run/vepf/rpmsg2");
}

TEST(BoardConfig, RpmsgRejectsBadTables) {
  const std::string dev = std::string(kBoard) + "[[device]]\ntype = \"rpmsg\"\n";
  EXPECT_TRUE(has(error_of(dev + "[device.rpmsg]\nruntime = \"/x\"\n"), "unknown key 'runtime'"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.net]\nmac = \"02:00:00:00:00:01\"\n"), "unknown key 'net'"));
  EXPECT_TRUE(has(error_of(dev + "[device.ep]\nbackend = \"tap\"\n"), "unknown key 'ep'"));
  EXPECT_TRUE(has(error_of(dev + "[device.rpmsg]\nruntime_dir = \"\"\n"), "runtime_dir is empty"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nruntime_dir = 3\n"), "device[0].rpmsg.runtime_dir"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nruntime_dir = \"/" + std::string(80, 'a') + "\"\n"),
          "characters long"));
  EXPECT_TRUE(has(error_of(dev + "rpmsg = 1\n"), "device[0].rpmsg"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nruntime_dir = \"/r\"\n[[device]]\ntype = \"rpmsg\"\n"
                         "[device.rpmsg]\nruntime_dir = \"/r\"\n"),
          "already used by device[0]"));
  EXPECT_TRUE(has(error_of(dev + "[device.rpmsg]\nmax_connections = 0\n"),
                  "device[0].rpmsg.max_connections = 0 is out"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nmax_connections = 4097\n"), "max_connections = 4097"));
}

TEST(BoardConfig, RpmsgDeviceParsesAlone) {
  const auto d = parse_device_config(
      "type = \"rpmsg\"\nrpmsg = { runtime_dir = \"/tmp/q\", max_connections = 4 }\n", "ctl add",
      5);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->type, DeviceType::kRpmsg);
  EXPECT_EQ(d->rpmsg.runtime_dir, "/tmp/q");
  EXPECT_EQ(d->rpmsg.max_connections, 4u);
}

TEST(BoardConfig, RpmsgServesChannelsOnBothSidesUnlessToldOtherwise) {
  const std::string dev = std::string(kBoard) + "[[device]]\ntype = \"rpmsg\"\n";
  auto cfg = parse_board_config(dev, kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->devices[0].rpmsg.ep_serve, RpmsgServe::kChannels);
  EXPECT_EQ(cfg->devices[0].rpmsg.host_serve, RpmsgServe::kChannels);
  cfg = parse_board_config(dev + "[device.rpmsg]\nhost_serve = \"application\"\n", kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->devices[0].rpmsg.ep_serve, RpmsgServe::kChannels);
  EXPECT_EQ(cfg->devices[0].rpmsg.host_serve, RpmsgServe::kApplication);
  cfg = parse_board_config(dev + "[device.rpmsg]\nep_serve = \"application\"\n", kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->devices[0].rpmsg.ep_serve, RpmsgServe::kApplication);
  EXPECT_EQ(cfg->devices[0].rpmsg.host_serve, RpmsgServe::kChannels);
  EXPECT_EQ(to_string(RpmsgServe::kApplication), "application");
  EXPECT_EQ(to_string(RpmsgServe::kChannels), "channels");
}

TEST(BoardConfig, RpmsgServeNamesTheKeyAndTheChoices) {
  const std::string dev = std::string(kBoard) + "[[device]]\ntype = \"rpmsg\"\n";
  const std::string e = error_of(dev + "[device.rpmsg]\nep_serve = \"app\"\n");
  EXPECT_TRUE(has(e, "device[0].rpmsg.ep_serve"));
  EXPECT_TRUE(has(e, "use \"channels\" or \"application\""));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nhost_serve = 1\n"), "device[0].rpmsg.host_serve"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.rpmsg]\nserve = \"application\"\n"), "unknown key 'serve'"));
}

}  // namespace
}  // namespace vepf::config
