// The rpmsg name service's messages (name_service.hpp).
#include "vepf/rpmsg/name_service.hpp"

#include <algorithm>
#include <cstring>

namespace vepf::rpmsg {

tl::expected<NsAnnouncement, const char*> parse_ns(std::span<const std::byte> payload) {
  layout::RpmsgNsMsg ns;
  if (payload.size() < sizeof(ns)) return tl::unexpected<const char*>("short name-service message");
  std::memcpy(&ns, payload.data(), sizeof(ns));
  const std::size_t n = ::strnlen(ns.name, sizeof(ns.name));
  if (n == sizeof(ns.name) || !layout::rpmsg_name_valid(ns.name, n)) {
    return tl::unexpected<const char*>("name-service message with an unusable name");
  }
  NsAnnouncement a;
  a.name.assign(ns.name, n);
  a.addr = ns.addr.to_cpu();
  const std::uint32_t flags = ns.flags.to_cpu();
  if (flags == layout::kRpmsgNsDestroy) {
    a.create = false;
    return a;
  }
  if (flags != layout::kRpmsgNsCreate)
    return tl::unexpected<const char*>("name-service message with unknown flags");
  if (a.addr == layout::kRpmsgNsAddr || a.addr == kAddrAny) {
    return tl::unexpected<const char*>("name-service CREATE with an unusable address");
  }
  return a;
}

layout::RpmsgNsMsg make_ns(std::string_view name, std::uint32_t addr,
                           std::uint32_t flags) noexcept {
  layout::RpmsgNsMsg m{};
  std::memcpy(m.name, name.data(), std::min(name.size(), sizeof(m.name) - 1));
  m.addr = layout::le32::from_cpu(addr);
  m.flags = layout::le32::from_cpu(flags);
  return m;
}

}  // namespace vepf::rpmsg
