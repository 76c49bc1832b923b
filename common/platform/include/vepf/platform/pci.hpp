#pragma once
// The PCI platforms: the link over a PCI function's memory (ARCHITECTURE.md §1).
//   EP window        a range of a BAR (vepf-host: through VFIO; vepf-ep: the same memory through
//                    VFIO on its side of the function, or through /dev/mem)
//   RC window        vepf-host: a range of a BAR (shared-memory functions such as QEMU's ivshmem),
//                    or its own memory mapped for the device with VFIO_IOMMU_MAP_DMA at the IOVA
//                    the layout publishes; vepf-ep: reached through its outbound window
//   doorbell RC->EP  and interrupt EP->RC: ivshmem-doorbell (a register write naming the peer and
//                    an MSI-X vector, taken as a VFIO eventfd), or none (both sides poll)
// Opening (open_vfio / open_devmem) maps exactly the places the board config names and checks
// each against what it is mapped from; the links themselves only see spans and descriptors, so
// they are tested over ordinary memory.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include <tl/expected.hpp>

#include "vepf/config/board_config.hpp"
#include "vepf/error.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/transport/link.hpp"
#include "vepf/vfio/pci.hpp"

namespace vepf::platform {

/// QEMU's ivshmem registers in BAR0 (QEMU docs/specs/ivshmem-spec.rst), 32-bit each.
inline constexpr std::size_t kIvshmemIvPosition =
    8;                                               // read-only: our peer ID (-1 without a server)
inline constexpr std::size_t kIvshmemDoorbell = 12;  // write-only: (peer ID << 16) | vector
inline constexpr std::size_t kIvshmemRegsSize = 16;  // bytes the doorbell needs of BAR0

/// The peer-ID page (board config `peer_ids`, one page of the shared memory): le32 at offset 0
/// (the EP's ID) and 4 (the host's), each kPeerIdValid | ID, 0 while not published. ivshmem
/// IDs follow the order in which the machines connected to the server, so they cannot tell the
/// roles apart: each side publishes its own.
inline constexpr std::uint32_t kPeerIdValid = 0x80000000u;
inline constexpr std::size_t kPeerIdsSize = 8;

enum class PciRole : std::uint8_t { kEp = 0, kHost = 1 };

/// Outgoing signals over ivshmem-doorbell. `regs` is BAR0 (at least kIvshmemRegsSize bytes),
/// `peer_ids` the peer-ID page (at least kPeerIdsSize bytes); both stay mapped while this lives.
class IvshmemDoorbell {
 public:
  IvshmemDoorbell(volatile std::byte* regs, std::span<std::byte> peer_ids, PciRole role,
                  std::uint16_t vector) noexcept
      : regs_(regs), ids_(peer_ids), role_(role), vector_(vector) {}
  /// Withdraws our ID, so that the peer stops ringing a machine that may be gone.
  ~IvshmemDoorbell();
  IvshmemDoorbell(const IvshmemDoorbell&) = delete;
  IvshmemDoorbell& operator=(const IvshmemDoorbell&) = delete;

  /// Reads IVPosition and publishes it in our word of the peer-ID page. Errors: kBadLayout
  /// when IVPosition is outside 0..65535 (ivshmem-plain, or no server behind the function).
  [[nodiscard]] Result<std::uint16_t> publish();
  /// Rings the peer's `vector`. Returns false (nothing rung) while the peer has not published
  /// its ID: its first signal is then found by polling.
  bool ring() noexcept;

 private:
  volatile std::uint32_t* word(std::span<std::byte> s, std::size_t off) const noexcept {
    return reinterpret_cast<volatile std::uint32_t*>(s.data() + off);
  }

  volatile std::byte* regs_;
  std::span<std::byte> ids_;
  PciRole role_;
  std::uint16_t vector_;
  bool published_ = false;
};

/// What one side of a PCI platform is made of. The spans stay valid while `keep` lives.
struct PciParts {
  /// The VFIO device or the /dev/mem mappings. First, so that it goes last: the doorbell's
  /// destructor still writes to the peer-ID page.
  std::shared_ptr<void> keep;
  std::span<std::byte> ep_window;  // link.ep_window_size bytes
  /// How each window's mapping may be accessed (LAYOUT.md §7): what the config names, else the
  /// safe default (device for BARs and /dev/mem ranges, cached for vepf-host's own DMA memory).
  ring::MemoryAccess ep_access{ring::MemoryType::kDevice, {}};
  ring::MemoryAccess rc_access{ring::MemoryType::kDevice, {}};
  /// Host: the RC window (link.rc_window_size bytes). EP: the outbound window, covering bus
  /// addresses [rc_window_bus_addr, + size).
  std::span<std::byte> rc_window;
  std::uint64_t rc_window_bus_addr = 0;
  std::unique_ptr<IvshmemDoorbell> doorbell;  // outgoing signals; null: none (the peer polls)
  os::EventFd irq;                            // incoming signals; invalid: none (poll)
  std::string description;                    // for logs: "0000:00:05.0 via VFIO, MSI-X vector 0"
};

/// The EP side of a PCI platform.
class PciEp final : public transport::DeviceLink {
 public:
  explicit PciEp(PciParts parts) noexcept;
  PciEp(const PciEp&) = delete;  // the windows point at counters_
  PciEp& operator=(const PciEp&) = delete;

