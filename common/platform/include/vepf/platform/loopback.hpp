#pragma once
// The loopback platform: vepf-ep and vepf-host as two processes on one machine, joined like a
// PCIe link (ARCHITECTURE.md §1):
//   EP window        memfd created by the EP, mapped by both (the host's accesses are counted)
//   RC window        memfd created by the host, mapped by both (the EP's accesses are counted)
//   doorbells RC->EP eventfds created by the EP; the host writes them: one for the control path
//                    (requests) and one per device slot, so that a queue kick wakes only the
//                    device it is for (layout::kMaxDevices of them)
//   interrupt EP->RC eventfd created by the host; the EP writes it
// The programs meet on a SOCK_SEQPACKET unix socket the EP listens on. The host connects
// (retrying, so either may start first) and sends a LoopbackHello with its RC window memfd and
// the interrupt eventfd; the EP validates it and answers with its own hello carrying the EP
// window memfd and the doorbell eventfds. Nothing else is sent: the socket stays open only so
// each side sees the other go away (EOF/HUP).
//
// Both windows are ordinary cache-coherent shared memory: no CACHE: flushes and no posted-write
// ordering quirks apply. Only the link model makes them look like PCIe: the counters, and the
// memory type the windows are treated as ([loopback] memory, default cached), so that the
// copies and checks of device memory can be exercised on one machine.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/os/eventfd.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/os/memfd.hpp"
#include "vepf/platform/peer_connections.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/transport/link.hpp"

namespace vepf::platform {

inline constexpr std::uint32_t kLoopbackMagic = 0x4c504556;  // "VEPL" as little-endian bytes
inline constexpr std::uint16_t kLoopbackVersion = 2;         // 2: a doorbell per device slot
/// Largest window either side accepts from the other.
inline constexpr std::uint64_t kLoopbackMaxWindow = std::uint64_t{1} << 32;
/// How long the EP waits for the host's hello after accepting its connection (the host sends
/// it right after connect(), so this is only ever reached by a broken client).
inline constexpr std::chrono::milliseconds kLoopbackHelloTimeout{1000};

enum class LoopbackRole : std::uint16_t { kHost = 1, kEp = 2 };

/// One doorbell eventfd per device slot.
using DeviceDoorbells = std::array<os::EventFd, layout::kMaxDevices>;

/// The one message each side sends, with its descriptors: the host's carries exactly
/// {RC window memfd, interrupt eventfd}, the EP's {EP window memfd, control doorbell eventfd,
/// the doorbell eventfds of device slots 0 .. layout::kMaxDevices - 1}.
/// Native byte order: both ends run on the same machine.
struct LoopbackHello {
  std::uint32_t magic = kLoopbackMagic;
  std::uint16_t version = kLoopbackVersion;
  std::uint16_t role = 0;         // LoopbackRole of the sender
  std::uint64_t window_size = 0;  // bytes of the memfd passed along
};
static_assert(sizeof(LoopbackHello) == 16);

/// The EP side: owns the EP window and the doorbell, listens for the host.
class LoopbackEp final : public transport::DeviceLink, public PeerConnections {
 public:
  /// Creates the EP window (zero-filled), the doorbell eventfd and the listening socket. Both
  /// windows are accessed as `access` says.
  /// Errors: kInvalidArgument for a window size of 0, above kLoopbackMaxWindow or not a multiple
  /// of 8; those of os::listen_seqpacket and os::SharedMemory::create.
  [[nodiscard]] static Result<std::unique_ptr<LoopbackEp>> create(const std::string& socket_path,
                                                                  std::size_t ep_window_size,
                                                                  ring::MemoryAccess access = {});
  LoopbackEp(const LoopbackEp&) = delete;  // the windows point at counters_
  LoopbackEp& operator=(const LoopbackEp&) = delete;

  /// The listening socket: readable when a host connects (then call accept_peer()).
  int listen_fd() const noexcept { return listen_.get(); }
  /// Accepts one host and runs the hello exchange (waiting at most kLoopbackHelloTimeout for the
  /// host's hello). An error concerns only that connection, which is closed; the EP keeps
  /// listening. Errors: kNoSpace (no connection waiting), kRejected (a host is already
  /// connected: the new one is closed), kBadLayout (bad hello), kOutOfRange (bad window),
  /// kTimeout, kLinkDown, kSystem.
  [[nodiscard]] Result<void> accept_peer();
  /// As accept_peer(), for a connection accepted elsewhere (an os::Acceptor over
  /// take_listener()). Errors: as accept_peer() but kNoSpace.
  [[nodiscard]] Result<void> accept_peer(os::Fd conn) override;
  /// Hands the listening socket over (to an os::Acceptor: connection limits and EMFILE
  /// handling); listen_fd() is -1 from then on and accept_peer() without a connection fails.
  os::Fd take_listener() noexcept override { return std::move(listen_); }
  /// The connection to the host (-1 without one). Poll it for EPOLLIN/EPOLLHUP: the host never
  /// sends anything after its hello, so readability means it went away (call drop_peer()).
  int peer_fd() const noexcept override { return peer_.valid() ? peer_.get() : -1; }
  bool connected() const noexcept override { return peer_.valid(); }
  /// Forgets the host: closes the connection and the interrupt eventfd, detaches and unmaps
  /// the RC window. Stop using the Window* attach_rc_window() returned first.
  void drop_peer() noexcept override;

