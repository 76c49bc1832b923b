// Opening the PCI platforms (pci.hpp): the places a board config names, mapped through VFIO or
// /dev/mem and checked against what they are mapped from.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "vepf/platform/pci.hpp"
#include "vepf/platform/window_memory.hpp"
#include "vepf/vfio/device.hpp"

namespace vepf::platform {

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%#" PRIx64, v);
  return b;
}

std::string mib(std::uint64_t bytes) {
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

std::string field(PciRole role, const char* key) {
  return std::string(role == PciRole::kEp ? "ep." : "host.") + key;
}

/// For the description: "; EP window device, RC window cached" (with the widths when limited).
std::string memory_note(const PciParts& p) {
  auto one = [](const ring::MemoryAccess& a) {
    std::string s(ring::to_string(a.type));
    if (!a.widths.all()) {
      s += " (";
      for (std::size_t w = 1; w <= 8; w <<= 1) {
        if (a.widths.allows(w))
          s += std::to_string(w * 8) + (w == a.widths.widest() ? "-bit" : "/");
      }
      s += " accesses)";
    }
    return s;
  };
  return "; EP window " + one(p.ep_access) + ", RC window " + one(p.rc_access);
}

bool is_wc(const config::Place& p) noexcept {
  return p.memory.type == config::MemoryType::kWriteCombining;
}

/// The VFIO device, the RC window memory vepf-host allocated (unmapped from the IOMMU by the
/// device's destructor before the memory goes) and the BAR ranges mapped through sysfs.
struct VfioKeep {
  std::unique_ptr<vfio::Device> dev;
  void* rc_mem = nullptr;
  std::size_t rc_size = 0;
  std::vector<std::pair<void*, std::size_t>> sysfs_maps;
  ~VfioKeep() {
    for (auto& [p, n] : sysfs_maps) ::munmap(p, n);
    dev.reset();
    if (rc_mem != nullptr) ::munmap(rc_mem, rc_size);
  }
};

struct DevmemKeep {
  std::optional<vfio::EnabledFunction>
      enabled;  // [ep] device, disabled again after the mappings go
  std::vector<std::pair<void*, std::size_t>> maps;
  ~DevmemKeep() {
    for (auto& [p, n] : maps) ::munmap(p, n);
  }
};

}  // namespace

