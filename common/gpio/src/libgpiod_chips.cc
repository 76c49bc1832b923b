// Chips over the Linux GPIO character device through libgpiod 1.6 (uAPI v1: a line handle for
// outputs, a line event fd for inputs). Sources: /usr/include/gpiod.h (1.6.3),
// Documentation/userspace-api/gpio/chardev_v1.rst.

#include <fcntl.h>
#include <gpiod.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "messages.hpp"
#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio {
namespace {

struct ChipCloser {
  void operator()(gpiod_chip* c) const noexcept { gpiod_chip_close(c); }
};
using ChipPtr = std::unique_ptr<gpiod_chip, ChipCloser>;

/// A requested line and the chip handle it came from: released, then closed.
class Held {
 public:
  Held(ChipPtr chip, gpiod_line* line) noexcept : chip_(std::move(chip)), line_(line) {}
  ~Held() {
    if (line_ != nullptr && gpiod_line_is_requested(line_)) gpiod_line_release(line_);
  }  // chip_ closes after this body
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  gpiod_line* line() const noexcept { return line_; }

 private:
  ChipPtr chip_;
  gpiod_line* line_;
};

/// The gpiochip* names under /dev, sorted (for the "no such chip" hint).
std::vector<std::string> present_chips() {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/dev", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.rfind("gpiochip", 0) == 0) names.push_back(std::move(n));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool all_digits(const std::string& s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Opens the chip by path ("/dev/gpiochip0"), number ("0") or name ("gpiochip0"). Not by label:
/// gpiod_chip_open_lookup() tries labels first by opening every chip, and then reports the errno
/// of whichever chip failed (EACCES on an unrelated chip) instead of the one asked for.
GpioResult<ChipPtr> open_chip(const LineSpec& spec) {
  if (spec.chip.empty()) return tl::unexpected(detail::empty_chip_error(spec));
  errno = 0;
  gpiod_chip* c = nullptr;
  if (spec.chip.front() == '/') {
    c = gpiod_chip_open(spec.chip.c_str());
  } else if (all_digits(spec.chip) && spec.chip.size() < 10) {
    c = gpiod_chip_open_by_number(static_cast<unsigned>(std::stoul(spec.chip)));
  } else {
    c = gpiod_chip_open_by_name(spec.chip.c_str());
  }
  if (c == nullptr) {
    const int err = errno != 0 ? errno : ENODEV;
    return tl::unexpected(detail::chip_open_error(spec, err, present_chips()));
  }
  return ChipPtr(c);
}

/// Opens the chip and finds the line, checking the offset against the chip's line count.
GpioResult<std::unique_ptr<Held>> find_line(const LineSpec& spec) {
  auto chip = open_chip(spec);
  if (!chip) return tl::unexpected(std::move(chip.error()));
  const unsigned n = gpiod_chip_num_lines(chip->get());
  if (spec.offset >= n) return tl::unexpected(detail::line_range_error(spec, n));
  errno = 0;
  gpiod_line* line = gpiod_chip_get_line(chip->get(), spec.offset);  // reads the line info
  if (line == nullptr)
    return tl::unexpected(detail::io_error(spec, "reading line info", errno ? errno : EIO));
  return std::make_unique<Held>(std::move(*chip), line);
}

/// The request error for `err`, naming the current holder on EBUSY (gpiod_line_update() rereads
/// the line info; the kernel reports the holder's consumer label).
GpioError request_failed(const LineSpec& spec, gpiod_line* line, std::string_view what, int err) {
  std::string holder;
  if (err == EBUSY && gpiod_line_update(line) == 0) {
    const char* c = gpiod_line_consumer(line);
    if (c != nullptr) holder = c;
  }
  return detail::request_error(spec, what, err, holder);
}

int request_flags(const LineSpec& spec) noexcept {
  return spec.active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
}

class LibgpiodOutput final : public OutputLine {
 public:
  LibgpiodOutput(LineSpec spec, std::unique_ptr<Held> held)
      : spec_(std::move(spec)), held_(std::move(held)) {}
  GpioResult<void> set(bool active) override {
    // Logical value: the kernel inverts it for an ACTIVE_LOW request.
    if (gpiod_line_set_value(held_->line(), active ? 1 : 0) < 0) {
      return tl::unexpected(detail::io_error(spec_, "set", errno));
    }
    return {};
  }

 private:
  LineSpec spec_;
  std::unique_ptr<Held> held_;
};

class LibgpiodInput final : public InputLine {
 public:
  LibgpiodInput(LineSpec spec, std::unique_ptr<Held> held, int fd)
      : spec_(std::move(spec)), held_(std::move(held)), fd_(fd) {}
  GpioResult<bool> get() override {
    const int v = gpiod_line_get_value(held_->line());
    if (v < 0) return tl::unexpected(detail::io_error(spec_, "get", errno));
    return v == 1;
  }
  int fd() const noexcept override { return fd_; }
  GpioResult<unsigned> read_edges() override;

 private:
  LineSpec spec_;
  std::unique_ptr<Held> held_;
  int fd_;  // owned by libgpiod (closed by gpiod_line_release)
};

GpioResult<unsigned> LibgpiodInput::read_edges() {
  // The event fd is O_NONBLOCK (set at request), so an empty queue reads as EAGAIN. Bounded, so a
  // chattering line cannot keep us here: what is left keeps the fd readable for the next round.
  constexpr unsigned kBatch = 16, kMaxBatches = 64;
  gpiod_line_event events[kBatch]{};
  unsigned active_going = 0;
  for (unsigned b = 0; b < kMaxBatches;) {
    const int n = gpiod_line_event_read_multiple(held_->line(), events, kBatch);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return tl::unexpected(detail::io_error(spec_, "read edge events", errno));
    }
    // uAPI v1 with ACTIVE_LOW: the kernel swaps the edges, so RISING_EDGE is active-going.
    for (int i = 0; i < n; ++i)
      active_going += events[i].event_type == GPIOD_LINE_EVENT_RISING_EDGE ? 1 : 0;
    ++b;
  }
  return active_going;
}

class LibgpiodChips final : public Chips {
 public:
  GpioResult<std::unique_ptr<OutputLine>> request_output(const LineSpec& spec, bool initial_active,
                                                         std::string_view consumer) override {
    auto held = find_line(spec);
    if (!held) return tl::unexpected(std::move(held.error()));
    const std::string label(consumer);
    gpiod_line* line = (*held)->line();
    if (gpiod_line_request_output_flags(line, label.c_str(), request_flags(spec),
                                        initial_active ? 1 : 0) < 0) {
      return tl::unexpected(request_failed(spec, line, "output", errno));
    }
    return std::make_unique<LibgpiodOutput>(spec, std::move(*held));
  }

  GpioResult<std::unique_ptr<InputLine>> request_input(const LineSpec& spec,
                                                       std::string_view consumer) override {
    auto held = find_line(spec);
    if (!held) return tl::unexpected(std::move(held.error()));
    const std::string label(consumer);
    gpiod_line* line = (*held)->line();
    if (gpiod_line_request_both_edges_events_flags(line, label.c_str(), request_flags(spec)) < 0) {
      return tl::unexpected(request_failed(spec, line, "input with edge events", errno));
    }
    const int fd = gpiod_line_event_get_fd(line);
    if (fd < 0) return tl::unexpected(detail::io_error(spec, "getting the event fd", errno));
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      return tl::unexpected(detail::io_error(spec, "setting O_NONBLOCK on the event fd", errno));
    }
    return std::make_unique<LibgpiodInput>(spec, std::move(*held), fd);
  }
};

}  // namespace

std::unique_ptr<Chips> make_libgpiod_chips() { return std::make_unique<LibgpiodChips>(); }

}  // namespace vepf::gpio
