#pragma once
// The board description: a plain struct parsed from board-configs/<board>.toml and validated once.
// Nothing outside board_config.cc sees TOML; main() loads this and wires objects from it.

#include <sched.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace vepf::config {

/// Most devices a board may declare. Mirrors vepf::layout::kMaxDevices (the EPF device table),
/// repeated here so that the config library does not depend on the layout library.
inline constexpr std::size_t kMaxDevices = 16;

/// vepf-ep's platform; vepf-host uses VFIO ([host]) for every platform but kLoopback.
enum class Platform { kLoopback, kVfio, kDevmem };
/// How each side signals the other on a PCI platform.
enum class DoorbellKind {
  kNone,     // no signals: both sides poll (ack waits take up to one poll period longer)
  kIvshmem,  // QEMU ivshmem-doorbell: Doorbell register (BAR0 + 12), MSI-X vector in
};
enum class DeviceType { kNet, kRpmsg, kBlock, kConsole };
enum class ConsoleBackend { kPty, kProgram, kSocket };
enum class BackendKind { kTap, kSeqpacket };
/// Who takes an rpmsg device's messages in vepf-ep / vepf-host.
enum class RpmsgServe {
  kChannels,     // the program: one unix socket per channel (announce.sock, <name>.sock)
  kApplication,  // one application's endpoints (libvepf-rpmsg, vepf_rpmsg_attach()) through
                 // <runtime_dir>/{ep,host}/device.sock
};

/// How a program hands a device to its OS.
struct Backend {
  BackendKind kind = BackendKind::kTap;
  std::string
      ifname;  // kTap: interface name (1..15 chars, IFNAMSIZ-1; letters, digits, '-', '_', '.')
  std::string path;  // kSeqpacket: unix SOCK_SEQPACKET socket path the program listens on (1..107)
  /// kSeqpacket: each message carries the 12-byte virtio_net_hdr_v1 in front of the frame, as a
  /// TAP with IFF_VNET_HDR does, so the client sees and may use the negotiated offloads.
  /// false: bare Ethernet frames (no offloads).
  bool vnet_hdr = false;
};

struct NetConfig {
  std::array<std::uint8_t, 6> mac{};  // VIRTIO_NET_F_MAC; unicast (bit 0 of the first octet clear)
  std::uint16_t mtu = 1500;           // VIRTIO_NET_F_MTU; 68..65535
  // Checksum and TCP segmentation offloads (CSUM, GUEST_CSUM, HOST_TSO4/6, GUEST_TSO4/6), offered
  // by vepf-ep and accepted by vepf-host where their backend carries the virtio_net_hdr (a TAP,
  // or a seqpacket socket with vnet_hdr = true). false masks them off.
  bool offloads = true;
};

/// type = "rpmsg": optional [device.rpmsg] table.
struct RpmsgConfig {
  /// Where the channel sockets go: <runtime_dir>/ep/ (vepf-ep) and <runtime_dir>/host/ (vepf-host),
  /// each with announce.sock and <name>.sock per channel the other side announced.
  /// Default "/run/vepf/rpmsg<N>" (N = device index).
  /// 1..kMaxRpmsgRuntimeDirLen characters, so that every socket path fits sun_path.
  std::string runtime_dir;
  /// Connections one side's channel sockets (announce.sock and every <name>.sock together) take
  /// at once, 1..4096; more are accepted and closed at once, counted (refused_full).
  std::uint32_t max_connections = 64;
  /// Keys ep_serve (vepf-ep) and host_serve (vepf-host): "channels" (default) or
  /// "application", each side on its own (see RpmsgServe).
  RpmsgServe ep_serve = RpmsgServe::kChannels;
  RpmsgServe host_serve = RpmsgServe::kChannels;
};
/// sun_path (107) - "/host/" - a 31-character channel name - ".sock".
inline constexpr std::size_t kMaxRpmsgRuntimeDirLen = 107 - 6 - 31 - 5;

