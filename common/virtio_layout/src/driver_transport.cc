#include "vepf/transport/driver_transport.hpp"

#include <linux/virtio_config.h>

#include <cstddef>

namespace vepf::transport {

using layout::ControlRegion;
using layout::DeviceLine;
using layout::DeviceSlot;
using layout::DriverLine;
using layout::EpfHeader;
using layout::LinkDriverLine;
using layout::QueueDriverLine;
using Clock = std::chrono::steady_clock;

namespace {

// How often a waiting driver re-reads the ack when no interrupt comes (a lost interrupt, or a
// platform whose EP cannot interrupt before the link is attached).
constexpr std::chrono::milliseconds kAckPoll{5};
// How often read_config() reads a config whose generation moved or was odd before it says
// kNotReady: a device rewrites 256 bytes in well under a microsecond of its own time.
constexpr int kConfigReadTries = 8;

}  // namespace

DriverTransport::DriverTransport(DriverLink& link, std::chrono::milliseconds ack_timeout)
    : link_(link), ep_(link.ep_window()), timeout_(ack_timeout) {}

Result<void> DriverTransport::validate_header() {
  if (ep_.size() < sizeof(ControlRegion))
    return fail(Errc::kBadLayout, "EP window smaller than the control region");
  // The header after its magic; pairs with store_release of magic in DeviceTransport::init().
  if (ep_.load_acquire<std::uint32_t>(layout::header_off(offsetof(EpfHeader, magic))) !=
      layout::kEpfMagic) {
    return fail(Errc::kBadLayout,
                "no virtio-pci-epf magic at offset 0 of the EP window (device not ready?)");
  }
  if (ep_.load<std::uint16_t>(layout::header_off(offsetof(EpfHeader, version))) !=
      layout::kEpfVersion) {
    return fail(Errc::kBadLayout, "unsupported layout version");
  }
  const bool geometry_ok =
      ep_.load<std::uint16_t>(layout::header_off(offsetof(EpfHeader, max_devices))) ==
          layout::kMaxDevices &&
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, region_size))) ==
          layout::kControlRegionSize &&
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, device_table_off))) ==
          offsetof(ControlRegion, devices) &&
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, device_stride))) ==
          sizeof(DeviceSlot) &&
      ep_.load<std::uint16_t>(layout::header_off(offsetof(EpfHeader, max_queues))) ==
          layout::kMaxQueuesPerDevice &&
      ep_.load<std::uint16_t>(layout::header_off(offsetof(EpfHeader, queue_stride))) ==
          sizeof(layout::QueueBlock) &&
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, mailbox_off))) == 0;
  if (!geometry_ok)
    return fail(Errc::kBadLayout, "header geometry does not match layout version 1");
  const std::uint64_t win =
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, ep_window_size_lo))) |
      std::uint64_t{
          ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, ep_window_size_hi)))}
          << 32;
  if (win != ep_.size())
    return fail(Errc::kBadLayout, "header EP window size differs from the mapped window");
  epoch_ = ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, epoch)));
  if (epoch_ == 0) return fail(Errc::kBadLayout, "header epoch is 0");
  return {};
}

