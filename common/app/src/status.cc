#include "vepf/app/status.hpp"

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "vepf/app/control_server.hpp"
#include "vepf/layout/console.hpp"
#include "vepf/layout/net.hpp"   // <linux/virtio_net.h>, made C++-safe
#include "vepf/layout/ring.hpp"  // <linux/virtio_ring.h>, its constants
#include "vepf/layout/rpmsg.hpp"

namespace vepf::app {

namespace {

using nlohmann::json;
using Name = std::pair<unsigned, const char*>;

// Bits 24..41: the transport's (VIRTIO 1.2 §6; <linux/virtio_config.h>, <linux/virtio_ring.h>).
constexpr Name kTransport[] = {
    {VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"},
    {VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"},
    {VIRTIO_F_VERSION_1, "VERSION_1"},
    {VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM"},
    {VIRTIO_F_RING_PACKED, "RING_PACKED"},
    {VIRTIO_F_IN_ORDER, "IN_ORDER"},
    {VIRTIO_F_ORDER_PLATFORM, "ORDER_PLATFORM"},
    {VIRTIO_F_SR_IOV, "SR_IOV"},
};
constexpr Name kNet[] = {
    {VIRTIO_NET_F_CSUM, "CSUM"},
    {VIRTIO_NET_F_GUEST_CSUM, "GUEST_CSUM"},
    {VIRTIO_NET_F_MTU, "MTU"},
    {VIRTIO_NET_F_MAC, "MAC"},
    {VIRTIO_NET_F_GUEST_TSO4, "GUEST_TSO4"},
    {VIRTIO_NET_F_GUEST_TSO6, "GUEST_TSO6"},
    {VIRTIO_NET_F_GUEST_ECN, "GUEST_ECN"},
    {VIRTIO_NET_F_GUEST_UFO, "GUEST_UFO"},
    {VIRTIO_NET_F_HOST_TSO4, "HOST_TSO4"},
    {VIRTIO_NET_F_HOST_TSO6, "HOST_TSO6"},
    {VIRTIO_NET_F_HOST_ECN, "HOST_ECN"},
    {VIRTIO_NET_F_HOST_UFO, "HOST_UFO"},
    {VIRTIO_NET_F_MRG_RXBUF, "MRG_RXBUF"},
    {VIRTIO_NET_F_STATUS, "STATUS"},
    {VIRTIO_NET_F_CTRL_VQ, "CTRL_VQ"},
    {VIRTIO_NET_F_MQ, "MQ"},
};
constexpr Name kBlk[] = {
    {VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX"},
    {VIRTIO_BLK_F_SEG_MAX, "SEG_MAX"},
    {VIRTIO_BLK_F_GEOMETRY, "GEOMETRY"},
    {VIRTIO_BLK_F_RO, "RO"},
    {VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE"},
    {VIRTIO_BLK_F_FLUSH, "FLUSH"},
    {VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY"},
    {VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE"},
    {VIRTIO_BLK_F_MQ, "MQ"},
    {VIRTIO_BLK_F_DISCARD, "DISCARD"},
    {VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES"},
    {VIRTIO_BLK_F_SECURE_ERASE, "SECURE_ERASE"},
};
constexpr Name kConsole[] = {
    {VIRTIO_CONSOLE_F_SIZE, "SIZE"},
    {VIRTIO_CONSOLE_F_MULTIPORT, "MULTIPORT"},
    {VIRTIO_CONSOLE_F_EMERG_WRITE, "EMERG_WRITE"},
    {layout::kVepfConsoleFDriverSize, "VEPF_DRIVER_SIZE"},
};
constexpr Name kRpmsg[] = {{layout::kVirtioRpmsgFNs, "NS"}};

template <std::size_t N>
const char* find(const Name (&names)[N], unsigned b) {
  for (const auto& [bit, name] : names) {
    if (bit == b) return name;
  }
  return nullptr;
}

std::string count_text(std::uint64_t v) {
  if (v >= (std::uint64_t{1} << 30))
    return fmt::format("{:.1f} GiB", static_cast<double>(v) / (1 << 30));
  if (v >= (1u << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(v) / (1 << 20));
  if (v >= (1u << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(v) / (1 << 10));
  return fmt::format("{} B", v);
}

/// A value of the document as one short text.
std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

json link_model_json(const ring::LinkCounters& c) {
  return json{
      {"nonposted_reads", c.nonposted_reads}, {"nonposted_read_bytes", c.nonposted_read_bytes},
      {"posted_writes", c.posted_writes},     {"posted_write_bytes", c.posted_write_bytes},
      {"signals_sent", c.signals_sent},       {"signals_received", c.signals_received}};
}

std::string device_type_name(std::uint32_t device_id) {
  switch (device_id) {
    case VIRTIO_ID_NET:
      return "net";
    case VIRTIO_ID_BLOCK:
      return "block";
    case VIRTIO_ID_CONSOLE:
      return "console";
    case VIRTIO_ID_RPMSG:
      return "rpmsg";
    default:
      return fmt::format("id {}", device_id);
  }
}

json feature_names(std::uint32_t device_id, std::uint64_t features) {
  json out = json::array();
  for (unsigned b = 0; b < 64; ++b) {
    if (((features >> b) & 1) == 0) continue;
    const char* name = find(kTransport, b);
    if (name == nullptr) {
      switch (device_id) {
        case VIRTIO_ID_NET:
          name = find(kNet, b);
          break;
        case VIRTIO_ID_BLOCK:
          name = find(kBlk, b);
          break;
        case VIRTIO_ID_CONSOLE:
          name = find(kConsole, b);
          break;
        case VIRTIO_ID_RPMSG:
          name = find(kRpmsg, b);
          break;
        default:
          break;
      }
    }
    out.push_back(name != nullptr ? std::string(name) : fmt::format("bit {}", b));
  }
  return out;
}

std::string format_status(const json& s) {
  std::string out;
  const json& link = s.value("link", json::object());
  out += fmt::format("{}: board {} ({}), link {}, epoch {}\n", s.value("program", "?"),
                     s.value("board", "?"), s.value("platform", "?"), link.value("state", "?"),
                     link.value("epoch", "?"));
  if (link.contains("where")) out += fmt::format("  link: {}\n", value_text(link["where"]));
  for (const auto& [k, v] : link.items()) {
    if (k != "state" && k != "epoch" && k != "where")
      out += fmt::format("  link {}: {}\n", k, value_text(v));
  }
  if (s.contains("link_model")) {
    const json& m = s["link_model"];
    out += fmt::format(
        "  link model: {} non-posted reads ({}), {} posted writes ({}), signals {} sent, {} "
        "received\n",
        m.value("nonposted_reads", 0ull), count_text(m.value("nonposted_read_bytes", 0ull)),
        m.value("posted_writes", 0ull), count_text(m.value("posted_write_bytes", 0ull)),
        m.value("signals_sent", 0ull), m.value("signals_received", 0ull));
  }
  const json& devs = s.value("devices", json::array());
  if (devs.empty()) out += "  no devices\n";
  for (const json& d : devs) {
    std::string state = d.value("driver_ok", false) ? "DRIVER_OK" : "not running";
    if (d.value("needs_reset", false)) state += ", NEEDS_RESET";
    out += fmt::format("  [{}] {}: {}{}\n", d.value("slot", 0), d.value("type", "?"), state,
                       d.contains("status") ? fmt::format(" (status {:#04x})", d.value("status", 0))
                                            : std::string());
    std::string names;
    for (const json& n : d.value("feature_names", json::array()))
      names += " " + n.get<std::string>();
    out += fmt::format("      features {}:{}\n", d.value("features", "0x0"), names);
    for (const json& q : d.value("queues", json::array())) {
      std::string line =
          fmt::format("      queue {}: {} entries", q.value("index", 0), q.value("size", 0));
      for (const char* k : {"last_avail", "used", "pending", "in_flight"}) {
        if (q.contains(k)) line += fmt::format(", {} {}", k, q[k].get<std::uint64_t>());
      }
      if (q.value("broken", false)) line += fmt::format(", BROKEN ({})", q.value("why", "?"));
      out += line + "\n";
    }
    if (d.contains("counters")) {
      for (const auto& [k, v] : d["counters"].items())
        out += fmt::format("      {}: {}\n", k, value_text(v));
    }
    static constexpr const char* kShown[] = {"slot",          "type",        "status",
                                             "driver_ok",     "needs_reset", "features",
                                             "feature_names", "queues",      "counters"};
    for (const auto& [k, v] : d.items()) {
      bool shown = false;
      for (const char* n : kShown) shown = shown || k == n;
      if (!shown) out += fmt::format("      {}: {}\n", k, value_text(v));
    }
  }
  return out;
}

int print_status(const std::string& prog, const std::string& path, bool as_json) {
  auto reply = control_request(path, json{{"op", "status"}}.dump());
  if (!reply) {
    std::fprintf(
        stderr, "%s status: cannot reach %s at %s: %s%s%s; is it running with this board config?\n",
        prog.c_str(), prog.c_str(), path.c_str(), reply.error().what,
        reply.error().sys_errno ? ": " : "",
        reply.error().sys_errno ? std::strerror(reply.error().sys_errno) : "");
    return 1;
  }
  const json r = json::parse(*reply, nullptr, false);
  if (!r.is_object() || !r.value("ok", false) || !r.contains("status")) {
    std::fprintf(stderr, "%s status: %s\n", prog.c_str(),
                 r.is_object() ? r.value("error", std::string("malformed reply")).c_str()
                               : "malformed reply");
    return 1;
  }
  if (as_json) {
    std::printf("%s\n", r["status"].dump(2).c_str());
  } else {
    std::fputs(format_status(r["status"]).c_str(), stdout);
  }
  return 0;
}

}  // namespace vepf::app
