#pragma once
// The link of a board config, opened for each program, so that neither vepf-ep nor vepf-host
// switches on the concrete platform:
//   - open_ep_link(): the EP's DeviceLink of board.platform, and, where the RC arrives over a
//     connection (loopback), the PeerConnections to accept it on;
//   - HostLinkSource: how vepf-host reaches an EP that serves the link, once per session
//     (loopback: a new connection each time; PCI: the function opened once, then its window's
//     header watched for vepf-ep's magic).

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "vepf/config/board_config.hpp"
#include "vepf/error.hpp"
#include "vepf/platform/pci.hpp"
#include "vepf/platform/peer_connections.hpp"
#include "vepf/transport/link.hpp"

namespace vepf::platform {

/// What vepf-ep runs on: the link, and its PeerConnections when the RC connects (null on PCI
/// platforms; otherwise the same object as `link`).
struct EpLink {
  std::unique_ptr<transport::DeviceLink> link;
  PeerConnections* peers = nullptr;
  std::string
      description;  // for logs: "loopback at /run/vepf/link.sock", "0000:01:00.0 via VFIO, ..."
};

/// Opens the EP side of `cfg.platform`: loopback listens on [loopback] socket; vfio and devmem
/// map the [ep] places (`find` resolves vendor:device for vfio).
/// Errors: one line naming the config field or the system call and what to do.
tl::expected<EpLink, std::string> open_ep_link(const config::BoardConfig& cfg,
                                               const PciFinder& find);

/// How vepf-host reaches an EP that serves the link.
class HostLinkSource {
 public:
  virtual ~HostLinkSource() = default;
  /// Waits up to `timeout` for an EP that serves the link and returns it (valid until close()).
  /// `keep_going` is called between attempts (the caller's signals and event loop); when it
  /// returns false the wait is given up. Errors: one line that says what is missing.
  virtual tl::expected<transport::DriverLink*, std::string> open(
      std::chrono::milliseconds timeout, const std::function<bool()>& keep_going) = 0;
  /// The session is over: lets the EP take the next RC (loopback: closes the connection). A PCI
  /// function stays open for the next open().
  virtual void close() noexcept = 0;
  /// For logs: where the EP is looked for; empty while that is not known yet (a PCI function
  /// before its first open(): its errors say which function they concern).
  virtual std::string description() const = 0;
};

/// The HostLinkSource of `cfg.platform` (loopback, or VFIO for every PCI platform; `find`
/// resolves vendor:device). Opening happens in open().
std::unique_ptr<HostLinkSource> make_host_link_source(const config::BoardConfig& cfg,
                                                      PciFinder find);

}  // namespace vepf::platform