tl::expected<PciParts, std::string> open_vfio(const config::PciSide& side,
                                              const config::LinkConfig& link, PciRole role,
                                              const PciFinder& find) {
  using Fail = tl::unexpected<std::string>;
  auto match = vfio::PciMatch::parse(side.device);
  if (!match) {
    return Fail(field(role, "device") + " = \"" + side.device +
                "\" is neither vendor:device nor a PCI address: write e.g. \"1af4:1110\" or "
                "\"0000:01:00.0\"");
  }
  vfio::PciAddress addr;
  if (match->address) {
    addr = *match->address;
  } else {
    auto found = find(*match);
    if (!found) return Fail(found.error());
    addr = *found;
  }
  auto target = vfio::check_vfio_ready(addr);
  if (!target) return Fail(target.error());
  auto dev = vfio::Device::open(*target);
  if (!dev) return Fail(dev.error());
  if (auto r = (*dev)->enable_bus_master(); !r) return Fail(addr.str() + ": " + r.error());

  auto keep = std::make_shared<VfioKeep>();
  keep->dev = std::move(*dev);
  std::map<unsigned, vfio::MappedBar> bars;
  // `size` bytes at `place` of its BAR, checked against the BAR.
  auto place_span = [&](const config::Place& place, std::uint64_t size,
                        const char* key) -> tl::expected<std::span<std::byte>, std::string> {
    if (!bars.count(place.bar)) {
      if (keep->dev->bar_size(place.bar) == 0) {
        return Fail(
            field(role, key) + " names BAR" + std::to_string(place.bar) + ", which " + addr.str() +
            " does not have as mappable memory: name the BAR that holds it (see lspci -vs " +
            addr.str() + ")");
      }
      auto m = keep->dev->map_bar(place.bar);
      if (!m) return Fail(field(role, key) + ": " + m.error());
      bars[place.bar] = *m;
    }
    const vfio::MappedBar& b = bars[place.bar];
    if (place.offset > b.size || size > b.size - place.offset) {
      return Fail(field(role, key) + ": offset " + hex(place.offset) + " + " + mib(size) +
                  " does not fit BAR" + std::to_string(place.bar) + " of " + addr.str() + " (" +
                  mib(b.size) + "): move it or make the window smaller in [link]");
    }
    return std::span<std::byte>(const_cast<std::byte*>(b.base) + place.offset, size);
  };

  // A window with memory = "wc": its BAR range mapped through sysfs resource<N>_wc, which the
  // kernel offers for a prefetchable BAR on architectures that can map PCI memory
  // write-combining (drivers/pci/pci-sysfs.c); VFIO's own mmap is uncached. Every other place in
  // that BAR goes through sysfs resource<N> too: the first VFIO mmap of a BAR claims it
  // (vfio-pci requests its region), and with CONFIG_IO_STRICT_DEVMEM a claim revokes the sysfs
  // mappings of the range (a later access is SIGBUS) and refuses new ones.
  std::set<unsigned> sysfs_bars;
  for (const config::Place* p : {&side.ep_window, side.rc_window ? &*side.rc_window : nullptr}) {
    if (p != nullptr && is_wc(*p)) sysfs_bars.insert(p->bar);
  }
  auto sysfs_span = [&](const config::Place& place, std::uint64_t size,
                        const char* key) -> tl::expected<std::span<std::byte>, std::string> {
    const std::uint64_t bar_size = keep->dev->bar_size(place.bar);
    if (place.offset > bar_size || size > bar_size - place.offset) {
      return Fail(field(role, key) + ": offset " + hex(place.offset) + " + " + mib(size) +
                  " does not fit BAR" + std::to_string(place.bar) + " of " + addr.str() + " (" +
                  mib(bar_size) + ")");
    }
    const std::string path = "/sys/bus/pci/devices/" + addr.str() + "/resource" +
                             std::to_string(place.bar) + (is_wc(place) ? "_wc" : "");
    const std::string why = "BAR" + std::to_string(place.bar) + " holds a memory = \"wc\" window";
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      return Fail(
          field(role, key) + ": " + why + ": cannot open " + path + ": " + std::strerror(err) +
          (err == ENOENT ? " (only a prefetchable BAR has resource<N>_wc): use memory = \"device\""
                         : ""));
    }
    const os::Fd owner(fd);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     static_cast<off_t>(place.offset));
    if (p == MAP_FAILED) {
      const int err = errno;
      return Fail(field(role, key) + ": " + why + ": cannot map " + path + ": " +
                  std::strerror(err) +
                  (err == EINVAL
                       ? " (the BAR is claimed, e.g. by another VFIO user): use memory = \"device\""
                       : ""));
    }
    keep->sysfs_maps.emplace_back(p, size);
    return std::span<std::byte>(static_cast<std::byte*>(p), size);
  };
  auto span_of = [&](const config::Place& place, std::uint64_t size, const char* key) {
    return sysfs_bars.count(place.bar) ? sysfs_span(place, size, key)
                                       : place_span(place, size, key);
  };

  PciParts parts;
  auto epw = span_of(side.ep_window, link.ep_window_size, "ep_window");
  if (!epw) return Fail(epw.error());
  parts.ep_window = *epw;
  parts.ep_access = memory_access(side.ep_window.memory, ring::MemoryType::kDevice);
  parts.rc_window_bus_addr = side.rc_window_bus_addr;
  std::string rc_how;
  if (side.rc_window) {
    auto rcw = span_of(*side.rc_window, link.rc_window_size, "rc_window");
    if (!rcw) return Fail(rcw.error());
    parts.rc_window = *rcw;
    parts.rc_access = memory_access(side.rc_window->memory, ring::MemoryType::kDevice);
    rc_how = "RC window in BAR" + std::to_string(side.rc_window->bar);
  } else if (role == PciRole::kHost) {
    void* mem = ::mmap(nullptr, link.rc_window_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      return Fail("cannot allocate the RC window (" + mib(link.rc_window_size) +
                  "): " + std::strerror(errno));
    keep->rc_mem = mem;
    keep->rc_size = link.rc_window_size;
    parts.rc_window = std::span<std::byte>(static_cast<std::byte*>(mem), link.rc_window_size);
    parts.rc_access = {ring::MemoryType::kCached, {}};  // our own RAM: VFIO DMA is cache-coherent
    if (auto r = keep->dev->map_dma(parts.rc_window, side.rc_window_bus_addr); !r) {
      return Fail("host.rc_window_bus_addr = " + hex(side.rc_window_bus_addr) + ": " + r.error());
    }
    rc_how = "RC window DMA-mapped at IOVA " + hex(side.rc_window_bus_addr);
  } else {
    return Fail(
        "ep.rc_window is missing: name the outbound window, e.g. rc_window = { bar = 2, offset = "
        "0x800000 }");
  }
  parts.description =
      addr.str() + " via VFIO (IOMMU group " + std::to_string(target->group) + "), " + rc_how;
  if (side.doorbell == config::DoorbellKind::kIvshmem) {
    auto regs = span_of(side.doorbell_regs, kIvshmemRegsSize, "doorbell_regs");
    if (!regs) return Fail(regs.error());
    auto ids = span_of(side.peer_ids, 4096, "peer_ids");
    if (!ids) return Fail(ids.error());
    auto irqs = keep->dev->enable_msi(side.vector + 1);
    if (!irqs)
      return Fail(addr.str() + ": " + irqs.error() + " (" + field(role, "vector") + " = " +
                  std::to_string(side.vector) + ")");
    auto irq = os::EventFd::adopt(std::move((*irqs)[side.vector]));
    if (!irq) return Fail(addr.str() + ": the MSI-X eventfd: " + irq.error().what);
    parts.irq = std::move(*irq);
    parts.doorbell = std::make_unique<IvshmemDoorbell>(regs->data(), *ids, role,
                                                       static_cast<std::uint16_t>(side.vector));
    auto id = parts.doorbell->publish();
    if (!id)
      return Fail(field(role, "doorbell") + " = \"ivshmem\": " + addr.str() + ": " +
                  id.error().what);
    parts.description += ", ivshmem peer " + std::to_string(*id) + ", " + keep->dev->irq_kind() +
                         " vector " + std::to_string(side.vector);
  } else {
    parts.description += ", no doorbell (polling)";
  }
  parts.description += memory_note(parts);
  parts.keep = std::move(keep);
  return parts;
}

