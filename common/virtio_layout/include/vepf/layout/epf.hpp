#pragma once
// The "virtio-pci-epf" control region, layout version 1. Specified in
// common/virtio_layout/LAYOUT.md; every offset here is checked by a static_assert against that
// document.
//
// The control region sits at offset 0 of the EP window. Device-written and driver-written fields
// never share a 64-byte line (one writer per line). Nothing is selected: devices and queues are
// arrays. State changes are requests (req_seq) that the device acknowledges (ack_seq).

#include <cstddef>
#include <cstdint>

#include "vepf/layout/le.hpp"

namespace vepf::layout {

inline constexpr std::size_t kLine = 64;                // bytes; one writer per line
inline constexpr std::uint32_t kEpfMagic = 0x46504556;  // "VEPF" as little-endian bytes
inline constexpr std::uint16_t kEpfVersion = 1;

/// Limits of layout version 1.
inline constexpr std::uint32_t kMaxDevices = 16;          // device table slots
inline constexpr std::uint32_t kMaxQueuesPerDevice = 16;  // queue blocks per device
inline constexpr std::uint32_t kConfigSpaceSize = 256;    // bytes of device config per device

/// Window ids of link addresses (LAYOUT.md §4). 0 is never a valid window: link address 0 is null.
enum class WindowId : std::uint8_t { kEp = 1, kRc = 2 };
inline constexpr unsigned kLinkAddrWindowShift = 56;
inline constexpr std::uint64_t kLinkAddrOffsetMask = (std::uint64_t{1} << kLinkAddrWindowShift) - 1;
constexpr std::uint64_t link_addr(WindowId w, std::uint64_t offset) noexcept {
  return (std::uint64_t{static_cast<std::uint8_t>(w)} << kLinkAddrWindowShift) |
         (offset & kLinkAddrOffsetMask);
}
constexpr std::uint8_t link_addr_window(std::uint64_t a) noexcept {
  return static_cast<std::uint8_t>(a >> kLinkAddrWindowShift);
}
constexpr std::uint64_t link_addr_offset(std::uint64_t a) noexcept {
  return a & kLinkAddrOffsetMask;
}

/// Request opcodes written to req_op (LAYOUT.md §3).
enum class LinkOp : std::uint32_t { kNone = 0, kAttach = 1, kDetach = 2 };
enum class DeviceOp : std::uint32_t {
  kNone = 0,
  kSetStatus = 1,    // arg0 = new device status; 0 resets the device (VIRTIO 1.2 §2.1)
  kQueueEnable = 2,  // arg0 = queue index; reads the queue's driver line
  kQueueReset = 3,   // arg0 = queue index
};
/// ack_result values (LAYOUT.md §3): 0 is success; others name what the device refused.
enum class AckResult : std::uint32_t {
  kOk = 0,
  kBadOp = 1,        // unknown opcode or argument out of range
  kBadState = 2,     // not allowed in the current device status
  kBadFeatures = 3,  // driver features not a subset of device features, or no VERSION_1
  kBadQueue = 4,     // queue size or ring addresses invalid (outside windows, misaligned)
  kNoLink = 5,       // the RC window is not attached
};

/// 0x000: header, device-written (LAYOUT.md §2.1).
struct EpfHeader {
  le32 magic{};                // 0x00 kEpfMagic
  le16 version{};              // 0x04 kEpfVersion
  le16 max_devices{};          // 0x06 device table slots
  le32 epoch{};                // 0x08 non-zero; new value on every firmware start
  le32 region_size{};          // 0x0c bytes of the control region (start of driver-managed space)
  le32 device_table_off{};     // 0x10
  le32 device_stride{};        // 0x14 bytes per device slot
  le16 max_queues{};           // 0x18 queue blocks per device slot
  le16 queue_stride{};         // 0x1a bytes per queue block
  le32 table_generation{};     // 0x1c bumped whenever a slot changes (device added/removed)
  le32 ep_window_size_lo{};    // 0x20 bytes of the EP window
  le32 ep_window_size_hi{};    // 0x24
  le32 link_ack_seq{};         // 0x28 last LinkDriverLine.req_seq handled
  le32 link_ack_result{};      // 0x2c AckResult
  le32 doorbell_off{};         // 0x30 offset of the doorbell word in the EP window
  le32 mailbox_off{};          // 0x34 offset of the RcMailbox in the RC window
  std::uint8_t reserved[8]{};  // 0x38
};
static_assert(sizeof(EpfHeader) == kLine);
static_assert(offsetof(EpfHeader, epoch) == 0x08 && offsetof(EpfHeader, table_generation) == 0x1c);
static_assert(offsetof(EpfHeader, link_ack_seq) == 0x28 &&
              offsetof(EpfHeader, mailbox_off) == 0x34);

/// 0x040: link requests, driver-written (LAYOUT.md §2.2). kAttach publishes the RC window.
struct LinkDriverLine {
  le32 req_seq{};               // 0x00 written last; a new value is a new request
  le32 req_op{};                // 0x04 LinkOp
  le32 rc_window_addr_lo{};     // 0x08 bus address (IOVA) of the RC window, as the EP's outbound
  le32 rc_window_addr_hi{};     // 0x0c window must target it
  le32 rc_window_size_lo{};     // 0x10 bytes
  le32 rc_window_size_hi{};     // 0x14
  le32 driver_epoch{};          // 0x18 the EpfHeader.epoch the driver validated
  std::uint8_t reserved[36]{};  // 0x1c
};
static_assert(sizeof(LinkDriverLine) == kLine);
static_assert(offsetof(LinkDriverLine, rc_window_addr_lo) == 0x08 &&
              offsetof(LinkDriverLine, driver_epoch) == 0x18);

/// 0x080: doorbell, driver-written (LAYOUT.md §2.3). The driver writes (device << 16 | queue)
/// and then raises the platform doorbell; the device scans every enabled queue on a doorbell.
struct DoorbellLine {
  le32 doorbell{};  // 0x00
  std::uint8_t reserved[60]{};
};
static_assert(sizeof(DoorbellLine) == kLine);

/// Per device slot, device-written (LAYOUT.md §2.4).
struct DeviceLine {
  le32 device_id{};          // 0x00 virtio device ID (<linux/virtio_ids.h>); 0 = empty slot
  le16 num_queues{};         // 0x04
  le16 max_queue_size{};     // 0x06 entries
  le32 device_feature_lo{};  // 0x08 feature bits 0..31
  le32 device_feature_hi{};  // 0x0c feature bits 32..63
  le32 status{};             // 0x10 device status as the device holds it (incl. DEVICE_NEEDS_RESET)
  le32 ack_seq{};            // 0x14 last DriverLine.req_seq handled
  le32 ack_result{};         // 0x18 AckResult
  le32 ack_value{};          // 0x1c e.g. the device status after a kSetStatus
  le32 config_generation{};  // 0x20 VIRTIO 1.2 §4.1.4.3 config_generation
  le32 config_size{};        // 0x24 bytes of valid config
  le32 slot_generation{};    // 0x28 bumped when the slot gets another device
  le32 broken_queues{};      // 0x2c bit q set: queue q is broken (peer broke a ring rule)
  std::uint8_t reserved[16]{};  // 0x30
};
static_assert(sizeof(DeviceLine) == kLine);
static_assert(offsetof(DeviceLine, status) == 0x10 && offsetof(DeviceLine, ack_seq) == 0x14);
static_assert(offsetof(DeviceLine, config_generation) == 0x20 &&
              offsetof(DeviceLine, broken_queues) == 0x2c);

/// Per device slot, driver-written (LAYOUT.md §2.4).
struct DriverLine {
  le32 req_seq{};               // 0x00 written last
  le32 req_op{};                // 0x04 DeviceOp
  le32 req_arg0{};              // 0x08
  le32 reserved0{};             // 0x0c
  le32 driver_feature_lo{};     // 0x10 read by the device on kSetStatus(FEATURES_OK)
  le32 driver_feature_hi{};     // 0x14
  std::uint8_t reserved[40]{};  // 0x18
};
static_assert(sizeof(DriverLine) == kLine);
static_assert(offsetof(DriverLine, req_arg0) == 0x08 &&
              offsetof(DriverLine, driver_feature_lo) == 0x10);

/// Per queue, driver-written (LAYOUT.md §2.5). Addresses are link addresses, written lo then hi;
/// the kQueueEnable request commits them.
struct QueueDriverLine {
  le16 queue_size{};            // 0x00 entries, power of 2, <= DeviceLine.max_queue_size
  le16 reserved0{};             // 0x02
  le32 reserved1{};             // 0x04
  le32 queue_desc_lo{};         // 0x08 descriptor table (driver writes, device reads: EP window)
  le32 queue_desc_hi{};         // 0x0c
  le32 queue_driver_lo{};       // 0x10 avail ring (EP window)
  le32 queue_driver_hi{};       // 0x14
  le32 queue_device_lo{};       // 0x18 used ring (device writes, driver reads: RC window)
  le32 queue_device_hi{};       // 0x1c
  std::uint8_t reserved[32]{};  // 0x20
};
static_assert(sizeof(QueueDriverLine) == kLine);
static_assert(offsetof(QueueDriverLine, queue_desc_lo) == 0x08 &&
              offsetof(QueueDriverLine, queue_device_hi) == 0x1c);

/// Per queue, device-written (LAYOUT.md §2.5).
struct QueueDeviceLine {
  le16 enabled{};       // 0x00 1 after a successful kQueueEnable
  le16 reserved0{};     // 0x02
  le32 reserved[15]{};  // 0x04
};
static_assert(sizeof(QueueDeviceLine) == kLine);

struct QueueBlock {
  QueueDriverLine driver;  // 0x00
  QueueDeviceLine device;  // 0x40
};
static_assert(sizeof(QueueBlock) == 2 * kLine);

/// One device slot of the device table (LAYOUT.md §2.4).
struct DeviceSlot {
  DeviceLine device;                        // 0x000
  DriverLine driver;                        // 0x040
  std::uint8_t reserved[2 * kLine]{};       // 0x080
  std::uint8_t config[kConfigSpaceSize]{};  // 0x100 device-written config space
  QueueBlock queues[kMaxQueuesPerDevice];   // 0x200
};
static_assert(offsetof(DeviceSlot, driver) == 0x40 && offsetof(DeviceSlot, config) == 0x100);
static_assert(offsetof(DeviceSlot, queues) == 0x200);
static_assert(sizeof(DeviceSlot) == 0xa00);

/// The whole control region (LAYOUT.md §2).
struct ControlRegion {
  EpfHeader header;                 // 0x000
  LinkDriverLine link;              // 0x040
  DoorbellLine doorbell;            // 0x080
  std::uint8_t reserved[kLine]{};   // 0x0c0
  DeviceSlot devices[kMaxDevices];  // 0x100
};
static_assert(offsetof(ControlRegion, link) == 0x40 && offsetof(ControlRegion, doorbell) == 0x80);
static_assert(offsetof(ControlRegion, devices) == 0x100);
static_assert(sizeof(ControlRegion) == 0xa100);

/// Start of driver-managed space in the EP window: the control region rounded up to 4 KiB.
inline constexpr std::size_t kControlRegionSize =
    (sizeof(ControlRegion) + 4095) & ~std::size_t{4095};
static_assert(kControlRegionSize == 0xb000);

/// Offsets of a slot's and a queue block's parts inside the EP window.
constexpr std::size_t device_slot_off(std::uint32_t dev) noexcept {
  return offsetof(ControlRegion, devices) + std::size_t{dev} * sizeof(DeviceSlot);
}
constexpr std::size_t queue_block_off(std::uint32_t dev, std::uint32_t q) noexcept {
  return device_slot_off(dev) + offsetof(DeviceSlot, queues) + std::size_t{q} * sizeof(QueueBlock);
}

/// EP-window offsets of fields: header_off(offsetof(EpfHeader, epoch)) and so on.
constexpr std::size_t header_off(std::size_t field) noexcept {
  return offsetof(ControlRegion, header) + field;
}
constexpr std::size_t link_line_off(std::size_t field) noexcept {
  return offsetof(ControlRegion, link) + field;
}
constexpr std::size_t device_line_off(std::uint32_t dev, std::size_t field) noexcept {
  return device_slot_off(dev) + offsetof(DeviceSlot, device) + field;
}
constexpr std::size_t driver_line_off(std::uint32_t dev, std::size_t field) noexcept {
  return device_slot_off(dev) + offsetof(DeviceSlot, driver) + field;
}

/// RC window offset 0: the mailbox, device-written, driver-read (LAYOUT.md §2.6). Lets the driver
/// learn about control-path events with a local read when an interrupt arrives.
struct RcMailbox {
  le32 event_seq{};  // 0x00 bumped after any ack, status or config change, table change
  le32 epoch{};      // 0x04 copy of EpfHeader.epoch
  le32 heartbeat{};  // 0x08 bumped by the device every kHeartbeatPeriod while attached
  std::uint8_t reserved[52]{};
};
static_assert(offsetof(RcMailbox, heartbeat) == 0x08);
/// How often the device bumps RcMailbox.heartbeat; the driver reads the EP's header (non-posted)
/// only after kHeartbeatMisses periods without a beat (LAYOUT.md §2.6).
inline constexpr std::uint32_t kHeartbeatPeriodMs = 100;
inline constexpr std::uint32_t kHeartbeatMisses = 5;
static_assert(sizeof(RcMailbox) == kLine);
/// Start of driver-managed space in the RC window.
inline constexpr std::size_t kRcMailboxSize = 4096;

}  // namespace vepf::layout
