#pragma once
// virtio console driver (device ID 3, VIRTIO 1.2 §5.3): each port the device adds becomes a pty
// on this machine, linked at <host_dir>/port<N> and, once the device names it,
// <host_dir>/<name>; `picocom <host_dir>/port0` or `screen <host_dir>/port0` is the terminal.
//
// Negotiates VIRTIO_CONSOLE_F_SIZE, VIRTIO_CONSOLE_F_MULTIPORT and the vepf extension
// kVepfConsoleFDriverSize (vepf/layout/console.hpp). With MULTIPORT: every queue of max_nr_ports
// ports and both control queues are set up before DRIVER_OK; DEVICE_READY is sent; each PORT_ADD
// gets a pty, PORT_READY 1 and PORT_OPEN 1 (the pty is always open here: this program holds its
// slave, in raw mode, until the port goes). Without MULTIPORT: port 0 only.
//
// Window size: RESIZE from the device (or port 0's config cols/rows) is set on the pty, which
// sends SIGWINCH to the program on it; a size someone sets on the pty (`stty rows 40 cols 120`,
// a terminal emulator) is polled every 250 ms and sent as RESIZE when the extension is
// negotiated.
//
// Placement (ARCHITECTURE.md §1), as NetDriver: descriptor tables, avail rings and transmit
// buffers in the EP window, used rings and receive buffers in the RC window. Everything the
// device writes (used lengths, control messages) is checked; a bad control message is counted and
// dropped.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/driver.hpp"
#include "transport/buffer_queues.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/pty.hpp"
#include "vepf/ring/consume.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::host {

struct ConsoleStats {
  std::uint64_t sent_bytes = 0;      // pty -> device
  std::uint64_t received_bytes = 0;  // device -> pty
  std::uint64_t bad = 0;  // malformed control messages, bad used lengths, data for absent ports
  std::uint64_t resizes_sent = 0, resizes_received = 0;
  std::uint64_t control_dropped = 0;  // to the device, past max_control_queued
};

class ConsoleDriver final : public Driver {
 public:
  static std::uint64_t wanted_features() noexcept;
  /// Bytes of each port buffer (both directions).
  static constexpr std::size_t kPortBufSize = 1024;

  /// `host_dir`: where the stable pty links go. `max_control_queued`: control messages held
  /// while the device takes none from the control transmitq (config::ConsoleConfig's, the same
  /// bound as the EP's: 8..4096); past it new ones are dropped and counted.
  ConsoleDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                std::string host_dir, os::EventLoop& loop, std::size_t max_control_queued);
  ~ConsoleDriver() override;

  /// Errors: any DriverTransport error; kRejected when max_nr_ports is 0, above
  /// layout::kConsoleMaxPorts or needs more queues than the device has; kNoSpace (windows).
  [[nodiscard]] Result<void> probe() override;
  void on_interrupt() override;
  bool backlog() const override { return backlog_; }
  Counts counts() const override { return {stats_.sent_bytes, stats_.received_bytes}; }
  std::vector<QueueState> queue_states() const override {
    std::vector<QueueState> out;
    for (const auto& p : ports_) p->q->queue_states(out);
    if (ctrl_) ctrl_->queue_states(out);
    return out;
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters() const override {
    const ConsoleStats& s = stats_;
    return {{"sent_bytes", s.sent_bytes},
            {"received_bytes", s.received_bytes},
            {"bad", s.bad},
            {"resizes_sent", s.resizes_sent},
            {"resizes_received", s.resizes_received},
            {"control_dropped", s.control_dropped}};
  }
  void report(spdlog::level::level_enum lvl) const override;
  const ConsoleStats& stats() const noexcept { return stats_; }
  /// Control messages waiting for a control transmit buffer (at most max_control_queued).
  std::size_t control_queued() const noexcept { return ctrl_out_.size(); }

 private:
  struct Port {
    std::uint32_t id = 0;
    std::unique_ptr<BufferQueues> q;
    bool added = false;
    bool device_open = false;  // the EP side has something attached (PORT_OPEN from the device)
    os::Pty pty;
    std::vector<std::string> links;
    std::uint32_t watched = 0;  // epoll events on the pty master
    // Holds a receive buffer only partly written to the pty (the pty is full); rx_off bytes of
    // it are written.
    ring::UsedConsumer rx;
    std::uint32_t rx_off = 0;
    os::WinSize size;
  };

  void on_needs_reset() override;
  void on_config_event() override;
  const char* logger() const override { return "host.console"; }

  bool multiport() const noexcept;
  void add_port(std::uint32_t id);
  void remove_port(std::uint32_t id);
  void name_port(Port& p, std::string_view name);
  void set_size(Port& p, os::WinSize ws);
  void update_watch(Port& p);
  void on_pty(Port& p, std::uint32_t events);
  void transmit(Port& p);
  void receive(Port& p);
  void receive_control();
  void handle_control(std::span<const std::byte> msg);
  void send_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                    std::span<const std::byte> payload = {});
  void flush_control();
  void poll_sizes();

  std::string dir_;
  os::EventLoop& loop_;
  layout::VirtioConsoleConfig cfg_{};
  std::uint32_t max_ports_ = 0;
  std::vector<std::unique_ptr<Port>> ports_;     // by id
  std::unique_ptr<BufferQueues> ctrl_;           // MULTIPORT only
  ring::UsedConsumer ctrl_rx_;                   // the control receive queue's completions
  std::deque<std::vector<std::byte>> ctrl_out_;  // control messages waiting for a transmit buffer
  std::size_t max_control_queued_;
  int size_timer_ = -1;
  bool backlog_ = false;
  ConsoleStats stats_;
};

}  // namespace vepf::host
