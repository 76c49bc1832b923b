#include "messages.hpp"

#include <cerrno>
#include <cstring>

namespace vepf::gpio::detail {
namespace {

constexpr std::string_view kDevPrefix = "/dev/";

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

// "present: gpiochip0, gpiochip1 (gpiodetect)" or "this machine has no /dev/gpiochip*".
std::string present_hint(const std::vector<std::string>& present) {
  if (present.empty()) return "this machine has no /dev/gpiochip*";
  std::string s = "present: ";
  for (std::size_t i = 0; i < present.size(); ++i) s += (i ? ", " : "") + present[i];
  return s + " (gpiodetect)";
}

}  // namespace

std::string_view chip_basename(std::string_view chip) noexcept {
  if (chip.substr(0, kDevPrefix.size()) == kDevPrefix) chip.remove_prefix(kDevPrefix.size());
  return chip;
}

GpioError empty_chip_error(const LineSpec& spec) {
  return GpioError{Errc::kInvalidArgument, 0,
                   "GPIO line " + std::to_string(spec.offset) +
                       ": no chip given (set the board config's [gpio] chip, e.g. \"gpiochip0\")"};
}

GpioError chip_open_error(const LineSpec& spec, int err, const std::vector<std::string>& present) {
  const std::string& c = spec.chip;
  std::string msg;
  switch (err) {
    case ENOENT:
      msg = c + ": no such GPIO chip (" + present_hint(present) +
            (present.empty() ? ": is its GPIO controller's driver loaded," : ";") +
            " is the board config's [gpio] chip right?)";
      break;
    case ENOTTY:
    case ENODEV:
      msg = c +
            ": not a GPIO character device (expected a gpiochipN name or /dev/gpiochipN path; " +
            present_hint(present) + ")";
      break;
    case EACCES:
    case EPERM:
      msg = c +
            ": permission denied opening the GPIO chip (run as root, or give this user read/write "
            "access to /dev/" +
            std::string(chip_basename(c)) + ")";
      break;
    default:
      msg = c + ": cannot open GPIO chip: " + errno_text(err);
      break;
  }
  return GpioError{Errc::kSystem, err, std::move(msg)};
}

GpioError line_range_error(const LineSpec& spec, unsigned num_lines) {
  std::string msg = spec.str() + ": chip has " + std::to_string(num_lines) + " lines";
  if (num_lines > 0)
    msg += " (offsets 0.." + std::to_string(num_lines - 1) + "; see gpioinfo " + spec.chip + ")";
  return GpioError{Errc::kInvalidArgument, 0, std::move(msg)};
}

GpioError request_error(const LineSpec& spec, std::string_view what, int err,
                        std::string_view holder) {
  std::string msg;
  if (err == EBUSY) {
    msg = spec.str() + " busy: another consumer holds it (";
    if (!holder.empty()) msg += "\"" + std::string(holder) + "\"; ";
    msg += "see gpioinfo " + spec.chip + ")";
  } else {
    msg = spec.str() + ": request as " + std::string(what) + " failed: " + errno_text(err);
  }
  return GpioError{Errc::kSystem, err, std::move(msg)};
}

GpioError io_error(const LineSpec& spec, std::string_view op, int err) {
  return GpioError{Errc::kSystem, err,
                   spec.str() + ": " + std::string(op) + " failed: " + errno_text(err)};
}

}  // namespace vepf::gpio::detail