Result<void> DriverTransport::attach() {
  if (auto r = validate_header(); !r) return r;
  ring::Window& rc = link_.rc_window();
  // Our mailbox starts clean: the device bumps event_seq and the heartbeat from here.
  rc.store<std::uint32_t>(offsetof(layout::RcMailbox, event_seq), 0);
  rc.store<std::uint32_t>(offsetof(layout::RcMailbox, heartbeat), 0);
  heartbeat_seen_ = 0;
  heartbeat_misses_ = 0;
  link_seq_ = ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, link_ack_seq))) + 1;
  const std::uint64_t addr = link_.rc_window_bus_addr();
  const std::uint64_t size = rc.size();
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_op)),
                           static_cast<std::uint32_t>(layout::LinkOp::kAttach));
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_lo)),
                           static_cast<std::uint32_t>(addr));
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_hi)),
                           static_cast<std::uint32_t>(addr >> 32));
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_lo)),
                           static_cast<std::uint32_t>(size));
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_hi)),
                           static_cast<std::uint32_t>(size >> 32));
  ep_.store<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, driver_epoch)), epoch_);
  // Arguments before the sequence number; pairs with load_acquire in DeviceTransport::poll_link().
  ep_.store_release<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_seq)),
                                   link_seq_);
  if (auto r = link_.ring_doorbell(); !r) return r;
  if (auto r = wait_ack(layout::header_off(offsetof(EpfHeader, link_ack_seq)), link_seq_); !r)
    return r;
  if (ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, link_ack_result))) != 0) {
    return fail(Errc::kRejected, "device refused to attach the RC window");
  }
  ep_alloc_ = WindowAllocator(layout::WindowId::kEp, layout::kControlRegionSize, ep_.size());
  rc_alloc_ = WindowAllocator(layout::WindowId::kRc, layout::kRcMailboxSize, rc.size());
  gone_ = false;  // only now: a failed attach leaves requests refused (driver_transport_fuzz)
  return {};
}

Result<std::vector<DeviceInfo>> DriverTransport::scan() {
  std::vector<DeviceInfo> out;
  for (std::uint32_t slot = 0; slot < layout::kMaxDevices; ++slot) {
    // Pairs with store_release of device_id in DeviceTransport::add_device().
    const auto id = ep_.load_acquire<std::uint32_t>(
        layout::device_line_off(slot, offsetof(DeviceLine, device_id)));
    if (id == 0) continue;
    const auto line = ep_.read_struct<DeviceLine>(layout::device_line_off(slot, 0));
    DeviceInfo d;
    d.slot = slot;
    d.device_id = id;
    d.num_queues = line.num_queues.to_cpu();
    d.max_queue_size = line.max_queue_size.to_cpu();
    d.device_features =
        line.device_feature_lo.to_cpu() | std::uint64_t{line.device_feature_hi.to_cpu()} << 32;
    d.slot_generation = line.slot_generation.to_cpu();
    if (d.num_queues == 0 || d.num_queues > layout::kMaxQueuesPerDevice) {
      return fail(Errc::kBadLayout, "device table entry with an impossible queue count");
    }
    req_seq_[slot] = line.ack_seq.to_cpu();
    out.push_back(d);
  }
  return out;
}

Result<void> DriverTransport::wait_ack(std::size_t ack_seq_off, std::uint32_t seq) {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    // The result after the ack; pairs with store_release of ack_seq in
    // DeviceTransport::poll_device() and of link_ack_seq in DeviceTransport::poll_link().
    if (ep_.load_acquire<std::uint32_t>(ack_seq_off) == seq) return {};
    const auto now = Clock::now();
    if (now >= deadline)
      return fail(Errc::kTimeout, "device did not acknowledge the request in time");
    if (wait_hook_ && !wait_hook_())
      return fail(Errc::kCancelled, "gave up waiting for the device's ack");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                      std::chrono::milliseconds(1);
    auto r = link_.wait_interrupt(std::min(left, kAckPoll));
    if (!r) return tl::unexpected(r.error());
  }
}

Result<DriverTransport::AckValue> DriverTransport::request(std::uint32_t slot, layout::DeviceOp op,
                                                           std::uint32_t arg) {
  if (slot >= layout::kMaxDevices) return fail(Errc::kInvalidArgument, "slot out of range");
  if (gone_)
    return fail(Errc::kLinkDown,
                "the EP restarted or stopped: nothing is written to its control region");
  const std::uint32_t seq = ++req_seq_[slot];
  ep_.store<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_op)),
                           static_cast<std::uint32_t>(op));
  ep_.store<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_arg0)), arg);
  // Arguments before the sequence number; pairs with load_acquire in
  // DeviceTransport::poll_device().
  ep_.store_release<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_seq)),
                                   seq);
  if (auto r = link_.ring_doorbell(); !r) return tl::unexpected(r.error());
  if (auto r = wait_ack(layout::device_line_off(slot, offsetof(DeviceLine, ack_seq)), seq); !r)
    return tl::unexpected(r.error());
  return AckValue{
      ep_.load<std::uint32_t>(layout::device_line_off(slot, offsetof(DeviceLine, ack_result))),
      ep_.load<std::uint32_t>(layout::device_line_off(slot, offsetof(DeviceLine, ack_value)))};
}

