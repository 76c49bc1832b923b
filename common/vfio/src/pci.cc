#include "vepf/vfio/pci.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace vepf::vfio {

namespace fs = std::filesystem;

namespace {

// The basename of the symlink `p` points to, or "" when `p` is no symlink.
std::string link_name(const fs::path& p) {
  std::error_code ec;
  const auto t = fs::read_symlink(p, ec);
  return ec ? std::string() : t.filename().string();
}

/// Writes `value` to the sysfs attribute `path` in one write(), as the kernel expects.
/// Error: strerror of the failing call.
tl::expected<void, std::string> write_sysfs(const std::string& path, std::string_view value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(std::string(std::strerror(errno)));
  const bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  const int e = errno;
  ::close(fd);
  if (!ok) return tl::unexpected(std::string(std::strerror(e)));
  return {};
}

}  // namespace

tl::expected<VfioTarget, std::string> check_vfio_ready(const PciAddress& a,
                                                       const std::string& sysfs,
                                                       const std::string& dev_vfio) {
  const std::string bdf = a.str();
  const fs::path dev = fs::path(sysfs) / "bus/pci/devices" / bdf;
  std::error_code ec;
  if (!fs::exists(dev, ec))
    return tl::unexpected("PCI function " + bdf + " does not exist: check it with lspci -D");
  const std::string drv = link_name(dev / "driver");
  if (drv != "vfio-pci") {
    return tl::unexpected(bdf + " is bound to " +
                          (drv.empty() ? std::string("no driver") : "driver " + drv) +
                          ", not vfio-pci: run scripts/vfio-bind.sh " + bdf);
  }
  const std::string group = link_name(dev / "iommu_group");
  if (group.empty()) {
    return tl::unexpected(
        bdf +
        " has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the "
        "kernel command line; in QEMU add -device intel-iommu)");
  }
  for (const auto& member : fs::directory_iterator(dev / "iommu_group/devices", ec)) {
    const std::string other = member.path().filename().string();
    if (other == bdf) continue;
    const std::string odrv = link_name(member.path() / "driver");
    if (!odrv.empty() && odrv != "vfio-pci" && odrv != "pcieport") {
      return tl::unexpected("IOMMU group " + group + " of " + bdf + " is not viable: " + other +
                            " is bound to " + odrv +
                            "; bind it to vfio-pci too (scripts/vfio-bind.sh " + other +
                            ") or put the EP in a slot of its own");
    }
  }
  VfioTarget t{a, std::stoi(group), dev_vfio + "/" + group};
  if (!fs::exists(t.group_path, ec)) {
    return tl::unexpected(t.group_path + " is missing: load the VFIO modules (modprobe vfio-pci)");
  }
  const int fd = ::open(t.group_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == EACCES || e == EPERM) {
      return tl::unexpected("no permission to open " + t.group_path +
                            ": run as root or give your user that device node");
    }
    if (e == EBUSY)
      return tl::unexpected(t.group_path +
                            " is busy: another program (or VM) holds this IOMMU group");
    return tl::unexpected("cannot open " + t.group_path + ": " + std::strerror(e));
  }
  ::close(fd);
  return t;
}

tl::expected<EnabledFunction, std::string> EnabledFunction::enable(const PciAddress& a,
                                                                   const std::string& sysfs) {
  const std::string bdf = a.str();
  const fs::path dev = fs::path(sysfs) / "bus/pci/devices" / bdf;
  std::error_code ec;
  if (!fs::exists(dev, ec))
    return tl::unexpected("PCI function " + bdf + " does not exist: check it with lspci -D");
  if (const std::string drv = link_name(dev / "driver"); !drv.empty()) {
    return tl::unexpected(bdf + " is bound to " + drv +
                          ", and /dev/mem cannot reach a function a driver holds: " +
                          "unbind it (echo " + bdf + " > /sys/bus/pci/drivers/" + drv + "/unbind)");
  }
  const std::string enable = (dev / "enable").string();
  if (auto w = write_sysfs(enable, "1"); !w)
    return tl::unexpected("cannot enable " + bdf + " through " + enable + ": " + w.error());
  return EnabledFunction(enable);
}

EnabledFunction::~EnabledFunction() {
  if (!enable_path_.empty()) (void)write_sysfs(enable_path_, "0");
}

}  // namespace vepf::vfio
