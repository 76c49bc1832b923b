#pragma once
// In-memory GPIO chips for tests and for machines without a GPIO controller (Debian's kernel
// has neither gpio-sim nor gpio-mockup). Models what the GPIO character device does:
//  - lines hold a *physical* level; requests with LineSpec::active_low see it inverted, like
//    GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW;
//  - a line has at most one consumer; another request gets EBUSY with the same message as libgpiod;
//  - an output keeps its last level after release;
//  - driving a requested input to a new level queues one edge event and makes the line's fd (an
//    eventfd) readable until read_edges() consumes the queue, so epoll works as on hardware.
// Chip names match with or without "/dev/". Thread-safe: one mutex guards all chips.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio {

class FakeChips final : public Chips {
 public:
  FakeChips();
  ~FakeChips() override;
  FakeChips(const FakeChips&) = delete;
  FakeChips& operator=(const FakeChips&) = delete;

  /// Adds chip `name` ("gpiochip0") with `num_lines` lines, all low and free. Replaces an
  /// existing chip of that name (lines already requested from the old one keep working).
  void add_chip(const std::string& name, unsigned num_lines);

  // ---- inspection (unknown chip or line: nullopt / empty) ----
  /// Physical level of the line: what a scope would show (true = high).
  std::optional<bool> level(std::string_view chip, unsigned offset) const;
  /// Consumer label of the line's holder; empty when the line is free.
  std::string consumer(std::string_view chip, unsigned offset) const;
  /// True while the line is requested as an output (by us, not by hold()).
  bool is_output(std::string_view chip, unsigned offset) const;

  // ---- stimuli (no-ops for an unknown chip or line) ----
  /// Drives the line's physical level from outside (a button, the RC). On a change, a requested
  /// input gets one edge event (rising when `high`) and its fd becomes readable.
  void drive(std::string_view chip, unsigned offset, bool high);
  /// Makes the line busy, as if another process held it as `consumer`; an empty consumer frees it.
  void hold(std::string_view chip, unsigned offset, std::string consumer);
  /// Makes later set()/get()/read_edges() on lines requested at this offset fail with kSystem
  /// and errno `err` (0 clears it).
  void inject_io_error(std::string_view chip, unsigned offset, int err);

  [[nodiscard]] GpioResult<std::unique_ptr<OutputLine>> request_output(
      const LineSpec& spec, bool initial_active, std::string_view consumer) override;
  [[nodiscard]] GpioResult<std::unique_ptr<InputLine>> request_input(
      const LineSpec& spec, std::string_view consumer) override;

  struct State;  // shared with the lines it hands out (public for them; opaque to users)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace vepf::gpio
