#pragma once
// What the two virtio-net fuzz targets (net_device_fuzz, net_driver_fuzz) share: feature bits
// and the offloads an input may switch on.

#include <cstdint>

#include "vepf/layout/net.hpp"  // <linux/virtio_net.h>, C++-safe

namespace vepf::fuzz {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }

/// The checksum and segmentation offloads, in the order an input's feature byte names them
/// (bit i of the byte: kNetOffloads[i]).
constexpr unsigned kNetOffloads[] = {VIRTIO_NET_F_CSUM,       VIRTIO_NET_F_GUEST_CSUM,
                                     VIRTIO_NET_F_HOST_TSO4,  VIRTIO_NET_F_HOST_TSO6,
                                     VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6};
constexpr unsigned kNetOffloadCount = sizeof(kNetOffloads) / sizeof(kNetOffloads[0]);

/// The feature bits the low bits of `byte` name: bit i < kNetOffloadCount is kNetOffloads[i].
constexpr std::uint64_t net_offloads(std::uint32_t byte) {
  std::uint64_t f = 0;
  for (unsigned i = 0; i < kNetOffloadCount; ++i) {
    if (byte & (1u << i)) f |= bit(kNetOffloads[i]);
  }
  return f;
}

}  // namespace vepf::fuzz
