// [soc]: a real EP controller's constraints, and [link]/[host]/[ep] checked against them (BARs
// reserved, fixed or 64-bit only; inbound and outbound alignment; outbound size; memory types of
// a non-coherent controller), each with a one-line error that names the field and the fix.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "config_test_support.hpp"
#include "vepf/config/board_config.hpp"

namespace vepf::config {
namespace {

using test::error_of;
using test::has;

/// A devmem board: vepf-host finds the EP window at BAR `bar` + `offset`; vepf-ep maps it at
/// `ep_phys` and the outbound window at 0x80000000; `soc` holds the [soc] keys; `link` the
/// [link] keys.
std::string devmem_board(std::string_view soc, int bar = 2, std::string_view offset = "0",
                         std::string_view ep_phys = "0x90000000", std::string_view link = "",
                         std::string_view ep_extra = "") {
  std::string out = "[board]\nname = \"t\"\nplatform = \"devmem\"\n";
  out += "[link]\nep_window_size = 0x400000\nrc_window_size = 0x400000\n";
  out += link;
  out += "[host]\ndevice = \"1d87:0000\"\nep_window = { bar = " + std::to_string(bar) +
         ", offset = " + std::string(offset) + " }\nrc_window_bus_addr = 0x10000000\n";
  out += "[ep]\nep_window = { phys = " + std::string(ep_phys) +
         " }\nrc_window = { phys = 0x80000000 }\nrc_window_bus_addr = 0x10000000\n";
  out += ep_extra;
  out += "[soc]\nname = \"Test SoC\"\nepc = \"a40000000.pcie-ep\"\n";
  out += soc;
  out += "[[device]]\ntype = \"net\"\n[device.net]\nmac = \"02:00:00:00:00:01\"\n";
  return out;
}

TEST(SocConfig, ParsesEveryKey) {
  const auto cfg = parse_board_config(
      devmem_board("function = \"pci_epf_test\"\nbar_align = 0x10000\n"
                   "bars = [{ bar = 0, kind = \"programmable\", only_64bit = true },\n"
                   "        { bar = 4, kind = \"fixed\", size = 0x100000 },\n"
                   "        { bar = 5, kind = \"reserved\" }]\n"
                   "outbound = { size = 0x40000000, align = 0x10000 }\n"
                   "interrupts = [\"msi\", \"msix\"]\ncoherent = true\ndma = \"dw-edma\"\n"),
      "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const SocConfig& s = cfg->soc;
  EXPECT_TRUE(s.present);
  EXPECT_EQ(s.name, "Test SoC");
  EXPECT_EQ(s.epc, "a40000000.pcie-ep");
  EXPECT_EQ(s.function, EpfKind::kTest);
  EXPECT_EQ(s.bar_align, 0x10000u);
  EXPECT_TRUE(s.bars[0].only_64bit);
  EXPECT_EQ(s.bars[0].kind, BarKind::kProgrammable);
  EXPECT_EQ(s.bars[2].kind, BarKind::kProgrammable);  // not named
  EXPECT_EQ(s.bars[4].kind, BarKind::kFixed);
  EXPECT_EQ(s.bars[4].fixed_size, 0x100000u);
  EXPECT_EQ(s.bars[5].kind, BarKind::kReserved);
  EXPECT_EQ(s.outbound_size, 0x40000000u);
  EXPECT_EQ(s.outbound_align, 0x10000u);
  EXPECT_TRUE(s.msi);
  EXPECT_TRUE(s.msix);
  EXPECT_TRUE(s.coherent);
  EXPECT_EQ(s.dma, "dw-edma");
  const std::string d = describe(*cfg);
  EXPECT_TRUE(has(d, "soc Test SoC: controller a40000000.pcie-ep, function pci_epf_test"));
  EXPECT_TRUE(has(d, "BAR4: fixed, 1 MiB"));
  EXPECT_TRUE(has(d, "BAR0: programmable, 64-bit only"));
  EXPECT_TRUE(has(d, "outbound: 1024 MiB, mappings aligned to 64 KiB"));
}

TEST(SocConfig, DefaultsFollowThePlatform) {
  const auto cfg = parse_board_config(devmem_board(""), "x.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->soc.function, EpfKind::kTest);  // devmem: BAR memory through /dev/mem
  EXPECT_EQ(cfg->soc.bar_align, 4096u);
  EXPECT_EQ(cfg->soc.outbound_size, 0u);
  EXPECT_FALSE(cfg->soc.coherent);
  EXPECT_EQ(cfg->soc.dma, "none");
  const auto none = parse_board_config(std::string(test::board()), "x.toml");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->soc.present);
}

TEST(SocConfigError, OnlyOnPciPlatformsAndWithItsKeys) {
  EXPECT_TRUE(has(error_of(test::board("", "", "[soc]\nname = \"x\"\nepc = \"e\"\n")),
                  "[soc] describes a real EP controller"));
  EXPECT_TRUE(has(error_of(devmem_board("bogus = 1\n")), "unknown key 'bogus' in [soc]"));
  EXPECT_TRUE(has(error_of(devmem_board("function = \"pci_epf_vntb\"\n")),
                  "soc.function = \"pci_epf_vntb\" does not fit board.platform = \"devmem\""));
  EXPECT_TRUE(has(error_of(devmem_board("bar_align = 0x3000\n")), "soc.bar_align"));
  EXPECT_TRUE(has(error_of(devmem_board("interrupts = [\"nmi\"]\n")), "soc.interrupts"));
}

TEST(SocConfigError, EpcNameIsOnePathComponent) {
  std::string toml = devmem_board("");
  toml.replace(toml.find("a40000000.pcie-ep"), 17, "../../etc");
  EXPECT_TRUE(has(error_of(toml), "soc.epc = \"../../etc\" is not an EP controller name"));
}

TEST(SocConfigError, BarListIsChecked) {
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 4, kind = \"fixed\" }]\n")),
                  "is fixed but has no size"));
  EXPECT_TRUE(
      has(error_of(devmem_board("bars = [{ bar = 4, kind = \"fixed\", size = 0x300000 }]\n")),
          "is not a power of 2"));
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 4, kind = \"reserved\" }, { bar = 4, "
                                        "kind = \"reserved\" }]\n")),
                  "names BAR 4 again"));
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 5, kind = \"programmable\", "
                                        "only_64bit = true }]\n")),
                  "BAR 5 cannot be 64-bit"));
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 1, kind = \"reserved\", size = 16 }]\n")),
                  "size is for kind = \"fixed\""));
}

