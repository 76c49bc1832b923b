#include "vepf/layout/console.hpp"

#include <algorithm>
#include <cstring>

namespace vepf::layout {

namespace {
tl::unexpected<const char*> refuse(const char* why) noexcept { return tl::unexpected(why); }
}  // namespace

bool console_name_valid(std::string_view name) noexcept {
  if (name.empty() || name.size() > kConsoleMaxNameLen || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

tl::expected<ConsoleControlMsg, const char*> parse_console_control(
    std::span<const std::byte> msg, std::uint32_t max_nr_ports) noexcept {
  VirtioConsoleControl hdr;
  if (msg.size() < sizeof(hdr)) return refuse("truncated header");
  std::memcpy(&hdr, msg.data(), sizeof(hdr));
  const auto payload = msg.subspan(sizeof(hdr));
  ConsoleControlMsg m;
  m.id = hdr.id.to_cpu();
  m.event = hdr.event.to_cpu();
  m.value = hdr.value.to_cpu();
  if (m.event > VIRTIO_CONSOLE_PORT_NAME) return refuse("unknown event");
  if (m.event != VIRTIO_CONSOLE_DEVICE_READY && m.id >= max_nr_ports)
    return refuse("port id out of range");
  if (m.event == VIRTIO_CONSOLE_RESIZE) {
    VirtioConsoleResize r;
    if (payload.size() < sizeof(r)) return refuse("truncated resize");
    std::memcpy(&r, payload.data(), sizeof(r));
    m.cols = r.cols.to_cpu();
    m.rows = r.rows.to_cpu();
  } else if (m.event == VIRTIO_CONSOLE_PORT_NAME) {
    std::string_view name(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (!name.empty() && name.back() == '\0') name.remove_suffix(1);  // Linux's peers send a NUL
    if (!console_name_valid(name)) return refuse("unusable port name");
    m.name = name;
  }
  return m;
}

std::size_t build_console_control(std::span<std::byte> out, std::uint32_t id, std::uint16_t event,
                                  std::uint16_t value,
                                  std::span<const std::byte> payload) noexcept {
  VirtioConsoleControl hdr;
  hdr.id = le32::from_cpu(id);
  hdr.event = le16::from_cpu(event);
  hdr.value = le16::from_cpu(value);
  const std::size_t n = sizeof(hdr) + payload.size();
  if (out.size() < n) return 0;
  std::memcpy(out.data(), &hdr, sizeof(hdr));
  if (!payload.empty()) std::memcpy(out.data() + sizeof(hdr), payload.data(), payload.size());
  return n;
}

std::vector<std::byte> console_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                                       std::span<const std::byte> payload) {
  std::vector<std::byte> m(kConsoleCtrlBufSize);
  m.resize(build_console_control(m, id, event, value, payload));
  return m;
}

}  // namespace vepf::layout
