#include "reference.hpp"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "roles.hpp"
#include "vepf/hw/barrier.hpp"

namespace vepf::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct alignas(64) Line {
  std::atomic<std::uint64_t> seq{0};  // odd: the parent's turn is done; even: the child's
  std::atomic<std::uint32_t> stop{0};
};

/// Runs `child` in a forked process pinned to cpu_b, and `parent` here pinned to cpu_a, then
/// reaps the child. The child's exit status 0 means it ran to the end.
template <class Parent, class Child>
Rtt fork_pair(int cpu_a, int cpu_b, Parent parent, Child child) {
  const pid_t pid = fork();
  if (pid < 0) return Rtt{0, 0, 0, std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    pin_to_cpu(cpu_b);
    child();
    _exit(0);
  }
  pin_to_cpu(cpu_a);
  Rtt r = parent();
  int status = 0;
  (void)waitpid(pid, &status, 0);
  pin_to_cpu(-1);
  if (r.error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    r.error = "the child failed";
  return r;
}

}  // namespace

Rtt rtt_of(std::vector<std::uint32_t>& ns) {
  Rtt r;
  r.samples = ns.size();
  if (ns.empty()) {
    r.error = "no round trips";
    return r;
  }
  auto at = [&](double q) {
    const std::size_t k =
        std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(k), ns.end());
    return ns[k];
  };
  r.p50_ns = at(0.5);
  r.p99_ns = at(0.99);
  return r;
}

Rtt cacheline_pingpong(int ms, int cpu_a, int cpu_b) {
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Rtt{0, 0, 0, std::string("mmap: ") + std::strerror(errno)};
  auto* line = new (mem) Line;
  Rtt r = fork_pair(
      cpu_a, cpu_b,
      [&] {
        std::vector<std::uint32_t> ns;
        ns.reserve(4u << 20);
        const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        for (std::uint64_t s = 1;; s += 2) {
          const auto t0 = Clock::now();
          if (t0 >= deadline || ns.size() == ns.capacity()) break;
          line->seq.store(s, std::memory_order_release);
          while (line->seq.load(std::memory_order_acquire) != s + 1) hw::cpu_relax();
          ns.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
        }
        line->stop.store(1);
        return rtt_of(ns);
      },
      [&] {
        std::uint64_t seen = 0;
        while (!line->stop.load(std::memory_order_relaxed)) {
          const std::uint64_t s = line->seq.load(std::memory_order_acquire);
          if (s == seen || (s & 1) == 0) {
            hw::cpu_relax();
            continue;
          }
          seen = s + 1;
          line->seq.store(seen, std::memory_order_release);
        }
      });
  munmap(mem, 4096);
  return r;
}

Rtt eventfd_pingpong(int ms, int cpu_a, int cpu_b) {
  const int to_child = eventfd(0, EFD_CLOEXEC), to_parent = eventfd(0, EFD_CLOEXEC);
  if (to_child < 0 || to_parent < 0)
    return Rtt{0, 0, 0, std::string("eventfd: ") + std::strerror(errno)};
  constexpr std::uint64_t kStop = 2;  // a count of 2 tells the child to stop
  Rtt r = fork_pair(
      cpu_a, cpu_b,
      [&] {
        std::vector<std::uint32_t> ns;
        ns.reserve(1u << 20);
        const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        std::uint64_t v = 1;
        for (;;) {
          const auto t0 = Clock::now();
          if (t0 >= deadline || ns.size() == ns.capacity()) break;
          v = 1;
          if (write(to_child, &v, sizeof v) != sizeof v ||
              read(to_parent, &v, sizeof v) != sizeof v) {
            return Rtt{0, 0, 0, std::string("eventfd: ") + std::strerror(errno)};
          }
          ns.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
        }
        v = kStop;
        (void)!write(to_child, &v, sizeof v);
        return rtt_of(ns);
      },
      [&] {
        std::uint64_t v = 0;
        while (read(to_child, &v, sizeof v) == sizeof v && v != kStop) {
          v = 1;
          if (write(to_parent, &v, sizeof v) != sizeof v) break;
        }
      });
  close(to_child);
  close(to_parent);
  return r;
}

}  // namespace vepf::bench
