// Helpers the board-config tests share: the one-line error a TOML text gives, and a substring
// assertion that prints both sides when it fails.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "vepf/config/board_config.hpp"

namespace vepf::config::test {

/// The source name the tests parse under ("x.toml").
inline constexpr std::string_view kSource = "x.toml";

/// [board] and [loopback] of a loopback board file, no devices.
inline constexpr std::string_view kBoard =
    "[board]\nname = \"t\"\nplatform = \"loopback\"\n"
    "[loopback]\nsocket = \"/tmp/t.sock\"\n";

/// A whole board file with one net device; the arguments are extra lines for [[device]],
/// for [device.net], and extra tables after them ([device.ep] ...).
inline std::string board(std::string_view device_keys = "", std::string_view net_keys = "",
                         std::string_view tables = "") {
  std::string out(kBoard);
  out += "[[device]]\ntype = \"net\"\n";
  out += device_keys;
  out += "[device.net]\nmac = \"02:00:00:00:00:01\"\n";
  out += net_keys;
  out += tables;
  return out;
}

/// The error message for `toml` (parsed as kSource), or "<parsed>" when it parses.
inline std::string error_of(const std::string& toml) {
  const auto result = parse_board_config(toml, kSource);
  return result ? std::string("<parsed>") : result.error().message;
}

/// Passes when `text` contains `part`; a failure prints both.
inline ::testing::AssertionResult has(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

}  // namespace vepf::config::test
