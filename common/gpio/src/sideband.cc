#include <utility>

#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio {

std::string LineSpec::str() const { return chip + " line " + std::to_string(offset); }

Sideband::Sideband(Chips& chips, std::optional<LineSpec> ready, std::optional<LineSpec> reset,
                   std::string consumer)
    : chips_(chips),
      ready_spec_(std::move(ready)),
      reset_spec_(std::move(reset)),
      consumer_(std::move(consumer)) {}

Sideband::~Sideband() {
  // The line keeps its level after release on most controllers: leave "not ready" behind, so the
  // RC does not take a dead EP for a serving one. Nothing to report a failure to here.
  if (ready_) (void)ready_->set(false);
  reset_.reset();
  ready_.reset();
}

GpioResult<void> Sideband::start() {
  if (started_) return gpio_fail(Errc::kInvalidArgument, "GPIO sideband already started");
  std::unique_ptr<OutputLine> ready;
  std::unique_ptr<InputLine> reset;
  if (ready_spec_) {
    auto r = chips_.request_output(*ready_spec_, /*initial_active=*/false, consumer_ + " ready");
    if (!r) return tl::unexpected(std::move(r.error()));
    ready = std::move(*r);
  }
  if (reset_spec_) {
    // On failure `ready` is released here, still inactive as requested.
    auto r = chips_.request_input(*reset_spec_, consumer_ + " reset");
    if (!r) return tl::unexpected(std::move(r.error()));
    reset = std::move(*r);
  }
  ready_ = std::move(ready);
  reset_ = std::move(reset);
  started_ = true;
  return {};
}

GpioResult<void> Sideband::set_ready(bool active) {
  if (!ready_) return {};
  return ready_->set(active);
}

int Sideband::reset_fd() const noexcept { return reset_ ? reset_->fd() : -1; }

GpioResult<bool> Sideband::take_reset() {
  if (!reset_) return false;
  auto n = reset_->read_edges();
  if (!n) return tl::unexpected(std::move(n.error()));
  return *n > 0;
}

}  // namespace vepf::gpio
