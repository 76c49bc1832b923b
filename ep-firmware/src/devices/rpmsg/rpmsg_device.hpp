#pragma once
// virtio rpmsg device (device ID 7) in the Linux virtio_rpmsg_bus wire format
// (vepf/layout/rpmsg.hpp): queue 0 carries messages to the driver, queue 1 from it; the driver
// posts every buffer. Offers VERSION_1, EVENT_IDX and VIRTIO_RPMSG_F_NS.
//
// Channels are unix SOCK_SEQPACKET connections. The device listens on
// <runtime_dir>/ep/announce.sock; a local program connects and sends one message, the channel
// name. The connection gets a local address (>= 1024) and the driver a name-service CREATE
// {name, addr}. From then on each message on the connection is one rpmsg from addr to the peer
// (the address the driver announced for that name, then the src of the latest message it sent
// to addr), and each rpmsg for addr is one message on the connection. Closing it sends DESTROY.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::ep {

struct RpmsgStats {
  std::uint64_t to_driver = 0, to_driver_bytes = 0;      // rpmsgs on queue 0 (incl. name service)
  std::uint64_t from_driver = 0, from_driver_bytes = 0;  // rpmsgs taken from queue 1
  std::uint64_t bad = 0;         // malformed message from the driver, dropped
  std::uint64_t no_endpoint = 0; // for an address nobody holds, dropped
  std::uint64_t dropped = 0;     // the local program's socket was full, dropped
};

class RpmsgDevice final : public Device {
 public:
  RpmsgDevice(std::string runtime_dir, std::uint16_t queue_size);
  ~RpmsgDevice() override;

  /// Listens on <runtime_dir>/ep/announce.sock. Errors: as os::listen_seqpacket(), EventLoop::add().
  [[nodiscard]] Result<void> start(os::EventLoop& loop);

  std::uint32_t device_id() const override;
  std::uint64_t device_features() const override;
  std::uint16_t num_queues() const override { return 2; }
  std::uint16_t max_queue_size() const override { return queue_size_; }
  std::span<const std::byte> config() const override { return {}; }
  void on_driver_ok(transport::DeviceHandle& h) override;
  void on_reset() override;
  void on_notify(transport::DeviceHandle& h) override;

  const char* type_name() const override { return "rpmsg"; }
  bool backlog() const override { return backlog_; }
  void describe(nlohmann::json& out) const override;
  Counts counts() const override { return {stats_.to_driver, stats_.from_driver}; }
  void report(std::uint32_t slot, spdlog::level::level_enum lvl) const override;
  const RpmsgStats& stats() const noexcept { return stats_; }
  const std::string& runtime_dir() const noexcept { return dir_; }
  std::size_t channels() const noexcept { return by_addr_.size(); }

 private:
  struct Conn {
    os::Fd fd;
    std::string name;                  // empty until the first message
    std::uint32_t addr = 0;            // local address, once named
    std::optional<std::uint32_t> peer; // the driver's address for this channel
    bool reading = true;               // EPOLLIN registered
  };

  void on_accept();
  void on_conn(int fd, std::uint32_t events);
  void close_conn(int fd, const char* why);
  void set_reading(Conn& c, bool on);
  void update_reading();
  void queue_msg(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload);
  void queue_ns(const std::string& name, std::uint32_t addr, std::uint32_t flags);
  void flush_out();
  void process_tx();
  void handle_msg(std::span<const std::byte> msg);
  void handle_ns(std::uint32_t src, std::span<const std::byte> payload);
  void broken(std::uint16_t q);
  std::uint32_t alloc_addr();

  std::string dir_;
  std::uint16_t queue_size_;
  os::EventLoop* loop_ = nullptr;
  os::Fd listen_fd_;
  std::map<int, Conn> conns_;                  // by socket
  std::map<std::uint32_t, int> by_addr_;       // local address -> socket
  std::map<std::string, std::uint32_t> announced_;  // names the driver announced -> its address
  std::deque<std::vector<std::byte>> out_;     // messages waiting for a receive buffer
  std::optional<transport::DeviceHandle> h_;
  std::uint32_t next_addr_ = layout::kRpmsgFirstDynamicAddr;
  std::vector<std::byte> buf_;
  RpmsgStats stats_;
  bool backlog_ = false;
};

}  // namespace vepf::ep
