#pragma once
// GPIO sideband lines of the EP: an "EP ready" output that vepf-ep drives active while it serves
// the link, and an optional "EP reset" input whose active-going edge asks vepf-ep to reset all
// devices. The lines come from a `Chips` provider: make_libgpiod_chips() (the Linux GPIO
// character device through libgpiod 1.6, Debian bookworm's libgpiod-dev) or FakeChips
// (vepf/gpio/fake.hpp; tests, and machines without GPIO such as CI).
//
// Levels are *logical* everywhere in this interface: "active" is high for an active-high line and
// low for an active-low one (LineSpec::active_low). The provider does the inversion; callers never
// see physical levels.
//
// Errors carry an owned, one-line message that names the chip and line and says what to check
// (vepf::Error holds only a static string, and these messages need the board config's names).

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

#include "vepf/error.hpp"

namespace vepf::gpio {

/// A failed GPIO operation: the code (kSystem with sys_errno for a refused syscall or ioctl,
/// kInvalidArgument for a bad LineSpec), and a message such as
/// "gpiochip0 line 5 busy: another consumer holds it ("sysfs"; see gpioinfo gpiochip0)".
struct GpioError {
  Errc code = Errc::kOk;
  int sys_errno = 0;
  std::string message;
};

template <class T>
using GpioResult = tl::expected<T, GpioError>;

/// Shorthand: `return gpio_fail(Errc::kSystem, msg, errno);`
inline tl::unexpected<GpioError> gpio_fail(Errc code, std::string message, int sys_errno = 0) {
  return tl::unexpected<GpioError>(GpioError{code, sys_errno, std::move(message)});
}

/// One GPIO line as a board config names it.
struct LineSpec {
  /// The chip: "gpiochip0", "/dev/gpiochip0" or a chip number "0" (not a label: see
  /// libgpiod_chips.cc for why gpiod_chip_open_lookup() is not used).
  std::string chip;
  /// Line offset within the chip (0 .. lines-1; `gpioinfo <chip>` lists them).
  unsigned offset = 0;
  /// The line is active when low (e.g. an open-drain "ready#" or a "reset#" button to ground).
  bool active_low = false;

  /// "gpiochip0 line 5" (for messages).
  std::string str() const;
};

/// A requested output line. Released when destroyed; the line keeps its last level after release
/// on most GPIO controllers, so drive it to the level you want to leave behind first.
class OutputLine {
 public:
  virtual ~OutputLine() = default;
  /// Drives the line to logical `active`. Errors: kSystem (the GPIO_SET_LINE_VALUES ioctl failed).
  [[nodiscard]] virtual GpioResult<void> set(bool active) = 0;
};

/// A requested input line with edge events on both edges. Released when destroyed.
class InputLine {
 public:
  virtual ~InputLine() = default;
  /// Current logical level: true = active. Errors: kSystem.
  [[nodiscard]] virtual GpioResult<bool> get() = 0;
  /// A descriptor for poll/epoll (EPOLLIN): readable while an edge event is pending. Owned by the
  /// line; valid until it is destroyed. Level-triggered use only: read_edges() drains it.
  virtual int fd() const noexcept = 0;
  /// Consumes every pending edge event without blocking. Returns how many of them were
  /// active-going (rising on an active-high line, falling on an active-low one); 0 when none were
  /// pending or all were inactive-going. Errors: kSystem (reading the event queue failed).
  [[nodiscard]] virtual GpioResult<unsigned> read_edges() = 0;
};

/// Where lines come from. A line may outlive the Chips that made it.
class Chips {
 public:
  virtual ~Chips() = default;
  /// Requests `spec` as an output labelled `consumer` (shown by gpioinfo; the kernel keeps at
  /// most 31 characters), driven to logical `initial_active` from the moment it is granted.
  /// Errors (each names the chip and line): kInvalidArgument for an empty chip name or an offset
  /// past the chip's last line; kSystem with ENOENT (no such chip), ENOTTY/ENODEV (not a GPIO
  /// chip), EACCES (no permission on /dev/gpiochipN), EBUSY (another consumer holds the line) or
  /// another errno.
  [[nodiscard]] virtual GpioResult<std::unique_ptr<OutputLine>> request_output(
      const LineSpec& spec, bool initial_active, std::string_view consumer) = 0;
  /// Requests `spec` as an input with events on both edges. Errors: as request_output().
  [[nodiscard]] virtual GpioResult<std::unique_ptr<InputLine>> request_input(
      const LineSpec& spec, std::string_view consumer) = 0;
};

/// The Linux GPIO character device through libgpiod 1.6 (uAPI v1). LineSpec::active_low is passed
/// as GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW, so the kernel inverts values and reports edges in logical
/// terms: a GPIOD_LINE_EVENT_RISING_EDGE event is an active-going edge for either polarity.
/// Each request opens its own chip handle; destroying the line releases it and closes the chip.
std::unique_ptr<Chips> make_libgpiod_chips();

/// The EP's two sideband lines, both optional (a board without them gets no-ops).
class Sideband {
 public:
  /// Does not request anything yet (see start()). `chips` must outlive start(); `consumer` is
  /// the label prefix ("vepf-ep" gives "vepf-ep ready" and "vepf-ep reset" in gpioinfo).
  Sideband(Chips& chips, std::optional<LineSpec> ready, std::optional<LineSpec> reset,
           std::string consumer = "vepf-ep");
  /// Drives the ready line inactive, then releases both lines.
  ~Sideband();
  Sideband(const Sideband&) = delete;
  Sideband& operator=(const Sideband&) = delete;

  /// Requests the configured lines: ready as an output, initially inactive; reset as an input
  /// with both edges. On error nothing stays requested. Errors: those of Chips::request_output()
  /// and request_input(); kInvalidArgument when already started.
  [[nodiscard]] GpioResult<void> start();
  /// Drives the ready line (no-op without one, or before start()). Errors: OutputLine::set().
  [[nodiscard]] GpioResult<void> set_ready(bool active);
  /// The reset line's descriptor for epoll (EPOLLIN), -1 when there is no reset line or before
  /// start().
  int reset_fd() const noexcept;
  /// Consumes pending reset edges. Returns true when at least one active-going edge arrived
  /// since the last call; false otherwise and when there is no reset line. Errors: read_edges().
  [[nodiscard]] GpioResult<bool> take_reset();

  bool has_ready() const noexcept { return ready_spec_.has_value(); }
  bool has_reset() const noexcept { return reset_spec_.has_value(); }
  bool started() const noexcept { return started_; }

 private:
  Chips& chips_;
  std::optional<LineSpec> ready_spec_, reset_spec_;
  std::string consumer_;
  std::unique_ptr<OutputLine> ready_;
  std::unique_ptr<InputLine> reset_;
  bool started_ = false;
};

}  // namespace vepf::gpio
