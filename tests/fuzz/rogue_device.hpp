#pragma once
// What the rogue-device fuzz targets (net, blk, rpmsg and console driver harnesses) share:
// their loggers quiet, and the transports brought up around the rogue device as vepf-host's bus
// finds a real one (support/transport_pair.hpp).

#include <cstdint>
#include <optional>
#include <span>

#include "fuzz_log.hpp"
#include "fuzz_support.hpp"
#include "support/transport_pair.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::fuzz {

/// A device whose every move the fuzz input makes: what it offers (ID, features, queues and
/// their size, the config space a derived class gives), and the queue access, interrupt and
/// DEVICE_NEEDS_RESET that its moves use.
class RogueDevice : public transport::VirtioDevice {
 public:
  RogueDevice(std::uint32_t id, std::uint64_t features, std::uint16_t queues, std::uint16_t qsize)
      : id_(id), features_(features), queues_(queues), qsize_(qsize) {}
  std::uint32_t device_id() const override { return id_; }
  std::uint64_t device_features() const override { return features_; }
  std::uint16_t num_queues() const override { return queues_; }
  std::uint16_t max_queue_size() const override { return qsize_; }
  std::span<const std::byte> config() const override { return {}; }
  void on_driver_ok(transport::DeviceHandle& h) override { h_.emplace(h); }
  void on_reset() override { h_.reset(); }
  void on_notify(transport::DeviceHandle&) override {}

  /// Marks queue `q` broken: DEVICE_NEEDS_RESET for the driver.
  void needs_reset(std::uint16_t q) {
    if (h_) h_->queue_broken(q);
  }

 protected:
  /// Queue `q` while the driver has the device running, else null.
  ring::Vringh* queue(std::uint16_t q) { return h_ ? h_->queue(q) : nullptr; }
  void interrupt() {
    if (h_) h_->notify_driver();
  }
  /// The config space changed: the driver hears it on the control path.
  void config_changed() {
    if (h_) h_->config_changed();
  }
  /// Pops the next chain of `q`, writes `bytes` into its writable part and completes it with
  /// `claimed` (or what it wrote) as the used length. False: no chain waits.
  bool complete_next(std::uint16_t q, std::span<const std::byte> bytes,
                     std::optional<std::uint32_t> claimed) {
    ring::Vringh* v = queue(q);
    if (v == nullptr) return false;
    auto c = v->pop();
    if (!c || !*c) return false;
    const auto n = static_cast<std::uint32_t>(ring::chain_write(**c, bytes));
    (void)v->complete((*c)->head, claimed ? *claimed : n);
    interrupt();
    return true;
  }

 private:
  std::uint32_t id_;
  std::uint64_t features_;
  std::uint16_t queues_, qsize_;
  std::optional<transport::DeviceHandle> h_;
};

/// The device writes a 32-bit word of the RC window (used rings, buffers, mailbox): u32 offset,
/// u32 value.
inline void scribble_rc(ByteReader& in, test::LinkWindows& w) {
  const std::uint32_t off = in.u32() % static_cast<std::uint32_t>(w.dev_rc.size()) & ~3u;
  w.dev_rc.store<std::uint32_t>(off, in.u32());
}

/// The device side's init() with `rogue` in its table, the driver side attached: the one device
/// the driver's scan() finds, or nullopt when the scan fails (the rogue device's config, say).
inline std::optional<transport::DeviceInfo> attach_rogue(test::TransportPair& t,
                                                         transport::VirtioDevice& rogue) {
  FUZZ_CHECK(t.add(rogue).has_value());
  FUZZ_CHECK(t.drv.attach().has_value());
  auto devs = t.drv.scan();
  if (!devs || devs->size() != 1) return std::nullopt;
  return (*devs)[0];
}

}  // namespace vepf::fuzz
