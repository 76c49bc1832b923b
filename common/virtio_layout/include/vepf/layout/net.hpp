#pragma once
// virtio-net wire structures (VIRTIO 1.2 §5.1). Constants come from <linux/virtio_net.h>; the
// structs are re-declared with Le<T> fields and checked against the uapi layout.

#include <cstddef>
#include <cstdint>

// <linux/virtio_net.h> names a field `class` (struct virtio_net_ctrl_hdr), a C++ keyword: rename
// it for the duration of the include. Include this header, never the uapi one directly.
#define class class_
#include <linux/virtio_net.h>
#undef class

#include "vepf/layout/le.hpp"

namespace vepf::layout {

/// struct virtio_net_config up to mtu, VIRTIO 1.2 §5.1.4 (12 bytes offered).
struct VirtioNetConfig {
  std::uint8_t mac[6]{};       // 0x00 VIRTIO_NET_F_MAC
  le16 status{};               // 0x06 VIRTIO_NET_F_STATUS: VIRTIO_NET_S_LINK_UP
  le16 max_virtqueue_pairs{};  // 0x08 VIRTIO_NET_F_MQ (not offered: 1)
  le16 mtu{};                  // 0x0a VIRTIO_NET_F_MTU
};
static_assert(sizeof(VirtioNetConfig) == 12);
static_assert(offsetof(VirtioNetConfig, status) == offsetof(virtio_net_config, status));
static_assert(offsetof(VirtioNetConfig, mtu) == offsetof(virtio_net_config, mtu));

/// struct virtio_net_hdr_v1, VIRTIO 1.2 §5.1.6: 12 bytes in front of every frame (VERSION_1).
struct VirtioNetHdr {
  std::uint8_t flags{};     // 0x00 VIRTIO_NET_HDR_F_NEEDS_CSUM ...
  std::uint8_t gso_type{};  // 0x01 VIRTIO_NET_HDR_GSO_NONE ...
  le16 hdr_len{};           // 0x02
  le16 gso_size{};          // 0x04
  le16 csum_start{};        // 0x06
  le16 csum_offset{};       // 0x08
  le16 num_buffers{};       // 0x0a
};
static_assert(sizeof(VirtioNetHdr) == sizeof(virtio_net_hdr_v1));
static_assert(offsetof(VirtioNetHdr, num_buffers) == offsetof(virtio_net_hdr_v1, num_buffers));
inline constexpr std::size_t kNetHdrSize = sizeof(VirtioNetHdr);

/// Queue indices of a single-pair virtio-net device (VIRTIO 1.2 §5.1.2).
inline constexpr std::uint16_t kNetRxQueue = 0, kNetTxQueue = 1;
/// Largest Ethernet header: destination, source, one 802.1Q tag, EtherType (bytes).
inline constexpr std::size_t kEthHeaderMax = 18;

/// Bytes of one frame buffer for an MTU: header + Ethernet header + MTU, rounded to 64.
constexpr std::size_t net_buffer_size(std::uint16_t mtu) noexcept {
  return (kNetHdrSize + kEthHeaderMax + mtu + 63) & ~std::size_t{63};
}

/// The offloads one direction of a link may carry (VIRTIO 1.2 §5.1.3): what the receiving side
/// accepted. Towards the device: VIRTIO_NET_F_CSUM, HOST_TSO4, HOST_TSO6; towards the driver:
/// GUEST_CSUM, GUEST_TSO4, GUEST_TSO6.
struct NetOffloads {
  bool csum = false;  // partial checksums (NEEDS_CSUM), and DATA_VALID towards the driver
  bool tso4 = false;  // GSO_TCPV4 frames
  bool tso6 = false;  // GSO_TCPV6 frames
  bool any() const noexcept { return csum || tso4 || tso6; }
};
/// The offloads towards the device / towards the driver that `features` negotiated.
NetOffloads offloads_to_device(std::uint64_t features) noexcept;
NetOffloads offloads_to_driver(std::uint64_t features) noexcept;
/// Every offload bit this project offers and accepts.
std::uint64_t net_offload_features() noexcept;

/// Bytes of a frame buffer that holds a GSO frame: 64 KiB of IP packet, the Ethernet header and
/// the virtio_net_hdr, rounded to 64 (VIRTIO 1.2 §5.1.6.3.1: without MRG_RXBUF a driver that
/// accepted GUEST_TSO* posts buffers of at least 65562 bytes).
inline constexpr std::size_t kNetGsoBufferSize =
    (kNetHdrSize + kEthHeaderMax + 65535 + 63) & ~std::size_t{63};

/// Checks a virtio_net_hdr_v1 and the `frame_len` bytes of Ethernet frame after it against what
/// may cross in this direction (VIRTIO 1.2 §5.1.6.2, the kernel's virtio_net_hdr_to_skb()):
/// flags only NEEDS_CSUM (with csum) and DATA_VALID (with csum, `towards_driver`); a partial
/// checksum's csum_start + csum_offset + 2 inside the frame; gso_type NONE, or TCPV4/TCPV6 as
/// negotiated, with NEEDS_CSUM, a non-zero gso_size and hdr_len inside the frame; no ECN or UDP
/// segmentation (not offered). Returns nullptr when the header may go on, else the rule broken.
const char* check_net_hdr(const VirtioNetHdr& h, std::size_t frame_len, const NetOffloads& allowed,
                          bool towards_driver) noexcept;

}  // namespace vepf::layout
