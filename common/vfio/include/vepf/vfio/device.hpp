#pragma once
// A PCI function held through VFIO (type1 IOMMU): its BARs mapped into this process, its config
// space, DMA mappings of our memory at IOVAs we choose, and its MSI-X / MSI vectors as eventfds.
// Sources: <linux/vfio.h> (the ioctls and structs used as they are), PCI Local Bus 3.0 §6.2.2
// (Command register: Memory Space, Bus Master Enable). Everything is released when destroyed:
// interrupts disabled, DMA unmapped, BARs unmapped, descriptors closed.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "vepf/os/fd.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::vfio {

/// A BAR mapped into this process: `size` bytes at `base` (volatile MMIO or BAR memory).
struct MappedBar {
  volatile std::byte* base = nullptr;
  std::uint64_t size = 0;
};

class Device {
 public:
  /// Opens `t` (from check_vfio_ready()): container with VFIO_TYPE1v2/TYPE1 IOMMU, group,
  /// device. Errors: one line naming the step and errno, with what to do.
  static tl::expected<std::unique_ptr<Device>, std::string> open(const VfioTarget& t);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const PciAddress& address() const noexcept { return t_.address; }
  /// Size in bytes of BAR `index` (0..5), 0 when it does not exist or is not mmap-able.
  std::uint64_t bar_size(unsigned index) const noexcept;
  /// Size in bytes of BAR `index` (0..5) whether or not it can be mapped (I/O space included);
  /// 0 when it does not exist.
  std::uint64_t region_size(unsigned index) const noexcept;
  /// True when BAR `index` is I/O space (bit 0 of its Base Address register, PCI 3.0 §6.2.5.1).
  tl::expected<bool, std::string> bar_is_io(unsigned index) const;
  /// Reads / writes `data.size()` bytes at byte `offset` of BAR `index` through the VFIO device fd
  /// (pread/pwrite on the region; vfio-pci makes one access of 4, 2 or 1 bytes per aligned
  /// piece): the way to I/O-space BARs and to BARs that cannot be mapped. Errors: the BAR is
  /// absent, the range leaves it, or the access failed (errno).
  tl::expected<void, std::string> region_read(unsigned index, std::uint64_t offset,
                                              std::span<std::byte> data) const;
  tl::expected<void, std::string> region_write(unsigned index, std::uint64_t offset,
                                               std::span<const std::byte> data) const;
  /// Maps BAR `index` (read/write, shared). Errors: the BAR is absent, I/O space, or not
  /// mmap-able (VFIO_REGION_INFO_FLAG_MMAP), or mmap failed.
  tl::expected<MappedBar, std::string> map_bar(unsigned index);
  /// Config space access (VFIO_PCI_CONFIG_REGION_INDEX), little-endian values.
  tl::expected<std::uint16_t, std::string> config_read16(std::uint32_t offset) const;
  tl::expected<void, std::string> config_write16(std::uint32_t offset, std::uint16_t value) const;
  /// Sets Memory Space and Bus Master Enable in the Command register (the device's DMA and its
  /// MSI writes need Bus Master; VFIO does not set it).
  tl::expected<void, std::string> enable_bus_master() const;
  /// Makes `mem` (page-aligned, whole pages) reachable by the device at `iova`
  /// (VFIO_IOMMU_MAP_DMA, read+write). Unmapped on destruction or with unmap_dma().
  tl::expected<void, std::string> map_dma(std::span<std::byte> mem, std::uint64_t iova);
  void unmap_dma(std::uint64_t iova, std::uint64_t size) noexcept;
  /// Routes `count` vectors of MSI-X (else MSI) to new eventfds (VFIO_DEVICE_SET_IRQS with
  /// ACTION_TRIGGER); returns them, vector i at [i]. Errors: the function has neither, or fewer
  /// vectors than `count`.
  tl::expected<std::vector<os::Fd>, std::string> enable_msi(unsigned count);
  /// "MSI-X" or "MSI" after enable_msi().
  const char* irq_kind() const noexcept { return irq_index_ == 2 ? "MSI-X" : "MSI"; }

 private:
  Device() = default;
  struct Region {
    std::uint64_t size = 0, offset = 0;
    std::uint32_t flags = 0;
  };
  VfioTarget t_;
  os::Fd container_, group_, device_;
  std::vector<Region> regions_;
  std::vector<std::pair<void*, std::size_t>> maps_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dma_;  // iova, size
  int irq_index_ = -1;
};

}  // namespace vepf::vfio
