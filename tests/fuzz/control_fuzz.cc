// control_fuzz: vepf-ep's control protocol (ep::Server::handle_control()), as any local client
// that passed the socket's credential check can speak it (`vepf-ep ctl` and scripts): list, add
// with a device's TOML, remove by slot, and anything else a client may send.
//
// Input: up to 16 requests separated by NUL bytes, handed one after the other to a server
// started over a fake link with one rpmsg device in slot 0. "@DIR@" in a request becomes a scratch
// directory, the only one the board config allows (control.allowed_dirs), so seeds can name files
// that `add` may create. Checks: every reply is a JSON object with a boolean "ok" (and an "error"
// text when false); an accepted add names a slot that then holds a device; an accepted remove
// empties it; `list` shows exactly the devices the table holds; nothing leaks a descriptor once the
// server is gone.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "server/server.hpp"
#include "support/fake_links.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/os/event_loop.hpp"

namespace {

using namespace vepf;
using nlohmann::json;

constexpr std::size_t kMaxRequests = 16;

const config::BoardConfig& board() {
  static const config::BoardConfig cfg = [] {
    for (const char* n : {"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console"}) {
      if (!spdlog::get(n)) spdlog::create<spdlog::sinks::null_sink_mt>(n);
    }
    const std::string dir = fuzz::scratch_dir();
    const std::string toml =
        "[board]\nname = \"fuzz\"\nplatform = \"loopback\"\n"
        "[link]\nep_window_size = 1048576\nrc_window_size = 1048576\n"
        "[loopback]\nsocket = \"" +
        dir +
        "/link.sock\"\n"
        "[control]\nallowed_dirs = [\"" +
        dir +
        "\"]\n"
        "[[device]]\ntype = \"rpmsg\"\nqueue_size = 16\n"
        "rpmsg = { runtime_dir = \"" +
        dir + "/board\" }\n";
    auto c = config::parse_board_config(toml, "control_fuzz.toml");
    if (!c) {
      std::fprintf(stderr, "control_fuzz: %s\n", c.error().message.c_str());
      std::abort();
    }
    return *c;
  }();
  return cfg;
}

std::string expand(std::string_view req) {
  std::string out(req);
  const std::string dir = fuzz::scratch_dir();
  for (std::size_t p = out.find("@DIR@"); p != std::string::npos;
       p = out.find("@DIR@", p + dir.size())) {
    out.replace(p, 5, dir);
  }
  return out;
}

std::size_t devices(const ep::Server& s) {
  std::size_t n = 0;
  for (std::uint32_t slot = 0; slot < layout::kMaxDevices; ++slot) n += s.device(slot) != nullptr;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const config::BoardConfig& cfg = board();
  const std::size_t fds_before = fuzz::open_fds();
  {
    auto loop = os::EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    test::LinkWindows w;
    test::FakeDeviceLink dev_link(w);
    platform::EpLink link{std::make_unique<test::BorrowedDeviceLink>(dev_link), nullptr,
                          "fake link"};
    ep::Server server(cfg, std::move(link), *loop, {});
    FUZZ_CHECK(server.start().has_value());

    std::string_view in(reinterpret_cast<const char*>(data), size);
    for (std::size_t i = 0; i < kMaxRequests && !in.empty(); ++i) {
      const std::size_t end = in.find('\0');
      const std::string req = expand(in.substr(0, end));
      in = end == std::string_view::npos ? std::string_view{} : in.substr(end + 1);

      const json parsed = json::parse(req, nullptr, /*allow_exceptions=*/false);
      const std::string op = parsed.is_object() && parsed.contains("op") && parsed["op"].is_string()
                                 ? parsed["op"].get<std::string>()
                                 : std::string();
      const std::size_t before = devices(server);
      const json reply = json::parse(server.handle_control(req), nullptr, false);
      FUZZ_CHECK(reply.is_object() && reply.contains("ok") && reply["ok"].is_boolean());
      const bool ok = reply["ok"].get<bool>();
      if (!ok) {
        FUZZ_CHECK(reply.contains("error") && reply["error"].is_string() &&
                   !reply["error"].get<std::string>().empty());
        FUZZ_CHECK(devices(server) == before);  // a refused request changes nothing
      } else if (op == "add") {
        FUZZ_CHECK(reply.contains("slot") && reply["slot"].is_number_unsigned());
        const auto slot = reply["slot"].get<std::uint64_t>();
        FUZZ_CHECK(slot < layout::kMaxDevices &&
                   server.device(static_cast<std::uint32_t>(slot)) != nullptr);
        FUZZ_CHECK(devices(server) == before + 1);
      } else if (op == "remove") {
        const auto slot = parsed["slot"].get<std::uint64_t>();
        FUZZ_CHECK(slot < layout::kMaxDevices &&
                   server.device(static_cast<std::uint32_t>(slot)) == nullptr);
        FUZZ_CHECK(devices(server) + 1 == before);
      } else {
        FUZZ_CHECK(op == "list");
        FUZZ_CHECK(reply.contains("devices") && reply["devices"].is_array() &&
                   reply["devices"].size() == before);
      }
      if (fuzz::verbose()) std::fprintf(stderr, "%s -> %s\n", req.c_str(), reply.dump().c_str());
    }
  }
  FUZZ_CHECK(fuzz::open_fds() == fds_before);
  return 0;
}
