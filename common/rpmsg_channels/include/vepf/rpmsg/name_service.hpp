#pragma once
// The rpmsg name service (Linux drivers/rpmsg/rpmsg_ns.c) as both ways of routing messages use
// it (socket Channels and in-process Endpoints): one checker of what the peer announces, one
// writer of our announcements.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "vepf/layout/rpmsg.hpp"

namespace vepf::rpmsg {

/// RPMSG_ADDR_ANY (include/linux/rpmsg.h): "no address" / "allocate one".
inline constexpr std::uint32_t kAddrAny = 0xffffffffu;

/// One name-service message from the peer, checked.
struct NsAnnouncement {
  std::string name;        // 1..31 characters, layout::rpmsg_name_valid()
  std::uint32_t addr = 0;  // the peer's address for the channel
  bool create = true;      // kRpmsgNsCreate; false: kRpmsgNsDestroy
};

/// Checks the payload of a message to kRpmsgNsAddr (struct rpmsg_ns_msg): at least 40 bytes, a
/// NUL-terminated valid name, known flags, and for CREATE an address that is neither the name
/// service's nor kAddrAny. Errors: a static text saying which rule failed (for stats and logs).
tl::expected<NsAnnouncement, const char*> parse_ns(std::span<const std::byte> payload);

/// The payload that announces `name` (at most 31 characters: longer is cut) at `addr`, with
/// `flags` kRpmsgNsCreate or kRpmsgNsDestroy.
layout::RpmsgNsMsg make_ns(std::string_view name, std::uint32_t addr, std::uint32_t flags) noexcept;

}  // namespace vepf::rpmsg