Result<std::uint8_t> DriverTransport::set_status(std::uint32_t slot, std::uint8_t status) {
  auto a = request(slot, layout::DeviceOp::kSetStatus, status);
  if (!a) return tl::unexpected(a.error());
  if (a->result != 0) return fail(Errc::kRejected, "device refused the status change");
  return static_cast<std::uint8_t>(a->value);
}

Result<void> DriverTransport::reset(std::uint32_t slot) {
  auto s = set_status(slot, 0);
  if (!s) return tl::unexpected(s.error());
  if (*s != 0) return fail(Errc::kRejected, "device status not 0 after reset");
  return {};
}

Result<std::uint64_t> DriverTransport::negotiate(std::uint32_t slot, std::uint64_t offered,
                                                 std::uint64_t wanted) {
  std::uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE;
  if (auto r = set_status(slot, st); !r) return tl::unexpected(r.error());
  st |= VIRTIO_CONFIG_S_DRIVER;
  if (auto r = set_status(slot, st); !r) return tl::unexpected(r.error());
  const std::uint64_t f = offered & wanted;
  ep_.store<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, driver_feature_lo)),
                           static_cast<std::uint32_t>(f));
  ep_.store<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, driver_feature_hi)),
                           static_cast<std::uint32_t>(f >> 32));
  st |= VIRTIO_CONFIG_S_FEATURES_OK;
  auto r = set_status(slot, st);
  if (!r) {
    if (r.error().code == Errc::kRejected)
      return fail(Errc::kRejected, "device refused the driver features (FEATURES_OK)");
    return tl::unexpected(r.error());
  }
  if (!(*r & VIRTIO_CONFIG_S_FEATURES_OK))
    return fail(Errc::kRejected, "device cleared FEATURES_OK");
  return f;
}

Result<void> DriverTransport::enable_queue(std::uint32_t slot, std::uint16_t q, std::uint16_t size,
                                           std::uint64_t desc, std::uint64_t avail,
                                           std::uint64_t used) {
  if (slot >= layout::kMaxDevices) return fail(Errc::kInvalidArgument, "slot out of range");
  if (q >= layout::kMaxQueuesPerDevice)
    return fail(Errc::kInvalidArgument, "queue index out of range");
  if (gone_)
    return fail(Errc::kLinkDown,
                "the EP restarted or stopped: nothing is written to its control region");
  const std::size_t base = layout::queue_block_off(slot, q);
  auto put64 = [&](std::size_t lo_field, std::uint64_t v) {
    // VIRTIO 1.2 / LAYOUT.md principle 6: low half, then high half; the request commits.
    ep_.store<std::uint32_t>(base + lo_field, static_cast<std::uint32_t>(v));
    ep_.store<std::uint32_t>(base + lo_field + 4, static_cast<std::uint32_t>(v >> 32));
  };
  ep_.store<std::uint16_t>(base + offsetof(QueueDriverLine, queue_size), size);
  put64(offsetof(QueueDriverLine, queue_desc_lo), desc);
  put64(offsetof(QueueDriverLine, queue_driver_lo), avail);
  put64(offsetof(QueueDriverLine, queue_device_lo), used);
  auto a = request(slot, layout::DeviceOp::kQueueEnable, q);
  if (!a) return tl::unexpected(a.error());
  if (a->result != 0)
    return fail(Errc::kRejected, "device refused the queue (size or ring addresses)");
  return {};
}

