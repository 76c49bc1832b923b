// vepf-bench-rpmsg: rpmsg endpoints in one process through the C API (vepf/rpmsg.h), as an
// application uses them: the EP's rpmsg device on one thread (an echo service, or a counter),
// the host's driver on another (the client), over the loopback platform's link. Both sides
// polling (--wait poll: [link] spin_us at its maximum) or sleeping between messages (--wait
// sleep: spin_us 0, every message a doorbell or an interrupt).
//   --test rtt     one message at a time, each waited for: the round trip's p50 and p99
//   --test stream  the client sends as fast as rpmsg_send() lets it: messages per second counted
//                  where they arrive, on the EP
// Prints one JSON object. Figures are only comparable with others of the same run:
// scripts/bench/compare.sh alternates this program with its peers and prints ratios.

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "vepf/rpmsg.h"

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

/// The EP's service: what the callback sees through priv.
struct Service {
  bool echo = true;
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::int64_t> last_ns{0};  // when the last message arrived
  std::atomic<bool> stop{false};
  std::atomic<int> state{0};  // 1 serving, -1 failed
  std::string error;
};

int service_cb(rpmsg_endpoint* ept, void* data, size_t len, uint32_t src, void* priv) {
  auto* s = static_cast<Service*>(priv);
  if (s->echo) (void)rpmsg_sendto(ept, data, static_cast<int>(len), src);
  s->received.store(s->received.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s->last_ns.store(now_ns(), std::memory_order_relaxed);
  return RPMSG_SUCCESS;
}

void run_service(const std::string& board, Service& s) {
  rpmsg_device* rdev = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DEVICE, 0, nullptr);
  if (rdev == nullptr) {
    s.error = vepf_rpmsg_last_error();
    s.state = -1;
    return;
  }
  rpmsg_endpoint ept{};
  ept.priv = &s;
  if (rpmsg_create_ept(&ept, rdev, "bench", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, service_cb, nullptr) !=
      RPMSG_SUCCESS) {
    s.error = vepf_rpmsg_last_error();
    s.state = -1;
  } else {
    s.state = 1;
    while (!s.stop.load(std::memory_order_relaxed) && vepf_rpmsg_poll(rdev, 10) == RPMSG_SUCCESS) {
    }
    rpmsg_destroy_ept(&ept);
  }
  vepf_rpmsg_close(rdev);
}

/// The host's client.
struct Client {
  rpmsg_endpoint ept{};
  bool bound = false;
  std::uint64_t replies = 0;
};
Client g_client;

int client_cb(rpmsg_endpoint*, void*, size_t, uint32_t, void*) {
  ++g_client.replies;
  return RPMSG_SUCCESS;
}

