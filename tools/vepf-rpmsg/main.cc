// vepf-rpmsg: tools for virtio-rpmsg channels. Both programs have an announce socket
// (<runtime_dir>/ep/announce.sock, <runtime_dir>/host/announce.sock) and a socket per channel the
// other side announced (<runtime_dir>/host/<name>.sock, <runtime_dir>/ep/<name>.sock); all are
// SOCK_SEQPACKET, one message = one rpmsg.
//   echo:  registers a channel through an announce socket (either side's) and sends every
//          message back.
//   bench: through a channel socket (either side's), sends N messages one at a time, checks each
//          echo byte for byte, prints p50/p99 round trip (us) and messages/s. Exit 1 on any
//          mismatch or loss.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

constexpr std::size_t kMaxPayload = 496;  // 512-byte rpmsg buffer - 16-byte header
volatile sig_atomic_t g_stop = 0;

int connect_to(const std::string& path) {
  const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) {
    ::close(s);
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    const int e = errno;
    ::close(s);
    errno = e;
    return -1;
  }
  return s;
}

int run_echo(const std::string& announce, const std::string& name) {
  // SIGINT/SIGTERM end the service cleanly (exit 0): recv() returns EINTR (no SA_RESTART).
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  const int s = connect_to(announce);
  if (s < 0) {
    std::fprintf(stderr, "vepf-rpmsg echo: cannot connect to %s: %s\n", announce.c_str(),
                 std::strerror(errno));
    return 1;
  }
  if (::send(s, name.data(), name.size(), MSG_NOSIGNAL) < 0) {
    std::fprintf(stderr, "vepf-rpmsg echo: cannot register '%s': %s\n", name.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "vepf-rpmsg echo: channel '%s' registered\n", name.c_str());
  std::vector<char> buf(4096);
  std::uint64_t n = 0;
  for (;;) {
    const ssize_t r = ::recv(s, buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR && !g_stop) continue;
    if (r <= 0) break;  // the program closed the channel (refused the name, or went away)
    if (::send(s, buf.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL) < 0) break;
    ++n;
  }
  std::fprintf(stderr, "vepf-rpmsg echo: channel closed after %llu messages\n",
               static_cast<unsigned long long>(n));
  return 0;
}

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n,
                    std::uint64_t h = 1469598103934665603ull) {
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int run_bench(const std::string& path, std::uint64_t count, const std::string& size_arg,
              unsigned timeout_ms) {
  std::size_t fixed = 0;
  if (size_arg != "random") {
    try {
      fixed = std::stoul(size_arg);
    } catch (...) {
      fixed = 0;
    }
    if (fixed < 1 || fixed > kMaxPayload) {
      std::fprintf(stderr, "vepf-rpmsg bench: --size must be 1..%zu or \"random\"\n", kMaxPayload);
      return 2;
    }
  }
  const int s = connect_to(path);
  if (s < 0) {
    std::fprintf(stderr, "vepf-rpmsg bench: cannot connect to %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::mt19937_64 rng(0x76657066);
  std::vector<std::uint8_t> out(kMaxPayload), in(4096);
  std::vector<double> rtt;
  rtt.reserve(count);
  std::uint64_t mismatches = 0, lost = 0, sent_sum = 0, recv_sum = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::size_t len = fixed ? fixed : 1 + rng() % kMaxPayload;
    for (std::size_t k = 0; k < len; ++k) out[k] = static_cast<std::uint8_t>(rng());
    std::memcpy(out.data(), &i, std::min<std::size_t>(len, sizeof(i)));  // sequence number first
    sent_sum = fnv1a(out.data(), len, sent_sum);
    const auto a = std::chrono::steady_clock::now();
    if (::send(s, out.data(), len, MSG_NOSIGNAL) < 0) {
      std::fprintf(stderr, "vepf-rpmsg bench: send: %s\n", std::strerror(errno));
      lost += count - i;
      break;
    }
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_ms)) <= 0) {
      std::fprintf(stderr, "vepf-rpmsg bench: message %llu (%zu B): no echo within %u ms\n",
                   static_cast<unsigned long long>(i), len, timeout_ms);
      lost += count - i;
      break;
    }
    const ssize_t r = ::recv(s, in.data(), in.size(), 0);
    const auto b = std::chrono::steady_clock::now();
    if (r <= 0) {
      std::fprintf(stderr, "vepf-rpmsg bench: channel closed at message %llu\n",
                   static_cast<unsigned long long>(i));
      lost += count - i;
      break;
    }
    recv_sum = fnv1a(in.data(), static_cast<std::size_t>(r), recv_sum);
    if (static_cast<std::size_t>(r) != len || std::memcmp(in.data(), out.data(), len) != 0) {
      if (mismatches < 5) {
        std::fprintf(stderr, "vepf-rpmsg bench: message %llu: sent %zu B, got %zd B that differ\n",
                     static_cast<unsigned long long>(i), len, r);
      }
      ++mismatches;
    }
    rtt.push_back(std::chrono::duration<double, std::micro>(b - a).count());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(s);
  std::sort(rtt.begin(), rtt.end());
  auto pct = [&](double q) {
    return rtt.empty() ? 0.0
                       : rtt[std::min(rtt.size() - 1, static_cast<std::size_t>(q * rtt.size()))];
  };
  if (sent_sum != recv_sum && mismatches == 0 && lost == 0)
    ++mismatches;  // cannot happen; belt and braces
  std::printf(
      "messages %zu size %s p50_us %.1f p99_us %.1f msgs_per_s %.0f mismatches %llu lost %llu "
      "checksum %s\n",
      rtt.size(), size_arg.c_str(), pct(0.50), pct(0.99),
      secs > 0 ? static_cast<double>(rtt.size()) / secs : 0.0,
      static_cast<unsigned long long>(mismatches), static_cast<unsigned long long>(lost),
      sent_sum == recv_sum ? "ok" : "BAD");
  return mismatches == 0 && lost == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "vepf-rpmsg: echo service and round-trip benchmark for virtio-rpmsg channels (either side)",
      "vepf-rpmsg"};
  cli.require_subcommand(1);
  std::string announce, name = "echo", path, size = "random";
  std::uint64_t count = 10000;
  unsigned timeout_ms = 5000;
  auto* echo = cli.add_subcommand(
      "echo", "Register a channel with vepf-ep or vepf-host and echo every message");
  echo->add_option("--announce", announce,
                   "An announce socket: <runtime_dir>/ep/announce.sock (vepf-ep) or "
                   "<runtime_dir>/host/announce.sock "
                   "(vepf-host)")
      ->required();
  echo->add_option("--name", name, "Channel name (1..31 letters, digits, '-', '_', '.')")
      ->capture_default_str();
  auto* bench =
      cli.add_subcommand("bench", "Round trips through an echo channel the other side announced");
  bench
      ->add_option("--socket", path,
                   "A channel socket: <runtime_dir>/host/<name>.sock (vepf-host) or "
                   "<runtime_dir>/ep/<name>.sock "
                   "(vepf-ep)")
      ->required();
  bench->add_option("--count", count, "Messages, sent one at a time")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench->add_option("--size", size, "Payload bytes, 1..496, or \"random\"")->capture_default_str();
  bench->add_option("--timeout-ms", timeout_ms, "Longest wait for one echo")->capture_default_str();
  CLI11_PARSE(cli, argc, argv);
  if (echo->parsed()) return run_echo(announce, name);
  return run_bench(path, count, size, timeout_ms);
}
