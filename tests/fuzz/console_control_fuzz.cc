// Fuzz target: layout::parse_console_control(), both sides' parser of virtio-console control
// messages the peer wrote (VIRTIO 1.2 §5.3.6.2).
//
// Input: u8 max_nr_ports (0..255), then the message bytes as the peer left them in the buffer.
//
// Checks (abort on violation): an accepted message is at least 8 bytes, its event is one of
// <linux/virtio_console.h>, its id is < max_nr_ports unless the event is DEVICE_READY, a RESIZE
// carried 4 more bytes, a PORT_NAME's name is a safe file name inside the message; building the
// header back gives the same 8 bytes.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "vepf/layout/console.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::layout;
  if (size == 0) return 0;
  const std::uint32_t max_ports = data[0];
  const std::span<const std::byte> msg{reinterpret_cast<const std::byte*>(data + 1), size - 1};
  const auto m = parse_console_control(msg, max_ports);
  if (!m) {
    check(m.error() != nullptr && *m.error() != '\0');
    return 0;
  }
  check(msg.size() >= sizeof(VirtioConsoleControl));
  check(m->event <= VIRTIO_CONSOLE_PORT_NAME);
  check(m->event == VIRTIO_CONSOLE_DEVICE_READY || m->id < max_ports);
  if (m->event == VIRTIO_CONSOLE_RESIZE)
    check(msg.size() >= sizeof(VirtioConsoleControl) + sizeof(VirtioConsoleResize));
  if (m->event == VIRTIO_CONSOLE_PORT_NAME) {
    check(console_name_valid(m->name));
    const auto* begin = reinterpret_cast<const char*>(msg.data());
    check(m->name.data() >= begin && m->name.data() + m->name.size() <= begin + msg.size());
  }
  std::byte back[sizeof(VirtioConsoleControl)];
  check(build_console_control(back, m->id, m->event, m->value) == sizeof(back));
  check(std::memcmp(back, msg.data(), sizeof(back)) == 0);
  return 0;
}
