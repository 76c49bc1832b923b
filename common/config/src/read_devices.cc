// The board-config reader: [[device]] tables (net, rpmsg, block, console) and the checks across
// devices.
#include <algorithm>
#include <limits>

#include "reader.hpp"

namespace vepf::config::detail {

Expected<NetConfig> Reader::read_net(const toml::table& table, const std::string& where) const {
  VEPF_CONFIG_CHECK(check_keys(table, where, {"mac", "mtu", "offloads"}));
  NetConfig net;
  const std::string mac_path = where + ".mac";
  VEPF_CONFIG_TRY(mac_text, required_string(table, where, "mac"));
  const auto mac = parse_mac(mac_text);
  const std::string prefix = mac_path + " = " + in_quotes(mac_text);
  if (!mac) {
    return fail(prefix +
                " is not a MAC address: use six hex octets separated by colons, like "
                "\"02:00:00:00:00:01\"");
  }
  if (((*mac)[0] & 0x01) != 0) {
    return fail(prefix +
                " is a multicast address (bit 0 of the first octet is set): use a "
                "unicast address such as \"02:00:00:00:00:01\"");
  }
  if (*mac == std::array<std::uint8_t, 6>{}) {
    return fail(prefix + " is the all-zero address: use an address such as \"02:00:00:00:00:01\"");
  }
  net.mac = *mac;
  VEPF_CONFIG_TRY(mtu, get_integer(table, where, "mtu", net.mtu, 68, 65535));
  net.mtu = static_cast<std::uint16_t>(mtu);
  VEPF_CONFIG_TRY(offloads, get_bool(table, where, "offloads", true));
  net.offloads = offloads;
  return net;
}

/// The [device.ep] or [device.host] table; absent means a tap named `default_ifname`.
Expected<Backend> Reader::read_backend(const toml::table& device, const std::string& device_where,
                                       std::string_view side, std::string default_ifname) const {
  Backend backend;
  backend.ifname = std::move(default_ifname);
  VEPF_CONFIG_TRY(tbl, get_table(device, device_where, side));
  if (tbl == nullptr) return backend;
  const std::string where = child(device_where, side);
  VEPF_CONFIG_CHECK(check_keys(*tbl, where, {"backend", "ifname", "path", "vnet_hdr"}));
  VEPF_CONFIG_TRY(kind_name, get_string(*tbl, where, "backend"));
  if (kind_name) {
    VEPF_CONFIG_TRY(kind, choose(where + ".backend", *kind_name, kBackendKinds, "backend"));
    backend.kind = kind;
  }
  VEPF_CONFIG_TRY(ifname, get_string(*tbl, where, "ifname"));
  VEPF_CONFIG_TRY(path, get_string(*tbl, where, "path"));
  VEPF_CONFIG_TRY(vnet_hdr, get_bool(*tbl, where, "vnet_hdr", false));
  if (backend.kind == BackendKind::kTap) {
    if (path) {
      return fail(where +
                  ".path is only for backend = \"seqpacket\": drop path, or set "
                  "backend = \"seqpacket\"");
    }
    if (tbl->contains("vnet_hdr")) {
      return fail(where +
                  ".vnet_hdr is only for backend = \"seqpacket\" (a TAP always carries the "
                  "header): drop it");
    }
    if (ifname) {
      VEPF_CONFIG_CHECK(check_ifname(where + ".ifname", *ifname));
      backend.ifname = std::move(*ifname);
    }
    return backend;
  }
  if (ifname) {
    return fail(where +
                ".ifname is only for backend = \"tap\": drop ifname, or set "
                "backend = \"tap\"");
  }
  if (!path) return fail("missing required key " + where + ".path (backend = \"seqpacket\")");
  VEPF_CONFIG_CHECK(check_socket_path(where + ".path", *path));
  backend.ifname.clear();
  backend.path = std::move(*path);
  backend.vnet_hdr = vnet_hdr;
  return backend;
}

Expected<RpmsgConfig> Reader::read_rpmsg(const toml::table& device, const std::string& where,
                                         std::size_t index) const {
  RpmsgConfig rpmsg;
  rpmsg.runtime_dir = "/run/vepf/rpmsg" + std::to_string(index);
  VEPF_CONFIG_TRY(table, get_table(device, where, "rpmsg"));
  if (table == nullptr) return rpmsg;
  const std::string in = where + ".rpmsg";
  VEPF_CONFIG_CHECK(
      check_keys(*table, in, {"runtime_dir", "max_connections", "ep_serve", "host_serve"}));
  VEPF_CONFIG_TRY(dir,
                  read_dir(*table, in, "runtime_dir", rpmsg.runtime_dir, kMaxRpmsgRuntimeDirLen));
  rpmsg.runtime_dir = std::move(dir);
  VEPF_CONFIG_TRY(conns,
                  get_integer(*table, in, "max_connections", rpmsg.max_connections, 1, 4096));
  rpmsg.max_connections = static_cast<std::uint32_t>(conns);
  for (auto [key, serve] :
       {std::pair{"ep_serve", &rpmsg.ep_serve}, std::pair{"host_serve", &rpmsg.host_serve}}) {
    VEPF_CONFIG_TRY(name, get_string(*table, in, key));
    if (!name) continue;
    VEPF_CONFIG_TRY(chosen, choose(in + "." + key, *name, kRpmsgServes, "way to serve"));
    *serve = chosen;
  }
  return rpmsg;
}

Expected<BlockConfig> Reader::read_block(const toml::table& device, const std::string& where,
                                         std::size_t index) const {
  VEPF_CONFIG_TRY(table, get_table(device, where, "block"));
  const std::string in = where + ".block";
  if (table == nullptr) {
    return fail("missing required table [" + in +
                "] (type = \"block\"): add path = \"/path/to/disk.img\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*table, in,
                               {"path", "size", "read_only", "block_size", "max_range_bytes",
                                "nbd_socket", "max_nbd_clients"}));
  BlockConfig block;
  VEPF_CONFIG_TRY(path, required_string(*table, in, "path"));
  if (path.empty() || path.find('\0') != std::string::npos) {
    return fail(in +
                ".path must be a file or block device path such as \"/var/lib/vepf/disk0.img\"");
  }
  block.path = std::move(path);
  // TOML integers are int64: sizes up to 2^62 are plenty (VIRTIO capacity is 2^64 sectors).
  VEPF_CONFIG_TRY(size, get_integer(*table, in, "size", 0, 0, std::int64_t{1} << 62));
  if (size % 512 != 0) {
    return fail(in + ".size = " + std::to_string(size) + " is not a multiple of 512: use e.g. " +
                std::to_string((size / 512 + 1) * 512) + " (bytes)");
  }
  block.size = static_cast<std::uint64_t>(size);
  VEPF_CONFIG_TRY(ro, get_bool(*table, in, "read_only", false));
  block.read_only = ro;
  VEPF_CONFIG_TRY(bs, get_integer(*table, in, "block_size", 512, 512, 65536));
  if ((bs & (bs - 1)) != 0) {
    return fail(in + ".block_size = " + std::to_string(bs) +
                " is not a power of 2: use 512, 1024, ..., 65536");
  }
  block.block_size = static_cast<std::uint32_t>(bs);
  // num_sectors is 32 bits: the largest block-aligned range below 4 GiB for every block size.
  constexpr std::int64_t kMaxRange = (std::int64_t{1} << 32) - 65536;
  VEPF_CONFIG_TRY(
      range, get_integer(*table, in, "max_range_bytes", std::int64_t{256} << 20, bs, kMaxRange));
  if (range % bs != 0) {
    return fail(in + ".max_range_bytes = " + std::to_string(range) +
                " is not a multiple of block_size (" + std::to_string(bs) + "): use e.g. " +
                std::to_string(range / bs * bs) + " (bytes)");
  }
  block.max_range_bytes = static_cast<std::uint64_t>(range);
  VEPF_CONFIG_TRY(sock, get_string(*table, in, "nbd_socket"));
  block.nbd_socket = sock ? std::move(*sock) : "/run/vepf/block" + std::to_string(index) + ".sock";
  VEPF_CONFIG_CHECK(check_socket_path(in + ".nbd_socket", block.nbd_socket));
  VEPF_CONFIG_TRY(clients,
                  get_integer(*table, in, "max_nbd_clients", block.max_nbd_clients, 1, 1024));
  block.max_nbd_clients = static_cast<std::uint32_t>(clients);
  return block;
}

Expected<ConsolePort> Reader::read_console_port(const toml::table& t, const std::string& in,
                                                std::size_t index, std::size_t p) const {
  const std::string at = in + ".port[" + std::to_string(p) + "]";
  VEPF_CONFIG_CHECK(check_keys(t, at, {"name", "backend", "link", "program", "socket"}));
  ConsolePort port;
  VEPF_CONFIG_TRY(name, get_string(t, at, "name"));
  if (name) {
    const bool ok = !name->empty() && name->size() <= kMaxConsoleNameLen && *name != "." &&
                    *name != ".." && std::all_of(name->begin(), name->end(), is_ifname_char);
    if (!ok) {
      return fail(at + ".name = " + in_quotes(*name) + " is not a port name: use 1.." +
                  std::to_string(kMaxConsoleNameLen) + " letters, digits, '-', '_' or '.'");
    }
    port.name = std::move(*name);
  }
  VEPF_CONFIG_TRY(backend_text, get_string(t, at, "backend"));
  if (backend_text) {
    VEPF_CONFIG_TRY(b, choose(at + ".backend", *backend_text, kConsoleBackends, "console backend"));
    port.backend = b;
  }
  const auto only_for = [&](std::string_view key, ConsoleBackend b,
                            std::string_view b_name) -> Expected<void> {
    if (t.get(key) == nullptr || port.backend == b) return {};
    return fail(at + "." + std::string(key) + " applies to backend = \"" + std::string(b_name) +
                "\" only: remove it");
  };
  VEPF_CONFIG_CHECK(only_for("link", ConsoleBackend::kPty, "pty"));
  VEPF_CONFIG_CHECK(only_for("program", ConsoleBackend::kProgram, "program"));
  VEPF_CONFIG_CHECK(only_for("socket", ConsoleBackend::kSocket, "socket"));
  switch (port.backend) {
    case ConsoleBackend::kPty: {
      VEPF_CONFIG_TRY(link, get_string(t, at, "link"));
      port.link =
          link ? std::move(*link)
               : "/run/vepf/console" + std::to_string(index) + "-ep/port" + std::to_string(p);
      if (port.link.empty() || port.link.find('\0') != std::string::npos) {
        return fail(at + ".link must be a path such as \"/run/vepf/ttyVEPF0\"");
      }
      break;
    }
    case ConsoleBackend::kProgram: {
      const toml::node* node = t.get("program");
      const toml::array* argv = node ? node->as_array() : nullptr;
      if (argv == nullptr || argv->empty()) {
        return fail(
            "missing or empty " + at +
            ".program (backend = \"program\"): write program = [\"/bin/login\", \"-f\", \"root\"]");
      }
      for (std::size_t i = 0; i < argv->size(); ++i) {
        const auto* arg = argv->get(i)->as_string();
        if (arg == nullptr || arg->get().find('\0') != std::string::npos ||
            (i == 0 && arg->get().empty())) {
          return fail(at + ".program[" + std::to_string(i) + "] must be a string without NUL" +
                      (i == 0 ? " naming the program, e.g. \"/bin/sh\"" : ""));
        }
        port.program.push_back(arg->get());
      }
      break;
    }
    case ConsoleBackend::kSocket: {
      VEPF_CONFIG_TRY(sock, get_string(t, at, "socket"));
      if (!sock) return fail("missing required key " + at + ".socket (backend = \"socket\")");
      VEPF_CONFIG_CHECK(check_socket_path(at + ".socket", *sock));
      port.socket = std::move(*sock);
      break;
    }
  }
  return port;
}

Expected<ConsoleConfig> Reader::read_console(const toml::table& device, const std::string& where,
                                             std::size_t index) const {
  VEPF_CONFIG_TRY(table, get_table(device, where, "console"));
  const std::string in = where + ".console";
  if (table == nullptr) {
    return fail("missing required table [" + in + "] (type = \"console\"): add [[" + in +
                ".port]] with backend = \"pty\"");
  }
  VEPF_CONFIG_CHECK(check_keys(*table, in, {"host_dir", "max_control_queued", "port"}));
  ConsoleConfig console;
  VEPF_CONFIG_TRY(queued, get_integer(*table, in, "max_control_queued", 256, 8, 4096));
  console.max_control_queued = static_cast<std::uint32_t>(queued);
  // <host_dir>/<63-character name> must fit PATH_MAX comfortably; 4095 - 64 is the real bound.
  VEPF_CONFIG_TRY(
      dir, read_dir(*table, in, "host_dir", "/run/vepf/console" + std::to_string(index), 1024));
  console.host_dir = std::move(dir);
  const toml::node* node = table->get("port");
  const toml::array* ports = node ? node->as_array() : nullptr;
  if (ports == nullptr || ports->empty()) {
    return fail("missing required array [[" + in +
                ".port]]: declare at least one port, e.g. backend = \"pty\"");
  }
  if (ports->size() > kMaxConsolePorts) {
    return fail(in + ".port has " + std::to_string(ports->size()) + " entries: use at most " +
                std::to_string(kMaxConsolePorts));
  }
  for (std::size_t p = 0; p < ports->size(); ++p) {
    const toml::table* t = ports->get(p)->as_table();
    if (t == nullptr)
      return fail(in + ".port[" + std::to_string(p) + "] must be a table: write [[" + in +
                  ".port]]");
    VEPF_CONFIG_TRY(port, read_console_port(*t, in, index, p));
    for (std::size_t q = 0; q < console.ports.size(); ++q) {
      const ConsolePort& o = console.ports[q];
      const bool same_name = !port.name.empty() && o.name == port.name;
      const bool same_path = (port.backend == ConsoleBackend::kPty && o.backend == port.backend &&
                              o.link == port.link) ||
                             (port.backend == ConsoleBackend::kSocket &&
                              o.backend == port.backend && o.socket == port.socket);
      if (!same_name && !same_path) continue;
      return fail(in + ".port[" + std::to_string(p) + "] has the same " +
                  (same_name ? "name" : "link or socket") + " as port[" + std::to_string(q) +
                  "]: give each port its own");
    }
    console.ports.push_back(std::move(port));
  }
  return console;
}

Expected<DeviceConfig> Reader::read_device(const toml::table& table, std::size_t index) const {
  const std::string where = "device[" + std::to_string(index) + "]";
  VEPF_CONFIG_TRY(type_text, required_string(table, where, "type"));
  VEPF_CONFIG_TRY(type, choose(where + ".type", type_text, kDeviceTypes, "device type"));
  if (type == DeviceType::kRpmsg) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "rpmsg"}));
  } else if (type == DeviceType::kBlock) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "block"}));
  } else if (type == DeviceType::kConsole) {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "console"}));
  } else {
    VEPF_CONFIG_CHECK(check_keys(table, where, {"type", "queue_size", "net", "ep", "host"}));
  }
  DeviceConfig device;
  device.type = type;
  // VIRTIO 1.2 §2.7: split queue sizes are powers of 2, at most 32768.
  VEPF_CONFIG_TRY(queue_size, get_integer(table, where, "queue_size", device.queue_size, 2, 32768));
  if ((queue_size & (queue_size - 1)) != 0) {
    return fail(where + ".queue_size = " + std::to_string(queue_size) +
                " is not a power of 2: use one of 2, 4, 8, ..., 32768 (e.g. 256)");
  }
  device.queue_size = static_cast<std::uint16_t>(queue_size);
  if (type == DeviceType::kRpmsg) {
    VEPF_CONFIG_TRY(rpmsg, read_rpmsg(table, where, index));
    device.rpmsg = std::move(rpmsg);
    return device;
  }
  if (type == DeviceType::kBlock) {
    VEPF_CONFIG_TRY(block, read_block(table, where, index));
    device.block = std::move(block);
    return device;
  }
  if (type == DeviceType::kConsole) {
    VEPF_CONFIG_TRY(console, read_console(table, where, index));
    device.console = std::move(console);
    return device;
  }
  VEPF_CONFIG_TRY(net_table, get_table(table, where, "net"));
  if (net_table == nullptr) {
    return fail("missing required table [" + where + ".net] (type = \"net\"): add mac = \"...\"");
  }
  VEPF_CONFIG_TRY(net_config, read_net(*net_table, where + ".net"));
  device.net = net_config;
  const std::string n = std::to_string(index);
  VEPF_CONFIG_TRY(ep, read_backend(table, where, "ep", "vepf-ep" + n));
  device.ep = std::move(ep);
  VEPF_CONFIG_TRY(host, read_backend(table, where, "host", "vepf-host" + n));
  device.host = std::move(host);
  return device;
}

