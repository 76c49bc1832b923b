#include "vepf/transport/device_transport.hpp"

#include <linux/virtio_config.h>

#include <algorithm>
#include <cstddef>

#include "vepf/hw/barrier.hpp"
#include "vepf/layout/ring.hpp"

namespace vepf::transport {

using layout::AckResult;
using layout::ControlRegion;
using layout::DeviceLine;
using layout::DeviceSlot;
using layout::DriverLine;
using layout::EpfHeader;
using layout::LinkDriverLine;
using layout::QueueBlock;
using layout::QueueDeviceLine;
using layout::QueueDriverLine;

namespace {

constexpr std::uint64_t join(std::uint32_t lo, std::uint32_t hi) noexcept {
  return lo | (std::uint64_t{hi} << 32);
}

}  // namespace

// ---- DeviceHandle

ring::Vringh* DeviceHandle::queue(std::uint16_t q) noexcept {
  auto& s = t_->slots_[slot_];
  if (q >= s.queues.size() || (s.broken_queues & (1u << q))) return nullptr;
  return s.queues[q].get();
}
std::uint64_t DeviceHandle::features() const noexcept { return t_->slots_[slot_].features; }
void DeviceHandle::notify_driver() noexcept { t_->interrupt(); }
void DeviceHandle::config_changed() noexcept {
  t_->write_config(slot_);
  t_->bump_mailbox();
  t_->interrupt();
}
void DeviceHandle::queue_broken(std::uint16_t q) noexcept {
  auto& s = t_->slots_[slot_];
  if (q < s.queues.size() && s.queues[q] && s.queues[q]->limit_hit() &&
      !(s.broken_queues & (1u << q))) {
    ++s.chain_limit_hits;
  }
  s.broken_queues |= 1u << q;
  s.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
  t_->write_status(slot_);
  t_->bump_mailbox();
  t_->interrupt();
}

// ---- DeviceTransport

DeviceTransport::DeviceTransport(DeviceLink& link, std::uint32_t epoch)
    : link_(link),
      ep_(link.ep_window()),
      space_(&link.ep_window(), nullptr),
      epoch_(epoch ? epoch : 1),
      header_(&ep_, layout::header_off(0)) {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.line = OwnedBytes<sizeof(DeviceLine)>(&ep_, layout::device_line_off(i, 0));
    s.config = OwnedBytes<layout::kConfigSpaceSize>(
        &ep_, layout::device_slot_off(i) + offsetof(DeviceSlot, config));
    for (std::uint32_t q = 0; q < layout::kMaxQueuesPerDevice; ++q) {
      s.queue_lines[q] = OwnedBytes<sizeof(QueueDeviceLine)>(
          &ep_, layout::queue_block_off(i, q) + offsetof(QueueBlock, device));
    }
  }
  // Rings and buffers never overlap the control region: a driver cannot make the device
  // overwrite its own header or acks through a descriptor.
  space_.set_ep_floor(layout::kControlRegionSize);
}

DeviceTransport::~DeviceTransport() {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].dev) reset_slot(i);
  }
}

