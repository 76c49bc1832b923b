#pragma once
// PCI function addresses and vendor:device matches as board configs and command lines spell them
// (lspci's notation). Plain values, no I/O: the config validates them, vfio finds and opens them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vepf {

/// A PCI function address "DDDD:BB:DD.F" (domain, bus, device 0..31, function 0..7).
struct PciAddress {
  std::uint32_t domain = 0;
  std::uint8_t bus = 0, dev = 0, fn = 0;
  /// Accepts "DDDD:BB:DD.F" and "BB:DD.F" (domain 0), hex digits. nullopt when malformed.
  static std::optional<PciAddress> parse(std::string_view s) noexcept;
  std::string str() const;  // "0000:00:05.0"
  bool operator==(const PciAddress&) const = default;
};

/// What to look for: an address, or vendor:device IDs (the first such function in bus order).
struct PciMatch {
  std::optional<PciAddress> address;
  std::uint16_t vendor = 0, device = 0;  // used when address is empty
  std::string str() const;               // "0000:00:05.0" or "1af4:1110"
  /// Accepts "VVVV:DDDD" (vendor:device, hex) or a PciAddress ("DDDD:BB:DD.F", "BB:DD.F").
  /// nullopt when it is neither.
  static std::optional<PciMatch> parse(std::string_view s) noexcept;
};

}  // namespace vepf