Result<void> DriverTransport::driver_ok(std::uint32_t slot) {
  auto s = set_status(slot, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
  if (!s) return tl::unexpected(s.error());
  return {};
}

Result<void> DriverTransport::read_config(std::uint32_t slot, std::span<std::byte> out) {
  if (slot >= layout::kMaxDevices) return fail(Errc::kInvalidArgument, "slot out of range");
  if (out.size() > layout::kConfigSpaceSize)
    return fail(Errc::kOutOfRange, "config read beyond the config space");
  const std::size_t gen_off =
      layout::device_line_off(slot, offsetof(DeviceLine, config_generation));
  for (int i = 0; i < kConfigReadTries; ++i) {
    // VIRTIO 1.2 §4.1.4.3.1 (and DPDK modern_read_dev_config): read until the generation holds.
    // The config after the first generation; pairs with the even generation's store_release in
    // DeviceTransport::write_config().
    const auto g1 = ep_.load_acquire<std::uint32_t>(gen_off);
    // Word by word (single-copy atomic): the device may be rewriting it right now.
    ep_.read_atomic(layout::device_slot_off(slot) + offsetof(DeviceSlot, config), out);
    // The config before the second generation; pairs with the dma_wmb() after the odd
    // generation in DeviceTransport::write_config().
    hw::dma_rmb();
    const auto g2 = ep_.load_acquire<std::uint32_t>(gen_off);
    if (g1 == g2 && (g1 & 1) == 0) return {};
  }
  return fail(Errc::kNotReady,
              "device config is being rewritten (config_generation odd or moving)");
}

Result<void> DriverTransport::read_config_wait(std::uint32_t slot, std::span<std::byte> out) {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    auto r = read_config(slot, out);
    if (r || r.error().code != Errc::kNotReady) return r;
    if (Clock::now() >= deadline) return fail(Errc::kTimeout, "device config kept changing");
    if (wait_hook_ && !wait_hook_())
      return fail(Errc::kCancelled, "gave up waiting for a stable device config");
    if (auto w = link_.wait_interrupt(std::chrono::milliseconds(1)); !w)
      return tl::unexpected(w.error());
  }
}

std::uint8_t DriverTransport::device_status(std::uint32_t slot) {
  if (slot >= layout::kMaxDevices) return 0;
  // Pairs with store_release of status in DeviceTransport::write_status().
  return static_cast<std::uint8_t>(
      ep_.load_acquire<std::uint32_t>(layout::device_line_off(slot, offsetof(DeviceLine, status))));
}

std::uint32_t DriverTransport::broken_queues(std::uint32_t slot) {
  if (slot >= layout::kMaxDevices) return 0;
  return ep_.load<std::uint32_t>(
      layout::device_line_off(slot, offsetof(DeviceLine, broken_queues)));
}

std::uint32_t DriverTransport::mailbox_seq() const noexcept {
  // Pairs with store_release of event_seq in DeviceTransport::bump_mailbox().
  return link_.rc_window().load_acquire<std::uint32_t>(offsetof(layout::RcMailbox, event_seq));
}

std::uint32_t DriverTransport::table_generation() {
  // Pairs with store_release of table_generation in DeviceTransport::add_device() and
  // remove_device().
  return ep_.load_acquire<std::uint32_t>(layout::header_off(offsetof(EpfHeader, table_generation)));
}

bool DriverTransport::still_alive() {
  // Written by the device with a plain store (DeviceTransport::heartbeat()); only its change
  // matters, so no ordering is needed.
  const auto beat = link_.rc_window().load<std::uint32_t>(offsetof(layout::RcMailbox, heartbeat));
  if (beat != heartbeat_seen_) {
    heartbeat_seen_ = beat;
    heartbeat_misses_ = 0;
    return !gone_;
  }
  if (++heartbeat_misses_ % layout::kHeartbeatMisses != 0) return !gone_;
  return !epoch_changed();
}

bool DriverTransport::epoch_changed() {
  // Pairs with store_release of epoch in DeviceTransport::restart().
  if (ep_.load_acquire<std::uint32_t>(layout::header_off(offsetof(EpfHeader, epoch))) != epoch_ ||
      ep_.load<std::uint32_t>(layout::header_off(offsetof(EpfHeader, magic))) !=
          layout::kEpfMagic) {
    gone_ = true;  // the control region is no longer the one we attached to
  }
  return gone_;
}

}  // namespace vepf::transport
