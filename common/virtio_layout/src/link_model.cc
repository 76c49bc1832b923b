// The strict link model's messages (access.hpp).
#include <string>

#include "vepf/ring/access.hpp"

namespace vepf::ring {

std::string_view to_string(MemoryType t) noexcept {
  switch (t) {
    case MemoryType::kCached:
      return "cached";
    case MemoryType::kDevice:
      return "device";
    case MemoryType::kWriteCombining:
      return "wc";
    case MemoryType::kCachedNoncoherent:
      return "cached-noncoherent";
  }
  return "unknown";
}

std::string describe(const LinkViolation& v) {
  using Kind = LinkViolation::Kind;
  std::string what;
  switch (v.kind) {
    case Kind::kOutOfBounds:
      what = "access outside the window";
      break;
    case Kind::kUnaligned:
      what = "unaligned access (an alignment fault on device memory)";
      break;
    case Kind::kTooWide:
      what = "access wider than the window takes (a bus error on real hardware)";
      break;
    case Kind::kBulkForbidden:
      what = "window bytes handed to a plain copy (memcpy faults on device memory)";
      break;
    case Kind::kMisalignedBase:
      what = "window not 8-byte aligned at its start or end";
      break;
  }
  const char* window = v.window == layout::WindowId::kEp ? "EP" : "RC";
  return "strict link model: " + what + ": " + std::to_string(v.width) + " bytes at offset " +
         std::to_string(v.off) + " of the " + window + " window (memory type " +
         std::string(to_string(v.type)) + ")";
}

}  // namespace vepf::ring