/// type = "block": required [device.block] table.
struct BlockConfig {
  /// The EP's backing store: a regular file or a block device. A missing file is created
  /// (sparse) when `size` is given.
  std::string path;
  std::uint64_t size = 0;          // bytes; 0: use the existing file's size. Multiple of 512.
  bool read_only = false;          // VIRTIO_BLK_F_RO
  std::uint32_t block_size = 512;  // VIRTIO_BLK_F_BLK_SIZE, bytes: power of 2, 512..65536
  /// Largest range one DISCARD or WRITE_ZEROES segment may name (the config's
  /// max_discard_sectors / max_write_zeroes_sectors, VIRTIO 1.2 §5.2.4), bytes: a multiple of
  /// block_size, block_size..4 GiB - 64 KiB. A WRITE_ZEROES carries one segment: on a file
  /// system that cannot zero a range, this is what one request may make the EP write.
  std::uint64_t max_range_bytes = std::uint64_t{256} << 20;
  /// Where vepf-host serves the device as NBD (unix stream socket, 1..107 chars).
  /// Default "/run/vepf/block<N>.sock" (N = device index).
  std::string nbd_socket;
  /// NBD clients vepf-host serves at once on nbd_socket, 1..1024; more are closed at once.
  std::uint32_t max_nbd_clients = 16;
};

/// One [[device.console.port]]: where vepf-ep attaches a virtio-console port.
struct ConsolePort {
  /// VIRTIO_CONSOLE_PORT_NAME; empty: unnamed. 1..63 letters, digits, '-', '_', '.'. vepf-host
  /// links <host_dir>/<name> to the port's pty.
  std::string name;
  ConsoleBackend backend = ConsoleBackend::kPty;
  /// kPty: vepf-ep links this path to its pty (e.g. for agetty). Default
  /// "/run/vepf/console<N>-ep/port<P>".
  std::string link;
  /// kProgram: argv, run on the port's pty as its controlling terminal and run again when it exits.
  std::vector<std::string> program;
  /// kSocket: a unix stream socket vepf-ep listens on; one client at a time (1..107 chars).
  std::string socket;
};

/// type = "console": required [device.console] table.
struct ConsoleConfig {
  /// vepf-host's stable pty links: <host_dir>/port<P> and <host_dir>/<name>.
  /// Default "/run/vepf/console<N>" (N = device index).
  std::string host_dir;
  std::vector<ConsolePort> ports;  // 1..32 (max_nr_ports); port 0 is the console port
  /// Control messages (VIRTIO 1.2 §5.3.6.2) either side holds for a peer that takes none:
  /// vepf-ep for a driver that has not given buffers on control receiveq, vepf-host for a device
  /// that does not take its control transmitq. 8..4096 messages; past it new ones are dropped
  /// and counted.
  std::uint32_t max_control_queued = 256;
};

struct DeviceConfig {
  DeviceType type = DeviceType::kNet;
  std::uint16_t queue_size = 256;  // entries, power of 2, 2..32768
  NetConfig net;                   // type = "net" only
  RpmsgConfig rpmsg;               // type = "rpmsg" only
  BlockConfig block;               // type = "block" only
  ConsoleConfig console;           // type = "console" only
  Backend ep;                      // how vepf-ep presents it (device side; type = "net" only)
  Backend host;                    // how vepf-host presents it (driver side; type = "net" only)
};

struct LinkConfig {
  std::uint32_t ack_timeout_ms = 1000;     // 1..60000
  std::uint64_t ep_window_size = 4 << 20;  // bytes; multiple of 4096, 64 KiB..1 GiB
  std::uint64_t rc_window_size = 4 << 20;  // same rules
  /// Adaptive spin-then-sleep, both programs: after moving data, keep polling the rings this
  /// long (µs) before sleeping, with the peer's doorbells/interrupts left off meanwhile
  /// (ring/poll_group.hpp). 0: sleep as soon as the rings are empty. An idle link never spins.
  static constexpr std::uint32_t kMaxSpinUs = 100000;
  std::uint32_t spin_us = 20;  // 0..kMaxSpinUs
  /// Descriptors one descriptor chain may have (an indirect table's included), and the most
  /// entries an indirect table may have; the queue size caps it as well (VIRTIO 1.2
  /// §2.7.5.3.1). A chain past it breaks its queue (DEVICE_NEEDS_RESET) and is counted
  /// (`chain_limit_hits` in vepf-ep ctl list). Linux's drivers use at most seg_max + 2 (blk)
  /// and MAX_SKB_FRAGS + 2 (net).
  static constexpr std::uint32_t kMaxChainSegments = 32768;
  std::uint32_t max_chain_segments = 1024;  // 1..kMaxChainSegments
};

/// What a window is to the CPU (LAYOUT.md §7): "cached", "device", "wc", "cached-noncoherent".
/// Mirrors vepf::ring::MemoryType, repeated so that the config library does not depend on the
/// layout library.
enum class MemoryType { kCached, kDevice, kWriteCombining, kCachedNoncoherent };

