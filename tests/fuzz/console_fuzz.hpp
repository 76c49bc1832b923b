#pragma once
// What the console harnesses (console_device_fuzz, console_driver_fuzz) share: a virtio-console
// control message (VIRTIO 1.2 §5.3.6.2) made from the fuzz input, well formed or not.

#include <linux/virtio_console.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_support.hpp"
#include "vepf/layout/console.hpp"

namespace vepf::fuzz {

/// Reads: u8 id mode (% 4: 0..2 port `id mode % ports`, 3 a raw u32), u8 event (% 9: the eight
/// events of <linux/virtio_console.h>, 8 a raw u16), u16 value, u8 payload kind (% 3: a name of
/// u8 n % 80 raw bytes, {u16 cols, u16 rows}, none). Returns the message's bytes (8 + payload;
/// possibly longer than a control buffer).
inline std::vector<std::byte> console_message(ByteReader& in, std::uint32_t ports) {
  const std::uint8_t mode = in.u8();
  const std::uint32_t id = mode % 4 != 3 ? mode % (ports == 0 ? 1 : ports) : in.u32();
  const std::uint8_t e = in.u8() % 9;
  const std::uint16_t event = e < 8 ? static_cast<std::uint16_t>(e) : in.u16();
  static_assert(VIRTIO_CONSOLE_PORT_NAME == 7);
  layout::VirtioConsoleControl c{};
  c.id = layout::le32::from_cpu(id);
  c.event = layout::le16::from_cpu(event);
  c.value = layout::le16::from_cpu(in.u16());
  std::vector<std::byte> m(sizeof c);
  std::memcpy(m.data(), &c, sizeof c);
  switch (in.u8() % 3) {
    case 0: {
      const auto name = in.bytes(in.u8() % 80);
      m.resize(sizeof c + name.size());
      if (!name.empty()) std::memcpy(m.data() + sizeof c, name.data(), name.size());
      break;
    }
    case 1: {
      layout::VirtioConsoleResize r{layout::le16::from_cpu(in.u16()),
                                    layout::le16::from_cpu(in.u16())};
      m.resize(sizeof c + sizeof r);
      std::memcpy(m.data() + sizeof c, &r, sizeof r);
      break;
    }
    default:
      break;
  }
  return m;
}

}  // namespace vepf::fuzz