tl::expected<PciParts, std::string> open_devmem(const config::PciSide& side,
                                                const config::LinkConfig& link,
                                                const std::string& dev_mem,
                                                const std::string& sysfs) {
  using Fail = tl::unexpected<std::string>;
  if (!side.rc_window) {
    return Fail(
        "ep.rc_window is missing: name the outbound window, e.g. rc_window = { phys = 0xfe800000 "
        "}");
  }
  // Device memory through O_SYNC (uncached: arm64 and x86 phys_mem_access_prot()); cached
  // memory types through a second descriptor without it, opened only when a window asks.
  auto open_mem = [&](bool sync) -> tl::expected<os::Fd, std::string> {
    const int fd = ::open(dev_mem.c_str(), O_RDWR | O_CLOEXEC | (sync ? O_SYNC : 0));
    if (fd < 0) {
      const int err = errno;
      return Fail("cannot open " + dev_mem + ": " + std::strerror(err) +
                  (err == EACCES || err == EPERM ? ": run vepf-ep as root (CAP_SYS_RAWIO)" : ""));
    }
    return os::Fd(fd);
  };
  auto sync_fd = open_mem(true);
  if (!sync_fd) return Fail(sync_fd.error());
  os::Fd cached_fd;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  auto keep = std::make_shared<DevmemKeep>();
  if (!side.device.empty()) {
    const auto address = vfio::PciAddress::parse(side.device);
    if (!address)
      return Fail("ep.device = \"" + side.device +
                  "\" is not a PCI address: write e.g. \"0000:00:05.0\"");
    auto enabled = vfio::EnabledFunction::enable(*address, sysfs);
    if (!enabled) return Fail("ep.device: " + enabled.error());
    keep->enabled.emplace(std::move(*enabled));
  }
  auto map = [&](const config::Place& place, std::uint64_t size,
                 const char* key) -> tl::expected<std::span<std::byte>, std::string> {
    if (!place.is_phys)
      return Fail(field(PciRole::kEp, key) +
                  " names a BAR: board.platform = \"devmem\" needs { phys = ADDRESS }");
    if (place.phys % page != 0) {
      return Fail("ep." + std::string(key) + ".phys = " + hex(place.phys) +
                  " is not aligned to the " + std::to_string(page) +
                  "-byte page: use a multiple of " + std::to_string(page));
    }
    const std::uint64_t len = (size + page - 1) / page * page;
    const bool cached = place.memory.type == config::MemoryType::kCached ||
                        place.memory.type == config::MemoryType::kCachedNoncoherent;
    if (cached && !cached_fd.valid()) {
      auto f = open_mem(false);
      if (!f) return Fail(f.error());
      cached_fd = std::move(*f);
    }
    const int fd = cached ? cached_fd.get() : sync_fd->get();
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     static_cast<off_t>(place.phys));
    if (p == MAP_FAILED) {
      const int err = errno;
      return Fail(
          "ep." + std::string(key) + ": cannot map " + mib(len) + " at physical " +
          hex(place.phys) + " through " + dev_mem + ": " + std::strerror(err) +
          (err == EPERM
               ? " (the kernel's STRICT_DEVMEM refuses RAM and ranges a driver holds: unbind it, "
                 "or reserve the range)"
               : ""));
    }
    keep->maps.emplace_back(p, len);
    return std::span<std::byte>(static_cast<std::byte*>(p), size);
  };
  PciParts parts;
  auto epw = map(side.ep_window, link.ep_window_size, "ep_window");
  if (!epw) return Fail(epw.error());
  auto rcw = map(*side.rc_window, link.rc_window_size, "rc_window");
  if (!rcw) return Fail(rcw.error());
  parts.ep_window = *epw;
  parts.rc_window = *rcw;
  parts.ep_access = memory_access(side.ep_window.memory, ring::MemoryType::kDevice);
  parts.rc_access = memory_access(side.rc_window->memory, ring::MemoryType::kDevice);
  parts.rc_window_bus_addr = side.rc_window_bus_addr;
  parts.description = "physical memory via " + dev_mem + ": EP window at " +
                      hex(side.ep_window.phys) + ", outbound window at " +
                      hex(side.rc_window->phys);
  if (!side.device.empty()) parts.description += ", behind " + side.device + " (enabled)";
  if (side.doorbell == config::DoorbellKind::kIvshmem) {
    auto regs = map(side.doorbell_regs, kIvshmemRegsSize, "doorbell_regs");
    if (!regs) return Fail(regs.error());
    auto ids = map(side.peer_ids, 4096, "peer_ids");
    if (!ids) return Fail(ids.error());
    parts.doorbell = std::make_unique<IvshmemDoorbell>(regs->data(), *ids, PciRole::kEp,
                                                       static_cast<std::uint16_t>(side.vector));
    auto id = parts.doorbell->publish();
    if (!id)
      return Fail("ep.doorbell = \"ivshmem\": the registers at " + hex(side.doorbell_regs.phys) +
                  ": " + id.error().what);
    parts.description +=
        ", ivshmem peer " + std::to_string(*id) + " (outgoing only; incoming by polling)";
  } else {
    parts.description += ", no doorbell (polling)";
  }
  parts.description += memory_note(parts);
  parts.keep = std::move(keep);
  return parts;
}

}  // namespace vepf::platform
