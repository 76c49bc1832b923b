#pragma once
// Rate-limited logging for every message a peer (or a local client) can trigger: a hostile or
// broken peer must not be able to flood the log, and the lines held back are counted, not lost.
// One Limit per source (a device, a driver, a listening socket): at most `burst` lines per
// `period`; the first line let through after a held-back run says how many were held back.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace vepf::log {

class Limit {
 public:
  using Clock = std::chrono::steady_clock;
  /// Defaults: 5 lines per 10 s.
  explicit Limit(std::chrono::milliseconds period = std::chrono::seconds(10),
                 unsigned burst = 5) noexcept
      : period_(period), burst_(burst ? burst : 1) {}

  struct Verdict {
    bool emit = false;             // log this line
    std::uint64_t suppressed = 0;  // lines held back since the last one logged (when emit)
  };
  /// Decides for one line at `now`.
  Verdict admit(Clock::time_point now = Clock::now()) noexcept {
    if (now - window_start_ >= period_ || window_start_ == Clock::time_point{}) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= burst_) {
      ++held_;
      ++suppressed_total_;
      return {};
    }
    ++in_window_;
    return {true, std::exchange(held_, 0)};
  }
  /// Lines held back since construction.
  std::uint64_t suppressed_total() const noexcept { return suppressed_total_; }

 private:
  std::chrono::milliseconds period_;
  unsigned burst_;
  Clock::time_point window_start_{};
  unsigned in_window_ = 0;
  std::uint64_t held_ = 0;
  std::uint64_t suppressed_total_ = 0;
};

/// Logs through `lim`: the line, or nothing when the limit holds it back; a line that follows
/// held-back ones ends with "(N similar lines suppressed)". A null logger logs nothing.
template <class... Args>
void limited(Limit& lim, const std::shared_ptr<spdlog::logger>& logger,
             spdlog::level::level_enum lvl, fmt::format_string<Args...> f, Args&&... args) {
  if (!logger || !logger->should_log(lvl)) return;
  const Limit::Verdict v = lim.admit();
  if (!v.emit) return;
  if (v.suppressed == 0) {
    logger->log(lvl, f, std::forward<Args>(args)...);
  } else {
    logger->log(lvl, "{} ({} similar lines suppressed)",
                fmt::format(f, std::forward<Args>(args)...), v.suppressed);
  }
}

}  // namespace vepf::log
