#include "vepf/config/board_config.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "config_test_support.hpp"

namespace vepf::config {
namespace {

using test::board;
using test::error_of;
using test::has;
using test::kBoard;
using test::kSource;

TEST(BoardConfig, ShippedLoopbackBoardParses) {
  const auto cfg = load_board_config(VEPF_SOURCE_DIR "/board-configs/loopback.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->name, "loopback");
  EXPECT_EQ(cfg->platform, Platform::kLoopback);
  EXPECT_EQ(cfg->link.ack_timeout_ms, 1000u);
  EXPECT_EQ(cfg->link.spin_us, 20u);
  EXPECT_EQ(cfg->link.max_chain_segments, 1024u);
  EXPECT_EQ(cfg->link.ep_window_size, 64u << 20);  // 64 KiB buffers for TCP segmentation offload
  EXPECT_EQ(cfg->link.rc_window_size, 64u << 20);
  EXPECT_EQ(cfg->loopback.socket, "/run/vepf/loopback.sock");
  ASSERT_EQ(cfg->devices.size(), 1u);
  const DeviceConfig& dev = cfg->devices[0];
  EXPECT_EQ(dev.type, DeviceType::kNet);
  EXPECT_EQ(dev.queue_size, 256);
  EXPECT_EQ(dev.net.mac, (std::array<std::uint8_t, 6>{0x02, 0x76, 0x65, 0x70, 0x66, 0x01}));
  EXPECT_EQ(dev.net.mtu, 1500);
  EXPECT_TRUE(dev.net.offloads);
  EXPECT_EQ(dev.ep.kind, BackendKind::kTap);
  EXPECT_EQ(dev.ep.ifname, "vepf-ep0");
  EXPECT_EQ(dev.host.kind, BackendKind::kTap);
  EXPECT_EQ(dev.host.ifname, "vepf-host0");
}

TEST(BoardConfig, DefaultsApplied) {
  const auto cfg = parse_board_config(board(), kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->link.ack_timeout_ms, 1000u);
  EXPECT_EQ(cfg->link.ep_window_size, 4u << 20);
  EXPECT_EQ(cfg->link.rc_window_size, 4u << 20);
  const DeviceConfig& dev = cfg->devices.at(0);
  EXPECT_EQ(dev.queue_size, 256);
  EXPECT_EQ(dev.net.mtu, 1500);
  EXPECT_EQ(dev.ep.kind, BackendKind::kTap);
  EXPECT_EQ(dev.ep.ifname, "vepf-ep0");
  EXPECT_EQ(dev.host.kind, BackendKind::kTap);
  EXPECT_EQ(dev.host.ifname, "vepf-host0");
}

TEST(BoardConfig, DefaultIfnameUsesDeviceIndex) {
  const std::string toml =
      board() + "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:02\"\n";
  const auto cfg = parse_board_config(toml, kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->devices.size(), 2u);
  EXPECT_EQ(cfg->devices[1].ep.ifname, "vepf-ep1");
  EXPECT_EQ(cfg->devices[1].host.ifname, "vepf-host1");
}

TEST(BoardConfig, ExplicitValuesParse) {
  const auto cfg = parse_board_config(
      board("queue_size = 1024\n", "mtu = 9000\n", "[device.ep]\nifname = \"e.0_x-y\"\n") +
          "[link]\nack_timeout_ms = 60000\nep_window_size = 65536\nrc_window_size = 1073741824\n"
          "spin_us = 0\nmax_chain_segments = 19\n",
      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->link.ack_timeout_ms, 60000u);
  EXPECT_EQ(cfg->link.spin_us, 0u);
  EXPECT_EQ(cfg->link.max_chain_segments, 19u);
  EXPECT_EQ(cfg->link.ep_window_size, 65536u);
  EXPECT_EQ(cfg->link.rc_window_size, 1u << 30);
  EXPECT_EQ(cfg->devices[0].queue_size, 1024);
  EXPECT_EQ(cfg->devices[0].net.mtu, 9000);
  EXPECT_EQ(cfg->devices[0].ep.ifname, "e.0_x-y");
}

TEST(BoardConfig, SeqpacketBackendParses) {
  const auto cfg = parse_board_config(
      board("", "", "[device.host]\nbackend = \"seqpacket\"\npath = \"/run/vepf/net0.sock\"\n"),
      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  const Backend& host = cfg->devices[0].host;
  EXPECT_EQ(host.kind, BackendKind::kSeqpacket);
  EXPECT_EQ(host.path, "/run/vepf/net0.sock");
  EXPECT_EQ(host.ifname, "");
  EXPECT_FALSE(host.vnet_hdr);
  EXPECT_EQ(cfg->devices[0].ep.kind, BackendKind::kTap);
}

TEST(BoardConfig, SeqpacketBackendMayCarryTheVirtioNetHeader) {
  const auto cfg = parse_board_config(board("", "",
                                            "[device.host]\nbackend = \"seqpacket\"\npath = "
                                            "\"/run/vepf/net0.sock\"\nvnet_hdr = true\n"),
                                      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE(cfg->devices[0].host.vnet_hdr);
}

TEST(BoardConfigError, VnetHdrIsOnlyForSeqpacket) {
  EXPECT_TRUE(has(error_of(board("", "", "[device.host]\nvnet_hdr = true\n")),
                  "device[0].host.vnet_hdr is only for backend = \"seqpacket\""));
  EXPECT_TRUE(has(
      error_of(board("", "",
                     "[device.host]\nbackend = \"seqpacket\"\npath = \"/x.sock\"\nvnet_hdr = 1\n")),
      "vnet_hdr"));
}

TEST(BoardConfig, ToStringNamesMatchToml) {
  EXPECT_EQ(to_string(Platform::kLoopback), "loopback");
  EXPECT_EQ(to_string(DeviceType::kNet), "net");
  EXPECT_EQ(to_string(BackendKind::kTap), "tap");
  EXPECT_EQ(to_string(BackendKind::kSeqpacket), "seqpacket");
}

// ---- messages ----

TEST(BoardConfigError, MessageNamesFileFieldAndRange) {
  EXPECT_EQ(error_of(board("", "mtu = 70000\n")),
            "x.toml: device[0].net.mtu = 70000 is out of range: use 68..65535");
}

TEST(BoardConfigError, UnknownKeyListsAllowedKeys) {
  EXPECT_EQ(error_of(board("", "foo = 1\n")),
            "x.toml: unknown key 'foo' in [device[0].net]; allowed: mac, mtu, offloads");
}

TEST(BoardConfig, NetOffloadsDefaultOnAndCanBeMasked) {
  const auto on = parse_board_config(board(), kSource);
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_TRUE(on->devices[0].net.offloads);
  const auto off = parse_board_config(board("", "offloads = false\n"), kSource);
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->devices[0].net.offloads);
  EXPECT_TRUE(has(error_of(board("", "offloads = 1\n")), "device[0].net.offloads"));
}

TEST(BoardConfigError, UnknownTopLevelTable) {
  const std::string msg = error_of(board() + "[bogus]\nx = 1\n");
  EXPECT_TRUE(has(msg, "unknown key 'bogus' at the top level")) << msg;
}

TEST(BoardConfigError, UnknownKeyInEachTable) {
  EXPECT_TRUE(has(error_of(board() + "[link]\nack = 1\n"), "'ack' in [link]"));
  EXPECT_TRUE(has(error_of(board("color = 1\n")), "'color' in [device[0]]"));
  EXPECT_TRUE(
      has(error_of(board("", "", "[device.ep]\nname = \"a\"\n")), "'name' in [device[0].ep]"));
  EXPECT_TRUE(has(error_of(board("", "", "[device.blk]\n")), "'blk' in [device[0]]"));
  EXPECT_TRUE(has(error_of("[board]\nname=\"t\"\nplatform=\"loopback\"\nx=1\n"), "'x' in [board]"));
}

TEST(BoardConfigError, MissingBoardName) {
  const std::string msg = error_of("[board]\nplatform = \"loopback\"\n");
  EXPECT_EQ(msg, "x.toml: missing required key board.name");
}

TEST(BoardConfigError, MissingRequiredTablesAndKeys) {
  EXPECT_TRUE(has(error_of(""), "missing required table [board]"));
  EXPECT_TRUE(has(error_of("[board]\nname = \"t\"\n"), "missing required key board.platform"));
  EXPECT_TRUE(has(error_of("[board]\nname=\"t\"\nplatform=\"loopback\"\n"), "[loopback]"));
  EXPECT_TRUE(has(error_of(std::string(kBoard)), "missing required table [[device]]"));
  EXPECT_TRUE(has(error_of(std::string(kBoard) + "[[device]]\n"), "device[0].type"));
  EXPECT_TRUE(has(error_of(std::string(kBoard) + "[[device]]\ntype=\"net\"\n"), "[device[0].net]"));
  EXPECT_TRUE(has(error_of(std::string(kBoard) + "[[device]]\ntype=\"net\"\n[device.net]\n"),
                  "missing required key device[0].net.mac"));
}

TEST(BoardConfigError, MissingLoopbackSocket) {
  const std::string msg = error_of("[board]\nname=\"t\"\nplatform=\"loopback\"\n[loopback]\n");
  EXPECT_TRUE(has(msg, "missing required key loopback.socket")) << msg;
}

TEST(BoardConfigError, WrongTypeSaysExpectedType) {
  EXPECT_TRUE(has(error_of(board("", "mtu = \"1500\"\n")),
                  "device[0].net.mtu must be an integer (got a string)"));
  EXPECT_TRUE(
      has(error_of(board("queue_size = 256.0\n")), "device[0].queue_size must be an integer"));
  EXPECT_TRUE(has(error_of("[board]\nname = 5\n"), "board.name must be a string (got an integer)"));
  EXPECT_TRUE(has(error_of("link = 5\n" + board()), "link must be a table"));
  EXPECT_TRUE(has(error_of(std::string(kBoard) + "[device]\ntype=\"net\"\n"),
                  "device must be an array of tables"));
  EXPECT_TRUE(has(error_of("device = [1]\n" + std::string(kBoard)), "device[0] must be a table"));
}

TEST(BoardConfigError, UnknownEnumValuesListChoices) {
  EXPECT_TRUE(has(error_of("[board]\nname=\"t\"\nplatform=\"pcie\"\n"),
                  "board.platform = \"pcie\" is not a known platform: use \"loopback\""));
  EXPECT_TRUE(has(error_of(std::string(kBoard) + "[[device]]\ntype = \"blk\"\n"),
                  "device[0].type = \"blk\" is not a known device type: use \"net\""));
  EXPECT_TRUE(
      has(error_of(board("", "", "[device.ep]\nbackend = \"tun\"\n")),
          "device[0].ep.backend = \"tun\" is not a known backend: use \"tap\" or \"seqpacket\""));
}

TEST(BoardConfigError, EmptyBoardName) {
  EXPECT_TRUE(
      has(error_of("[board]\nname = \"\"\nplatform = \"loopback\"\n"), "board.name is empty"));
}

TEST(BoardConfigError, MtuRange) {
  EXPECT_TRUE(has(error_of(board("", "mtu = 67\n")), "device[0].net.mtu = 67 is out of range"));
  EXPECT_EQ(error_of(board("", "mtu = 68\n")), "<parsed>");
  EXPECT_EQ(error_of(board("", "mtu = 65535\n")), "<parsed>");
  // int64 values that would wrap into range if narrowed first.
  EXPECT_TRUE(has(error_of(board("", "mtu = 67036\n")), "device[0].net.mtu = 67036"));
  EXPECT_TRUE(has(error_of(board("", "mtu = -1\n")), "device[0].net.mtu = -1"));
  EXPECT_TRUE(has(error_of(board("", "mtu = 4294968796\n")), "device[0].net.mtu = 4294968796"));
}

TEST(BoardConfigError, QueueSize) {
  EXPECT_TRUE(
      has(error_of(board("queue_size = 100\n")), "device[0].queue_size = 100 is not a power of 2"));
  EXPECT_TRUE(has(error_of(board("queue_size = 1\n")), "device[0].queue_size = 1 is out of range"));
  EXPECT_TRUE(has(error_of(board("queue_size = 65536\n")), "device[0].queue_size = 65536 is out"));
  EXPECT_TRUE(has(error_of(board("queue_size = 0\n")), "device[0].queue_size = 0 is out of range"));
  EXPECT_EQ(error_of(board("queue_size = 2\n")), "<parsed>");
  EXPECT_EQ(error_of(board("queue_size = 32768\n")), "<parsed>");
}

TEST(BoardConfigError, AckTimeoutRange) {
  EXPECT_TRUE(
      has(error_of(board() + "[link]\nack_timeout_ms = 0\n"), "link.ack_timeout_ms = 0 is out"));
  EXPECT_TRUE(
      has(error_of(board() + "[link]\nack_timeout_ms = 60001\n"), "link.ack_timeout_ms = 60001"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nack_timeout_ms = 4294968296\n"), "= 4294968296"));
}

TEST(BoardConfigError, SpinBudgetRange) {
  EXPECT_TRUE(has(error_of(board() + "[link]\nspin_us = -1\n"), "link.spin_us = -1 is out"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nspin_us = 100001\n"), "link.spin_us = 100001"));
  EXPECT_EQ(error_of(board() + "[link]\nspin_us = 100000\n"), "<parsed>");
}

TEST(BoardConfig, AffinityListsParse) {
  const auto none = parse_board_config(board(), kSource);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->affinity.ep.empty());
  EXPECT_TRUE(none->affinity.host.empty());
  const auto cfg =
      parse_board_config(board() + "[affinity]\nep = [3, 0]\nhost = [1023]\n", kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->affinity.ep, (std::vector<std::uint32_t>{3, 0}));
  EXPECT_EQ(cfg->affinity.host, (std::vector<std::uint32_t>{1023}));
  const auto one = parse_board_config(board() + "[affinity]\nhost = [2]\n", kSource);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_TRUE(one->affinity.ep.empty());
  EXPECT_EQ(one->affinity.host, (std::vector<std::uint32_t>{2}));
}

TEST(BoardConfigError, AffinityListsAreChecked) {
  const auto affinity = [](std::string_view lines) {
    return error_of(board() + "[affinity]\n" + std::string(lines));
  };
  EXPECT_TRUE(has(affinity("ep = []\n"),
                  "affinity.ep must be a non-empty list of CPUs: write e.g. ep = [0]"));
  EXPECT_TRUE(has(affinity("host = 1\n"), "affinity.host must be a non-empty list"));
  EXPECT_TRUE(has(affinity("ep = [-1]\n"), "affinity.ep[0] = -1 is out of range"));
  EXPECT_TRUE(has(affinity("ep = [0, 1024]\n"), "affinity.ep[1] = 1024 is out of range"));
  EXPECT_TRUE(has(affinity("host = [\"0\"]\n"), "affinity.host[0] must be an integer"));
  EXPECT_TRUE(has(affinity("host = [1.0]\n"), "affinity.host[0] must be an integer"));
  EXPECT_TRUE(has(affinity("host = [1, 2, 1]\n"), "affinity.host[2] = 1 repeats a CPU"));
  EXPECT_TRUE(has(affinity("cpus = [0]\n"), "unknown key 'cpus'"));
  EXPECT_EQ(affinity("ep = [0]\nhost = [0]\n"), "<parsed>");
}

TEST(BoardConfigError, ChainSegmentLimitRange) {
  EXPECT_TRUE(has(error_of(board() + "[link]\nmax_chain_segments = 0\n"),
                  "link.max_chain_segments = 0 is out"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nmax_chain_segments = 32769\n"),
                  "link.max_chain_segments = 32769"));
  EXPECT_EQ(error_of(board() + "[link]\nmax_chain_segments = 32768\n"), "<parsed>");
}

TEST(BoardConfigError, WindowSizeRules) {
  EXPECT_TRUE(has(error_of(board() + "[link]\nep_window_size = 69632\n"), "<parsed>"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nep_window_size = 65537\n"),
                  "link.ep_window_size = 65537 is not a multiple of 4096"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nrc_window_size = 61440\n"),
                  "link.rc_window_size = 61440 is out of range"));
  EXPECT_TRUE(has(error_of(board() + "[link]\nrc_window_size = 1073745920\n"),
                  "link.rc_window_size = 1073745920 is out of range"));
}

TEST(BoardConfigError, SocketPathLength) {
  const std::string ok(107, 's');
  const std::string too_long(108, 's');
  const auto with_socket = [](const std::string& s) {
    return "[board]\nname=\"t\"\nplatform=\"loopback\"\n[loopback]\nsocket = \"" + s +
           "\"\n[[device]]\ntype=\"net\"\n[device.net]\nmac=\"02:00:00:00:00:01\"\n";
  };
  EXPECT_EQ(error_of(with_socket(ok)), "<parsed>");
  EXPECT_TRUE(has(error_of(with_socket(too_long)), "loopback.socket = \"sss"));
  EXPECT_TRUE(has(error_of(with_socket("")), "loopback.socket is empty"));
}

TEST(BoardConfigError, IfnameRules) {
  const auto with_ifname = [](std::string_view name) {
    return error_of(board("", "", "[device.ep]\nifname = \"" + std::string(name) + "\"\n"));
  };
  EXPECT_EQ(with_ifname("abcdefghijklmno"), "<parsed>");  // 15 chars
  EXPECT_TRUE(
      has(with_ifname("abcdefghijklmnop"), "device[0].ep.ifname = \"abcdefghijklmnop\" is 16"));
  EXPECT_TRUE(has(with_ifname(""), "device[0].ep.ifname = \"\" is 0 characters long"));
  EXPECT_TRUE(has(with_ifname("a b"), "device[0].ep.ifname = \"a b\" contains ' '"));
  EXPECT_TRUE(has(with_ifname("eth/0"), "contains '/'"));
  EXPECT_TRUE(has(with_ifname(".."), "device[0].ep.ifname = \"..\" is reserved"));
}

TEST(BoardConfigError, IfnameOnlyForTapPathOnlyForSeqpacket) {
  EXPECT_TRUE(has(
      error_of(board("", "", "[device.ep]\nbackend=\"seqpacket\"\npath=\"/p\"\nifname=\"a\"\n")),
      "device[0].ep.ifname is only for backend = \"tap\": drop ifname"));
  EXPECT_TRUE(has(error_of(board("", "", "[device.host]\npath = \"/p\"\n")),
                  "device[0].host.path is only for backend = \"seqpacket\": drop path"));
  EXPECT_TRUE(has(error_of(board("", "", "[device.host]\nbackend = \"seqpacket\"\n")),
                  "missing required key device[0].host.path"));
  EXPECT_TRUE(has(error_of(board("", "", "[device.host]\nbackend = \"seqpacket\"\npath = \"\"\n")),
                  "device[0].host.path is empty"));
}

TEST(BoardConfigError, DuplicateIfnameOnOneSide) {
  const std::string toml =
      board("", "", "[device.ep]\nifname = \"vepf-ep1\"\n") +
      "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:02\"\n";
  EXPECT_TRUE(has(error_of(toml),
                  "device[1].ep.ifname = \"vepf-ep1\" is already used by device[0].ep.ifname"));
}

TEST(BoardConfigError, DuplicateSeqpacketPathOnOneSide) {
  const std::string sp = "[device.host]\nbackend = \"seqpacket\"\npath = \"/p\"\n";
  const std::string toml =
      board("", "", sp) +
      "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:02\"\n" + sp;
  EXPECT_TRUE(has(error_of(toml), "device[1].host.path = \"/p\" is already used by device[0]"));
}

TEST(BoardConfigError, DeviceCount) {
  std::string toml(kBoard);
  for (int i = 0; i < 17; ++i) {
    toml += "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:" +
            std::to_string(10 + i) + "\"\n";
  }
  EXPECT_TRUE(has(error_of(toml), "device has 17 entries: use at most 16"));
  EXPECT_TRUE(has(error_of("device = []\n" + std::string(kBoard)), "device is empty"));
}

TEST(BoardConfigError, SyntaxErrorHasLineAndColumn) {
  const std::string msg = error_of("[board]\nname = \"t\nplatform = 1\n");
  EXPECT_TRUE(has(msg, "x.toml:2:")) << msg;
  EXPECT_TRUE(has(msg, "TOML syntax error")) << msg;
}

TEST(BoardConfigError, GarbageNeverThrows) {
  EXPECT_NO_THROW((void)parse_board_config(std::string("\xff\xfe\x00[", 4), kSource));
  EXPECT_FALSE(parse_board_config(std::string("\xff\xfe\x00[", 4), kSource));
  EXPECT_FALSE(parse_board_config("a = 1\na = 2\n", kSource));
}

// ---- MAC addresses ----

TEST(BoardConfigMac, UpperAndLowerCaseParse) {
  const auto cfg = parse_board_config(
      std::string(kBoard) + "[[device]]\ntype=\"net\"\n[device.net]\nmac = \"0a:Bc:dE:F0:12:ff\"\n",
      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->devices[0].net.mac,
            (std::array<std::uint8_t, 6>{0x0a, 0xbc, 0xde, 0xf0, 0x12, 0xff}));
}

TEST(BoardConfigMac, BadFormsRejected) {
  for (const char* mac : {"02:00:00:00:00", "02-00-00-00-00-01", "02:00:00:00:00:0g",
                          "2:00:00:00:00:01", "02:00:00:00:00:01:", "020000000001", ""}) {
    SCOPED_TRACE(mac);
    const std::string msg = error_of(
        std::string(kBoard) + "[[device]]\ntype=\"net\"\n[device.net]\nmac = \"" + mac + "\"\n");
    EXPECT_TRUE(has(msg, "device[0].net.mac = \"")) << msg;
    EXPECT_TRUE(has(msg, "is not a MAC address")) << msg;
  }
}

TEST(BoardConfigMac, MulticastAndZeroRejected) {
  const auto with_mac = [](std::string_view mac) {
    return error_of(std::string(kBoard) + "[[device]]\ntype=\"net\"\n[device.net]\nmac = \"" +
                    std::string(mac) + "\"\n");
  };
  EXPECT_TRUE(has(with_mac("01:00:5e:00:00:01"),
                  "device[0].net.mac = \"01:00:5e:00:00:01\" is a multicast"));
  EXPECT_TRUE(has(with_mac("ff:ff:ff:ff:ff:ff"), "is a multicast"));
  EXPECT_TRUE(has(with_mac("00:00:00:00:00:00"), "is the all-zero address"));
  EXPECT_TRUE(has(with_mac("02:00:00:00:00:01"), "<parsed>"));
}

TEST(BoardConfigMac, WrongTypeRejected) {
  EXPECT_TRUE(
      has(error_of(std::string(kBoard) + "[[device]]\ntype=\"net\"\n[device.net]\nmac = 5\n"),
          "device[0].net.mac must be a string"));
}

// ---- files ----

TEST(BoardConfigFile, MissingFileNamesPathAndErrno) {
  const auto cfg = load_board_config("/nonexistent/vepf/board.toml");
  ASSERT_FALSE(cfg);
  EXPECT_TRUE(has(cfg.error().message, "/nonexistent/vepf/board.toml")) << cfg.error().message;
  EXPECT_TRUE(has(cfg.error().message, "No such file or directory")) << cfg.error().message;
}

TEST(BoardConfigFile, DirectoryIsAnError) {
  const auto cfg = load_board_config(VEPF_SOURCE_DIR "/board-configs");
  ASSERT_FALSE(cfg);
  EXPECT_TRUE(has(cfg.error().message, "board-configs: cannot read")) << cfg.error().message;
}

TEST(BoardConfigFile, ErrorsInAFileNameTheFile) {
  const std::string path = ::testing::TempDir() + "vepf_bad_board.toml";
  std::ofstream(path) << board("", "mtu = 70000\n");
  const auto cfg = load_board_config(path);
  std::remove(path.c_str());
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().message,
            path + ": device[0].net.mtu = 70000 is out of range: use 68..65535");
}

// `vepf-ep ctl add` hands one device as the keys of a [[device]] table: the same validation.
TEST(DeviceConfig, ParsesTheKeysOfOneDevice) {
  auto d = parse_device_config(
      "type = \"net\"\nqueue_size = 128\nnet = { mac = \"02:00:00:00:00:07\", mtu = 9000 }\n"
      "ep = { backend = \"seqpacket\", path = \"/tmp/x.sock\" }\n",
      "ctl add", 3);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->queue_size, 128);
  EXPECT_EQ(d->net.mtu, 9000);
  EXPECT_EQ(d->net.mac[5], 7);
  EXPECT_EQ(d->ep.kind, BackendKind::kSeqpacket);
  EXPECT_EQ(d->host.ifname, "vepf-host3") << "defaults follow the index";
}

TEST(DeviceConfig, RejectsWhatABoardConfigWouldReject) {
  auto bad_mac =
      parse_device_config("type = \"net\"\nnet = { mac = \"01:00:00:00:00:01\" }\n", "ctl add", 1);
  ASSERT_FALSE(bad_mac);
  EXPECT_NE(bad_mac.error().message.find("device[1].net.mac"), std::string::npos)
      << bad_mac.error().message;
  auto unknown = parse_device_config(
      "type = \"net\"\ncolour = 1\nnet = { mac = \"02:00:00:00:00:01\" }\n", "ctl add", 1);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("colour"), std::string::npos);
  auto syntax = parse_device_config("type = ", "ctl add", 1);
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().message.find("TOML syntax error"), std::string::npos);
}

// ---- type = "block" ----

TEST(BoardConfig, BlockDeviceParsesWithDefaults) {
  const auto cfg = parse_board_config(
      board() + "[[device]]\ntype = \"block\"\n[device.block]\npath = \"/tmp/d.img\"\n", kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->devices.size(), 2u);
  const auto& b = cfg->devices[1].block;
  EXPECT_EQ(cfg->devices[1].type, DeviceType::kBlock);
  EXPECT_EQ(b.path, "/tmp/d.img");
  EXPECT_EQ(b.size, 0u);
  EXPECT_FALSE(b.read_only);
  EXPECT_EQ(b.block_size, 512u);
  EXPECT_EQ(b.max_range_bytes, 256u << 20);
  EXPECT_EQ(b.nbd_socket, "/run/vepf/block1.sock");
  EXPECT_EQ(b.max_nbd_clients, 16u);
  EXPECT_EQ(to_string(DeviceType::kBlock), "block");
}

TEST(BoardConfig, BlockDeviceTakesEveryKey) {
  const auto d = parse_device_config(
      "type = \"block\"\nqueue_size = 64\nblock = { path = \"/dev/vdb\", size = 1048576, read_only "
      "= true, "
      "block_size = 4096, max_range_bytes = 1048576, nbd_socket = \"/tmp/b.sock\", max_nbd_clients "
      "= 2 }\n",
      "ctl add", 3);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->block.size, 1048576u);
  EXPECT_TRUE(d->block.read_only);
  EXPECT_EQ(d->block.block_size, 4096u);
  EXPECT_EQ(d->block.max_range_bytes, 1048576u);
  EXPECT_EQ(d->block.nbd_socket, "/tmp/b.sock");
  EXPECT_EQ(d->block.max_nbd_clients, 2u);
  EXPECT_EQ(d->queue_size, 64);
  EXPECT_NE(parse_device_config(
                "type = \"block\"\nblock = { path = \"/x\", max_nbd_clients = 0 }\n", "ctl add", 3)
                .error()
                .message.find("max_nbd_clients = 0 is out"),
            std::string::npos);
}

TEST(BoardConfig, ShippedAllDevicesBoardLoads) {
  const auto cfg = load_board_config(VEPF_SOURCE_DIR "/board-configs/loopback-all.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->devices.size(), 4u);
  EXPECT_EQ(cfg->devices[0].type, DeviceType::kNet);
  EXPECT_EQ(cfg->devices[1].type, DeviceType::kRpmsg);
  EXPECT_EQ(cfg->devices[2].type, DeviceType::kBlock);
  EXPECT_EQ(cfg->devices[2].block.nbd_socket, "/run/vepf/block2.sock");
  EXPECT_EQ(cfg->devices[3].type, DeviceType::kConsole);
  EXPECT_EQ(cfg->devices[3].console.host_dir, "/run/vepf/console3");
  ASSERT_EQ(cfg->devices[3].console.ports.size(), 3u);
  EXPECT_EQ(cfg->devices[3].console.ports[0].backend, ConsoleBackend::kProgram);
}

TEST(BoardConfig, BlockRejectsBadTables) {
  const std::string dev = std::string(kBoard) + "[[device]]\ntype = \"block\"\n";
  EXPECT_TRUE(has(error_of(dev), "missing required table [device[0].block]"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\nsize = 512\n"),
                  "missing required key device[0].block.path"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.block]\npath = \"/d\"\nsize = 1000\n"), "not a multiple of 512"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\nsize = -512\n"), "out of range"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\nblock_size = 1000\n"),
                  "not a power of 2"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.block]\npath = \"/d\"\nblock_size = 256\n"), "out of range"));
  EXPECT_TRUE(has(
      error_of(dev + "[device.block]\npath = \"/d\"\nblock_size = 4096\nmax_range_bytes = 6144\n"),
      "max_range_bytes = 6144 is not a multiple of block_size (4096): use e.g. 4096"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\nmax_range_bytes = 4294967296\n"),
                  "out of range"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\nread_only = 1\n"),
                  "must be true or false"));
  EXPECT_TRUE(
      has(error_of(dev + "[device.block]\npath = \"/d\"\ncolour = 1\n"), "unknown key 'colour'"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\nnbd_socket = \"\"\n"),
                  "nbd_socket is empty"));
  EXPECT_TRUE(has(
      error_of(dev + "[device.block]\npath = \"/d\"\n[device.net]\nmac = \"02:00:00:00:00:01\"\n"),
      "unknown key 'net'"));
  EXPECT_TRUE(has(error_of(dev + "[device.block]\npath = \"/d\"\n[[device]]\ntype = \"block\"\n"
                                 "[device.block]\npath = \"/d\"\n"),
                  "device[1].block.path = \"/d\" is already used by device[0]"));
}

}  // namespace
}  // namespace vepf::config

