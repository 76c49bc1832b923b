// vepf-bench-ring: the production split virtqueue (Vring on the driver side, Vringh on the
// device side) over the loopback platform's windows, the driver and the device in two processes
// (or two threads with --threads), nothing else in the way: no device, no TAP, no transport.
// For each case it prints messages/s, Gbit/s of payload, signals (doorbells + interrupts) per
// message, CPU microseconds per message (both sides), the link-model counts per message on each
// side, and for --pingpong the round trip's p50/p99. --reference runs the round trips this
// one is compared against (a cache line, an eventfd pair) instead.
// Figures from one run are only comparable with others from the same run: scripts/bench/
// compare.sh alternates this program with its peers and prints ratios.

#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "placement.hpp"
#include "reference.hpp"
#include "roles.hpp"
#include "vepf/platform/loopback.hpp"

namespace {

using namespace vepf::bench;
using vepf::ring::MemoryType;

struct Outcome {
  Case c;
  SideStats device, driver;
  std::string error;
};

/// The driver side as the child process or thread runs it.
void driver_side(const Case& c, const std::string& sock, Control& ctl) {
  const auto pl = RingPlacement::make(c.num, c.size);
  auto host =
      vepf::platform::LoopbackHost::connect(sock, pl.rc_size, std::chrono::seconds(5), c.access);
  if (!host) {
    std::snprintf(ctl.driver.error, sizeof ctl.driver.error, "connect: %s", host.error().what);
    ctl.stop.store(1);
    ctl.done.fetch_or(2);
    return;
  }
  run_driver(c, **host, ctl);
}

Outcome run_case(const Case& c, bool threads) {
  Outcome out{c, {}, {}, {}};
  static int serial = 0;
  const std::string sock =
      "/tmp/vepf-bench-ring-" + std::to_string(getpid()) + "-" + std::to_string(serial++) + ".sock";
  const auto pl = RingPlacement::make(c.num, c.size);
  auto ep = vepf::platform::LoopbackEp::create(sock, pl.ep_size, c.access);
  if (!ep) {
    out.error = std::string("loopback EP: ") + ep.error().what;
    return out;
  }
  void* mem =
      mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    out.error = "mmap of the control block failed";
    return out;
  }
  auto* ctl = new (mem) Control;

  std::thread thread;
  pid_t pid = -1;
  if (threads) {
    thread = std::thread([&] { driver_side(c, sock, *ctl); });
  } else {
    pid = fork();
    if (pid == 0) {
      driver_side(c, sock, *ctl);
      _exit(0);
    }
    if (pid < 0) out.error = "fork failed";
  }
  if (out.error.empty()) {
    pollfd pfd{(*ep)->listen_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 5000) == 1 && (*ep)->accept_peer()) {
      run_device(c, **ep, *ctl);
    } else {
      out.error = "the driver side did not connect";
      ctl->stop.store(1);
    }
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ctl->done.load() != 3 && std::chrono::steady_clock::now() < give_up) usleep(1000);
  if (thread.joinable()) thread.join();
  if (pid > 0) (void)waitpid(pid, nullptr, 0);
  out.device = ctl->device;
  out.driver = ctl->driver;
  if (out.error.empty() && ctl->done.load() != 3) out.error = "a side did not finish";
  if (out.error.empty() && out.device.error[0]) out.error = out.device.error;
  if (out.error.empty() && out.driver.error[0]) out.error = out.driver.error;
  munmap(mem, sizeof(Control));
  unlink(sock.c_str());
  return out;
}