/// `memory = "..."` and `widths = [...]` of a window: in a window place of [host]/[ep], or in
/// [loopback] for both windows.
struct WindowMemory {
  /// Unset: the platform's safe default (loopback: cached; a BAR through VFIO and a range
  /// through /dev/mem: device). VFIO BARs take "device" or "wc" (a prefetchable BAR mapped
  /// through sysfs resource<N>_wc); /dev/mem ranges "device" (O_SYNC), "cached" or
  /// "cached-noncoherent" (no O_SYNC: only for reserved RAM in the kernel's linear map).
  std::optional<MemoryType> type;
  /// The access widths the window's bus takes, bit k = 2^k bytes (widths = [1, 2, 4, 8]);
  /// always includes 4 (the layout's 32-bit fields). Only for "device" and "wc".
  std::uint8_t widths = 0xf;
};

struct LoopbackConfig {
  std::string socket;   // unix socket path: vepf-ep listens, vepf-host connects; 1..107 chars
  WindowMemory memory;  // both windows, both sides (a model: the memfds are cached memory)
};

/// A place in a PCI function's memory: `{ bar = N, offset = O }` in a BAR (VFIO), or
/// `{ phys = A }` a physical address (devmem). Sizes come from where the place is used.
/// The EP and RC window places may also say `memory = "..."` and `widths = [...]`.
struct Place {
  bool is_phys = false;
  std::uint8_t bar = 0;      // 0..5
  std::uint64_t offset = 0;  // bytes into the BAR; a multiple of 4096
  std::uint64_t phys = 0;    // physical address; a multiple of 4096
  WindowMemory memory;       // ep_window and rc_window only
};

/// [host] and [ep]: where one side finds its windows and signals on a PCI platform.
/// vepf-host always uses BAR places; vepf-ep uses BAR places with board.platform = "vfio" and
/// phys places with "devmem" (vepf-ep maps nothing else through /dev/mem).
struct PciSide {
  /// VFIO: the PCI function, "VVVV:DDDD" (vendor:device, hex; the first in bus order) or a
  /// BDF "DDDD:BB:DD.F". devmem (optional, BDF only): the function whose BARs hold the phys
  /// ranges; vepf-ep enables it through sysfs first (arm64 kernels leave an unbound function's
  /// memory decoding off, and BAR accesses then vanish). Empty: nothing to enable.
  std::string device;
  Place ep_window;  // the EP window (link.ep_window_size bytes)
  /// Host: the RC window inside a BAR (shared-memory functions such as ivshmem), when set;
  /// otherwise vepf-host allocates it and maps it for the device with VFIO_IOMMU_MAP_DMA.
  /// EP: the outbound window through which it reaches the RC window (required).
  std::optional<Place> rc_window;
  /// The bus address (IOVA) of the RC window as the EP reaches it: published by vepf-host in the
  /// layout; vepf-ep's outbound window covers [rc_window_bus_addr, + link.rc_window_size).
  std::uint64_t rc_window_bus_addr = 0;
  DoorbellKind doorbell = DoorbellKind::kNone;
  Place doorbell_regs;  // kIvshmem: the ivshmem register BAR (IVPosition +8, Doorbell +12)
  Place peer_ids;  // kIvshmem: one page of shared memory where both sides publish their peer ID
  std::uint32_t vector = 0;  // kIvshmem: the MSI-X vector that carries signals (both ways)
};

/// One GPIO line: `{ chip = "gpiochip0", line = 5, active_low = false }`.
struct GpioLine {
  std::string chip;        // "gpiochipN", "/dev/gpiochipN" or "N" (libgpiod's chip lookup)
  std::uint32_t line = 0;  // offset on the chip
  bool active_low = false;
};

/// [gpio]: vepf-ep's sideband lines, driven through libgpiod (common/gpio).
struct GpioConfig {
  std::optional<GpioLine> ready;  // output: active while vepf-ep serves the EP window
  std::optional<GpioLine> reset;  // input: an active-going edge resets every device (a new epoch)
};

