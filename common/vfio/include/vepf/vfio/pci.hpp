#pragma once
// Finding the EP's PCI function on the RC and saying what keeps it from VFIO: discovery with
// libpci (by vendor:device or by address), then the sysfs facts VFIO needs (bound to vfio-pci,
// an IOMMU group whose every member is bound to vfio-pci or to nothing, /dev/vfio/<group>
// present and openable). Messages are one line that says what to do.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

#include "vepf/pci_address.hpp"

namespace vepf::vfio {

// PciAddress and PciMatch are vepf_base's (vepf/pci_address.hpp): the config parses them too.
using vepf::PciAddress;
using vepf::PciMatch;

/// Finds the function with libpci (target vepf_pci_find) (which reads /sys/bus/pci). Errors: a
/// message such as "no PCI function 1af4:1110 on this machine: is the EP powered and enumerated
/// (lspci -d 1af4:1110)?".
tl::expected<PciAddress, std::string> find_function(const PciMatch& m);

/// Where VFIO would take the function from: its IOMMU group and the /dev/vfio node.
struct VfioTarget {
  PciAddress address;
  int group = -1;
  std::string group_path;  // "/dev/vfio/<group>"
};

/// Checks the sysfs facts for `a` under `sysfs` (normally "/sys") and `dev_vfio` ("/dev/vfio").
/// Errors, each one line with the fix: the function does not exist; it is bound to another driver
/// or to none (scripts/vfio-bind.sh); no IOMMU group (enable the IOMMU: intel_iommu=on /
/// iommu=pt, a vIOMMU in QEMU); another member of the group is bound to a host driver (bind it
/// to vfio-pci too, or move the function); /dev/vfio/<group> missing (modprobe vfio-pci) or not
/// accessible (run as root or give your user the device node).
tl::expected<VfioTarget, std::string> check_vfio_ready(const PciAddress& a,
                                                       const std::string& sysfs = "/sys",
                                                       const std::string& dev_vfio = "/dev/vfio");

/// A PCI function enabled through sysfs for access without a driver (vepf-ep's devmem platform
/// maps its BARs through /dev/mem): arm64 kernels leave an unbound function's memory decoding
/// off, and its BARs then ignore every access. Destruction writes 0 to `enable` again.
class EnabledFunction {
 public:
  /// Checks under `sysfs` that `a` exists and is bound to no driver (IO_STRICT_DEVMEM hides the
  /// BARs a driver holds), then writes 1 to its `enable` attribute. Errors: one line naming the
  /// function and the fix.
  static tl::expected<EnabledFunction, std::string> enable(const PciAddress& a,
                                                           const std::string& sysfs = "/sys");
  EnabledFunction(EnabledFunction&& o) noexcept : enable_path_(std::exchange(o.enable_path_, {})) {}
  EnabledFunction& operator=(EnabledFunction&&) = delete;
  ~EnabledFunction();

 private:
  explicit EnabledFunction(std::string enable_path) : enable_path_(std::move(enable_path)) {}
  std::string enable_path_;  // empty once moved from
};

}  // namespace vepf::vfio
