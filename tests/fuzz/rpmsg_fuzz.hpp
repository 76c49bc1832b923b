// What the rpmsg fuzz targets (rpmsg_channels_fuzz, rpmsg_relay_fuzz) share: the scratch
// directory with logging off, a Port that checks what it is given, and rpmsgs built from input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/rpmsg/router.hpp"

namespace vepf::fuzz {

/// The scratch directory (fuzz_support.hpp), with logging off: the Routers log every refusal.
inline const char* rpmsg_scratch() {
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  return scratch_dir();
}

/// A Port that takes an rpmsg only while it says it has room, and only one that fits.
class CheckingPort final : public rpmsg::Port {
 public:
  bool room = true;
  std::uint64_t sent = 0;
  bool can_send() override { return room; }
  void send(std::uint32_t, std::uint32_t, std::span<const std::byte> payload) override {
    FUZZ_CHECK(room);
    FUZZ_CHECK(payload.size() <= layout::kRpmsgMaxPayload);
    ++sent;
  }
  void flush() override {}
};

/// An rpmsg from `src` to `dst` carrying `payload` cut to kRpmsgMaxPayload (a well-formed header).
inline std::vector<std::byte> make_rpmsg(std::uint32_t src, std::uint32_t dst,
                                         std::span<const std::byte> payload) {
  const std::size_t n = std::min<std::size_t>(payload.size(), layout::kRpmsgMaxPayload);
  std::vector<std::byte> m(layout::kRpmsgHdrSize + n);
  rpmsg::encode(m, src, dst, payload.first(n));
  return m;
}

/// A name-service message read from the input: u8 name length (mod 33), name bytes, u32 addr,
/// u32 flags (mod 3: CREATE, DESTROY, unknown), sent from addr to address 53.
inline std::vector<std::byte> read_ns(ByteReader& in) {
  layout::RpmsgNsMsg ns{};
  const auto name = in.bytes(in.u8() % (sizeof(ns.name) + 1));
  std::memcpy(ns.name, name.data(), name.size());
  ns.addr = layout::le32::from_cpu(in.u32());
  ns.flags = layout::le32::from_cpu(in.u32() % 3);
  return make_rpmsg(ns.addr.to_cpu(), layout::kRpmsgNsAddr, std::as_bytes(std::span{&ns, 1}));
}

}  // namespace vepf::fuzz
