// The C API of vepf/rpmsg.h over rpmsg::Endpoints: OpenAMP's names and error codes, the
// application's struct rpmsg_endpoint kept in step with the endpoint it names.
#include "vepf/rpmsg.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "device.hpp"
#include "vepf/app/app.hpp"
#include "vepf/layout/rpmsg.hpp"
#include "vepf/rpmsg/relay.hpp"

namespace {

using vepf::Errc;
namespace rpmsg = vepf::rpmsg;

thread_local std::string last_error;

/// How long rpmsg_send() waits for room (OpenAMP: 15 s).
constexpr std::chrono::seconds kSendWait{15};

int fail(int code, std::string what) {
  vepf::rpmsg_api::set_error(std::move(what));
  return code;
}

/// A created endpoint of its device (one lookup: this runs on every send).
bool ept_ok(const rpmsg_endpoint* ept) {
  if (ept == nullptr || ept->rdev == nullptr) return false;
  const auto it = ept->rdev->by_addr.find(ept->addr);
  return it != ept->rdev->by_addr.end() && it->second == ept;
}

int send(rpmsg_endpoint* ept, const void* data, int len, std::uint32_t dst, bool wait) {
  last_error.clear();
  if (!ept_ok(ept)) return fail(RPMSG_ERR_PARAM, "not a created endpoint");
  if (len < 0 || (data == nullptr && len != 0)) return fail(RPMSG_ERR_PARAM, "no data");
  if (static_cast<std::size_t>(len) > vepf::layout::kRpmsgMaxPayload) {
    return fail(RPMSG_ERR_BUFF_SIZE, "an rpmsg payload is at most 496 bytes");
  }
  if (dst == RPMSG_ADDR_ANY) return fail(RPMSG_ERR_ADDR, "the endpoint has no destination yet");
  rpmsg_device& d = *ept->rdev;
  const auto payload =
      std::span(static_cast<const std::byte*>(data), static_cast<std::size_t>(len));
  const auto deadline = std::chrono::steady_clock::now() + kSendWait;
  for (;;) {
    const auto r = d.endpoints.trysendto(ept->addr, dst, payload);
    if (r) return len;
    switch (r.error().code) {
      case Errc::kNoSpace:
        break;
      case Errc::kNotReady:
        return fail(RPMSG_ERR_DEV_STATE, r.error().what);
      default:
        return fail(RPMSG_ERR_PARAM, r.error().what);
    }
    // Full. Inside a callback the device cannot run (we are in its turn): no waiting.
    if (!wait || d.in_turn > 0 || std::chrono::steady_clock::now() >= deadline) {
      return fail(RPMSG_ERR_NO_BUFF, "no room on the link");
    }
    if (!d.turn(1)) return fail(RPMSG_ERR_DEV_STATE, "the device is gone");
    if (!ept_ok(ept)) return fail(RPMSG_ERR_PARAM, "the endpoint was destroyed while waiting");
  }
}

/// The programs' loggers on stderr, at VEPF_LOG_LEVEL (default warn). Both sides may be opened
/// on two threads at once.
bool setup_logging() {
  static std::mutex mu;
  const std::lock_guard<std::mutex> lock(mu);
  const char* level = std::getenv("VEPF_LOG_LEVEL");
  return vepf::app::setup_logging({"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console", "host",
                                   "host.net", "host.rpmsg", "host.blk", "host.console"},
                                  level != nullptr ? level : "warn");
}

/// The board config at `board`, checked for an rpmsg device at index `device`. Errors:
/// set_error() and null.
std::unique_ptr<vepf::config::BoardConfig> load(const char* board, vepf_rpmsg_side side,
                                                std::uint32_t device) {
  using namespace vepf;
  last_error.clear();
  if (board == nullptr || (side != VEPF_RPMSG_DEVICE && side != VEPF_RPMSG_DRIVER)) {
    (void)fail(RPMSG_ERR_PARAM, "a board config path and a side are needed");
    return nullptr;
  }
  if (!setup_logging()) {
    (void)fail(RPMSG_ERR_PARAM,
               "VEPF_LOG_LEVEL is not one of trace, debug, info, warn, error, off");
    return nullptr;
  }
  auto cfg = config::load_board_config(board);
  if (!cfg) {
    (void)fail(RPMSG_ERR_INIT, cfg.error().message);
    return nullptr;
  }
  if (device >= cfg->devices.size() || cfg->devices[device].type != config::DeviceType::kRpmsg) {
    (void)fail(RPMSG_ERR_PARAM,
               std::string(board) + ": device " + std::to_string(device) +
                   " is not an rpmsg device: give the index of a [[device]] with type = \"rpmsg\"");
    return nullptr;
  }
  return std::make_unique<config::BoardConfig>(std::move(*cfg));
}

}  // namespace

