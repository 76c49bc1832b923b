#pragma once
// virtio rpmsg wire structures (device ID 7, VIRTIO_ID_RPMSG). The virtio spec reserves the ID
// but does not describe the device; the format is the one of Linux drivers/rpmsg/
// virtio_rpmsg_bus.c (struct rpmsg_hdr, struct rpmsg_ns_msg, VIRTIO_RPMSG_F_NS, RPMSG_NS_ADDR,
// MAX_RPMSG_BUF_SIZE) and drivers/rpmsg/rpmsg_ns.c (RPMSG_NS_CREATE / RPMSG_NS_DESTROY), which
// no uapi header carries: they are declared here with Le<T> fields and checked by offset.
//
// Queues as Linux: 0 = the driver's receive queue (device -> driver), 1 = the driver's transmit
// queue (driver -> device). Every buffer is kRpmsgBufSize bytes: a header then the payload.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "vepf/layout/le.hpp"

namespace vepf::layout {

/// Feature bit 0: the remote (device) sends name-service announcements (virtio_rpmsg_bus.c
/// VIRTIO_RPMSG_F_NS). Not in <linux/virtio_ids.h> nor any uapi header.
inline constexpr unsigned kVirtioRpmsgFNs = 0;

/// struct rpmsg_hdr (virtio_rpmsg_bus.c), in front of every message: 16 bytes.
struct RpmsgHdr {
  le32 src{};       // 0x00 sender's address
  le32 dst{};       // 0x04 recipient's address
  le32 reserved{};  // 0x08
  le16 len{};       // 0x0c payload bytes after the header
  le16 flags{};     // 0x0e
};
static_assert(sizeof(RpmsgHdr) == 16);
static_assert(offsetof(RpmsgHdr, src) == 0x00);
static_assert(offsetof(RpmsgHdr, dst) == 0x04);
static_assert(offsetof(RpmsgHdr, reserved) == 0x08);
static_assert(offsetof(RpmsgHdr, len) == 0x0c);
static_assert(offsetof(RpmsgHdr, flags) == 0x0e);
inline constexpr std::size_t kRpmsgHdrSize = sizeof(RpmsgHdr);

/// RPMSG_NAME_SIZE (include/linux/rpmsg.h): channel names are 1..31 characters plus a NUL.
inline constexpr std::size_t kRpmsgNameSize = 32;

/// struct rpmsg_ns_msg (rpmsg_ns.c): the payload of a name-service message to kRpmsgNsAddr.
struct RpmsgNsMsg {
  char name[kRpmsgNameSize]{};  // 0x00 NUL-terminated channel name
  le32 addr{};                  // 0x20 the announcer's address for that channel
  le32 flags{};                 // 0x24 kRpmsgNsCreate or kRpmsgNsDestroy
};
static_assert(sizeof(RpmsgNsMsg) == 40);
static_assert(offsetof(RpmsgNsMsg, name) == 0x00);
static_assert(offsetof(RpmsgNsMsg, addr) == 0x20);
static_assert(offsetof(RpmsgNsMsg, flags) == 0x24);

/// enum rpmsg_ns_flags (rpmsg_ns.c).
inline constexpr std::uint32_t kRpmsgNsCreate = 0, kRpmsgNsDestroy = 1;
/// RPMSG_NS_ADDR: the name service's well-known address.
inline constexpr std::uint32_t kRpmsgNsAddr = 53;
/// RPMSG_RESERVED_ADDRESSES: dynamically allocated addresses start here.
inline constexpr std::uint32_t kRpmsgFirstDynamicAddr = 1024;

/// MAX_RPMSG_BUF_SIZE: every buffer, both directions.
inline constexpr std::size_t kRpmsgBufSize = 512;
/// Largest payload of one message.
inline constexpr std::size_t kRpmsgMaxPayload = kRpmsgBufSize - kRpmsgHdrSize;
static_assert(kRpmsgMaxPayload == 496);

/// Queue indices, as virtio_rpmsg_bus.c names them from the driver's side.
inline constexpr std::uint16_t kRpmsgRxQueue = 0, kRpmsgTxQueue = 1;

/// A channel name both sides accept, and that is safe as a file name: 1..31 characters of
/// letters, digits, '-', '_' and '.', not "." or "..".
constexpr bool rpmsg_name_valid(const char* s, std::size_t n) noexcept {
  if (n == 0 || n >= kRpmsgNameSize) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

/// One message as received from the peer, split and length-checked.
struct RpmsgMsg {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::span<const std::byte> payload;  // hdr.len bytes after the header
};

/// Splits a message the peer wrote (header + payload) after checking it: at least a header,
/// and hdr.len no longer than what follows it. Returns nullopt for a malformed message. The
/// one parser of rpmsg headers, shared by the device and the driver.
inline std::optional<RpmsgMsg> parse_rpmsg(std::span<const std::byte> msg) noexcept {
  if (msg.size() < kRpmsgHdrSize) return std::nullopt;
  RpmsgHdr hdr;
  std::memcpy(&hdr, msg.data(), sizeof(hdr));
  const std::size_t len = hdr.len.to_cpu();
  if (len > msg.size() - kRpmsgHdrSize) return std::nullopt;
  return RpmsgMsg{hdr.src.to_cpu(), hdr.dst.to_cpu(), msg.subspan(kRpmsgHdrSize, len)};
}

}  // namespace vepf::layout