Result<void> DeviceTransport::init() {
  if (ep_.size() < layout::kControlRegionSize)
    return fail(Errc::kInvalidArgument, "EP window smaller than the control region");
  // A stale request left in memory from a previous run must not be replayed.
  last_link_seq_ =
      ep_.load<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_seq)));
  // All zero first (the image's start), magic included: a driver never takes a previous run's
  // header, half rewritten, for ours.
  header_.publish();
  header_.store<std::uint16_t>(offsetof(EpfHeader, version), layout::kEpfVersion);
  header_.store<std::uint16_t>(offsetof(EpfHeader, max_devices), layout::kMaxDevices);
  header_.store<std::uint32_t>(offsetof(EpfHeader, epoch), epoch_);
  header_.store<std::uint32_t>(offsetof(EpfHeader, region_size), layout::kControlRegionSize);
  header_.store<std::uint32_t>(offsetof(EpfHeader, device_table_off),
                               offsetof(ControlRegion, devices));
  header_.store<std::uint32_t>(offsetof(EpfHeader, device_stride), sizeof(DeviceSlot));
  header_.store<std::uint16_t>(offsetof(EpfHeader, max_queues), layout::kMaxQueuesPerDevice);
  header_.store<std::uint16_t>(offsetof(EpfHeader, queue_stride), sizeof(layout::QueueBlock));
  header_.store<std::uint32_t>(offsetof(EpfHeader, table_generation), table_generation_);
  header_.store<std::uint32_t>(offsetof(EpfHeader, ep_window_size_lo),
                               static_cast<std::uint32_t>(ep_.size()));
  header_.store<std::uint32_t>(offsetof(EpfHeader, ep_window_size_hi),
                               static_cast<std::uint32_t>(ep_.size() >> 32));
  header_.store<std::uint32_t>(offsetof(EpfHeader, link_ack_seq), last_link_seq_);
  header_.store<std::uint32_t>(offsetof(EpfHeader, link_ack_result), 0);
  header_.store<std::uint32_t>(offsetof(EpfHeader, doorbell_off),
                               offsetof(ControlRegion, doorbell));
  header_.store<std::uint32_t>(offsetof(EpfHeader, mailbox_off), 0);
  for (std::uint32_t i = 0; i < layout::kMaxDevices; ++i) {
    // An empty slot; what a previous run left in the rest of its line (slot_generation, the
    // last ack) carries on, so that a driver never sees them go back.
    slots_[i].line.adopt();
    slots_[i].line.store<std::uint32_t>(offsetof(DeviceLine, device_id), 0);
  }
  // Magic last: a driver that sees it sees a complete header. Pairs with load_acquire of magic
  // in DriverTransport::validate_header().
  header_.store_release<std::uint32_t>(offsetof(EpfHeader, magic), layout::kEpfMagic);
  return {};
}

std::optional<std::uint32_t> DeviceTransport::first_free_slot() const noexcept {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].dev == nullptr) return i;
  }
  return std::nullopt;
}

Result<std::uint32_t> DeviceTransport::add_device(VirtioDevice* dev) {
  if (dev->num_queues() == 0 || dev->num_queues() > layout::kMaxQueuesPerDevice) {
    return fail(Errc::kInvalidArgument, "device has more queues than the layout allows");
  }
  if (dev->config().size() > layout::kConfigSpaceSize)
    return fail(Errc::kInvalidArgument, "device config larger than 256 bytes");
  auto it =
      std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.dev == nullptr; });
  if (it == slots_.end()) return fail(Errc::kNoSpace, "device table full");
  const auto slot = static_cast<std::uint32_t>(it - slots_.begin());
  Slot& s = *it;
  s.dev = dev;
  s.status = 0;
  s.features = 0;
  s.broken_queues = 0;
  // Continue from whatever the driver line holds so that a stale request is not replayed.
  s.last_req_seq =
      ep_.load<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_seq)));
  write_slot_header(slot);
  write_config(slot);
  for (std::uint32_t q = 0; q < dev->num_queues(); ++q) s.queue_lines[q].publish();  // none enabled
  write_status(slot);
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, ack_seq), s.last_req_seq);
  // device_id last: the driver reads a complete entry once it is non-zero. Pairs with
  // load_acquire of device_id in DriverTransport::scan().
  slots_[slot].line.store_release<std::uint32_t>(offsetof(DeviceLine, device_id), dev->device_id());
  // The filled slot before the new table generation; pairs with load_acquire of
  // table_generation in DriverTransport::table_generation().
  header_.store_release<std::uint32_t>(offsetof(EpfHeader, table_generation), ++table_generation_);
  bump_mailbox();
  interrupt();
  return slot;
}

void DeviceTransport::remove_device(std::uint32_t slot) {
  if (slot >= slots_.size() || slots_[slot].dev == nullptr) return;
  reset_slot(slot);
  slots_[slot].dev = nullptr;
  slots_[slot].chain_limit_hits = 0;
  // The reset status before the empty slot; pairs with load_acquire of device_id in
  // DriverTransport::scan().
  slots_[slot].line.store_release<std::uint32_t>(offsetof(DeviceLine, device_id), 0);
  const auto gen = slots_[slot].line.get<std::uint32_t>(offsetof(DeviceLine, slot_generation));
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, slot_generation), gen + 1);
  // Pairs with load_acquire of table_generation in DriverTransport::table_generation().
  header_.store_release<std::uint32_t>(offsetof(EpfHeader, table_generation), ++table_generation_);
  bump_mailbox();
  interrupt();
}