/// The figures of one outcome, per message where it says so.
nlohmann::json figures(const Outcome& o) {
  const Case& c = o.c;
  const SideStats& m =
      (c.dir == Direction::kToDevice && !c.pingpong) ? o.device : o.driver;  // measuring side
  const double msgs = static_cast<double>(m.messages);
  const double per = msgs > 0 ? 1.0 / msgs : 0;
  const auto& d = o.device.link;
  const auto& r = o.driver.link;
  nlohmann::json j = {
      {"mode", to_string(c.mode)},
      {"direction", c.pingpong ? "pingpong" : to_string(c.dir)},
      {"bytes", c.size},
      {"copies", c.copies},
      {"queue_size", c.num},
      {"burst", c.burst},
      {"memory", std::string(vepf::ring::to_string(c.access.type))},
      {"messages", m.messages},
      {"seconds", m.elapsed_s},
      {"messages_per_s", m.elapsed_s > 0 ? msgs / m.elapsed_s : 0},
      {"gbit_per_s",
       m.elapsed_s > 0 ? msgs * static_cast<double>(c.size) * 8 / m.elapsed_s / 1e9 : 0},
      {"signals_per_message", static_cast<double>(d.signals_sent + r.signals_sent) * per},
      {"cpu_us_per_message", (o.device.cpu_s + o.driver.cpu_s) * 1e6 * per},
      {"device",
       {{"nonposted_reads_per_message", static_cast<double>(d.nonposted_reads) * per},
        {"posted_writes_per_message", static_cast<double>(d.posted_writes) * per},
        {"posted_bytes_per_message", static_cast<double>(d.posted_write_bytes) * per},
        {"sleeps", o.device.sleeps},
        {"idle_rounds", o.device.idle_rounds}}},
      {"driver",
       {{"nonposted_reads_per_message", static_cast<double>(r.nonposted_reads) * per},
        {"posted_writes_per_message", static_cast<double>(r.posted_writes) * per},
        {"posted_bytes_per_message", static_cast<double>(r.posted_write_bytes) * per},
        {"sleeps", o.driver.sleeps},
        {"idle_rounds", o.driver.idle_rounds}}}};
  if (c.pingpong) {
    j["rtt_p50_us"] = static_cast<double>(o.driver.rtt_p50_ns) / 1e3;
    j["rtt_p99_us"] = static_cast<double>(o.driver.rtt_p99_ns) / 1e3;
  }
  if (!o.error.empty()) j["error"] = o.error;
  return j;
}

