// Integration: vepf-ep and vepf-host as two processes over the loopback platform, each with a
// SOCK_SEQPACKET frame backend. Pushes frames with sequence numbers and checksums through the
// virtio-net link in both directions at once and checks that none is lost, reordered or
// corrupted. Frame count per direction: VEPF_FRAMES (default 500000, so 1,000,000 in all).

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kHdr = 24;      // eth header (14) + pad (2) + seq (8)
constexpr std::size_t kMinFrame = 60, kMaxFrame = 1514;

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/// Frame `seq` of direction `dir`: Ethernet header (local experimental EtherType 0x88b5),
/// sequence number, pseudo-random payload, FNV-1a of everything before the last 8 bytes.
std::vector<std::uint8_t> make_frame(std::uint64_t seq, int dir) {
  std::mt19937_64 rng(seq * 2 + static_cast<std::uint64_t>(dir));
  const std::size_t len = kMinFrame + rng() % (kMaxFrame - kMinFrame + 1);
  std::vector<std::uint8_t> f(len);
  const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(dir)};
  const std::uint8_t src[6] = {0x02, 0, 0, 0, 1, static_cast<std::uint8_t>(dir)};
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  std::memcpy(f.data() + 16, &seq, 8);
  for (std::size_t i = kHdr; i < len - 8; ++i) f[i] = static_cast<std::uint8_t>(rng());
  const std::uint64_t h = fnv1a(f.data(), len - 8);
  std::memcpy(f.data() + len - 8, &h, 8);
  return f;
}

int connect_retry(const std::string& path, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return s;
    ::close(s);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::execv(a[0], a.data());
    std::_Exit(127);
  }
  return pid;
}

int stop(pid_t pid) {
  ::kill(pid, SIGTERM);
  int st = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return -1;
}

/// One direction's bookkeeping.
struct Stream {
  int tx_fd, rx_fd, dir;
  std::uint64_t next_send = 0, next_expect = 0;
  std::uint64_t corrupt = 0, out_of_order = 0;
  std::vector<std::uint8_t> pending;
};

void pump_send(Stream& s, std::uint64_t n) {
  while (s.next_send < n) {
    if (s.pending.empty()) s.pending = make_frame(s.next_send, s.dir);
    if (::send(s.tx_fd, s.pending.data(), s.pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) return;
    s.pending.clear();
    ++s.next_send;
  }
}

void pump_recv(Stream& s) {
  std::uint8_t buf[2048];
  for (;;) {
    const ssize_t n = ::recv(s.rx_fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return;
    std::uint64_t seq = 0;
    std::memcpy(&seq, buf + 16, 8);
    if (seq != s.next_expect) ++s.out_of_order;
    const auto want = make_frame(seq, s.dir);
    if (static_cast<std::size_t>(n) != want.size() || std::memcmp(buf, want.data(), want.size()) != 0) ++s.corrupt;
    s.next_expect = seq + 1;
  }
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(LoopbackIntegration, MillionFramesBothWaysArriveIntactAndInOrder) {
  const std::uint64_t n = std::getenv("VEPF_FRAMES") ? std::strtoull(std::getenv("VEPF_FRAMES"), nullptr, 10) : 500000;
  const fs::path dir = fs::temp_directory_path() / ("vepf-it-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path board = dir / "board.toml";
  std::ofstream(board) << "[board]\nname = \"it\"\nplatform = \"loopback\"\n"
                       << "[loopback]\nsocket = \"" << (dir / "link.sock").string() << "\"\n"
                       << "[[device]]\ntype = \"net\"\nqueue_size = 256\n"
                       << "[device.net]\nmac = \"02:76:65:70:66:11\"\nmtu = 1500\n"
                       << "[device.ep]\nbackend = \"seqpacket\"\npath = \"" << (dir / "ep.sock").string() << "\"\n"
                       << "[device.host]\nbackend = \"seqpacket\"\npath = \"" << (dir / "host.sock").string()
                       << "\"\n";
  // Host first: the loopback platform lets either side start first.
  const pid_t host = spawn({VEPF_HOST_BIN, "--board", board.string(), "--once"}, dir / "host.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", board.string()}, dir / "ep.log");
  const int ep_fd = connect_retry((dir / "ep.sock").string(), std::chrono::seconds(10));
  const int host_fd = connect_retry((dir / "host.sock").string(), std::chrono::seconds(10));
  ASSERT_GE(ep_fd, 0) << slurp(dir / "ep.log");
  ASSERT_GE(host_fd, 0) << slurp(dir / "host.log");

  Stream to_host{ep_fd, host_fd, 0, 0, 0, 0, 0, {}};   // EP backend -> receiveq -> host backend
  Stream to_ep{host_fd, ep_fd, 1, 0, 0, 0, 0, {}};   // host backend -> transmitq -> EP backend
  const auto t0 = Clock::now();
  auto last_progress = t0;
  std::uint64_t last_total = 0;
  while (to_host.next_expect < n || to_ep.next_expect < n) {
    pump_send(to_host, n);
    pump_send(to_ep, n);
    pollfd p[2] = {{ep_fd, POLLIN, 0}, {host_fd, POLLIN, 0}};
    if (to_host.next_send < n || to_ep.next_send < n) p[0].events |= POLLOUT, p[1].events |= POLLOUT;
    ::poll(p, 2, 100);
    pump_recv(to_host);
    pump_recv(to_ep);
    const std::uint64_t total = to_host.next_expect + to_ep.next_expect;
    if (total != last_total) last_total = total, last_progress = Clock::now();
    // No progress for 10 s: frames were lost (a timeout, not a speed assertion).
    if (Clock::now() - last_progress > std::chrono::seconds(10)) break;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("frames: EP->host %llu/%llu, host->EP %llu/%llu in %.2f s (%.0f frames/s)\n",
              static_cast<unsigned long long>(to_host.next_expect), static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(to_ep.next_expect), static_cast<unsigned long long>(n), secs,
              (to_host.next_expect + to_ep.next_expect) / secs);
  ::close(ep_fd);
  ::close(host_fd);
  const int host_rc = stop(host);
  const int ep_rc = stop(ep);
  const std::string logs = "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
  EXPECT_EQ(to_host.next_expect, n) << logs;
  EXPECT_EQ(to_ep.next_expect, n) << logs;
  EXPECT_EQ(to_host.corrupt + to_ep.corrupt, 0u);
  EXPECT_EQ(to_host.out_of_order + to_ep.out_of_order, 0u);
  EXPECT_EQ(host_rc, 0) << logs;
  EXPECT_EQ(ep_rc, 0) << logs;
  // The steady state crosses the link with posted writes only.
  EXPECT_NE(logs.find("vepf-host link model"), std::string::npos);
  EXPECT_NE(logs.find("per frame: non-posted reads 0.0000 (0.0 B)"), std::string::npos) << logs;
  std::printf("%s", logs.c_str());
  fs::remove_all(dir);
}

}  // namespace