void DeviceTransport::write_slot_header(std::uint32_t slot) {
  const VirtioDevice& d = *slots_[slot].dev;
  slots_[slot].line.store<std::uint16_t>(offsetof(DeviceLine, num_queues), d.num_queues());
  slots_[slot].line.store<std::uint16_t>(offsetof(DeviceLine, max_queue_size), d.max_queue_size());
  const std::uint64_t f = d.device_features();
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, device_feature_lo),
                                         static_cast<std::uint32_t>(f));
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, device_feature_hi),
                                         static_cast<std::uint32_t>(f >> 32));
  const auto gen = slots_[slot].line.get<std::uint32_t>(offsetof(DeviceLine, slot_generation));
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, slot_generation), gen + 1);
}

void DeviceTransport::write_config(std::uint32_t slot) {
  Slot& s = slots_[slot];
  const auto cfg = s.dev->config();
  // Seqlock-style generation (LAYOUT.md §2.4): odd while the config is being rewritten, so a
  // driver that reads an odd or changed generation around its read retries.
  const std::size_t gen_off = offsetof(DeviceLine, config_generation);
  // Odd, whatever the line held (a previous run's value, or one a host overwrote it with).
  const std::uint32_t odd = s.line.get<std::uint32_t>(gen_off) | 1u;
  // Earlier config stores before the odd generation; pairs with load_acquire of the first
  // generation read in DriverTransport::read_config().
  s.line.store_release<std::uint32_t>(gen_off, odd);
  // The odd generation before any byte of the new config: a store-release orders only what
  // precedes it, so without this barrier the config stores could become visible first and a
  // driver could read a torn config between two equal even generations. Pairs with the
  // dma_rmb() between the config read and the second generation read in
  // DriverTransport::read_config().
  hw::dma_wmb();
  std::array<std::byte, layout::kConfigSpaceSize> buf{};
  std::copy(cfg.begin(), cfg.end(), buf.begin());
  // Word by word (single-copy atomic): the driver may be reading it right now.
  s.config.assign(buf);
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, config_size),
                                         static_cast<std::uint32_t>(cfg.size()));
  // The new config before the even generation; pairs with load_acquire of the first
  // generation read in DriverTransport::read_config().
  s.line.store_release<std::uint32_t>(gen_off, odd + 1);
}

void DeviceTransport::write_status(std::uint32_t slot) {
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, broken_queues),
                                         slots_[slot].broken_queues);
  // broken_queues before status; pairs with load_acquire of status in
  // DriverTransport::device_status().
  slots_[slot].line.store_release<std::uint32_t>(offsetof(DeviceLine, status), slots_[slot].status);
}

void DeviceTransport::bump_mailbox() noexcept {
  if (rc_ == nullptr) return;
  // Whatever changed (acks, status, config) before the mailbox moves; pairs with load_acquire
  // of event_seq in DriverTransport::mailbox_seq().
  rc_->store_release<std::uint32_t>(offsetof(layout::RcMailbox, event_seq), ++mailbox_seq_);
}

void DeviceTransport::heartbeat() noexcept {
  if (rc_ == nullptr) return;
  rc_->store<std::uint32_t>(offsetof(layout::RcMailbox, heartbeat), ++heartbeat_);
}

void DeviceTransport::interrupt() noexcept {
  if (rc_ == nullptr) return;
  (void)link_.raise_interrupt();  // a lost interrupt is recovered by the driver's poll tick
}

std::uint8_t DeviceTransport::status(std::uint32_t slot) const noexcept {
  return slot < slots_.size() ? slots_[slot].status : 0;
}

std::uint64_t DeviceTransport::features(std::uint32_t slot) const noexcept {
  return slot < slots_.size() ? slots_[slot].features : 0;
}

