#pragma once
// The error messages both providers give (libgpiod and FakeChips say the same thing for the same
// fault, so tests over the fake check the text users will read). Internal to vepf_gpio.

#include <string>
#include <string_view>
#include <vector>

#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio::detail {

/// "gpiochip0" for "gpiochip0" and "/dev/gpiochip0" (the name libgpiod and the kernel use).
std::string_view chip_basename(std::string_view chip) noexcept;

/// kInvalidArgument: the LineSpec names no chip.
GpioError empty_chip_error(const LineSpec& spec);
/// Opening the chip failed with `err`. `present` lists the chips that exist (for the hint).
GpioError chip_open_error(const LineSpec& spec, int err, const std::vector<std::string>& present);
/// kInvalidArgument: offset past the chip's `num_lines` lines.
GpioError line_range_error(const LineSpec& spec, unsigned num_lines);
/// The line request (`what`: "output", "input") failed with `err`; `holder` is the consumer that
/// holds the line when known (EBUSY), else empty.
GpioError request_error(const LineSpec& spec, std::string_view what, int err,
                        std::string_view holder);
/// An operation (`op`: "set", "get", "read edge events") on a requested line failed with `err`.
GpioError io_error(const LineSpec& spec, std::string_view op, int err);

}  // namespace vepf::gpio::detail
