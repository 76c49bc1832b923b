#include "vepf/vfio/device.hpp"

#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vepf::vfio {

namespace {
std::string sys(const std::string& what, int e) { return what + ": " + std::strerror(e); }
}  // namespace

tl::expected<std::unique_ptr<Device>, std::string> Device::open(const VfioTarget& t) {
  std::unique_ptr<Device> d(new Device());
  d->t_ = t;
  d->container_.reset(::open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
  if (!d->container_.valid())
    return tl::unexpected(sys("open /dev/vfio/vfio (modprobe vfio-pci; run as root)", errno));
  if (::ioctl(d->container_.get(), VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
    return tl::unexpected(std::string("/dev/vfio/vfio speaks another VFIO API version"));
  }
  int type = VFIO_TYPE1v2_IOMMU;
  if (!::ioctl(d->container_.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)) {
    type = VFIO_TYPE1_IOMMU;
    if (!::ioctl(d->container_.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU)) {
      return tl::unexpected(
          std::string("VFIO has no type1 IOMMU here: enable the IOMMU (intel_iommu=on)"));
    }
  }
  d->group_.reset(::open(t.group_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!d->group_.valid()) return tl::unexpected(sys("open " + t.group_path, errno));
  vfio_group_status st{};
  st.argsz = sizeof(st);
  if (::ioctl(d->group_.get(), VFIO_GROUP_GET_STATUS, &st) != 0)
    return tl::unexpected(sys("VFIO_GROUP_GET_STATUS", errno));
  if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
    return tl::unexpected(
        "IOMMU group " + std::to_string(t.group) +
        " is not viable: bind every function in it to vfio-pci (scripts/vfio-bind.sh)");
  }
  const int cfd = d->container_.get();
  if (::ioctl(d->group_.get(), VFIO_GROUP_SET_CONTAINER, &cfd) != 0) {
    return tl::unexpected(sys("VFIO_GROUP_SET_CONTAINER", errno));
  }
  if (::ioctl(d->container_.get(), VFIO_SET_IOMMU, type) != 0)
    return tl::unexpected(sys("VFIO_SET_IOMMU", errno));
  const std::string bdf = t.address.str();
  d->device_.reset(::ioctl(d->group_.get(), VFIO_GROUP_GET_DEVICE_FD, bdf.c_str()));
  if (!d->device_.valid()) return tl::unexpected(sys("VFIO_GROUP_GET_DEVICE_FD " + bdf, errno));
  vfio_device_info info{};
  info.argsz = sizeof(info);
  if (::ioctl(d->device_.get(), VFIO_DEVICE_GET_INFO, &info) != 0)
    return tl::unexpected(sys("VFIO_DEVICE_GET_INFO", errno));
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI))
    return tl::unexpected(bdf + " is not a PCI device to VFIO");
  for (std::uint32_t i = 0; i < info.num_regions; ++i) {
    vfio_region_info r{};
    r.argsz = sizeof(r);
    r.index = i;
    Region reg;
    if (::ioctl(d->device_.get(), VFIO_DEVICE_GET_REGION_INFO, &r) == 0)
      reg = {r.size, r.offset, r.flags};
    d->regions_.push_back(reg);
  }
  return d;
}

Device::~Device() {
  if (irq_index_ >= 0) {
    vfio_irq_set s{};
    s.argsz = sizeof(s);
    s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    s.index = static_cast<std::uint32_t>(irq_index_);
    s.count = 0;  // disables the index
    (void)::ioctl(device_.get(), VFIO_DEVICE_SET_IRQS, &s);
  }
  for (const auto& [iova, size] : dma_) unmap_dma(iova, size);
  for (const auto& [p, n] : maps_) ::munmap(p, n);
}

std::uint64_t Device::bar_size(unsigned index) const noexcept {
  if (index > VFIO_PCI_BAR5_REGION_INDEX || index >= regions_.size()) return 0;
  const Region& r = regions_[index];
  return (r.flags & VFIO_REGION_INFO_FLAG_MMAP) ? r.size : 0;
}

std::uint64_t Device::region_size(unsigned index) const noexcept {
  if (index > VFIO_PCI_BAR5_REGION_INDEX || index >= regions_.size()) return 0;
  return regions_[index].size;
}

tl::expected<bool, std::string> Device::bar_is_io(unsigned index) const {
  if (index > VFIO_PCI_BAR5_REGION_INDEX)
    return tl::unexpected("BAR" + std::to_string(index) + " does not exist: use 0..5");
  auto lo = config_read16(PCI_BASE_ADDRESS_0 + 4 * index);
  if (!lo) return tl::unexpected(lo.error());
  return (*lo & PCI_BASE_ADDRESS_SPACE) == PCI_BASE_ADDRESS_SPACE_IO;
}

namespace {
/// The checks region_read/region_write share: BAR `index` exists and [offset, + n) lies in it.
std::string region_range_error(const std::string& name, std::uint64_t size, std::uint64_t offset,
                               std::size_t n) {
  if (size == 0) return name + " does not exist";
  if (offset > size || n > size - offset) {
    return name + ": " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
           " leave its " + std::to_string(size) + " bytes";
  }
  return {};
}
}  // namespace

tl::expected<void, std::string> Device::region_read(unsigned index, std::uint64_t offset,
                                                    std::span<std::byte> data) const {
  const std::string name = t_.address.str() + " BAR" + std::to_string(index);
  if (auto e = region_range_error(name, region_size(index), offset, data.size()); !e.empty())
    return tl::unexpected(e);
  const auto got = ::pread(device_.get(), data.data(), data.size(),
                           static_cast<off_t>(regions_[index].offset + offset));
  if (got != static_cast<ssize_t>(data.size()))
    return tl::unexpected(sys("read " + name, got < 0 ? errno : EIO));
  return {};
}