std::vector<DeviceTransport::QueueState> DeviceTransport::queue_states(std::uint32_t slot) const {
  std::vector<QueueState> out;
  if (slot >= slots_.size()) return out;
  const Slot& s = slots_[slot];
  for (std::size_t q = 0; q < s.queues.size(); ++q) {
    const ring::Vringh* v = s.queues[q].get();
    if (v == nullptr) continue;
    QueueState st;
    st.index = static_cast<std::uint16_t>(q);
    st.size = v->num();
    st.last_avail = v->last_avail_idx();
    st.used = v->used_idx();
    st.pending = v->pending();
    st.broken = v->broken();
    st.why = v->broken() ? v->why() : nullptr;
    out.push_back(st);
  }
  return out;
}

std::uint64_t DeviceTransport::chain_limit_hits(std::uint32_t slot) const noexcept {
  return slot < slots_.size() ? slots_[slot].chain_limit_hits : 0;
}

void DeviceTransport::reset_slot(std::uint32_t slot) {
  Slot& s = slots_[slot];
  if (s.dev) s.dev->on_reset();
  for (std::uint32_t q = 0; q < s.queues.size(); ++q) {
    if (s.queues[q]) s.queue_lines[q].store<std::uint16_t>(offsetof(QueueDeviceLine, enabled), 0);
    s.queues[q].reset();
  }
  s.status = 0;
  s.features = 0;
  s.broken_queues = 0;
  s.started = false;
  write_status(slot);
}

void DeviceTransport::link_down() {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].dev) reset_slot(i);
  }
  if (rc_) link_.detach_rc_window();
  rc_ = nullptr;
  space_.set_rc(nullptr);
}

void DeviceTransport::restart(std::uint32_t new_epoch) {
  link_down();
  epoch_ = new_epoch;
  // The reset slots before the new epoch; pairs with load_acquire of epoch in
  // DriverTransport::epoch_changed().
  header_.store_release<std::uint32_t>(offsetof(EpfHeader, epoch), epoch_);
}

void DeviceTransport::poll() {
  poll_link();
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].dev == nullptr) continue;
    poll_device(i);
    Slot& s = slots_[i];
    // A broken queue is hidden by DeviceHandle::queue(); the device's other queues keep running.
    if (s.dev && s.started) {
      DeviceHandle h(this, i);
      s.dev->on_notify(h);
    }
  }
}

void DeviceTransport::notify(std::uint32_t slot) {
  if (slot >= slots_.size()) return;
  Slot& s = slots_[slot];
  if (s.dev == nullptr || !s.started) return;
  DeviceHandle h(this, slot);
  s.dev->on_notify(h);
}

void DeviceTransport::poll_link() {
  // The request's arguments after its sequence number; pairs with store_release of req_seq in
  // DriverTransport::attach().
  const auto seq =
      ep_.load_acquire<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_seq)));
  if (seq == last_link_seq_) return;
  last_link_seq_ = seq;
  const auto op = static_cast<layout::LinkOp>(
      ep_.load<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_op))));
  AckResult result = AckResult::kOk;
  if (op == layout::LinkOp::kAttach || op == layout::LinkOp::kDetach) {
    if (rc_) link_down();  // a new attach starts from a clean state
  }
  if (op == layout::LinkOp::kAttach) {
    // Whatever a host wrote over our lines (a crashed or hostile one, a stray DMA), the host
    // attaching now reads what we hold.
    republish();
    const auto addr = join(
        ep_.load<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_lo))),
        ep_.load<std::uint32_t>(
            layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_hi))));
    const auto size = join(
        ep_.load<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_lo))),
        ep_.load<std::uint32_t>(
            layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_hi))));
    const auto drv_epoch =
        ep_.load<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, driver_epoch)));
    if (drv_epoch != epoch_) {
      result = AckResult::kBadState;
    } else if (size < layout::kRcMailboxSize || size % 8 != 0 || addr % 8 != 0) {
      // LAYOUT.md §2.2: the aligned containers of device-memory copies stay inside the window.
      result = AckResult::kBadOp;
    } else if (auto w = link_.attach_rc_window(addr, size); !w) {
      result = AckResult::kNoLink;
    } else {
      rc_ = *w;
      space_.set_rc(rc_);
      rc_->store<std::uint32_t>(offsetof(layout::RcMailbox, epoch), epoch_);
      rc_->store<std::uint32_t>(offsetof(layout::RcMailbox, heartbeat), ++heartbeat_);
    }
  } else if (op != layout::LinkOp::kDetach) {
    result = AckResult::kBadOp;
  }
  header_.store<std::uint32_t>(offsetof(EpfHeader, link_ack_result),
                               static_cast<std::uint32_t>(result));
  // The result before the ack; pairs with load_acquire of the ack in DriverTransport::wait_ack().
  header_.store_release<std::uint32_t>(offsetof(EpfHeader, link_ack_seq), seq);
  bump_mailbox();
  // The attach ack must reach a driver waiting for it, even though rc_ may be unset.
  (void)link_.raise_interrupt();
}

