#pragma once
// Shared plumbing of the two programs: loggers, the link-model report, exit codes.
// Not part of libvepf: this may log and format.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "vepf/ring/access.hpp"

namespace vepf::app {

/// Exit codes of vepf-ep and vepf-host.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // runtime failure (link, device, syscall)
inline constexpr int kExitUsage = 2;    // bad command line or board config

/// Creates the named loggers ("ep", "ep.net", ...) on stderr at `level` ("trace".."off"); a
/// logger that exists already keeps its sink and takes the level. Returns false for an unknown
/// level name.
bool setup_logging(std::initializer_list<std::string_view> names, std::string_view level);

/// The link-model figures of one side (ARCHITECTURE.md §1): what crossed the link in total,
/// and per frame since the data path came up (the steady state, setup excluded).
class LinkReport {
 public:
  explicit LinkReport(std::string side) : side_(std::move(side)) {}
  /// Marks the end of setup: counts from here on are the steady state.
  void mark_link_up(const ring::LinkCounters& now) noexcept;
  bool link_up_marked() const noexcept { return marked_; }
  /// Multi-line report. `frames` are the frames this side moved since link up (both directions).
  std::string format(const ring::LinkCounters& now, std::uint64_t tx_frames,
                     std::uint64_t rx_frames) const;

 private:
  std::string side_;
  bool marked_ = false;
  ring::LinkCounters at_link_up_{};
};

}  // namespace vepf::app