tl::expected<void, std::string> Device::region_write(unsigned index, std::uint64_t offset,
                                                     std::span<const std::byte> data) const {
  const std::string name = t_.address.str() + " BAR" + std::to_string(index);
  if (auto e = region_range_error(name, region_size(index), offset, data.size()); !e.empty())
    return tl::unexpected(e);
  const auto put = ::pwrite(device_.get(), data.data(), data.size(),
                            static_cast<off_t>(regions_[index].offset + offset));
  if (put != static_cast<ssize_t>(data.size()))
    return tl::unexpected(sys("write " + name, put < 0 ? errno : EIO));
  return {};
}

tl::expected<MappedBar, std::string> Device::map_bar(unsigned index) {
  const std::string name = t_.address.str() + " BAR" + std::to_string(index);
  if (index > VFIO_PCI_BAR5_REGION_INDEX || index >= regions_.size() || regions_[index].size == 0) {
    return tl::unexpected(name + " does not exist: name the BAR that holds the EP window");
  }
  const Region& r = regions_[index];
  if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP))
    return tl::unexpected(name + " cannot be mapped (I/O space or no mmap)");
  void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, device_.get(),
                   static_cast<off_t>(r.offset));
  if (p == MAP_FAILED) return tl::unexpected(sys("mmap " + name, errno));
  maps_.emplace_back(p, r.size);
  return MappedBar{static_cast<volatile std::byte*>(p), r.size};
}

tl::expected<std::uint16_t, std::string> Device::config_read16(std::uint32_t offset) const {
  const Region& r = regions_.at(VFIO_PCI_CONFIG_REGION_INDEX);
  std::uint8_t b[2];
  if (::pread(device_.get(), b, 2, static_cast<off_t>(r.offset + offset)) != 2)
    return tl::unexpected(sys("config read", errno));
  return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
}

tl::expected<void, std::string> Device::config_write16(std::uint32_t offset,
                                                       std::uint16_t value) const {
  const Region& r = regions_.at(VFIO_PCI_CONFIG_REGION_INDEX);
  const std::uint8_t b[2] = {static_cast<std::uint8_t>(value),
                             static_cast<std::uint8_t>(value >> 8)};
  if (::pwrite(device_.get(), b, 2, static_cast<off_t>(r.offset + offset)) != 2)
    return tl::unexpected(sys("config write", errno));
  return {};
}

tl::expected<void, std::string> Device::enable_bus_master() const {
  auto cmd = config_read16(PCI_COMMAND);
  if (!cmd) return tl::unexpected(cmd.error());
  return config_write16(PCI_COMMAND,
                        static_cast<std::uint16_t>(*cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
}

tl::expected<void, std::string> Device::map_dma(std::span<std::byte> mem, std::uint64_t iova) {
  vfio_iommu_type1_dma_map m{};
  m.argsz = sizeof(m);
  m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  m.vaddr = reinterpret_cast<std::uint64_t>(mem.data());
  m.iova = iova;
  m.size = mem.size();
  if (::ioctl(container_.get(), VFIO_IOMMU_MAP_DMA, &m) != 0)
    return tl::unexpected(sys("VFIO_IOMMU_MAP_DMA", errno));
  dma_.emplace_back(iova, mem.size());
  return {};
}

void Device::unmap_dma(std::uint64_t iova, std::uint64_t size) noexcept {
  vfio_iommu_type1_dma_unmap u{};
  u.argsz = sizeof(u);
  u.iova = iova;
  u.size = size;
  (void)::ioctl(container_.get(), VFIO_IOMMU_UNMAP_DMA, &u);
  std::erase(dma_, std::pair<std::uint64_t, std::uint64_t>{iova, size});
}

tl::expected<std::vector<os::Fd>, std::string> Device::enable_msi(unsigned count) {
  int index = -1;
  for (unsigned idx : {VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX}) {
    vfio_irq_info ii{};
    ii.argsz = sizeof(ii);
    ii.index = idx;
    if (::ioctl(device_.get(), VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0 && ii.count >= count &&
        (ii.flags & VFIO_IRQ_INFO_EVENTFD)) {
      index = static_cast<int>(idx);
      break;
    }
  }
  if (index < 0)
    return tl::unexpected(t_.address.str() + " has no MSI-X or MSI with " + std::to_string(count) +
                          " vector(s)");
  std::vector<os::Fd> fds;
  std::vector<std::byte> buf(sizeof(vfio_irq_set) + count * sizeof(std::int32_t));
  auto* s = reinterpret_cast<vfio_irq_set*>(buf.data());
  s->argsz = static_cast<std::uint32_t>(buf.size());
  s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  s->index = static_cast<std::uint32_t>(index);
  s->start = 0;
  s->count = count;
  for (unsigned i = 0; i < count; ++i) {
    fds.emplace_back(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fds.back().valid()) return tl::unexpected(sys("eventfd", errno));
    const std::int32_t fd = fds.back().get();
    std::memcpy(buf.data() + sizeof(vfio_irq_set) + i * sizeof(fd), &fd, sizeof(fd));
  }
  if (::ioctl(device_.get(), VFIO_DEVICE_SET_IRQS, s) != 0)
    return tl::unexpected(sys("VFIO_DEVICE_SET_IRQS", errno));
  irq_index_ = index;
  return fds;
}

}  // namespace vepf::vfio