void DeviceTransport::republish() {
  // Each line's committing word last: magic pairs with load_acquire of magic in
  // DriverTransport::validate_header(), device_id with load_acquire of device_id in
  // DriverTransport::scan().
  header_.publish(offsetof(EpfHeader, magic));
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.line.publish(offsetof(DeviceLine, device_id));
    if (s.dev == nullptr) continue;
    write_config(i);
    for (std::uint32_t q = 0; q < s.dev->num_queues(); ++q) s.queue_lines[q].publish();
  }
}

std::uint32_t DeviceTransport::audit() {
  std::uint32_t repaired = 0;
  if (!header_.intact()) {
    // Pairs with load_acquire of magic in DriverTransport::validate_header().
    header_.publish(offsetof(EpfHeader, magic));
    ++repaired;
  }
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.line.intact()) {
      // Pairs with load_acquire of device_id in DriverTransport::scan().
      s.line.publish(offsetof(DeviceLine, device_id));
      ++repaired;
    }
    if (s.dev == nullptr) continue;
    if (!s.config.intact()) {
      write_config(i);  // under a new generation: a driver that read the overwrite reads again
      ++repaired;
    }
    for (std::uint32_t q = 0; q < s.dev->num_queues(); ++q) {
      if (!s.queue_lines[q].intact()) {
        s.queue_lines[q].publish();
        ++repaired;
      }
    }
  }
  if (repaired) {
    repairs_ += repaired;
    bump_mailbox();  // the driver re-reads status and config
    interrupt();
  }
  return repaired;
}

void DeviceTransport::poll_device(std::uint32_t slot) {
  Slot& s = slots_[slot];
  // The request's arguments after its sequence number; pairs with store_release of req_seq in
  // DriverTransport::request().
  const auto seq =
      ep_.load_acquire<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_seq)));
  if (seq == s.last_req_seq) return;
  s.last_req_seq = seq;
  const auto op = static_cast<layout::DeviceOp>(
      ep_.load<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_op))));
  const auto arg =
      ep_.load<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_arg0)));
  const Ack ack = rc_ ? handle_request(slot, op, arg) : Ack{AckResult::kNoLink, 0};
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, ack_result),
                                         static_cast<std::uint32_t>(ack.result));
  slots_[slot].line.store<std::uint32_t>(offsetof(DeviceLine, ack_value), ack.value);
  // Result and value before the ack; pairs with load_acquire of the ack in
  // DriverTransport::wait_ack().
  slots_[slot].line.store_release<std::uint32_t>(offsetof(DeviceLine, ack_seq), seq);
  bump_mailbox();
  interrupt();
}

DeviceTransport::Ack DeviceTransport::handle_request(std::uint32_t slot, layout::DeviceOp op,
                                                     std::uint32_t arg) {
  switch (op) {
    case layout::DeviceOp::kSetStatus: {
      if (arg > 0xff) return {AckResult::kBadOp, slots_[slot].status};
      const AckResult r = set_status(slot, static_cast<std::uint8_t>(arg));
      return {r, slots_[slot].status};
    }
    case layout::DeviceOp::kQueueEnable:
      return {enable_queue(slot, arg), 0};
    case layout::DeviceOp::kQueueReset: {
      Slot& s = slots_[slot];
      if (arg >= s.dev->num_queues() || (s.status & VIRTIO_CONFIG_S_DRIVER_OK))
        return {AckResult::kBadState, 0};
      s.queues[arg].reset();
      s.queue_lines[arg].store<std::uint16_t>(offsetof(QueueDeviceLine, enabled), 0);
      return {AckResult::kOk, 0};
    }
    case layout::DeviceOp::kNone:
      break;
  }
  return {AckResult::kBadOp, 0};
}