/// Two devices on one side must not share a tap ifname or a socket path.
Expected<void> Reader::check_unique(const std::vector<DeviceConfig>& devices,
                                    Backend DeviceConfig::*side, std::string_view side_name) const {
  for (std::size_t j = 1; j < devices.size(); ++j) {
    if (devices[j].type != DeviceType::kNet) continue;  // only net devices have backends
    const Backend& b = devices[j].*side;
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kNet) continue;
      const Backend& a = devices[i].*side;
      if (a.kind != b.kind) continue;
      const bool tap = b.kind == BackendKind::kTap;
      if ((tap ? a.ifname : a.path) != (tap ? b.ifname : b.path)) continue;
      const std::string key = std::string(side_name) + (tap ? ".ifname" : ".path");
      return fail("device[" + std::to_string(j) + "]." + key + " = " +
                  in_quotes(tap ? b.ifname : b.path) + " is already used by device[" +
                  std::to_string(i) + "]." + key + ": give each device its own");
    }
  }
  return {};
}

Expected<std::vector<DeviceConfig>> Reader::read_devices(const toml::table& root) const {
  const toml::node* node = root.get("device");
  if (node == nullptr)
    return fail("missing required table [[device]]: declare at least one device");
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return fail("device must be an array of tables (got " + std::string(type_name(node->type())) +
                "): write [[device]], not [device]");
  }
  if (array->empty()) return fail("device is empty: declare at least one [[device]]");
  if (array->size() > kMaxDevices) {
    return fail("device has " + std::to_string(array->size()) + " entries: use at most " +
                std::to_string(kMaxDevices));
  }
  std::vector<DeviceConfig> devices;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = array->get(i)->as_table();
    if (table == nullptr) {
      return fail("device[" + std::to_string(i) + "] must be a table (got " +
                  std::string(type_name(array->get(i)->type())) + "): write [[device]]");
    }
    VEPF_CONFIG_TRY(device_config, read_device(*table, i));
    devices.push_back(std::move(device_config));
  }
  VEPF_CONFIG_CHECK(check_unique(devices, &DeviceConfig::ep, "ep"));
  VEPF_CONFIG_CHECK(check_unique(devices, &DeviceConfig::host, "host"));
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kRpmsg || devices[j].type != DeviceType::kRpmsg) continue;
      if (devices[i].rpmsg.runtime_dir != devices[j].rpmsg.runtime_dir) continue;
      return fail("device[" + std::to_string(j) + "].rpmsg.runtime_dir = " +
                  in_quotes(devices[j].rpmsg.runtime_dir) + " is already used by device[" +
                  std::to_string(i) + "]: give each device its own");
    }
  }
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kBlock || devices[j].type != DeviceType::kBlock) continue;
      for (auto key : {&BlockConfig::path, &BlockConfig::nbd_socket}) {
        if (devices[i].block.*key != devices[j].block.*key) continue;
        return fail("device[" + std::to_string(j) + "].block." +
                    (key == &BlockConfig::path ? "path" : "nbd_socket") + " = " +
                    in_quotes(devices[j].block.*key) + " is already used by device[" +
                    std::to_string(i) + "]: give each device its own");
      }
    }
  }
  for (std::size_t j = 1; j < devices.size(); ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      if (devices[i].type != DeviceType::kConsole || devices[j].type != DeviceType::kConsole)
        continue;
      if (devices[i].console.host_dir != devices[j].console.host_dir) continue;
      return fail("device[" + std::to_string(j) + "].console.host_dir = " +
                  in_quotes(devices[j].console.host_dir) + " is already used by device[" +
                  std::to_string(i) + "]: give each device its own");
    }
  }
  return devices;
}

}  // namespace vepf::config::detail
