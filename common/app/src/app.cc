#include "vepf/app/app.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

namespace vepf::app {

bool setup_logging(std::initializer_list<std::string_view> names, std::string_view level) {
  const auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  for (auto n : names) {
    if (auto have = spdlog::get(std::string(n))) {
      have->set_level(lvl);  // set up before (a library user with both sides in one process)
      continue;
    }
    auto l = std::make_shared<spdlog::logger>(std::string(n), sink);
    l->set_level(lvl);
    l->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
    spdlog::register_logger(l);
  }
  return true;
}

void LinkReport::mark_link_up(const ring::LinkCounters& now) noexcept {
  marked_ = true;
  at_link_up_ = now;
}

std::string LinkReport::format(const ring::LinkCounters& now, std::uint64_t tx_frames,
                               std::uint64_t rx_frames) const {
  const ring::LinkCounters d = marked_ ? now - at_link_up_ : ring::LinkCounters{};
  const std::uint64_t frames = tx_frames + rx_frames;
  const double n = frames ? static_cast<double>(frames) : 1.0;
  std::string out = fmt::format("{} link model: {} frames since link up (sent {}, received {})\n",
                                side_, frames, tx_frames, rx_frames);
  out += fmt::format(
      "  per frame: non-posted reads {:.4f} ({:.1f} B), posted writes {:.3f} ({:.1f} B), signals "
      "sent {:.4f}, "
      "signals received {:.4f}\n",
      d.nonposted_reads / n, d.nonposted_read_bytes / n, d.posted_writes / n,
      d.posted_write_bytes / n, d.signals_sent / n, d.signals_received / n);
  const ring::LinkCounters setup = marked_ ? at_link_up_ : now;
  out += fmt::format(
      "  totals: non-posted reads {} ({} B; setup {}), posted writes {} ({} B; setup {}), signals "
      "sent {}, "
      "received {}",
      now.nonposted_reads, now.nonposted_read_bytes, setup.nonposted_reads, now.posted_writes,
      now.posted_write_bytes, setup.posted_writes, now.signals_sent, now.signals_received);
  return out;
}

}  // namespace vepf::app