  const std::string& description() const noexcept { return p_.description; }
  /// The doorbell eventfd, -1 without one (then poll).
  int doorbell_fd() const noexcept override { return p_.irq.valid() ? p_.irq.fd() : -1; }
  /// Reads and clears the doorbell count (0: none); counts signals_received when > 0.
  [[nodiscard]] Result<std::uint64_t> drain_doorbell() override;
  /// BAR memory: it stays after vepf-ep exits.
  bool window_outlives_process() const noexcept override { return true; }

  // DeviceLink
  ring::Window& ep_window() override { return ep_window_; }
  /// The RC window is [bus_addr, + size) of the outbound window.
  /// Errors: kOutOfRange when that range is not inside the outbound window.
  [[nodiscard]] Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr,
                                                       std::uint64_t size) override;
  void detach_rc_window() override { rc_window_ = ring::Window{}; }
  /// Rings the host (a no-op without a doorbell, or before the host published its ID).
  [[nodiscard]] Result<void> raise_interrupt() override;
  ring::LinkCounters& counters() override { return counters_; }

 private:
  PciParts p_;
  ring::LinkCounters counters_;
  ring::Window ep_window_;
  ring::Window rc_window_;
};

/// The RC side of a PCI platform.
class PciHost final : public transport::DriverLink {
 public:
  explicit PciHost(PciParts parts) noexcept;
  PciHost(const PciHost&) = delete;  // ep_window_ points at counters_
  PciHost& operator=(const PciHost&) = delete;

  const std::string& description() const noexcept { return p_.description; }
  /// The interrupt eventfd, -1 without one (then poll).
  int interrupt_fd() const noexcept override { return p_.irq.valid() ? p_.irq.fd() : -1; }
  /// Reads and clears the interrupt count (0: none); counts signals_received when > 0.
  [[nodiscard]] Result<std::uint64_t> drain_interrupt() override;

  // DriverLink
  ring::Window& ep_window() override { return ep_window_; }
  ring::Window& rc_window() override { return rc_window_; }
  std::uint64_t rc_window_bus_addr() const override { return p_.rc_window_bus_addr; }
  /// Rings the EP (a no-op without a doorbell, or before the EP published its ID).
  [[nodiscard]] Result<void> ring_doorbell() override;
  /// Waits on the interrupt eventfd; without one, sleeps min(timeout, 1 ms) and returns false
  /// (the caller polls). Errors: kSystem on a failed poll.
  [[nodiscard]] Result<bool> wait_interrupt(std::chrono::milliseconds timeout) override;
  ring::LinkCounters& counters() override { return counters_; }

 private:
  PciParts p_;
  ring::LinkCounters counters_;
  ring::Window ep_window_;
  ring::Window rc_window_;
};

/// Finds a function by vendor:device (libpci's vfio::find_function, or a refusal in builds
/// without libpci). Called only when the config names IDs rather than an address.
using PciFinder = std::function<tl::expected<vfio::PciAddress, std::string>(const vfio::PciMatch&)>;

/// Opens `side` ([host] or [ep] of a board with a PCI platform) through VFIO: finds the function,
/// checks what VFIO needs (check_vfio_ready), opens it, sets Bus Master Enable, maps the BARs the
/// places name and checks that each place fits its BAR; for vepf-host without a BAR RC window,
/// allocates it and maps it with VFIO_IOMMU_MAP_DMA at rc_window_bus_addr; with an ivshmem
/// doorbell, publishes our peer ID and takes MSI-X vector `side.vector` as an eventfd.
/// Errors: one line that names the config field or the function and says what to do.
tl::expected<PciParts, std::string> open_vfio(const config::PciSide& side,
                                              const config::LinkConfig& link, PciRole role,
                                              const PciFinder& find);

/// Opens vepf-ep's [ep] side of board.platform = "devmem": maps, through `dev_mem`, exactly the
/// physical ranges the config names (ep_window, rc_window = the outbound window, and with an
/// ivshmem doorbell its register page and the peer-ID page), each page-aligned; nothing else.
/// With `side.device` (a BDF) it first enables that function through `sysfs` (writes 1 to
/// SYSFS/bus/pci/devices/BDF/enable, and 0 when the parts are destroyed): arm64 kernels leave an
/// unbound function's memory decoding off, and its BARs then ignore every access. A function
/// bound to a driver is refused (IO_STRICT_DEVMEM would hide it).
/// Incoming signals: none (vepf-ep polls). Errors: one line naming the field and the fix.
tl::expected<PciParts, std::string> open_devmem(const config::PciSide& side,
                                                const config::LinkConfig& link,
                                                const std::string& dev_mem = "/dev/mem",
                                                const std::string& sysfs = "/sys");

}  // namespace vepf::platform
