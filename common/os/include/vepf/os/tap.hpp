#pragma once
// A TAP interface (/dev/net/tun) carrying frames with a virtio-net header in front
// (IFF_VNET_HDR, 12-byte struct virtio_net_hdr_v1: VIRTIO 1.2 §5.1.6).

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <utility>

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::os {

class Tap {
 public:
  Tap() noexcept = default;

  /// Opens (or creates) the TAP interface `ifname` ("vepf%d" lets the kernel pick the number),
  /// nonblocking, with IFF_NO_PI and a virtio-net header of `vnet_hdr_size` bytes on every
  /// frame (TUNSETVNETHDRSZ; the caller knows the header: 12 for virtio_net_hdr_v1, VIRTIO 1.2
  /// §5.1.6). Errors: kInvalidArgument when the name does not fit IFNAMSIZ; kSystem otherwise.
  [[nodiscard]] static Result<Tap> open(const std::string& ifname, int vnet_hdr_size) noexcept;

  int fd() const noexcept { return fd_.get(); }
  /// The name the kernel gave the interface.
  const std::string& name() const noexcept { return name_; }

  /// Sets the carrier (the "link up" a virtio-net device reports in its status).
  [[nodiscard]] Result<void> set_carrier(bool up) noexcept;
  [[nodiscard]] Result<void> set_mtu(int mtu) noexcept;
  /// Sets or clears IFF_UP (administrative state).
  [[nodiscard]] Result<void> set_up(bool up) noexcept;
  /// Offloads the kernel may hand us (TUN_F_CSUM, TUN_F_TSO4, ...; 0 = none).
  [[nodiscard]] Result<void> set_offload(unsigned flags) noexcept;

  /// Reads one frame (virtio-net header + packet). Errors: kNoSpace when no frame is waiting
  /// (EAGAIN: try later), kSystem otherwise.
  [[nodiscard]] Result<std::size_t> read(std::span<std::byte> buf) noexcept;
  /// Writes one frame (virtio-net header + packet). Errors: kNoSpace on EAGAIN, kSystem otherwise.
  [[nodiscard]] Result<std::size_t> write(std::span<const std::byte> frame) noexcept;
  /// As read() / write(), the frame scattered over / gathered from `iov` (at most IOV_MAX).
  [[nodiscard]] Result<std::size_t> readv(std::span<const iovec> iov) noexcept;
  [[nodiscard]] Result<std::size_t> writev(std::span<const iovec> iov) noexcept;

 private:
  Tap(Fd fd, std::string name) noexcept : fd_(std::move(fd)), name_(std::move(name)) {}

  Fd fd_;
  std::string name_;
};

}  // namespace vepf::os
