#pragma once
// virtio rpmsg driver (device ID 7) in the Linux virtio_rpmsg_bus wire format
// (vepf/layout/rpmsg.hpp), handing channels to the host OS as unix SOCK_SEQPACKET sockets.
//
// For each name-service CREATE {name, addr} from the device it listens on
// <runtime_dir>/host/<name>.sock; every client connection gets a local address (>= 1024); each
// message from a client is one rpmsg from that address to `addr`, and each rpmsg for that
// address is one message to the client. DESTROY closes the channel and removes the socket file.
//
// Placement (ARCHITECTURE.md §1), as NetDriver: descriptor tables, avail rings and the transmit
// buffers in the EP window (written only); used rings and the receive buffers in the RC window.

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/ring/vring.hpp"
#include "drivers/driver.hpp"
#include "transport/buffer_queues.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

struct RpmsgStats {
  std::uint64_t tx = 0, tx_bytes = 0;  // clients -> device
  std::uint64_t rx = 0, rx_bytes = 0;  // device -> clients (incl. name service)
  std::uint64_t bad = 0;               // malformed message from the device, dropped
  std::uint64_t no_endpoint = 0;       // for an address no client holds, dropped
  std::uint64_t dropped = 0;           // the client's socket was full, dropped
};

class RpmsgDriver final : public Driver {
 public:
  static std::uint64_t wanted_features() noexcept;

  /// `runtime_dir`: where the channel sockets go (<runtime_dir>/host/<name>.sock).
  RpmsgDriver(transport::DriverTransport& t, const transport::DeviceInfo& info, std::string runtime_dir,
              os::EventLoop& loop);
  ~RpmsgDriver() override;

  /// Negotiates, sets up both queues and their buffers, DRIVER_OK. Errors: any DriverTransport
  /// error, kNoSpace when the windows cannot hold the queues and buffers.
  [[nodiscard]] Result<void> probe() override;
  /// Interrupt: take completions on both queues, refill, kick.
  void on_interrupt() override;
  bool backlog() const override { return backlog_; }
  Counts counts() const override { return {stats_.tx, stats_.rx}; }
  void report(spdlog::level::level_enum lvl) const override;
  const RpmsgStats& stats() const noexcept { return stats_; }
  const std::string& runtime_dir() const noexcept { return dir_; }

 private:
  void on_needs_reset() override;
  const char* logger() const override { return "host.rpmsg"; }
  struct Channel {
    std::uint32_t remote = 0;  // the device's address for this name
    os::Fd listen;
    std::string path;
  };
  struct Client {
    os::Fd fd;
    std::string channel;
    std::uint32_t remote = 0;
    bool reading = true;
    std::uint32_t addr = 0;  // our local address for this client
  };

  void receive();
  void reclaim_tx();
  void handle_msg(std::span<const std::byte> msg);
  void handle_ns(std::span<const std::byte> payload);
  void open_channel(const std::string& name, std::uint32_t remote);
  void close_channel(const std::string& name);
  void on_accept(const std::string& name);
  void on_client(int fd, std::uint32_t events);
  void close_client(int fd);
  void set_reading(bool on);
  std::uint32_t alloc_addr();

  std::string dir_;
  os::EventLoop& loop_;
  std::optional<BufferQueues> q_;  // from probe() on
  std::map<std::string, Channel> channels_;   // by name
  std::map<int, Client> clients_;             // by socket
  std::map<std::uint32_t, int> by_addr_;      // local address -> client socket
  std::uint32_t next_addr_ = layout::kRpmsgFirstDynamicAddr;
  std::vector<std::byte> buf_;
  bool reading_ = true;  // clients are read (false while the transmit ring is full)
  bool backlog_ = false;
  RpmsgStats stats_;
};

}  // namespace vepf::host
