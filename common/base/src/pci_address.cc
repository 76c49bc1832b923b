// PciAddress / PciMatch (pci_address.hpp): parsing and printing.
#include "vepf/pci_address.hpp"

#include <cstdio>

namespace vepf {

namespace {

std::string hex4(std::uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof(b), "%04x", v);
  return b;
}

bool parse_hex(std::string_view s, std::uint32_t max, std::uint32_t& out) {
  if (s.empty() || s.size() > 8) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0) return false;
    v = v * 16 + static_cast<std::uint32_t>(d);
  }
  if (v > max) return false;
  out = v;
  return true;
}

}  // namespace

std::optional<PciAddress> PciAddress::parse(std::string_view s) noexcept {
  PciAddress a;
  std::uint32_t v = 0;
  const auto c1 = s.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  if (s.find(':', c1 + 1) != std::string_view::npos) {  // domain given
    if (!parse_hex(s.substr(0, c1), 0xffff, v)) return std::nullopt;
    a.domain = v;
    s.remove_prefix(c1 + 1);
  }
  const auto c = s.find(':'), dot = s.find('.');
  if (c == std::string_view::npos || dot == std::string_view::npos || dot < c) return std::nullopt;
  if (!parse_hex(s.substr(0, c), 0xff, v)) return std::nullopt;
  a.bus = static_cast<std::uint8_t>(v);
  if (!parse_hex(s.substr(c + 1, dot - c - 1), 31, v)) return std::nullopt;
  a.dev = static_cast<std::uint8_t>(v);
  if (!parse_hex(s.substr(dot + 1), 7, v)) return std::nullopt;
  a.fn = static_cast<std::uint8_t>(v);
  return a;
}

std::string PciAddress::str() const {
  char b[16];
  std::snprintf(b, sizeof(b), "%04x:%02x:%02x.%x", domain, bus, dev, fn);
  return b;
}

std::string PciMatch::str() const {
  return address ? address->str() : hex4(vendor) + ":" + hex4(device);
}

std::optional<PciMatch> PciMatch::parse(std::string_view s) noexcept {
  PciMatch m;
  if (s.find('.') != std::string_view::npos) {
    m.address = PciAddress::parse(s);
    if (!m.address) return std::nullopt;
    return m;
  }
  const auto colon = s.find(':');
  std::uint32_t v = 0, d = 0;
  if (colon == std::string_view::npos || !parse_hex(s.substr(0, colon), 0xffff, v) ||
      !parse_hex(s.substr(colon + 1), 0xffff, d)) {
    return std::nullopt;
  }
  m.vendor = static_cast<std::uint16_t>(v);
  m.device = static_cast<std::uint16_t>(d);
  return m;
}

}  // namespace vepf