// ---- type = "console" ----

namespace vepf::config {
namespace {

const std::string kConsole = std::string(kBoard) + "[[device]]\ntype = \"console\"\n";

TEST(BoardConfig, ConsoleDeviceParsesEveryBackend) {
  const auto cfg = parse_board_config(
      kConsole +
          "[device.console]\n"
          "[[device.console.port]]\nname = \"shell\"\nbackend = \"program\"\nprogram = "
          "[\"/bin/sh\", \"-l\"]\n"
          "[[device.console.port]]\n"
          "[[device.console.port]]\nbackend = \"socket\"\nsocket = \"/tmp/c.sock\"\n",
      kSource);
  ASSERT_TRUE(cfg) << cfg.error().message;
  const auto& c = cfg->devices[0].console;
  EXPECT_EQ(cfg->devices[0].type, DeviceType::kConsole);
  EXPECT_EQ(c.host_dir, "/run/vepf/console0");
  ASSERT_EQ(c.ports.size(), 3u);
  EXPECT_EQ(c.ports[0].name, "shell");
  EXPECT_EQ(c.ports[0].program, (std::vector<std::string>{"/bin/sh", "-l"}));
  EXPECT_EQ(c.ports[1].backend, ConsoleBackend::kPty);  // the default
  EXPECT_EQ(c.ports[1].link, "/run/vepf/console0-ep/port1");
  EXPECT_EQ(c.ports[2].socket, "/tmp/c.sock");
  EXPECT_EQ(to_string(DeviceType::kConsole), "console");
  EXPECT_EQ(to_string(ConsoleBackend::kSocket), "socket");
}

TEST(BoardConfig, ConsoleDeviceParsesAlone) {
  const auto d = parse_device_config(
      "type = \"console\"\nconsole = { host_dir = \"/tmp/h\", port = [ { backend = \"pty\", link = "
      "\"/tmp/l\" } ] }\n",
      "ctl add", 4);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->console.host_dir, "/tmp/h");
  EXPECT_EQ(d->console.ports.at(0).link, "/tmp/l");
}

TEST(BoardConfig, ConsoleRejectsBadTables) {
  const std::string c = kConsole + "[device.console]\n";
  const std::string port = "[[device.console.port]]\n";
  EXPECT_TRUE(has(error_of(kConsole), "missing required table [device[0].console]"));
  EXPECT_TRUE(has(error_of(c), "missing required array [[device[0].console.port]]"));
  EXPECT_TRUE(has(error_of(c + "colour = 1\n" + port), "unknown key 'colour'"));
  EXPECT_TRUE(has(error_of(c + "host_dir = \"\"\n" + port), "host_dir is empty"));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"serial\"\n"),
                  "is not a known console backend: use \"pty\""));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"program\"\n"),
                  "missing or empty device[0].console.port[0].program"));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"program\"\nprogram = []\n"), "program"));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"program\"\nprogram = [\"\"]\n"), "program[0]"));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"program\"\nprogram = [\"/bin/sh\", 3]\n"),
                  "program[1]"));
  EXPECT_TRUE(has(error_of(c + port + "backend = \"socket\"\n"),
                  "missing required key device[0].console.port[0].socket"));
  EXPECT_TRUE(
      has(error_of(c + port + "socket = \"/tmp/s\"\n"), "applies to backend = \"socket\" only"));
  EXPECT_TRUE(has(error_of(c + port + "name = \"a/b\"\n"), "is not a port name"));
  EXPECT_TRUE(
      has(error_of(c + port + "name = \"a\"\n" + port + "name = \"a\"\n"), "same name as port[0]"));
  EXPECT_TRUE(has(error_of(c + port + "link = \"/l\"\n" + port + "link = \"/l\"\n"),
                  "same link or socket"));
  std::string many = c;
  for (int i = 0; i < 33; ++i) many += port;
  EXPECT_TRUE(has(error_of(many), "use at most 32"));
  EXPECT_TRUE(has(
      error_of(
          c + port +
          "[[device]]\ntype = \"console\"\n[device.console]\nhost_dir = \"/run/vepf/console0\"\n" +
          port + "link = \"/x\"\n"),
      "already used by device[0]"));
}

}  // namespace
}  // namespace vepf::config

