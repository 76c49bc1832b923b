// vfio::PciAddress and check_vfio_ready() over a fake sysfs tree: every refusal is one line that
// names the fix. (The VFIO ioctls themselves run in the HIL rig: tests/hil/run.sh.)

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "vepf/vfio/pci.hpp"

namespace vepf::vfio {
namespace {

namespace fs = std::filesystem;

TEST(PciAddress, ParsesAndPrints) {
  auto a = PciAddress::parse("0000:00:05.0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "0000:00:05.0");
  a = PciAddress::parse("3:1f.7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->bus, 3);
  EXPECT_EQ(a->dev, 0x1f);
  EXPECT_EQ(a->fn, 7);
  EXPECT_EQ(a->str(), "0000:03:1f.7");
  EXPECT_EQ(PciAddress::parse("10000:00:00.0"), std::nullopt);  // domain above 16 bits
  for (const char* bad : {"", "zz", "00:20.0", "00:1f.8", "00:1f", "0000:00:05", "0000:100:00.0",
                          "0:0:0:0.0", "00:.0"}) {
    EXPECT_EQ(PciAddress::parse(bad), std::nullopt) << bad;
  }
  PciMatch m;
  m.vendor = 0x1af4;
  m.device = 0x1110;
  EXPECT_EQ(m.str(), "1af4:1110");
}

class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("vepf-sysfs-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "kernel/iommu_groups/7/devices");
    fs::create_directories(root_ / "bus/pci/drivers/vfio-pci");
    fs::create_directories(root_ / "bus/pci/drivers/e1000e");
    fs::create_directories(root_ / "dev");
    add("0000:00:05.0");
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path dev(const std::string& bdf) { return root_ / "bus/pci/devices" / bdf; }
  void add(const std::string& bdf) { fs::create_directories(dev(bdf)); }
  void bind(const std::string& bdf, const std::string& drv) {
    fs::remove(dev(bdf) / "driver");
    fs::create_directory_symlink(root_ / "bus/pci/drivers" / drv, dev(bdf) / "driver");
  }
  void group(const std::string& bdf) {
    fs::create_directory_symlink(root_ / "kernel/iommu_groups/7", dev(bdf) / "iommu_group");
    fs::create_directory_symlink(dev(bdf), root_ / "kernel/iommu_groups/7/devices" / bdf);
  }
  std::string error(const std::string& bdf = "0000:00:05.0") {
    auto r = check_vfio_ready(*PciAddress::parse(bdf), root_.string(), (root_ / "dev").string());
    return r ? std::string("<ready>") : r.error();
  }
  fs::path root_;
};

TEST_F(FakeSysfs, SaysWhatIsMissingStepByStep) {
  EXPECT_NE(error("0000:00:06.0").find("does not exist"), std::string::npos);
  EXPECT_NE(error().find("bound to no driver, not vfio-pci: run scripts/vfio-bind.sh 0000:00:05.0"),
            std::string::npos);
  bind("0000:00:05.0", "e1000e");
  EXPECT_NE(error().find("bound to driver e1000e"), std::string::npos);
  bind("0000:00:05.0", "vfio-pci");
  EXPECT_NE(error().find("has no IOMMU group: enable the IOMMU"), std::string::npos);
  group("0000:00:05.0");
  add("0000:00:05.1");
  group("0000:00:05.1");
  bind("0000:00:05.1", "e1000e");
  EXPECT_NE(
      error().find("IOMMU group 7 of 0000:00:05.0 is not viable: 0000:00:05.1 is bound to e1000e"),
      std::string::npos)
      << error();
  bind("0000:00:05.1", "vfio-pci");
  EXPECT_NE(error().find("dev/7 is missing"), std::string::npos) << error();  // the group node
  EXPECT_NE(error().find("modprobe vfio-pci"), std::string::npos);
  std::ofstream(root_ / "dev/7") << "";
  EXPECT_EQ(error(), "<ready>");
}

}  // namespace
}  // namespace vepf::vfio
