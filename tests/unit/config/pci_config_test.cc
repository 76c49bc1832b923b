// [host] / [ep] of the PCI platforms (vfio, devmem): places, doorbells, and the one-line errors
// for a config that names no BAR, a physical address where a BAR belongs, overlaps and the like.
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

constexpr std::string_view kHost =
    "[host]\ndevice = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
    "rc_window = { bar = 2, offset = 0x800000 }\nrc_window_bus_addr = 0x800000\n";

/// A vfio board: [host] as kHost, [ep] from `ep_keys`, `extra` appended.
std::string vfio_board(std::string_view ep_keys, std::string_view platform = "vfio",
                       std::string_view host = kHost) {
  std::string out = "[board]\nname = \"t\"\nplatform = \"" + std::string(platform) + "\"\n";
  out += host;
  out += "[ep]\n";
  out += ep_keys;
  out += kDevice;
  return out;
}

constexpr std::string_view kEpVfio =
    "device = \"0000:00:05.0\"\nep_window = { bar = 2, offset = 0x400000 }\n"
    "rc_window = { bar = 2, offset = 0x800000 }\nrc_window_bus_addr = 0x800000\n";

TEST(PciConfig, ShippedQemuBoardParses) {
  const auto cfg = load_board_config(VEPF_SOURCE_DIR "/board-configs/qemu-ivshmem.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->platform, Platform::kVfio);
  for (const PciSide* s : {&cfg->host, &cfg->ep}) {
    EXPECT_EQ(s->device, "1af4:1110");
    EXPECT_FALSE(s->ep_window.is_phys);
    EXPECT_EQ(s->ep_window.bar, 2);
    EXPECT_EQ(s->ep_window.offset, 0x400000u);
    ASSERT_TRUE(s->rc_window.has_value());
    EXPECT_EQ(s->rc_window->offset, 0x800000u);
    EXPECT_EQ(s->rc_window_bus_addr, 0x800000u);
    EXPECT_EQ(s->doorbell, DoorbellKind::kIvshmem);
    EXPECT_EQ(s->doorbell_regs.bar, 0);
    EXPECT_EQ(s->peer_ids.bar, 2);
    EXPECT_EQ(s->peer_ids.offset, 0u);
    EXPECT_EQ(s->vector, 0u);
  }
}

TEST(PciConfig, HostWithoutBarRcWindowUsesDma) {
  const auto cfg = parse_board_config(vfio_board(kEpVfio, "vfio",
                                                 "[host]\ndevice = \"01:00.0\"\nep_window = { bar "
                                                 "= 4 }\nrc_window_bus_addr = 0x10000000\n"),
                                      "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_FALSE(cfg->host.rc_window.has_value());
  EXPECT_EQ(cfg->host.ep_window.bar, 4);
  EXPECT_EQ(cfg->host.ep_window.offset, 0u);
  EXPECT_EQ(cfg->host.rc_window_bus_addr, 0x10000000u);
  EXPECT_EQ(cfg->host.doorbell, DoorbellKind::kNone);
}

TEST(PciConfig, DevmemTakesPhysicalAddresses) {
  const auto cfg =
      parse_board_config(vfio_board("ep_window = { phys = 0xfe400000 }\nrc_window = { phys = "
                                    "0xfe800000 }\nrc_window_bus_addr = 0x800000\n"
                                    "doorbell = \"ivshmem\"\ndoorbell_regs = { phys = 0xfebf1000 "
                                    "}\npeer_ids = { phys = 0xfe000000 }\n",
                                    "devmem"),
                         "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->platform, Platform::kDevmem);
  EXPECT_TRUE(cfg->ep.ep_window.is_phys);
  EXPECT_EQ(cfg->ep.ep_window.phys, 0xfe400000u);
  EXPECT_EQ(cfg->ep.rc_window->phys, 0xfe800000u);
  EXPECT_EQ(cfg->ep.doorbell_regs.phys, 0xfebf1000u);
  EXPECT_TRUE(cfg->ep.device.empty());
  EXPECT_FALSE(cfg->host.ep_window.is_phys);  // vepf-host still uses VFIO
}

TEST(PciConfig, DevmemDeviceIsTheFunctionToEnable) {
  constexpr std::string_view kPlaces =
      "ep_window = { phys = 0xfe400000 }\nrc_window = { phys = 0xfe800000 }\n";
  const auto cfg = parse_board_config(
      vfio_board("device = \"0000:00:05.0\"\n" + std::string(kPlaces), "devmem"), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->ep.device, "0000:00:05.0");
  EXPECT_TRUE(has(
      error_of(vfio_board("device = \"1af4:1110\"\n" + std::string(kPlaces), "devmem")),
      "ep.device = \"1af4:1110\" is not a PCI address: with board.platform = \"devmem\" name the "
      "function whose BARs hold the ranges by BDF, e.g. \"0000:00:05.0\", or remove it"));
}

TEST(PciConfig, NoBarNamedSaysWhatToWrite) {
  EXPECT_TRUE(has(
      error_of(vfio_board("device = \"1af4:1110\"\nrc_window = { bar = 2 }\n")),
      "x.toml: ep.ep_window is missing: name where the EP window is, e.g. ep_window = { bar = 2"));
  EXPECT_TRUE(
      has(error_of(vfio_board(
              "device = \"1af4:1110\"\nep_window = { offset = 0 }\nrc_window = { bar = 2 }\n")),
          "ep.ep_window names no BAR: write ep_window = { bar = 2, offset = 0 }"));
  EXPECT_TRUE(has(
      error_of(vfio_board("device = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n")),
      "ep.rc_window is missing: name the outbound window"));
  EXPECT_TRUE(has(
      error_of(
          vfio_board("device = \"1af4:1110\"\nep_window = { bar = 6 }\nrc_window = { bar = 2 }\n")),
      "ep.ep_window.bar = 6 is out of range: use 0..5"));
  EXPECT_TRUE(
      has(error_of(vfio_board("device = \"1af4:1110\"\nep_window = 2\nrc_window = { bar = 2 }\n")),
          "ep.ep_window must be an inline table"));
}

TEST(PciConfig, BarsAndPhysicalAddressesBelongToTheirPlatforms) {
  EXPECT_TRUE(
      has(error_of(vfio_board(
              "device = \"1af4:1110\"\nep_window = { phys = 0x1000 }\nrc_window = { bar = 2 }\n")),
          "ep.ep_window gives a physical address, which only board.platform = \"devmem\" maps"));
  EXPECT_TRUE(has(
      error_of(vfio_board("ep_window = { bar = 2 }\nrc_window = { phys = 0x1000 }\n", "devmem")),
      "ep.ep_window names a BAR, but board.platform = \"devmem\" maps physical addresses"));
}

TEST(PciConfig, AlignmentAndOverlapAreChecked) {
  EXPECT_TRUE(has(error_of(vfio_board("device = \"1af4:1110\"\nep_window = { bar = 2, offset = "
                                      "0x400010 }\nrc_window = { bar = 2 }\n")),
                  "ep.ep_window.offset = 0x400010 is not page-aligned: use a multiple of 4096"));
  EXPECT_TRUE(
      has(error_of(vfio_board(
              "ep_window = { phys = 0xfe400800 }\nrc_window = { phys = 0xfe800000 }\n", "devmem")),
          "ep.ep_window.phys = 0xfe400800 is not page-aligned"));
  // 4 MiB windows 1 MiB apart in one BAR.
  EXPECT_TRUE(
      has(error_of(vfio_board("device = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
                              "rc_window = { bar = 2, offset = 0x500000 }\n")),
          "ep.ep_window and ep.rc_window overlap"));
  // The same offsets in different BARs are fine.
  EXPECT_EQ(error_of(vfio_board(
                "device = \"1af4:1110\"\nep_window = { bar = 2 }\nrc_window = { bar = 4 }\n")),
            "<parsed>");
  EXPECT_TRUE(has(error_of(vfio_board(
                      "device = \"1af4:1110\"\nep_window = { bar = 2, offset = 0x400000 }\n"
                      "rc_window = { bar = 2, offset = 0x800000 }\ndoorbell = \"ivshmem\"\n"
                      "doorbell_regs = { bar = 0 }\npeer_ids = { bar = 2, offset = 0x401000 }\n")),
                  "ep.ep_window and ep.peer_ids overlap"));
  EXPECT_TRUE(has(error_of(vfio_board(
                      "device = \"1af4:1110\"\nep_window = { bar = 2 }\nrc_window = { bar = 4 }\n"
                      "rc_window_bus_addr = 0x123\n")),
                  "ep.rc_window_bus_addr = 0x123 is not page-aligned"));
}

TEST(PciConfig, DeviceAndDoorbellAreChecked) {
  EXPECT_TRUE(
      has(error_of(vfio_board("ep_window = { bar = 2 }\nrc_window = { bar = 4 }\n")),
          "ep.device is missing: name the PCI function, as vendor:device (\"1af4:1110\") or BDF"));
  EXPECT_TRUE(has(error_of(vfio_board(
                      "device = \"ivshmem\"\nep_window = { bar = 2 }\nrc_window = { bar = 4 }\n")),
                  "ep.device = \"ivshmem\" is neither vendor:device nor a PCI address"));
  EXPECT_TRUE(
      has(error_of(vfio_board(std::string(kEpVfio) + std::string("doorbell = \"msi\"\n"))),
          "ep.doorbell = \"msi\" is not a known doorbell kind: use \"none\" or \"ivshmem\""));
  EXPECT_TRUE(
      has(error_of(vfio_board(std::string(kEpVfio) + std::string("doorbell = \"ivshmem\"\n"))),
          "ep.doorbell_regs is missing: name the ivshmem register BAR"));
  EXPECT_TRUE(has(
      error_of(vfio_board(std::string(kEpVfio) +
                          std::string("doorbell = \"ivshmem\"\ndoorbell_regs = { bar = 0 }\n"))),
      "ep.peer_ids is missing"));
  EXPECT_TRUE(
      has(error_of(vfio_board(std::string(kEpVfio) + std::string("peer_ids = { bar = 2 }\n"))),
          "are for doorbell = \"ivshmem\""));
  EXPECT_TRUE(has(error_of(vfio_board(std::string(kEpVfio) + std::string("bars = 2\n"))), "bars"));
}

TEST(PciConfig, TablesBelongToTheirPlatforms) {
  EXPECT_TRUE(has(error_of("[board]\nname = \"t\"\nplatform = \"vfio\"\n" + std::string(kHost) +
                           std::string(kDevice)),
                  "missing table [ep] (board.platform = \"vfio\")"));
  EXPECT_TRUE(has(error_of("[board]\nname = \"t\"\nplatform = \"vfio\"\n[ep]\n" +
                           std::string(kEpVfio) + std::string(kDevice)),
                  "missing table [host]"));
  EXPECT_TRUE(has(error_of(vfio_board(kEpVfio) + "[loopback]\nsocket = \"/tmp/x\"\n"),
                  "[loopback] is for board.platform = \"loopback\": remove it"));
  EXPECT_TRUE(has(
      error_of("[board]\nname = \"t\"\nplatform = \"loopback\"\n[loopback]\nsocket = \"/tmp/x\"\n" +
               std::string(kHost) + std::string(kDevice)),
      "[host] is for PCI platforms"));
  EXPECT_TRUE(has(error_of(vfio_board(kEpVfio, "pcie")),
                  "board.platform = \"pcie\" is not a known platform: use \"loopback\" or \"vfio\" "
                  "or \"devmem\""));
}

std::string loopback_with(std::string_view gpio) {
  return "[board]\nname = \"t\"\nplatform = \"loopback\"\n[loopback]\nsocket = \"/tmp/t.sock\"\n" +
         std::string(gpio) + std::string(kDevice);
}

TEST(GpioConfig, ReadyAndResetLinesParse) {
  const auto none = parse_board_config(loopback_with(""), "x.toml");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->gpio.ready.has_value());
  EXPECT_FALSE(none->gpio.reset.has_value());
  const auto cfg = parse_board_config(
      loopback_with("[gpio]\nready = { chip = \"gpiochip0\", line = 5 }\n"
                    "reset = { chip = \"/dev/gpiochip1\", line = 7, active_low = true }\n"),
      "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_TRUE(cfg->gpio.ready.has_value());
  EXPECT_EQ(cfg->gpio.ready->chip, "gpiochip0");
  EXPECT_EQ(cfg->gpio.ready->line, 5u);
  EXPECT_FALSE(cfg->gpio.ready->active_low);
  ASSERT_TRUE(cfg->gpio.reset.has_value());
  EXPECT_EQ(cfg->gpio.reset->chip, "/dev/gpiochip1");
  EXPECT_EQ(cfg->gpio.reset->line, 7u);
  EXPECT_TRUE(cfg->gpio.reset->active_low);
}

TEST(GpioConfig, ErrorsNameTheFieldAndTheFix) {
  EXPECT_TRUE(has(error_of(loopback_with("[gpio]\nready = { line = 5 }\n")),
                  "gpio.ready.chip is missing: name the GPIO chip, e.g. chip = \"gpiochip0\""));
  EXPECT_TRUE(has(error_of(loopback_with("[gpio]\nready = { chip = \"gpiochip0\" }\n")),
                  "gpio.ready.line is missing"));
  EXPECT_TRUE(has(error_of(loopback_with("[gpio]\nready = { chip = \"gpiochip0\", line = -1 }\n")),
                  "gpio.ready.line = -1 is out of range: use 0..65535"));
  EXPECT_TRUE(
      has(error_of(loopback_with("[gpio]\nreset = 3\n")), "gpio.reset must be an inline table"));
  EXPECT_TRUE(has(error_of(loopback_with("[gpio]\nready = { chip = \"gpiochip0\", line = 1 }\n"
                                         "reset = { chip = \"gpiochip0\", line = 1 }\n")),
                  "gpio.ready and gpio.reset name the same line"));
  EXPECT_TRUE(
      has(error_of(loopback_with("[gpio]\nled = { chip = \"gpiochip0\", line = 1 }\n")), "led"));
}

}  // namespace
}  // namespace vepf::config
