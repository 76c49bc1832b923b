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
  std::uint8_t mac[6];       // 0x00 VIRTIO_NET_F_MAC
  le16 status;               // 0x06 VIRTIO_NET_F_STATUS: VIRTIO_NET_S_LINK_UP
  le16 max_virtqueue_pairs;  // 0x08 VIRTIO_NET_F_MQ (not offered: 1)
  le16 mtu;                  // 0x0a VIRTIO_NET_F_MTU
};
static_assert(sizeof(VirtioNetConfig) == 12);
static_assert(offsetof(VirtioNetConfig, status) == offsetof(virtio_net_config, status));
static_assert(offsetof(VirtioNetConfig, mtu) == offsetof(virtio_net_config, mtu));

/// struct virtio_net_hdr_v1, VIRTIO 1.2 §5.1.6: 12 bytes in front of every frame (VERSION_1).
struct VirtioNetHdr {
  std::uint8_t flags;        // 0x00 VIRTIO_NET_HDR_F_NEEDS_CSUM ...
  std::uint8_t gso_type;     // 0x01 VIRTIO_NET_HDR_GSO_NONE ...
  le16 hdr_len;              // 0x02
  le16 gso_size;             // 0x04
  le16 csum_start;           // 0x06
  le16 csum_offset;          // 0x08
  le16 num_buffers;          // 0x0a
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

}  // namespace vepf::layout