/// [control], optional: who may use vepf-ep's control socket (`vepf-ep ctl`), whose `add` can
/// open files and start programs.
struct ControlConfig {
  /// Besides root and vepf-ep's own user, members of this group (SO_PEERCRED / SO_PEERGROUPS);
  /// empty: nobody else. A name of /etc/group, resolved when vepf-ep starts.
  std::string group;
  std::uint32_t max_clients = 16;  // connections at once, 1..1024; more are refused
  /// Where `ctl add` may make vepf-ep create or open files (block path, sockets, rpmsg
  /// runtime_dir, pty links) and start programs (a console port's program[0], an absolute path):
  /// absolute directories, 1..32 of them; symbolic links are resolved before the check. The
  /// board config itself is not limited by them.
  std::vector<std::string> allowed_dirs = {"/run/vepf", "/var/lib/vepf"};
};

/// [affinity], optional: the CPUs each program runs on (sched_setaffinity(2), applied at start
/// to the whole process before it starts any thread; threads inherit it). Empty: wherever the
/// scheduler puts it (or what taskset/cgroups already set).
/// On one machine (loopback), both programs on one CPU spare the link's every signal a wake-up
/// across CPUs; on a VM whose vCPUs the host moves between cores that is the costly part of a
/// frame (README.md, Performance). On a real board each side names CPUs of its own machine.
struct AffinityConfig {
  /// CPU numbers as the kernel counts them (/sys/devices/system/cpu/cpuN), 0..kMaxCpu,
  /// at least one, no repeats.
  static constexpr std::uint32_t kMaxCpu = CPU_SETSIZE - 1;  // glibc <sched.h>: 1023
  std::vector<std::uint32_t> ep;                             // vepf-ep
  std::vector<std::uint32_t> host;                           // vepf-host
};

/// What the EP controller lets a function do with one BAR (struct pci_epc_features' bar[],
/// Linux include/linux/pci-epc.h).
enum class BarKind {
  kProgrammable,  // any power-of-2 size the function asks for (BAR_PROGRAMMABLE)
  kFixed,         // one size only (BAR_FIXED, fixed_size)
  kReserved,      // used by the controller itself, not by functions (BAR_RESERVED)
};
/// The endpoint function scripts/ep-configfs.sh creates under /sys/kernel/config/pci_ep.
enum class EpfKind {
  kVntb,  // pci_epf_vntb: the RC sees an NTB function; on the EP a virtual PCI device whose
          // BARs are the memory windows (vepf-ep maps it through VFIO, board.platform = "vfio")
  kTest,  // pci_epf_test: a function of plain BARs (vepf-ep maps their memory through /dev/mem,
          // board.platform = "devmem")
};

struct SocBar {
  BarKind kind = BarKind::kProgrammable;
  std::uint64_t fixed_size = 0;  // kFixed: bytes, a power of 2
  bool only_64bit = false;       // 64-bit only: the BAR takes the next BAR as its upper half
};

/// [soc], optional on a PCI platform: the EP controller of a real SoC, as its Linux EPC driver
/// (struct pci_epc_features) and reference manual describe it. The reader checks [link], [host]
/// and [ep] against it (BARs, alignment, outbound window, memory types); scripts/ep-configfs.sh
/// takes `epc` and `function` from it.
struct SocConfig {
  bool present = false;
  std::string name;  // the SoC, e.g. "Rockchip RK3588"
  std::string epc;   // the EP controller's name under /sys/class/pci_epc, e.g. "a40000000.pcie-ep"
  EpfKind function = EpfKind::kVntb;
  std::array<SocBar, 6> bars{};  // BARs the file does not name are kProgrammable
  /// Inbound address alignment (pci_epc_features.align): the memory behind a BAR starts at a
  /// multiple of this (bytes, a power of 2, 256..1 GiB). 4096 when the file gives none.
  std::uint64_t bar_align = 4096;
  /// Outbound: PCIe address space the controller maps RC memory through (bytes; 0: not stated)
  /// and the alignment of one mapping (the iATU's region granularity, bytes, a power of 2).
  std::uint64_t outbound_size = 0;
  std::uint64_t outbound_align = 4096;
  bool msi = false, msix = false;  // interrupts the function may raise towards the RC
  /// Inbound writes snoop the EP CPU's caches (the controller's DT node is dma-coherent): the EP
  /// window may be "cached" on the EP side; otherwise it may not.
  bool coherent = false;
  std::string dma;  // the controller's DMA engine, e.g. "dw-edma"; "none" (not used by vepf yet)
};