void print_row(const nlohmann::json& j) {
  if (j.contains("error")) {
    std::printf("%-8s %-9s %6d %d  error: %s\n", j["mode"].get<std::string>().c_str(),
                j["direction"].get<std::string>().c_str(), j["bytes"].get<int>(),
                j["copies"].get<int>(), j["error"].get<std::string>().c_str());
    return;
  }
  std::printf("%-8s %-9s %6d %6d %10.3f %8.2f %8.4f %8.3f %6.2f/%-6.2f %6.2f/%-6.2f",
              j["mode"].get<std::string>().c_str(), j["direction"].get<std::string>().c_str(),
              j["bytes"].get<int>(), j["copies"].get<int>(),
              j["messages_per_s"].get<double>() / 1e6, j["gbit_per_s"].get<double>(),
              j["signals_per_message"].get<double>(), j["cpu_us_per_message"].get<double>(),
              j["device"]["nonposted_reads_per_message"].get<double>(),
              j["device"]["posted_writes_per_message"].get<double>(),
              j["driver"]["nonposted_reads_per_message"].get<double>(),
              j["driver"]["posted_writes_per_message"].get<double>());
  if (j.contains("rtt_p50_us"))
    std::printf("   rtt p50 %.3f us p99 %.3f us", j["rtt_p50_us"].get<double>(),
                j["rtt_p99_us"].get<double>());
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli(
      "The split virtqueue alone over the loopback windows: driver and device in two processes",
      "vepf-bench-ring");
  std::vector<std::string> modes{"poll"};
  std::vector<std::string> dirs{"to-device", "to-driver"};
  std::vector<std::size_t> sizes{64, 256, 1500, 4096, 65536};
  std::vector<int> copies{1};
  Case base;
  bool pingpong = false, threads = false, json = false, no_event_idx = false;
  std::string memory = "cached", cpus = "0,1", reference;
  const std::map<std::string, Mode> mode_names{
      {"poll", Mode::kPoll}, {"notify", Mode::kNotify}, {"adaptive", Mode::kAdaptive}};
  cli.add_option("--mode", modes,
                 "poll (both sides spin), notify (EVENT_IDX, sleep when empty), adaptive (spin "
                 "--spin-us, then sleep)")
      ->delimiter(',')
      ->check(CLI::IsMember({"poll", "notify", "adaptive"}))
      ->capture_default_str();
  cli.add_option("--direction", dirs, "to-device (driver produces), to-driver (device produces)")
      ->delimiter(',')
      ->check(CLI::IsMember({"to-device", "to-driver"}))
      ->capture_default_str();
  cli.add_option("--size", sizes, "message sizes, bytes")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cli.add_option("--copies", copies,
                 "payload copies per message: 0 none, 1 across the link, 2 also out of the ring")
      ->delimiter(',')
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  cli.add_flag("--pingpong", pingpong,
               "one message in flight (driver -> device): round-trip p50/p99 instead of a stream");
  cli.add_option("--queue-size", base.num, "entries")
      ->check(CLI::IsMember({16, 32, 64, 128, 256, 512, 1024, 4096}))
      ->capture_default_str();
  cli.add_option("--burst", base.burst, "messages per index publish")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cli.add_option("--ms", base.ms, "milliseconds per case")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  cli.add_option("--spin-us", base.spin_us,
                 "adaptive mode: microseconds of spinning before sleeping")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cli.add_flag("--no-event-idx", no_event_idx,
               "without VIRTIO_F_EVENT_IDX (flags-based suppression)");
  cli.add_option("--memory", memory, "how the windows are treated")
      ->check(CLI::IsMember({"cached", "device"}))
      ->capture_default_str();
  cli.add_option("--cpus", cpus, "DEVICE,DRIVER CPUs to pin the two sides to, or 'none'")
      ->capture_default_str();
  cli.add_flag("--threads", threads, "driver and device as two threads of one process");
  cli.add_option("--reference", reference,
                 "run a reference round trip instead: cacheline or eventfd")
      ->check(CLI::IsMember({"cacheline", "eventfd"}));
  cli.add_flag("--json", json, "one JSON document instead of the table");
  CLI11_PARSE(cli, argc, argv);

  if (cpus != "none") {
    if (std::sscanf(cpus.c_str(), "%d,%d", &base.device_cpu, &base.driver_cpu) != 2 ||
        base.device_cpu < 0 || base.driver_cpu < 0) {
      std::fprintf(stderr,
                   "vepf-bench-ring: --cpus: give two CPU numbers, e.g. --cpus 0,1, or 'none'\n");
      return 2;
    }
  }
  if (base.num > 1024 && sizes.back() > 4096) {
    std::fprintf(stderr,
                 "vepf-bench-ring: --queue-size 4096 with messages above 4096 bytes needs windows "
                 "over 256 MiB: use a smaller queue\n");
    return 2;
  }
  base.event_idx = !no_event_idx;
  base.access = {memory == "device" ? MemoryType::kDevice : MemoryType::kCached, {}};
  base.pingpong = pingpong;

  if (!reference.empty()) {
    const Rtt r = reference == "cacheline"
                      ? cacheline_pingpong(base.ms, base.device_cpu, base.driver_cpu)
                      : eventfd_pingpong(base.ms, base.device_cpu, base.driver_cpu);
    nlohmann::json j = {{"reference", reference},
                        {"samples", r.samples},
                        {"rtt_p50_us", static_cast<double>(r.p50_ns) / 1e3},
                        {"rtt_p99_us", static_cast<double>(r.p99_ns) / 1e3}};
    if (!r.error.empty()) j["error"] = r.error;
    if (json) {
      std::printf("%s\n", nlohmann::json::array({j}).dump(2).c_str());
    } else {
      std::printf("%s ping-pong: %llu round trips, p50 %.3f us, p99 %.3f us%s%s\n",
                  reference.c_str(), static_cast<unsigned long long>(r.samples),
                  static_cast<double>(r.p50_ns) / 1e3, static_cast<double>(r.p99_ns) / 1e3,
                  r.error.empty() ? "" : ", error: ", r.error.c_str());
    }
    return r.error.empty() ? 0 : 1;
  }

  std::vector<Case> cases;
  for (const auto& m : modes) {
    for (const auto& d : pingpong ? std::vector<std::string>{"to-device"} : dirs) {
      for (const std::size_t s : sizes) {
        for (const int k : copies) {
          Case c = base;
          c.mode = mode_names.at(m);
          c.dir = d == "to-device" ? Direction::kToDevice : Direction::kToDriver;
          c.size = s;
          c.copies = k;
          cases.push_back(c);
        }
      }
    }
  }
  if (!json) {
    std::printf("split ring over loopback windows (%s), queue %u, burst %d, %d ms per case, %s\n",
                memory.c_str(), base.num, base.burst, base.ms,
                threads ? "two threads" : "two processes");
    std::printf("%-8s %-9s %6s %6s %10s %8s %8s %8s %13s %13s\n", "mode", "direction", "bytes",
                "copies", "Mmsg/s", "Gbit/s", "sig/msg", "cpu us", "dev npr/pw", "drv npr/pw");
  }
  nlohmann::json all = nlohmann::json::array();
  int failures = 0;
  for (const Case& c : cases) {
    const Outcome o = run_case(c, threads);
    const auto j = figures(o);
    failures += o.error.empty() ? 0 : 1;
    if (json) {
      all.push_back(j);
    } else {
      print_row(j);
      std::fflush(stdout);
    }
  }
  if (json) std::printf("%s\n", all.dump(2).c_str());
  return failures ? 1 : 0;
}