  /// The control-path doorbell (requests, and kicks of a host that rings one doorbell).
  int doorbell_fd() const noexcept override { return doorbell_.fd(); }
  /// Reads and clears the doorbell count (0: none rung); counts signals_received when > 0.
  [[nodiscard]] Result<std::uint64_t> drain_doorbell() override;
  /// The doorbell of device `slot`'s queues (slot < layout::kMaxDevices).
  int device_doorbell_fd(std::uint32_t slot) const noexcept override {
    return device_doorbells_[slot].fd();
  }
  /// As drain_doorbell(), for device `slot`'s doorbell.
  [[nodiscard]] Result<std::uint64_t> drain_device_doorbell(std::uint32_t slot) override;

  // DeviceLink
  ring::Window& ep_window() override { return ep_window_; }
  /// On loopback the RC window's bus address is 0 and its size is what the host announced.
  /// Errors: kLinkDown without a host; kOutOfRange when bus_addr != 0 or size differs.
  [[nodiscard]] Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr,
                                                       std::uint64_t size) override;
  void detach_rc_window() override { rc_window_ = ring::Window{}; }
  /// Errors: kLinkDown without a host; those of os::EventFd::signal().
  [[nodiscard]] Result<void> raise_interrupt() override;
  ring::LinkCounters& counters() override { return counters_; }

 private:
  LoopbackEp(os::SharedMemory ep_mem, os::EventFd doorbell, DeviceDoorbells device_doorbells,
             os::Fd listen, ring::MemoryAccess access) noexcept;
  Result<void> handshake(os::Fd conn);

  os::SharedMemory ep_mem_;
  os::EventFd doorbell_;
  DeviceDoorbells device_doorbells_;
  os::Fd listen_;
  os::Fd peer_;
  os::SharedMemory rc_mem_;
  os::EventFd interrupt_;
  ring::MemoryAccess access_;
  ring::LinkCounters counters_;
  ring::Window ep_window_;
  ring::Window rc_window_;
};

/// The RC side: owns the RC window and the interrupt, connects to the EP.
class LoopbackHost final : public transport::DriverLink {
 public:
  /// Creates the RC window (zero-filled) and the interrupt eventfd, connects to `socket_path`
  /// (retrying every 50 ms while the socket is missing or nobody listens) and runs the hello
  /// exchange, all within `timeout`. Both windows are accessed as `access` says.
  /// Errors: kInvalidArgument for a bad window size; kTimeout; kLinkDown when the EP closed the
  /// connection (e.g. another host is connected); kBadLayout / kOutOfRange for a bad hello
  /// or window; kSystem.
  [[nodiscard]] static Result<std::unique_ptr<LoopbackHost>> connect(
      const std::string& socket_path, std::size_t rc_window_size, std::chrono::milliseconds timeout,
      ring::MemoryAccess access = {});
  LoopbackHost(const LoopbackHost&) = delete;  // ep_window_ points at counters_
  LoopbackHost& operator=(const LoopbackHost&) = delete;

  // DriverLink
  ring::Window& ep_window() override { return ep_window_; }
  ring::Window& rc_window() override { return rc_window_; }
  std::uint64_t rc_window_bus_addr() const override { return 0; }
  [[nodiscard]] Result<void> ring_doorbell() override;
  /// Rings device `slot`'s own doorbell (the control doorbell for a slot out of range).
  [[nodiscard]] Result<void> ring_device_doorbell(std::uint32_t slot) override;
  /// Polls the interrupt eventfd and the connection. Returns true after draining an interrupt,
  /// false on timeout. Errors: kLinkDown once the EP closed the connection (checked first).
  [[nodiscard]] Result<bool> wait_interrupt(std::chrono::milliseconds timeout) override;
  ring::LinkCounters& counters() override { return counters_; }

  int interrupt_fd() const noexcept override { return interrupt_.fd(); }
  int peer_fd() const noexcept { return peer_.get(); }
  /// The connection to the EP: the EP never sends after its hello, so readability means it
  /// went away.
  int hangup_fd() const noexcept override { return peer_.get(); }
  /// Reads and clears the interrupt count (0: none); counts signals_received when > 0.
  [[nodiscard]] Result<std::uint64_t> drain_interrupt() override;

 private:
  LoopbackHost(os::SharedMemory rc_mem, os::EventFd interrupt, os::Fd peer, os::SharedMemory ep_mem,
               os::EventFd doorbell, DeviceDoorbells device_doorbells,
               ring::MemoryAccess access) noexcept;

  os::SharedMemory rc_mem_;
  os::EventFd interrupt_;
  os::Fd peer_;
  os::SharedMemory ep_mem_;
  os::EventFd doorbell_;
  DeviceDoorbells device_doorbells_;
  ring::LinkCounters counters_;
  ring::Window ep_window_;
  ring::Window rc_window_;
};

}  // namespace vepf::platform