void client_bind(rpmsg_device* rdev, const char* name, uint32_t dest) {
  if (std::strcmp(name, "bench") != 0 || g_client.bound) return;
  g_client.bound = rpmsg_create_ept(&g_client.ept, rdev, name, RPMSG_ADDR_ANY, dest, client_cb,
                                    nullptr) == RPMSG_SUCCESS;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rpmsg endpoints in one process through the C API: round trip or stream"};
  std::string test = "rtt", wait = "poll";
  std::size_t size = 64;
  int ms = 3000;
  bool json = false;
  app.add_option("--test", test, "rtt or stream")->check(CLI::IsMember({"rtt", "stream"}));
  app.add_option("--wait", wait, "poll (both sides spin) or sleep (spin_us 0)")
      ->check(CLI::IsMember({"poll", "sleep"}));
  app.add_option("--size", size, "payload bytes")->check(CLI::Range(1, 496));
  app.add_option("--ms", ms, "length of the measurement")->check(CLI::Range(100, 600000));
  app.add_flag("--json", json, "one JSON object (the default prints the same)");
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/vepf-bench-rpmsg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  const std::string board = dir + "/board.toml";
  std::ofstream(board) << "[board]\nname = \"bench-rpmsg\"\nplatform = \"loopback\"\n"
                       << "[link]\nep_window_size = 4194304\nrc_window_size = 4194304\n"
                       << "spin_us = " << (wait == "poll" ? 100000 : 0) << "\n"
                       << "[loopback]\nsocket = \"" << dir << "/link.sock\"\n"
                       << "[[device]]\ntype = \"rpmsg\"\nqueue_size = 256\n"
                       << "rpmsg = { runtime_dir = \"" << dir << "/rpmsg0\" }\n";
  int rc = 0;
  nlohmann::json out{{"test", test}, {"wait", wait}, {"size", size}};
  Service s;
  s.echo = test == "rtt";
  std::thread ep([&] { run_service(board, s); });
  while (s.state == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  rpmsg_device* host = nullptr;
  if (s.state < 0) {
    std::fprintf(stderr, "vepf-bench-rpmsg: EP: %s\n", s.error.c_str());
    rc = 1;
  } else if ((host = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DRIVER, 0, client_bind)) ==
             nullptr) {
    std::fprintf(stderr, "vepf-bench-rpmsg: host: %s\n", vepf_rpmsg_last_error());
    rc = 1;
  } else {
    const int turn_ms = 10;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!g_client.bound && Clock::now() < deadline) (void)vepf_rpmsg_poll(host, turn_ms);
    if (!g_client.bound) {
      std::fprintf(stderr, "vepf-bench-rpmsg: the EP's service was not announced\n");
      rc = 1;
    }
    std::vector<char> msg(size, 'm');
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    if (rc == 0 && test == "rtt") {
      std::vector<double> rtt;
      rtt.reserve(1 << 20);
      while (rc == 0 && Clock::now() < end) {
        const auto want = g_client.replies + 1;
        const std::int64_t t0 = now_ns();
        if (rpmsg_send(&g_client.ept, msg.data(), static_cast<int>(size)) < 0) {
          std::fprintf(stderr, "vepf-bench-rpmsg: rpmsg_send: %s\n", vepf_rpmsg_last_error());
          rc = 1;
          break;
        }
        while (g_client.replies < want) {
          if (vepf_rpmsg_poll(host, turn_ms) != RPMSG_SUCCESS) {
            rc = 1;
            break;
          }
        }
        rtt.push_back(static_cast<double>(now_ns() - t0) / 1e3);
      }
      out["round_trips"] = rtt.size();
      out["rtt_p50_us"] = percentile(rtt, 0.5);
      out["rtt_p99_us"] = percentile(rtt, 0.99);
    } else if (rc == 0) {
      const std::int64_t t0 = now_ns();
      std::uint64_t sent = 0;
      while (Clock::now() < end) {
        for (int i = 0; i < 64; ++i) {
          if (rpmsg_send(&g_client.ept, msg.data(), static_cast<int>(size)) < 0) {
            std::fprintf(stderr, "vepf-bench-rpmsg: rpmsg_send: %s\n", vepf_rpmsg_last_error());
            rc = 1;
            break;
          }
          ++sent;
        }
        if (rc != 0) break;
        (void)vepf_rpmsg_poll(host, 0);
      }
      // Let the last ones arrive.
      const auto drain = Clock::now() + std::chrono::seconds(2);
      while (s.received.load() < sent && Clock::now() < drain) (void)vepf_rpmsg_poll(host, 1);
      const std::uint64_t got = s.received.load();
      const double secs = static_cast<double>(s.last_ns.load() - t0) / 1e9;
      out["sent"] = sent;
      out["received"] = got;
      out["msgs_per_s"] = secs > 0 ? static_cast<double>(got) / secs : 0.0;
      if (got != sent) {
        std::fprintf(stderr, "vepf-bench-rpmsg: %llu sent, %llu arrived\n",
                     static_cast<unsigned long long>(sent), static_cast<unsigned long long>(got));
        rc = 1;
      }
    }
  }
  s.stop = true;
  ep.join();
  if (host != nullptr) vepf_rpmsg_close(host);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (rc == 0) std::printf("%s\n", out.dump().c_str());
  return rc;
}