TEST(SocConfigError, EpWindowBarMustBeOneTheControllerGives) {
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 2, kind = \"reserved\" }]\n")),
                  "host.ep_window.bar = 2: soc (Test SoC) reserves BAR 2 for the controller "
                  "(soc.bars): use another BAR, e.g. bar = 0"));
  EXPECT_TRUE(has(error_of(devmem_board("bars = [{ bar = 2, kind = \"programmable\", only_64bit = "
                                        "true }]\n",
                                        3)),
                  "is the upper half of 64-bit BAR 2"));
  // A fixed 1 MiB BAR cannot hold a 4 MiB window.
  EXPECT_TRUE(
      has(error_of(devmem_board("bars = [{ bar = 2, kind = \"fixed\", size = 0x100000 }]\n")),
          "needs 4 MiB (host.ep_window.offset + link.ep_window_size) but the BAR has a fixed "
          "size of 1 MiB"));
  EXPECT_EQ(error_of(devmem_board("bars = [{ bar = 2, kind = \"fixed\", size = 0x400000 }]\n")),
            "<parsed>");
}

TEST(SocConfigError, InboundAndOutboundAlignment) {
  // The BAR's memory starts at ep_window.phys - host.ep_window.offset.
  EXPECT_TRUE(has(error_of(devmem_board("bar_align = 0x10000\n", 2, "0", "0x90001000")),
                  "not a multiple of soc.bar_align = 0x10000"));
  EXPECT_EQ(error_of(devmem_board("bar_align = 0x10000\n", 2, "0x1000", "0x90001000")), "<parsed>");
  EXPECT_TRUE(has(error_of(devmem_board("outbound = { size = 0x200000 }\n")),
                  "link.rc_window_size = 4 MiB is more than soc (Test SoC) maps outbound"));
  EXPECT_TRUE(has(error_of(devmem_board("outbound = { align = 0x20000000 }\n")),
                  "rc_window_bus_addr = 0x10000000 is not a multiple of soc.outbound.align"));
}

TEST(SocConfigError, NonCoherentControllerForbidsCachedEpWindow) {
  const std::string cached = "memory = \"cached\"";
  std::string toml = devmem_board("");
  toml.replace(toml.find("ep_window = { phys = 0x90000000 }"), 33,
               "ep_window = { phys = 0x90000000, " + cached + " }");
  EXPECT_TRUE(has(error_of(toml), "do not snoop the CPU's caches (soc.coherent = false)"));
  std::string coherent = devmem_board("coherent = true\n");
  coherent.replace(coherent.find("ep_window = { phys = 0x90000000 }"), 33,
                   "ep_window = { phys = 0x90000000, " + cached + " }");
  EXPECT_EQ(error_of(coherent), "<parsed>");
}

TEST(SocConfigError, IvshmemIsNotASocDoorbell) {
  EXPECT_TRUE(has(error_of(devmem_board("", 2, "0", "0x90000000", "",
                                        "doorbell = \"ivshmem\"\ndoorbell_regs = { phys = "
                                        "0xa0000000 }\npeer_ids = { phys = 0xa0001000 }\n")),
                  "ep.doorbell = \"ivshmem\" is QEMU's ivshmem-doorbell device"));
}

}  // namespace
}  // namespace vepf::config
