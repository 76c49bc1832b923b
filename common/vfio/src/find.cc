// find_function(): PCI discovery with libpci, in a target of its own (vepf_pci_find) so that
// programs built without libpci (the static vepf-ep) can still hold a function named by address.
extern "C" {
#include <pci/pci.h>
}

#include <optional>
#include <string>

#include "vepf/vfio/pci.hpp"

namespace vepf::vfio {

tl::expected<PciAddress, std::string> find_function(const PciMatch& m) {
  pci_access* pacc = pci_alloc();
  if (pacc == nullptr) return tl::unexpected(std::string("libpci: cannot allocate its state"));
  pci_init(pacc);
  pci_scan_bus(pacc);
  std::optional<PciAddress> found;
  for (pci_dev* d = pacc->devices; d != nullptr && !found; d = d->next) {
    pci_fill_info(d, PCI_FILL_IDENT);
    const PciAddress a{static_cast<std::uint32_t>(d->domain), d->bus, d->dev, d->func};
    if (m.address ? a == *m.address : (d->vendor_id == m.vendor && d->device_id == m.device))
      found = a;
  }
  pci_cleanup(pacc);
  if (found) return *found;
  if (m.address) {
    return tl::unexpected("no PCI function at " + m.str() +
                          ": check the address with lspci -D (and the EP is up)");
  }
  return tl::unexpected("no PCI function " + m.str() +
                        " on this machine: is the EP powered and enumerated (lspci -d " + m.str() +
                        ")?");
}

}  // namespace vepf::vfio
