// vepf-bench-copy: what the device-memory copies cost against plain memcpy, on the loopback
// platform's windows (a memfd, as vepf-ep and vepf-host map it). For each size, direction and
// alignment it times Window::write / Window::read on a window treated as cached memory (memcpy:
// the reference, A) and as device memory (hw::copy_to_io / copy_from_io: B), in A B B A order,
// and prints each pair's ratio B/A of throughput with the median and the spread. A ratio, not a
// figure: these VMs' vCPUs move between host cores and absolute speeds swing by up to 4x.
// Run: build/default/bench/vepf-bench-copy [--pairs N] [--ms M] [--json]

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "vepf/os/memfd.hpp"
#include "vepf/ring/access.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using vepf::ring::MemoryAccess;
using vepf::ring::MemoryType;

constexpr std::size_t kWindow = 4 << 20;  // bytes, the demo board's window size

struct Case {
  std::size_t size;   // bytes per copy
  std::size_t skew;   // bytes past a 64-byte boundary where each copy starts
  bool to_window;     // write (posted writes) or read
  MemoryAccess b;     // the type measured against cached memory
  std::string label;  // "device" or "device, 32-bit only"
};

/// Bytes per second of `c` on `win` for about `ms` milliseconds.
double run(vepf::ring::Window& win, const Case& c, std::vector<std::byte>& buf, int ms) {
  const std::size_t stride = (c.size + c.skew + 63) / 64 * 64;
  const std::size_t slots = kWindow / stride;
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  std::uint64_t bytes = 0;
  std::size_t slot = 0;
  auto start = Clock::now();
  auto now = start;
  do {
    for (int i = 0; i < 32; ++i) {
      const std::size_t off = slot * stride + c.skew;
      if (c.to_window) {
        win.write(off, std::span{buf}.first(c.size));
      } else {
        win.read(off, std::span{buf}.first(c.size));
      }
      bytes += c.size;
      slot = slot + 1 == slots ? 0 : slot + 1;
    }
    now = Clock::now();
  } while (now < end);
  return static_cast<double>(bytes) / std::chrono::duration<double>(now - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("Device-memory copies against memcpy on the loopback windows, in A B B A pairs",
               "vepf-bench-copy");
  int pairs = 6;
  int ms = 20;
  bool json = false;
  cli.add_option("--pairs", pairs, "pairs per case (A B B A counts as two)")
      ->check(CLI::Range(2, 1000))
      ->capture_default_str();
  cli.add_option("--ms", ms, "milliseconds per run")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cli.add_flag("--json", json, "one JSON document instead of the table");
  CLI11_PARSE(cli, argc, argv);

  auto mem = vepf::os::SharedMemory::create("vepf-bench-copy", kWindow);
  if (!mem) {
    std::fprintf(stderr, "vepf-bench-copy: cannot create the window: %s\n", mem.error().what);
    return 1;
  }
  std::vector<std::byte> buf(65536, std::byte{0x5a});
  const MemoryAccess device{MemoryType::kDevice, {}};
  const MemoryAccess device32{MemoryType::kDevice, vepf::hw::AccessWidths::from_bits(4)};
  std::vector<Case> cases;
  for (const std::size_t size : {64u, 1500u, 4096u, 65536u}) {
    for (const std::size_t skew : {0u, 3u}) {
      for (const bool to_window : {true, false}) {
        cases.push_back({size, skew, to_window, device, "device"});
        cases.push_back({size, skew, to_window, device32, "device, 32-bit only"});
      }
    }
  }

  nlohmann::json out = nlohmann::json::array();
  if (!json) {
    std::printf(
        "Window copies on device memory against memcpy (cached), loopback memfd, %d pairs of %d ms "
        "runs\n",
        pairs, ms);
    std::printf("%-7s %-5s %-6s %-20s %12s %18s %14s\n", "bytes", "skew", "dir", "type",
                "median B/A", "spread (min-max)", "memcpy GB/s");
  }
  for (const Case& c : cases) {
    vepf::ring::Window a(vepf::layout::WindowId::kEp, mem->bytes(), nullptr,
                         {MemoryType::kCached, {}});
    vepf::ring::Window b(vepf::layout::WindowId::kEp, mem->bytes(), nullptr, c.b);
    std::vector<double> ratios, a_rates;
    for (int p = 0; p < pairs; ++p) {
      // A B, then B A: neither side always runs first.
      double ra, rb;
      if (p % 2 == 0) {
        ra = run(a, c, buf, ms);
        rb = run(b, c, buf, ms);
      } else {
        rb = run(b, c, buf, ms);
        ra = run(a, c, buf, ms);
      }
      ratios.push_back(rb / ra);
      a_rates.push_back(ra);
    }
    std::vector<double> sorted = ratios;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted.size() % 2
                              ? sorted[sorted.size() / 2]
                              : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
    std::sort(a_rates.begin(), a_rates.end());
    const char* dir = c.to_window ? "write" : "read";
    if (json) {
      out.push_back({{"bytes", c.size},
                     {"skew", c.skew},
                     {"direction", dir},
                     {"type", c.label},
                     {"median_ratio", median},
                     {"min_ratio", sorted.front()},
                     {"max_ratio", sorted.back()},
                     {"ratios", ratios},
                     {"memcpy_median_bytes_per_s", a_rates[a_rates.size() / 2]}});
    } else {
      std::printf("%-7zu %-5zu %-6s %-20s %11.2fx %8.2fx - %5.2fx %14.2f\n", c.size, c.skew, dir,
                  c.label.c_str(), median, sorted.front(), sorted.back(),
                  a_rates[a_rates.size() / 2] / 1e9);
    }
  }
  if (json) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
