#pragma once
// Where a virtio-net function's frames come from and go to on this side's OS: a TAP interface
// (drops when the OS queue is full, as a NIC does), or a unix SOCK_SEQPACKET socket (one message
// = one Ethernet frame; lossless: it holds frames until a client connects and reads; for tests
// and for programs that want raw frames without a network namespace).
//
// Frames cross this interface with a 12-byte virtio_net_hdr_v1 in front (VIRTIO 1.2 §5.1.6), the
// layout a TAP with IFF_VNET_HDR uses natively.

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "vepf/error.hpp"
#include "vepf/layout/net.hpp"
#include "vepf/os/event_loop.hpp"

namespace vepf::netback {

class FrameBackend {
 public:
  struct Callbacks {
    std::function<void()> readable;  // recv() may return a frame
    std::function<void()> writable;  // a send() that returned kNoSpace may be retried
  };
  virtual ~FrameBackend() = default;

  /// Registers the backend's fds with `loop`; called again, only replaces the callbacks
  /// (a new driver instance after a link restart).
  [[nodiscard]] virtual Result<void> start(os::EventLoop& loop, Callbacks cb) = 0;
  /// Receives one frame into `buf` (header + frame). Returns its length in bytes.
  /// Errors: kNoSpace when nothing is waiting; kSystem on failure.
  [[nodiscard]] virtual Result<std::size_t> recv(std::span<std::byte> buf) = 0;
  /// Sends one frame (header + frame). Errors: kNoSpace when it would block (retry after the
  /// writable callback; ask for it with set_tx_wait(true)); kSystem on failure (frame dropped).
  [[nodiscard]] virtual Result<void> send(std::span<const std::byte> hdr_and_frame) = 0;
  /// Whether recvv()/sendv() move frames straight between the OS and scattered buffers (the
  /// ring's buffers, without a bounce copy). A TAP: yes.
  virtual bool vectored() const { return false; }
  /// As recv(), the frame scattered over `iov` (header first; at most IOV_MAX entries). A
  /// frame longer than the iovecs is cut: give room for the largest frame. Errors: as recv();
  /// kInvalidArgument when not vectored().
  [[nodiscard]] virtual Result<std::size_t> recvv(std::span<const iovec> iov);
  /// As send(), the frame gathered from `iov` (header first). Errors: as send();
  /// kInvalidArgument when not vectored().
  [[nodiscard]] virtual Result<void> sendv(std::span<const iovec> iov);
  /// Flow control: while paused, no readable callbacks (frames wait in the OS queue).
  virtual void set_rx_paused(bool paused) = 0;
  /// Asks for (or cancels) one writable callback.
  virtual void set_tx_wait(bool wait) = 0;
  /// Link state as the OS should see it (TAP carrier).
  virtual void set_link(bool up) = 0;
  /// Whether the OS side reads and writes the virtio_net_hdr itself (a TAP with IFF_VNET_HDR),
  /// and so can carry checksum and segmentation offloads; a seqpacket client sees bare frames.
  virtual bool carries_offloads() const { return false; }
  /// Which offloads the frames recv() returns may use: what the other side of the link accepted
  /// (TUNSETOFFLOAD). Frames given to send() may use any offload the header check allowed.
  /// Errors: kSystem (the kernel refused).
  [[nodiscard]] virtual Result<void> set_offload(const layout::NetOffloads&) { return {}; }
  /// "tap vepf-ep0" / "seqpacket /run/x.sock", for messages.
  virtual const std::string& name() const = 0;
};

/// How a TAP backend's interface is set up.
struct BackendOptions {
  std::uint16_t mtu = 1500;                          // bytes, the interface's MTU
  const std::array<std::uint8_t, 6>* mac = nullptr;  // give the TAP this MAC (driver side)
};

/// Opens (or creates) the TAP interface `ifname` with `opt`'s MTU and MAC, carrier off, up.
/// Errors: kInvalidArgument (name too long), kSystem (the Error's sys_errno says why).
[[nodiscard]] Result<std::unique_ptr<FrameBackend>> open_tap(const std::string& ifname,
                                                             const BackendOptions& opt);
/// Listens on the SOCK_SEQPACKET socket `path`; with `vnet_hdr` each message carries the
/// virtio_net_hdr_v1 in front of the frame. Errors: those of os::listen_seqpacket().
[[nodiscard]] Result<std::unique_ptr<FrameBackend>> listen_seqpacket(const std::string& path,
                                                                     bool vnet_hdr);

}  // namespace vepf::netback
