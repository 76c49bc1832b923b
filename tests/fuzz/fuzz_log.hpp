#pragma once
// The fuzz targets that run real devices and drivers: their loggers exist and say nothing.

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

namespace vepf::fuzz {

/// Turns logging off and makes `name` a null logger when none exists (the devices and drivers
/// look theirs up by name).
inline void quiet_log(const char* name) {
  spdlog::set_level(spdlog::level::off);
  if (!spdlog::get(name)) spdlog::create<spdlog::sinks::null_sink_mt>(name);
}

}  // namespace vepf::fuzz
