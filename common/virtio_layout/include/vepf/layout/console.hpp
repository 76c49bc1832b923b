#pragma once
// virtio console wire structures (device ID 3, VIRTIO 1.2 §5.3): the config layout, the control
// message and the resize payload, re-declared with Le<T> fields and checked against
// <linux/virtio_console.h>, whose event numbers and feature bits are used as they are.
//
// Queues (VIRTIO 1.2 §5.3.2), named from the driver's side: port 0 receiveq 0 / transmitq 1,
// control receiveq 2 / transmitq 3 (VIRTIO_CONSOLE_F_MULTIPORT only), port n >= 1 receiveq 2 + 2n /
// transmitq 3 + 2n. A device with max_nr_ports ports has 2 * (max_nr_ports + 1) queues.
//
// One extension, negotiated: kVepfConsoleFDriverSize (LAYOUT.md §6). The spec's window size
// travels device -> driver only (config cols/rows, VIRTIO_CONSOLE_RESIZE); with this bit the
// driver may also send VIRTIO_CONSOLE_RESIZE on the control transmitq, because on a PCIe link the
// person at the terminal usually sits at the RC (driver) and the shell runs on the EP (device).

#include <linux/virtio_console.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "vepf/layout/le.hpp"

namespace vepf::layout {

/// struct virtio_console_config (VIRTIO 1.2 §5.3.4): 12 bytes.
struct VirtioConsoleConfig {
  le16 cols;          // 0x00 port 0's columns (VIRTIO_CONSOLE_F_SIZE)
  le16 rows;          // 0x02 port 0's rows (VIRTIO_CONSOLE_F_SIZE)
  le32 max_nr_ports;  // 0x04 ports the device may add (VIRTIO_CONSOLE_F_MULTIPORT)
  le32 emerg_wr;      // 0x08 VIRTIO_CONSOLE_F_EMERG_WRITE (not offered)
};
static_assert(sizeof(VirtioConsoleConfig) == sizeof(virtio_console_config));
static_assert(offsetof(VirtioConsoleConfig, cols) == offsetof(virtio_console_config, cols));
static_assert(offsetof(VirtioConsoleConfig, rows) == offsetof(virtio_console_config, rows));
static_assert(offsetof(VirtioConsoleConfig, max_nr_ports) ==
              offsetof(virtio_console_config, max_nr_ports));
static_assert(offsetof(VirtioConsoleConfig, emerg_wr) == offsetof(virtio_console_config, emerg_wr));

/// struct virtio_console_control (VIRTIO 1.2 §5.3.6.2): 8 bytes, then the event's payload.
struct VirtioConsoleControl {
  le32 id;     // 0x00 port number
  le16 event;  // 0x04 VIRTIO_CONSOLE_* event
  le16 value;  // 0x06 event argument
};
static_assert(sizeof(VirtioConsoleControl) == sizeof(virtio_console_control));
static_assert(offsetof(VirtioConsoleControl, id) == offsetof(virtio_console_control, id));
static_assert(offsetof(VirtioConsoleControl, event) == offsetof(virtio_console_control, event));
static_assert(offsetof(VirtioConsoleControl, value) == offsetof(virtio_console_control, value));

/// struct virtio_console_resize (VIRTIO 1.2 §5.3.6.2), after a VIRTIO_CONSOLE_RESIZE header:
/// 4 bytes, columns first as the spec writes it (Linux read rows first until 2025; no uapi header
/// declares it).
struct VirtioConsoleResize {
  le16 cols;  // 0x00
  le16 rows;  // 0x02
};
static_assert(sizeof(VirtioConsoleResize) == 4);
static_assert(offsetof(VirtioConsoleResize, rows) == 2);

/// vepf extension (LAYOUT.md §6): the driver may send VIRTIO_CONSOLE_RESIZE {cols, rows} for a
/// port on the control transmitq. Bit 63 is in the device-type range (VIRTIO 1.2 §6: 50..127).
inline constexpr unsigned kVepfConsoleFDriverSize = 63;

/// Ports one device may declare here (max_nr_ports): 2 * 33 = 66 queues.
inline constexpr std::uint32_t kConsoleMaxPorts = 32;
/// Longest port name (VIRTIO_CONSOLE_PORT_NAME payload) either side accepts, bytes.
inline constexpr std::size_t kConsoleMaxNameLen = 63;
/// Every control buffer, both directions: header + the longest name.
inline constexpr std::size_t kConsoleCtrlBufSize = 128;
static_assert(sizeof(VirtioConsoleControl) + kConsoleMaxNameLen <= kConsoleCtrlBufSize);

inline constexpr std::uint16_t kConsoleCtrlRxQueue = 2, kConsoleCtrlTxQueue = 3;
/// The driver's receive queue of `port` (device -> driver).
constexpr std::uint16_t console_rx_queue(std::uint32_t port) noexcept {
  return static_cast<std::uint16_t>(port == 0 ? 0 : 2 + 2 * port);
}
/// The driver's transmit queue of `port` (driver -> device).
constexpr std::uint16_t console_tx_queue(std::uint32_t port) noexcept {
  return static_cast<std::uint16_t>(console_rx_queue(port) + 1);
}
constexpr std::uint16_t console_num_queues(std::uint32_t max_nr_ports) noexcept {
  return static_cast<std::uint16_t>(2 * (max_nr_ports + 1));
}

/// A port name both sides accept, and that is safe as a file name: 1..kConsoleMaxNameLen
/// characters of letters, digits, '-', '_' and '.', not "." or "..".
bool console_name_valid(std::string_view name) noexcept;

/// One control message, checked (cpu byte order).
struct ConsoleControlMsg {
  std::uint32_t id = 0;
  std::uint16_t event = 0;
  std::uint16_t value = 0;
  std::uint16_t cols = 0, rows = 0;  // VIRTIO_CONSOLE_RESIZE
  std::string_view name;             // VIRTIO_CONSOLE_PORT_NAME; views the caller's buffer
};

/// Checks a control message the peer wrote (`msg`: the bytes the buffer holds). Accepts the
/// events of <linux/virtio_console.h>; `id` must be < max_nr_ports except for
/// VIRTIO_CONSOLE_DEVICE_READY; RESIZE needs a 4-byte payload, PORT_NAME a name that
/// console_name_valid() accepts (a trailing NUL is allowed). Which events may travel in which
/// direction is the caller's rule. Errors: a short reason ("truncated", "unknown event", ...).
tl::expected<ConsoleControlMsg, const char*> parse_console_control(
    std::span<const std::byte> msg, std::uint32_t max_nr_ports) noexcept;

/// The control message header (and payload, if any) in wire order, for sending.
/// Returns the bytes written, 0 when `out` is too small.
std::size_t build_console_control(std::span<std::byte> out, std::uint32_t id, std::uint16_t event,
                                  std::uint16_t value,
                                  std::span<const std::byte> payload = {}) noexcept;
/// The same as a buffer of its own (at most kConsoleCtrlBufSize bytes; a longer payload is an
/// empty result).
std::vector<std::byte> console_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                                       std::span<const std::byte> payload = {});

}  // namespace vepf::layout
