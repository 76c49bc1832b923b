#include "drivers/driver.hpp"

#include <linux/virtio_config.h>

#include <spdlog/spdlog.h>

namespace vepf::host {

Result<void> Driver::negotiate(std::uint64_t wanted) {
  if (auto r = t_.reset(info_.slot); !r) return r;
  auto f = t_.negotiate(info_.slot, info_.device_features, wanted);
  if (!f) return tl::unexpected(f.error());
  features_ = *f;
  return {};
}

Result<void> Driver::set_driver_ok() {
  if (auto r = t_.driver_ok(info_.slot); !r) return r;
  driver_ok_ = true;
  return {};
}

bool Driver::on_control_event() {
  const std::uint8_t st = t_.device_status(info_.slot);
  if (st & VIRTIO_CONFIG_S_NEEDS_RESET) {
    log::limited(peer_log_, spdlog::get(logger()), spdlog::level::err,
                 "device {}: device reports DEVICE_NEEDS_RESET (broken queues {:#x})", info_.slot,
                 t_.broken_queues(info_.slot));
    driver_ok_ = false;
    on_needs_reset();
    return false;
  }
  on_config_event();
  return true;
}

void Driver::on_tick() {
  if (!config_retry_ || !driver_ok_) return;
  config_retry_ = false;
  on_config_event();
}

bool Driver::read_config_or_retry(std::span<std::byte> out) {
  auto r = t_.read_config(info_.slot, out);
  if (r) return true;
  if (r.error().code == Errc::kNotReady) config_retry_ = true;
  log::limited(peer_log_, spdlog::get(logger()), spdlog::level::warn,
               "device {}: cannot read the device config: {}{}", info_.slot, r.error().what,
               config_retry_ ? "; trying again" : "");
  return false;
}

}  // namespace vepf::host