namespace vepf::config {
namespace {

TEST(BoardConfigControl, DefaultsAndKeys) {
  const std::string dev = "[[device]]\ntype = \"block\"\n[device.block]\npath = \"/d\"\n";
  auto plain = parse_board_config(std::string(kBoard) + dev, "b.toml");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_TRUE(plain->control.group.empty());
  EXPECT_EQ(plain->control.max_clients, 16u);
  auto set = parse_board_config(
      std::string(kBoard) + "[control]\ngroup = \"vepf\"\nmax_clients = 4\n" + dev, "b.toml");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->control.group, "vepf");
  EXPECT_EQ(set->control.max_clients, 4u);
  EXPECT_EQ(plain->control.allowed_dirs, (std::vector<std::string>{"/run/vepf", "/var/lib/vepf"}));
  auto dirs = parse_board_config(
      std::string(kBoard) + "[control]\nallowed_dirs = [\"/srv/a\", \"/b/\"]\n" + dev, "b.toml");
  ASSERT_TRUE(dirs) << dirs.error().message;
  EXPECT_EQ(dirs->control.allowed_dirs, (std::vector<std::string>{"/srv/a", "/b/"}));
}

TEST(BoardConfigControl, BadValuesNameTheFieldAndTheFix) {
  const std::string dev = "[[device]]\ntype = \"block\"\n[device.block]\npath = \"/d\"\n";
  auto err = [&](const std::string& control) {
    auto r = parse_board_config(std::string(kBoard) + control + dev, "b.toml");
    return r ? std::string() : r.error().message;
  };
  EXPECT_NE(err("[control]\ngroup = \"a b\"\n").find("control.group must be a group name"),
            std::string::npos);
  EXPECT_NE(err("[control]\ngroup = \"\"\n").find("control.group must be a group name"),
            std::string::npos);
  EXPECT_NE(err("[control]\nmax_clients = 0\n").find("out of range"), std::string::npos);
  EXPECT_NE(err("[control]\nusers = 1\n").find("unknown key 'users'"), std::string::npos);
  EXPECT_NE(err("[control]\nallowed_dirs = \"/run\"\n").find("control.allowed_dirs must be a list"),
            std::string::npos);
  EXPECT_NE(err("[control]\nallowed_dirs = []\n").find("control.allowed_dirs must be a list"),
            std::string::npos);
  EXPECT_NE(err("[control]\nallowed_dirs = [\"run\"]\n")
                .find("control.allowed_dirs[0] = \"run\" is not an absolute path"),
            std::string::npos);
  EXPECT_NE(err("[control]\nallowed_dirs = [\"/a\", 3]\n")
                .find("control.allowed_dirs[1] must be a string"),
            std::string::npos);
}

// `ctl add`: files and programs only under [control] allowed_dirs.
std::string outside(const std::string& device_toml, const std::vector<std::string>& dirs) {
  auto d = parse_device_config(device_toml, "ctl add", 2);
  if (!d) return "parse: " + d.error().message;
  auto e = check_allowed_dirs(*d, dirs, "device[2]");
  return e ? e->message : std::string();
}

TEST(BoardConfigControl, AddedDevicesStayUnderTheAllowedDirectories) {
  const std::vector<std::string> dirs{"/run/vepf", "/var/lib/vepf"};
  const std::string net = "type = \"net\"\nnet = { mac = \"02:00:00:00:00:02\" }\n";
  EXPECT_EQ(outside(net, dirs), "");                   // a TAP: no file
  EXPECT_EQ(outside("type = \"rpmsg\"\n", dirs), "");  // the default runtime_dir, /run/vepf/rpmsg2
  EXPECT_EQ(outside("type = \"block\"\nblock = { path = \"/var/lib/vepf/d.img\" }\n", dirs), "");
  EXPECT_EQ(outside("type = \"console\"\nconsole = { port = [ { backend = \"pty\" } ] }\n", dirs),
            "");

  const std::string etc = outside("type = \"block\"\nblock = { path = \"/etc/shadow\" }\n", dirs);
  EXPECT_NE(etc.find("device[2].block.path = \"/etc/shadow\" is outside [control] allowed_dirs "
                     "(/run/vepf, /var/lib/vepf)"),
            std::string::npos)
      << etc;
  EXPECT_NE(etc.find("add its directory to allowed_dirs"), std::string::npos) << etc;
  // A name that only starts like an allowed directory, and a way up out of one.
  EXPECT_NE(outside("type = \"block\"\nblock = { path = \"/run/vepfx/d.img\" }\n", dirs), "");
  EXPECT_NE(outside("type = \"block\"\nblock = { path = \"/run/vepf/../../etc/d.img\" }\n", dirs),
            "");
  EXPECT_NE(outside("type = \"rpmsg\"\nrpmsg = { runtime_dir = \"/tmp/r\" }\n", dirs)
                .find("rpmsg.runtime_dir"),
            std::string::npos);
  EXPECT_NE(outside(net + "ep = { backend = \"seqpacket\", path = \"/tmp/s.sock\" }\n", dirs)
                .find("ep.path"),
            std::string::npos);
  EXPECT_NE(outside("type = \"console\"\nconsole = { port = [ { backend = \"socket\", socket = "
                    "\"/tmp/c.sock\" } ] }\n",
                    dirs)
                .find("console.port[0].socket"),
            std::string::npos);
  EXPECT_NE(outside("type = \"console\"\nconsole = { port = [ { backend = \"pty\", link = "
                    "\"/dev/tty9\" } ] }\n",
                    dirs)
                .find("console.port[0].link"),
            std::string::npos);
  // Programs: absolute, and under the list too.
  const std::string sh =
      "type = \"console\"\nconsole = { port = [ { backend = \"program\", program = [\"/bin/sh\"] } "
      "] }\n";
  EXPECT_NE(outside(sh, dirs).find("program[0] = \"/bin/sh\" is outside"), std::string::npos);
  EXPECT_EQ(outside(sh, {"/bin"}), "");
  EXPECT_EQ(outside(sh, {"/"}), "");
  const std::string rel =
      "type = \"console\"\nconsole = { port = [ { backend = \"program\", program = [\"sh\"] } ] "
      "}\n";
  EXPECT_NE(outside(rel, {"/"}).find("absolute path"), std::string::npos);
}

}  // namespace
}  // namespace vepf::config
