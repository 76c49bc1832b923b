#include "vepf/layout/net.hpp"

#include <linux/virtio_config.h>

namespace vepf::layout {
namespace {
constexpr std::uint64_t bit(unsigned b) noexcept { return std::uint64_t{1} << b; }
constexpr std::size_t kEthHeader = 14;  // destination, source, EtherType
}  // namespace

NetOffloads offloads_to_device(std::uint64_t f) noexcept {
  const bool csum = (f & bit(VIRTIO_NET_F_CSUM)) != 0;
  // VIRTIO 1.2 §5.1.3.1: HOST_TSO* depend on CSUM.
  return {csum, csum && (f & bit(VIRTIO_NET_F_HOST_TSO4)) != 0,
          csum && (f & bit(VIRTIO_NET_F_HOST_TSO6)) != 0};
}

NetOffloads offloads_to_driver(std::uint64_t f) noexcept {
  const bool csum = (f & bit(VIRTIO_NET_F_GUEST_CSUM)) != 0;
  // VIRTIO 1.2 §5.1.3.1: GUEST_TSO* depend on GUEST_CSUM.
  return {csum, csum && (f & bit(VIRTIO_NET_F_GUEST_TSO4)) != 0,
          csum && (f & bit(VIRTIO_NET_F_GUEST_TSO6)) != 0};
}

std::uint64_t net_offload_features() noexcept {
  return bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_HOST_TSO4) |
         bit(VIRTIO_NET_F_HOST_TSO6) | bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6);
}

const char* check_net_hdr(const VirtioNetHdr& h, std::size_t frame_len, const NetOffloads& allowed,
                          bool towards_driver) noexcept {
  if (frame_len < kEthHeader) return "frame shorter than an Ethernet header";
  const std::uint8_t known =
      VIRTIO_NET_HDR_F_NEEDS_CSUM | (towards_driver ? VIRTIO_NET_HDR_F_DATA_VALID : 0);
  if (h.flags & ~known) return "unknown or misdirected header flags";
  if (h.flags && !allowed.csum) return "checksum flags without the checksum offload";
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    const std::size_t start = h.csum_start.to_cpu(), off = h.csum_offset.to_cpu();
    if (start < kEthHeader || start + off + 2 > frame_len)
      return "partial checksum outside the frame";
  }
  switch (h.gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE:
      return nullptr;
    case VIRTIO_NET_HDR_GSO_TCPV4:
      if (!allowed.tso4) return "TCPv4 segmentation not negotiated";
      break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
      if (!allowed.tso6) return "TCPv6 segmentation not negotiated";
      break;
    default:
      return "segmentation type not negotiated (UDP, ECN or unknown)";
  }
  // VIRTIO 1.2 §5.1.6.2: a segmented frame also needs its checksum completed.
  if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return "segmentation without NEEDS_CSUM";
  if (h.gso_size.to_cpu() == 0) return "segmentation with gso_size 0";
  if (h.hdr_len.to_cpu() > frame_len) return "hdr_len beyond the frame";
  return nullptr;
}

}  // namespace vepf::layout
