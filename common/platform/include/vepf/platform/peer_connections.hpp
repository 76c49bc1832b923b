#pragma once
// The RC as a connection the EP accepts (loopback), apart from the link's windows and signals.

#include "vepf/error.hpp"
#include "vepf/os/fd.hpp"

namespace vepf::platform {

/// A link whose RC arrives as a connection the EP accepts (loopback). PCI links have none: the
/// RC is there or not, and the control region tells which.
class PeerConnections {
 public:
  virtual ~PeerConnections() = default;
  /// Hands the listening socket over (to an os::Acceptor); invalid once taken.
  virtual os::Fd take_listener() noexcept = 0;
  /// Takes one accepted connection as the RC (the hello exchange). An error concerns only that
  /// connection. Errors: those of LoopbackEp::accept_peer(os::Fd).
  [[nodiscard]] virtual Result<void> accept_peer(os::Fd conn) = 0;
  /// The RC's connection (-1 without one): readable when the RC went away.
  virtual int peer_fd() const noexcept = 0;
  virtual bool connected() const noexcept = 0;
  /// Forgets the RC: its connection and its window.
  virtual void drop_peer() noexcept = 0;
};

}  // namespace vepf::platform
