#pragma once
// virtio console device (device ID 3, VIRTIO 1.2 §5.3) with VIRTIO_CONSOLE_F_SIZE,
// VIRTIO_CONSOLE_F_MULTIPORT and the vepf extension kVepfConsoleFDriverSize
// (vepf/layout/console.hpp).
//
// Each port of the board config is attached on this side to
//  - "pty":     a pty in raw mode whose slave is linked at `link` (for agetty, a program of the
//               user's, or a terminal on the EP); the device keeps the slave open;
//  - "program": a pty with `program` running on it as its controlling terminal (a login shell),
//               run again one second after it exits;
//  - "socket":  a unix stream socket the device listens on; one client at a time.
// Bytes travel unchanged both ways. Ports are added with VIRTIO_CONSOLE_PORT_ADD once the driver
// says DEVICE_READY; after its PORT_READY the device sends CONSOLE_PORT (port 0), PORT_NAME,
// RESIZE and PORT_OPEN (1 while a program runs / a client is connected; always for "pty").
// Bytes flow once the driver has said PORT_OPEN 1; until then the backend is not read.
//
// Window size: a change of a port's pty size on this side (polled every 250 ms) goes to the
// driver as RESIZE (port 0 also in the config's cols/rows); a RESIZE from the driver (extension
// bit negotiated) is set on the pty, which sends SIGWINCH to the program.
//
// Everything the driver writes is checked: a malformed or out-of-place control message is
// counted and dropped; a ring rule broken marks that queue broken (DEVICE_NEEDS_RESET).

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/os/pty.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

struct ConsoleStats {
  std::uint64_t to_driver_bytes = 0;    // port data put in receive buffers
  std::uint64_t from_driver_bytes = 0;  // port data taken from transmit buffers
  std::uint64_t dropped_bytes = 0;      // from the driver while nothing was attached
  std::uint64_t bad_control = 0;        // malformed or out-of-place control messages
  std::uint64_t control_dropped = 0;    // to the driver, past ConsoleConfig::max_control_queued
  std::uint64_t refused_clients =
      0;  // "socket" ports: a second client, or none for want of descriptors
  std::uint64_t resizes_to_driver = 0, resizes_from_driver = 0;
};

class ConsoleDevice final : public Device {
 public:
  ConsoleDevice(config::ConsoleConfig cfg, std::uint16_t queue_size);
  ~ConsoleDevice() override;

  /// Opens every port's backend (ptys, links, sockets; starts programs) and the size poll.
  /// Errors: kSystem / kInvalidArgument from os:: (the message says which port and step).
  [[nodiscard]] Result<void> start(os::EventLoop& loop);

  std::uint32_t device_id() const override;
  std::uint64_t device_features() const override;
  std::uint16_t num_queues() const override;
  std::uint16_t max_queue_size() const override { return queue_size_; }
  std::span<const std::byte> config() const override;
  void on_driver_ok(transport::DeviceHandle& h) override;
  void on_reset() override;
  void on_notify(transport::DeviceHandle& h) override;

  const char* type_name() const override { return "console"; }
  bool backlog() const override { return backlog_; }
  void shutdown() override;
  void describe(nlohmann::json& out) const override;
  Counts counts() const override { return {stats_.to_driver_bytes, stats_.from_driver_bytes}; }
  void report(std::uint32_t slot, spdlog::level::level_enum lvl) const override;
  const ConsoleStats& stats() const noexcept { return stats_; }
  /// Control messages waiting for the driver's buffers (at most max_control_queued).
  std::size_t control_queued() const noexcept { return ctrl_out_.size(); }

 private:
  struct Port {
    config::ConsolePort cfg;
    std::uint32_t id = 0;
    os::Pty pty;      // "pty", "program"
    os::Child child;  // "program"
    int respawn_timer = -1;
    std::unique_ptr<os::Acceptor> listen;  // "socket": one client at a time
    os::Fd conn;                           // "socket"
    bool attached = false;                 // a program runs / a client is connected / a pty exists
    bool added = false;                    // PORT_ADD sent
    bool ready = false;                    // the driver said PORT_READY 1 (or no MULTIPORT: port 0)
    bool driver_open = false;
    std::uint32_t watched = 0;          // epoll events registered on io_fd(), or kNotPolled
    std::vector<std::byte> to_driver;   // read from the backend, waiting for receive buffers
    std::vector<std::byte> to_backend;  // from the driver, waiting for the backend to take it
    std::size_t to_backend_off = 0;
    ring::ChainConsumer rx, tx;  // the port's receiveq and transmitq
    os::WinSize size;            // last size both sides agree on
    int io_fd() const noexcept;
  };

  /// Port::watched of a pty taken out of the loop after a hangup (until the program restarts).
  static constexpr std::uint32_t kNotPolled = ~0u;

  Result<void> open_port(Port& p);
  void start_program(Port& p);
  /// start_program() again after kRespawnDelay.
  void schedule_program(Port& p);
  void on_program_exit(Port& p);
  void on_accept(Port& p, os::Fd c);
  void refused(Port& p, os::Acceptor::Refusal why);
  void detach(Port& p, const char* why);
  void on_io(Port& p, std::uint32_t events);
  void update_watch(Port& p);
  void read_backend(Port& p);
  /// Writes pending driver bytes to the backend; false when it would block (EPOLLOUT then).
  bool drain_backend(Port& p);
  void write_backend(Port& p);
  void poll_sizes();
  void size_changed(Port& p, os::WinSize ws);

  bool has(unsigned bit) const noexcept;
  bool flowing(const Port& p) const noexcept;
  void send_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                    std::span<const std::byte> payload = {});
  void announce(Port& p);
  void send_open(Port& p);
  void process_control();
  void handle_control(std::span<const std::byte> msg);
  void flush_control();
  void flush_port(Port& p);
  void process_port_tx(Port& p);
  /// After a drain of queue q: backlog, the driver's interrupt, a broken queue.
  void finish_drain(const ring::Drained& d, std::uint16_t q);
  void broken(std::uint16_t q);

  config::ConsoleConfig cfg_;
  std::uint16_t queue_size_;
  layout::VirtioConsoleConfig space_{};
  os::EventLoop* loop_ = nullptr;
  int size_timer_ = -1;
  std::vector<std::unique_ptr<Port>> ports_;  // by port id
  std::deque<std::vector<std::byte>> ctrl_out_;
  std::size_t max_control_queued_;
  std::optional<transport::DeviceHandle> h_;
  ring::ChainConsumer ctrl_rx_, ctrl_tx_;  // control receiveq (2), control transmitq (3)
  bool device_ready_ = false;              // the driver said DEVICE_READY 1
  bool backlog_ = false;
  ConsoleStats stats_;
};

}  // namespace vepf::ep