rpmsg_device::rpmsg_device(rpmsg_ns_bind_cb bind) : bind_(bind) {
  endpoints.set_destination_hook([this](std::uint32_t addr, std::uint32_t dst) {
    if (auto it = by_addr.find(addr); it != by_addr.end()) it->second->dest_addr = dst;
  });
  endpoints.set_bind([this](const std::string& name, std::uint32_t dst) {
    if (bind_ != nullptr) bind_(this, name.c_str(), dst);
  });
}

bool rpmsg_device::turn(int timeout_ms) {
  if (gone) return false;
  ++in_turn;
  const bool ok = run(timeout_ms);
  --in_turn;
  gone = !ok;
  return ok;
}

namespace vepf::rpmsg_api {

void set_error(std::string what) { last_error = std::move(what); }

bool Side::open() {
  auto loop = os::EventLoop::create();
  if (!loop) {
    set_error(std::string("cannot create an event loop: ") + loop.error().what);
    return false;
  }
  loop_ = std::move(*loop);
  return start();
}

}  // namespace vepf::rpmsg_api

extern "C" {

int rpmsg_create_ept(rpmsg_endpoint* ept, rpmsg_device* rdev, const char* name, uint32_t src,
                     uint32_t dest, rpmsg_ept_cb cb, rpmsg_ns_unbind_cb ns_unbind_cb) {
  last_error.clear();
  if (ept == nullptr || rdev == nullptr || cb == nullptr) {
    return fail(RPMSG_ERR_PARAM, "an endpoint, a device and a receive callback are needed");
  }
  const std::string_view n = name != nullptr ? std::string_view(name) : std::string_view();
  if (n.size() >= RPMSG_NAME_SIZE) return fail(RPMSG_ERR_PARAM, "the name is 32 bytes or more");
  // Endpoints calls these only while the endpoint exists, i.e. before rpmsg_destroy_ept().
  auto rx = [ept](std::span<const std::byte> p, std::uint32_t from) {
    (void)ept->cb(ept, const_cast<std::byte*>(p.data()), p.size(), from, ept->priv);
  };
  auto unbind = [ept] {
    if (ept->ns_unbind_cb != nullptr) ept->ns_unbind_cb(ept);
  };
  const auto a = rdev->endpoints.create(n, src, dest, rx, unbind);
  if (!a) {
    switch (a.error().code) {
      case Errc::kRejected:
        return fail(RPMSG_ERR_ADDR, a.error().what);
      case Errc::kNoSpace:
        return fail(RPMSG_ERR_NO_MEM, a.error().what);
      default:
        return fail(RPMSG_ERR_PARAM, a.error().what);
    }
  }
  std::memset(ept->name, 0, sizeof ept->name);
  if (!n.empty()) std::memcpy(ept->name, n.data(), n.size());
  ept->rdev = rdev;
  ept->addr = *a;
  ept->dest_addr = rdev->endpoints.destination(*a).value_or(RPMSG_ADDR_ANY);
  ept->cb = cb;
  ept->ns_unbind_cb = ns_unbind_cb;
  rdev->by_addr[*a] = ept;
  return RPMSG_SUCCESS;
}

void rpmsg_destroy_ept(rpmsg_endpoint* ept) {
  if (!ept_ok(ept)) return;
  rpmsg_device& d = *ept->rdev;
  d.by_addr.erase(ept->addr);
  (void)d.endpoints.destroy(ept->addr);
  ept->rdev = nullptr;
}

int rpmsg_send(rpmsg_endpoint* ept, const void* data, int len) {
  return send(ept, data, len, ept != nullptr ? ept->dest_addr : RPMSG_ADDR_ANY, true);
}

int rpmsg_sendto(rpmsg_endpoint* ept, const void* data, int len, uint32_t dst) {
  return send(ept, data, len, dst, true);
}

int rpmsg_trysend(rpmsg_endpoint* ept, const void* data, int len) {
  return send(ept, data, len, ept != nullptr ? ept->dest_addr : RPMSG_ADDR_ANY, false);
}

int rpmsg_trysendto(rpmsg_endpoint* ept, const void* data, int len, uint32_t dst) {
  return send(ept, data, len, dst, false);
}

int rpmsg_get_tx_buffer_size(rpmsg_endpoint* ept) {
  if (!ept_ok(ept)) return fail(RPMSG_ERR_PARAM, "not a created endpoint");
  return static_cast<int>(vepf::layout::kRpmsgMaxPayload);
}

rpmsg_device* vepf_rpmsg_open(const char* board_config, vepf_rpmsg_side side, uint32_t device,
                              rpmsg_ns_bind_cb ns_bind_cb) {
  using namespace vepf;
  auto cfg = load(board_config, side, device);
  if (!cfg) return nullptr;
  auto d = side == VEPF_RPMSG_DEVICE
               ? rpmsg_api::open_device_side(std::move(cfg), device, ns_bind_cb)
               : rpmsg_api::open_driver_side(std::move(cfg), device, ns_bind_cb);
  return d.release();
}

rpmsg_device* vepf_rpmsg_attach(const char* board_config, vepf_rpmsg_side side, uint32_t device,
                                rpmsg_ns_bind_cb ns_bind_cb) {
  using namespace vepf;
  auto cfg = load(board_config, side, device);
  if (!cfg) return nullptr;
  const auto& r = cfg->devices[device].rpmsg;
  const bool ep = side == VEPF_RPMSG_DEVICE;
  const std::string program = ep ? "vepf-ep" : "vepf-host";
  const std::string key = ep ? "ep_serve" : "host_serve";
  if ((ep ? r.ep_serve : r.host_serve) != config::RpmsgServe::kApplication) {
    (void)fail(RPMSG_ERR_INIT, std::string(board_config) + ": device[" + std::to_string(device) +
                                   "].rpmsg." + key + " is \"channels\": " + program +
                                   " serves it as socket channels. Set " + key +
                                   " = \"application\" in [device.rpmsg] and restart " + program +
                                   ", or take the device with vepf_rpmsg_open() in its place");
    return nullptr;
  }
  std::string path = r.runtime_dir + (ep ? "/ep/" : "/host/") + rpmsg::kRelaySocketName;
  return rpmsg_api::attach_side(std::move(cfg), device, ns_bind_cb, std::move(path)).release();
}

int vepf_rpmsg_poll(rpmsg_device* rdev, int timeout_ms) {
  last_error.clear();
  if (rdev == nullptr) return fail(RPMSG_ERR_PARAM, "no device");
  if (rdev->in_turn > 0) return fail(RPMSG_ERR_PARAM, "vepf_rpmsg_poll from a callback");
  if (!rdev->turn(timeout_ms)) return fail(RPMSG_ERR_DEV_STATE, "the device is gone");
  return RPMSG_SUCCESS;
}

int vepf_rpmsg_fd(rpmsg_device* rdev) {
  if (rdev == nullptr) return fail(RPMSG_ERR_PARAM, "no device");
  return rdev->fd();
}

int vepf_rpmsg_link_up(rpmsg_device* rdev) { return rdev != nullptr && rdev->endpoints.up(); }

void vepf_rpmsg_close(rpmsg_device* rdev) {
  if (rdev == nullptr) return;
  // Copies: destroying an endpoint changes the map.
  const auto left = rdev->by_addr;
  for (const auto& [addr, ept] : left) rpmsg_destroy_ept(ept);
  delete rdev;
}

const char* vepf_rpmsg_last_error(void) { return last_error.c_str(); }

}  // extern "C"