AckResult DeviceTransport::set_status(std::uint32_t slot, std::uint8_t status) {
  Slot& s = slots_[slot];
  if (status == 0) {
    reset_slot(slot);
    return AckResult::kOk;
  }
  const std::uint8_t old = s.status;
  // VIRTIO 1.2 §2.1: the driver only sets bits; clearing needs a reset. NEEDS_RESET is ours.
  if ((status & old & ~VIRTIO_CONFIG_S_NEEDS_RESET) != (old & ~VIRTIO_CONFIG_S_NEEDS_RESET))
    return AckResult::kBadState;
  const std::uint8_t added =
      static_cast<std::uint8_t>(status & ~old & ~VIRTIO_CONFIG_S_NEEDS_RESET);
  if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
    const auto df = join(ep_.load<std::uint32_t>(layout::driver_line_off(
                             slot, offsetof(DriverLine, driver_feature_lo))),
                         ep_.load<std::uint32_t>(layout::driver_line_off(
                             slot, offsetof(DriverLine, driver_feature_hi))));
    // VIRTIO 1.2 §2.2.1: a subset of what we offered; this transport is modern-only.
    if ((df & ~s.dev->device_features()) || !(df & (std::uint64_t{1} << VIRTIO_F_VERSION_1))) {
      // Refused: neither FEATURES_OK nor a DRIVER_OK that would depend on it is taken.
      s.status = static_cast<std::uint8_t>(
          (old | status) & ~(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK));
      write_status(slot);
      return AckResult::kBadFeatures;
    }
    s.features = df;
  }
  if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(status & VIRTIO_CONFIG_S_FEATURES_OK))
    return AckResult::kBadState;
  s.status = static_cast<std::uint8_t>(status | (old & VIRTIO_CONFIG_S_NEEDS_RESET));
  write_status(slot);
  if (status & VIRTIO_CONFIG_S_FAILED) {
    // The driver gave up on the device: stop serving it until a reset.
    if (s.started) s.dev->on_reset();
    s.started = false;
  } else if (added & VIRTIO_CONFIG_S_DRIVER_OK) {
    s.started = true;
    DeviceHandle h(this, slot);
    s.dev->on_driver_ok(h);
  }
  return AckResult::kOk;
}

AckResult DeviceTransport::enable_queue(std::uint32_t slot, std::uint32_t q) {
  Slot& s = slots_[slot];
  if (q >= s.dev->num_queues()) return AckResult::kBadOp;
  if (!(s.status & VIRTIO_CONFIG_S_FEATURES_OK) || (s.status & VIRTIO_CONFIG_S_DRIVER_OK))
    return AckResult::kBadState;
  const auto line = ep_.read_struct<QueueDriverLine>(layout::queue_block_off(slot, q));
  const std::uint16_t num = line.queue_size.to_cpu();
  if (!layout::queue_size_valid(num) || num > s.dev->max_queue_size()) return AckResult::kBadQueue;
  const auto desc =
      space_.translate_aligned(join(line.queue_desc_lo.to_cpu(), line.queue_desc_hi.to_cpu()),
                               layout::desc_table_size(num), layout::kDescAlign);
  const auto avail =
      space_.translate_aligned(join(line.queue_driver_lo.to_cpu(), line.queue_driver_hi.to_cpu()),
                               layout::avail_ring_size(num), layout::kAvailAlign);
  const auto used =
      space_.translate_aligned(join(line.queue_device_lo.to_cpu(), line.queue_device_hi.to_cpu()),
                               layout::used_ring_size(num), layout::kUsedAlign);
  if (!desc || !avail || !used) return AckResult::kBadQueue;
  ring::VringhParams p;
  p.num = num;
  p.desc = *desc;
  p.avail = *avail;
  p.used = *used;
  p.space = &space_;
  p.event_idx = s.features & (std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);
  p.indirect = s.features & (std::uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);
  p.max_chain = max_chain_;
  p.group = &group_;
  s.queues[q] = std::make_unique<ring::Vringh>(p);
  s.queue_lines[q].store<std::uint16_t>(offsetof(QueueDeviceLine, enabled), 1);
  return AckResult::kOk;
}

}  // namespace vepf::transport