struct BoardConfig {
  std::string name;
  Platform platform = Platform::kLoopback;
  LinkConfig link;
  LoopbackConfig loopback;            // board.platform = "loopback" only
  PciSide host;                       // [host]: every other platform
  PciSide ep;                         // [ep]: every other platform
  SocConfig soc;                      // [soc], optional, PCI platforms only
  GpioConfig gpio;                    // [gpio], optional
  ControlConfig control;              // [control], optional
  AffinityConfig affinity;            // [affinity], optional
  std::vector<DeviceConfig> devices;  // 1..kMaxDevices entries
};

/// A human-readable message: "<file>: <toml path> <what is wrong>: <what to write instead>".
struct ConfigError {
  std::string message;
};

/// Parses and validates TOML text; `source` names the file in messages. Never throws.
/// Returns the first problem found (unknown keys, missing keys, types, ranges, duplicates).
tl::expected<BoardConfig, ConfigError> parse_board_config(std::string_view toml,
                                                          std::string_view source);

/// Reads and parses a file. Never throws. A missing or unreadable file gives a ConfigError
/// naming the path and the errno text.
tl::expected<BoardConfig, ConfigError> load_board_config(const std::filesystem::path& file);

/// Parses one device given as the keys of a [[device]] table, e.g. from `vepf-ep ctl add`:
/// `type = "net"` / `queue_size = 256` / `net = { mac = "02:00:00:00:00:02" }` / `ep = {...}`.
/// `index` names it in messages ("device[3]") and picks default interface names. Never throws.
tl::expected<DeviceConfig, ConfigError> parse_device_config(std::string_view toml,
                                                            std::string_view source,
                                                            std::size_t index);

/// For `ctl add`: whether every file `d` makes vepf-ep create or open (block path, seqpacket
/// socket, console sockets and pty links, rpmsg runtime_dir) and every program it starts (a
/// console port's program[0], which must be absolute) lies under one of `allowed_dirs`, after
/// resolving symbolic links of the parts that exist. Returns a ConfigError naming the field,
/// the directories and the fix, or nothing. Never throws.
std::optional<ConfigError> check_allowed_dirs(const DeviceConfig& d,
                                              const std::vector<std::string>& allowed_dirs,
                                              std::string_view where);

/// The TOML spelling of each enum value ("loopback", "vfio", "devmem", "none", "ivshmem", "net",
/// "rpmsg", "block", "console", "tap", "seqpacket", "pty", "program", "socket", "cached", "device",
/// "wc", "cached-noncoherent", "channels", "application", and those below).
std::string_view to_string(Platform platform);
std::string_view to_string(DoorbellKind kind);
std::string_view to_string(DeviceType type);
std::string_view to_string(BackendKind kind);
std::string_view to_string(RpmsgServe serve);
std::string_view to_string(ConsoleBackend backend);
std::string_view to_string(MemoryType type);
std::string_view to_string(BarKind kind);  // "programmable", "fixed", "reserved"
std::string_view to_string(EpfKind kind);  // "pci_epf_vntb", "pci_epf_test"

/// A readable summary of a valid board config for `vepf-ep --check-config` / `vepf-host
/// --check-config`: the platform, the windows and where each side finds them, the SoC's
/// constraints they were checked against, the devices. Several lines, each ending in '\n'.
std::string describe(const BoardConfig& config);

/// What scripts/ep-configfs.sh writes into /sys/kernel/config/pci_ep for a board with [soc], as
/// shell assignments (`vepf-ep --check-config FILE --configfs-env`), one per line, every value
/// a checked token (no quoting needed):
///   VEPF_EPC, VEPF_EPF         soc.epc, soc.function ("pci_epf_vntb" / "pci_epf_test")
///   VEPF_VENDOR_ID, VEPF_DEVICE_ID   the function's IDs, from host.device (vendor:device), hex
///   VEPF_MSI, VEPF_MSIX        interrupts to ask for (msi_interrupts, msix_interrupts; 0: none)
///   VEPF_BAR, VEPF_BAR_SIZE    the BAR the RC reaches the EP window through (host.ep_window.bar)
///                              and its size in bytes (a power of 2 holding offset + window,
///                              at least soc.bar_align; a fixed BAR's own size), hex
///   pci_epf_vntb only: VEPF_CTRL_BAR, VEPF_DB_BAR (the first two other BARs the controller
///   gives functions), VEPF_VNTB_VID, VEPF_VNTB_PID (the virtual device's IDs, from ep.device)
/// Errors (a message naming the field): no [soc], host.device or ep.device not vendor:device,
/// no BARs left for the vNTB control and doorbell registers.
tl::expected<std::string, ConfigError> configfs_env(const BoardConfig& config);

}  // namespace vepf::config
