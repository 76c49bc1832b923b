// Window memory types in the board config (LAYOUT.md §7): `memory` and `widths` in the window
// places of [host]/[ep] and in [loopback], what each platform can map, and the one-line errors.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "config_test_support.hpp"
#include "vepf/config/board_config.hpp"

namespace vepf::config {
namespace {

using test::error_of;
using test::has;

constexpr std::string_view kDevice =
    "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:01\"\n";

std::string loopback(std::string_view keys) {
  return "[board]\nname = \"t\"\nplatform = \"loopback\"\n[loopback]\nsocket = \"/tmp/t.sock\"\n" +
         std::string(keys) + std::string(kDevice);
}

/// A vfio board whose [host] ep_window place has `extra` keys.
std::string vfio(std::string_view host_ep_extra, std::string_view ep_rc_extra = "") {
  return "[board]\nname = \"t\"\nplatform = \"vfio\"\n"
         "[host]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000" +
         std::string(host_ep_extra) +
         " }\nrc_window = { bar = 2, offset = 0x800000 }\nrc_window_bus_addr = 0x800000\n"
         "[ep]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
         "rc_window = { bar = 2, offset = 0x800000" +
         std::string(ep_rc_extra) + " }\nrc_window_bus_addr = 0x800000\n" + std::string(kDevice);
}

std::string devmem(std::string_view ep_extra) {
  return "[board]\nname = \"t\"\nplatform = \"devmem\"\n"
         "[host]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
         "rc_window = { bar = 2, offset = 0x800000 }\nrc_window_bus_addr = 0x800000\n"
         "[ep]\nep_window = { phys = 0xfe400000" +
         std::string(ep_extra) +
         " }\nrc_window = { phys = 0xfe800000 }\n"
         "rc_window_bus_addr = 0x800000\n" +
         std::string(kDevice);
}

TEST(MemoryConfig, UnsetMeansThePlatformDefault) {
  const auto cfg = parse_board_config(loopback(""), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_FALSE(cfg->loopback.memory.type.has_value());
  EXPECT_EQ(cfg->loopback.memory.widths, 0xf);
  const auto v = parse_board_config(vfio(""), "x.toml");
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_FALSE(v->host.ep_window.memory.type.has_value());
}

TEST(MemoryConfig, LoopbackTakesEveryTypeAsAModel) {
  for (const char* m : {"cached", "device", "wc", "cached-noncoherent"}) {
    const auto cfg =
        parse_board_config(loopback(std::string("memory = \"") + m + "\"\n"), "x.toml");
    ASSERT_TRUE(cfg) << m << ": " << cfg.error().message;
    EXPECT_EQ(to_string(*cfg->loopback.memory.type), m);
  }
}

TEST(MemoryConfig, WidthsBecomeABitSet) {
  const auto cfg = parse_board_config(loopback("memory = \"device\"\nwidths = [4]\n"), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->loopback.memory.widths, 4);
  const auto all =
      parse_board_config(loopback("memory = \"device\"\nwidths = [1, 2, 4, 8]\n"), "x.toml");
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->loopback.memory.widths, 0xf);
}

TEST(MemoryConfig, UnknownTypeNamesTheChoices) {
  EXPECT_TRUE(has(error_of(loopback("memory = \"uncached\"\n")),
                  "loopback.memory = \"uncached\" is not a known memory type: use \"cached\" or "
                  "\"device\" or \"wc\" or "
                  "\"cached-noncoherent\""));
}

TEST(MemoryConfig, WidthsNeedFourAndOnlyPowersOfTwoUpToEight) {
  EXPECT_TRUE(has(error_of(loopback("memory = \"device\"\nwidths = [1, 2]\n")),
                  "loopback.widths lacks 4: the layout's 32-bit fields need 4-byte accesses"));
  EXPECT_TRUE(has(error_of(loopback("memory = \"device\"\nwidths = [3, 4]\n")),
                  "loopback.widths may only hold 1, 2, 4 and 8"));
  EXPECT_TRUE(has(error_of(loopback("memory = \"device\"\nwidths = []\n")),
                  "loopback.widths must be a list of access widths"));
  EXPECT_TRUE(has(error_of(loopback("memory = \"device\"\nwidths = 4\n")), "e.g. widths = [4]"));
}

TEST(MemoryConfig, WidthsAreOnlyForUncachedTypes) {
  EXPECT_TRUE(has(error_of(loopback("widths = [4]\n")),
                  "loopback.widths is for memory = \"device\" or \"wc\""));
  EXPECT_TRUE(has(error_of(loopback("memory = \"cached\"\nwidths = [4]\n")),
                  "cached memory takes every width"));
}

TEST(MemoryConfig, VfioBarTakesDeviceOrWc) {
  const auto cfg = parse_board_config(
      vfio(", memory = \"wc\"", ", memory = \"device\", widths = [4]"), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(*cfg->host.ep_window.memory.type, MemoryType::kWriteCombining);
  EXPECT_EQ(*cfg->ep.rc_window->memory.type, MemoryType::kDevice);
  EXPECT_EQ(cfg->ep.rc_window->memory.widths, 4);
  EXPECT_TRUE(has(error_of(vfio(", memory = \"cached\"")),
                  "host.ep_window.memory = \"cached\": VFIO maps a BAR uncached (vfio-pci's mmap "
                  "uses pgprot_noncached): "
                  "use memory = \"device\", or \"wc\" for a prefetchable BAR"));
}

TEST(MemoryConfig, DevmemTakesDeviceOrCachedButNotWc) {
  const auto cfg = parse_board_config(devmem(", memory = \"cached-noncoherent\""), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(*cfg->ep.ep_window.memory.type, MemoryType::kCachedNoncoherent);
  EXPECT_TRUE(has(error_of(devmem(", memory = \"wc\"")),
                  "ep.ep_window.memory = \"wc\": /dev/mem maps write-combining"));
}

TEST(MemoryConfig, OnlyWindowsTakeAMemoryType) {
  const std::string board =
      "[board]\nname = \"t\"\nplatform = \"vfio\"\n"
      "[host]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
      "rc_window_bus_addr = 0x800000\ndoorbell = \"ivshmem\"\ndoorbell_regs = { bar = 0, memory = "
      "\"wc\" }\n"
      "peer_ids = { bar = 2 }\n"
      "[ep]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
      "rc_window = { bar = 2, offset = 0x800000 }\nrc_window_bus_addr = 0x800000\n" +
      std::string(kDevice);
  EXPECT_TRUE(has(error_of(board), "memory"));
  EXPECT_TRUE(has(error_of(board), "host.doorbell_regs"));
}

}  // namespace
}  // namespace vepf::config
