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

std::string hex4(std::uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof(b), "%04x", v);
  return b;
}

bool parse_hex(std::string_view s, std::uint32_t max, std::uint32_t& out) {
  if (s.empty() || s.size() > 8) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    v = v * 16 + static_cast<std::uint32_t>(d);
  }
  if (v > max) return false;
  out = v;
  return true;
}

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

std::optional<PciAddress> PciAddress::parse(std::string_view s) noexcept {
  PciAddress a;
  std::uint32_t v = 0;
  const auto c1 = s.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  if (s.find(':', c1 + 1) != std::string_view::npos) {  // domain given
    if (!parse_hex(s.substr(0, c1), 0xffff, v)) return std::nullopt;
    a.domain = v;
    s.remove_prefix(c1 + 1);
  }
  const auto c = s.find(':'), dot = s.find('.');
  if (c == std::string_view::npos || dot == std::string_view::npos || dot < c) return std::nullopt;
  if (!parse_hex(s.substr(0, c), 0xff, v)) return std::nullopt;
  a.bus = static_cast<std::uint8_t>(v);
  if (!parse_hex(s.substr(c + 1, dot - c - 1), 31, v)) return std::nullopt;
  a.dev = static_cast<std::uint8_t>(v);
  if (!parse_hex(s.substr(dot + 1), 7, v)) return std::nullopt;
  a.fn = static_cast<std::uint8_t>(v);
  return a;
}

std::string PciAddress::str() const {
  char b[16];
  std::snprintf(b, sizeof(b), "%04x:%02x:%02x.%x", domain, bus, dev, fn);
  return b;
}

std::string PciMatch::str() const { return address ? address->str() : hex4(vendor) + ":" + hex4(device); }

std::optional<PciMatch> PciMatch::parse(std::string_view s) noexcept {
  PciMatch m;
  if (s.find('.') != std::string_view::npos) {
    m.address = PciAddress::parse(s);
    if (!m.address) return std::nullopt;
    return m;
  }
  const auto colon = s.find(':');
  std::uint32_t v = 0, d = 0;
  if (colon == std::string_view::npos || !parse_hex(s.substr(0, colon), 0xffff, v) ||
      !parse_hex(s.substr(colon + 1), 0xffff, d)) {
    return std::nullopt;
  }
  m.vendor = static_cast<std::uint16_t>(v);
  m.device = static_cast<std::uint16_t>(d);
  return m;
}

tl::expected<VfioTarget, std::string> check_vfio_ready(const PciAddress& a, const std::string& sysfs,
                                                       const std::string& dev_vfio) {
  const std::string bdf = a.str();
  const fs::path dev = fs::path(sysfs) / "bus/pci/devices" / bdf;
  std::error_code ec;
  if (!fs::exists(dev, ec)) return tl::unexpected("PCI function " + bdf + " does not exist: check it with lspci -D");
  const std::string drv = link_name(dev / "driver");
  if (drv != "vfio-pci") {
    return tl::unexpected(bdf + " is bound to " + (drv.empty() ? std::string("no driver") : "driver " + drv) +
                          ", not vfio-pci: run scripts/vfio-bind.sh " + bdf);
  }
  const std::string group = link_name(dev / "iommu_group");
  if (group.empty()) {
    return tl::unexpected(bdf + " has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the "
                                "kernel command line; in QEMU add -device intel-iommu)");
  }
  for (const auto& member : fs::directory_iterator(dev / "iommu_group/devices", ec)) {
    const std::string other = member.path().filename().string();
    if (other == bdf) continue;
    const std::string odrv = link_name(member.path() / "driver");
    if (!odrv.empty() && odrv != "vfio-pci" && odrv != "pcieport") {
      return tl::unexpected("IOMMU group " + group + " of " + bdf + " is not viable: " + other + " is bound to " + odrv +
                            "; bind it to vfio-pci too (scripts/vfio-bind.sh " + other + ") or put the EP in a slot of its own");
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
      return tl::unexpected("no permission to open " + t.group_path + ": run as root or give your user that device node");
    }
    if (e == EBUSY) return tl::unexpected(t.group_path + " is busy: another program (or VM) holds this IOMMU group");
    return tl::unexpected("cannot open " + t.group_path + ": " + std::strerror(e));
  }
  ::close(fd);
  return t;
}

tl::expected<EnabledFunction, std::string> EnabledFunction::enable(const PciAddress& a, const std::string& sysfs) {
  const std::string bdf = a.str();
  const fs::path dev = fs::path(sysfs) / "bus/pci/devices" / bdf;
  std::error_code ec;
  if (!fs::exists(dev, ec)) return tl::unexpected("PCI function " + bdf + " does not exist: check it with lspci -D");
  if (const std::string drv = link_name(dev / "driver"); !drv.empty()) {
    return tl::unexpected(bdf + " is bound to " + drv + ", and /dev/mem cannot reach a function a driver holds: " +
                          "unbind it (echo " + bdf + " > /sys/bus/pci/drivers/" + drv + "/unbind)");
  }
  const std::string enable = (dev / "enable").string();
  if (auto w = write_sysfs(enable, "1"); !w) return tl::unexpected("cannot enable " + bdf + " through " + enable + ": " + w.error());
  return EnabledFunction(enable);
}

EnabledFunction::~EnabledFunction() {
  if (!enable_path_.empty()) (void)write_sysfs(enable_path_, "0");
}

}  // namespace vepf::vfio
