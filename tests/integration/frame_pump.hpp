#pragma once
// Helpers of the loopback integration tests: numbered, checksummed frames pumped through the
// seqpacket backends of vepf-ep and vepf-host, and process control.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace vepf::it {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kHdr = 24;  // eth header (14) + pad (2) + seq (8)
constexpr std::size_t kMinFrame = 60, kMaxFrame = 1514;

inline std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/// Frame `seq` of direction `dir`: Ethernet header (local experimental EtherType 0x88b5),
/// sequence number, pseudo-random payload, FNV-1a of everything before the last 8 bytes.
inline std::vector<std::uint8_t> make_frame(std::uint64_t seq, int dir) {
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

inline int connect_retry(const std::string& path, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {  // at least one attempt, also with a zero timeout
    int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return s;
    ::close(s);
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
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

inline int stop(pid_t pid) {
  ::kill(pid, SIGTERM);
  int st = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return -1;
}

/// What the backends' messages carry in front of each frame (seqpacket `vnet_hdr`).
enum class Hdr {
  kNone,   // bare frames
  kPlain,  // a 12-byte virtio_net_hdr_v1, all zero
  kCsum,   // a virtio_net_hdr_v1; every third frame asks for a partial checksum (NEEDS_CSUM)
};
constexpr std::size_t kVnetHdr = 12;  // sizeof(virtio_net_hdr_v1)

/// The virtio_net_hdr_v1 that goes with frame `seq` (num_buffers 0).
inline std::vector<std::uint8_t> make_vnet_hdr(std::uint64_t seq, Hdr mode) {
  std::vector<std::uint8_t> h(kVnetHdr, 0);
  if (mode == Hdr::kCsum && seq % 3 == 0) {
    h[0] = 1;     // VIRTIO_NET_HDR_F_NEEDS_CSUM
    h[6] = kHdr;  // csum_start: after our header, inside every frame (>= 60 bytes)
    h[8] = 16;    // csum_offset: csum_start + 16 + 2 <= 60
  }
  return h;
}

/// One direction's bookkeeping.
struct Stream {
  int tx_fd, rx_fd, dir;
  std::uint64_t next_send = 0, next_expect = 0;
  std::uint64_t corrupt = 0, out_of_order = 0;
  std::vector<std::uint8_t> pending;
  Hdr hdr = Hdr::kNone;
};

inline void pump_send(Stream& s, std::uint64_t n) {
  while (s.next_send < n) {
    if (s.pending.empty()) {
      if (s.hdr != Hdr::kNone) s.pending = make_vnet_hdr(s.next_send, s.hdr);
      const auto f = make_frame(s.next_send, s.dir);
      s.pending.insert(s.pending.end(), f.begin(), f.end());
    }
    if (::send(s.tx_fd, s.pending.data(), s.pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
      return;
    s.pending.clear();
    ++s.next_send;
  }
}

inline void pump_recv(Stream& s) {
  std::uint8_t msg[2048];
  const std::size_t skip = s.hdr == Hdr::kNone ? 0 : kVnetHdr;
  for (;;) {
    const ssize_t n = ::recv(s.rx_fd, msg, sizeof(msg), MSG_DONTWAIT);
    if (n <= 0) return;
    if (static_cast<std::size_t>(n) < skip + kHdr) {
      ++s.corrupt;
      continue;
    }
    const std::uint8_t* buf = msg + skip;
    std::uint64_t seq = 0;
    std::memcpy(&seq, buf + 16, 8);
    if (seq != s.next_expect) ++s.out_of_order;
    const auto want = make_frame(seq, s.dir);
    if (static_cast<std::size_t>(n) - skip != want.size() ||
        std::memcmp(buf, want.data(), want.size()) != 0)
      ++s.corrupt;
    // The header arrives as sent, but for num_buffers (bytes 10-11), which the device sets.
    if (skip != 0 && std::memcmp(msg, make_vnet_hdr(seq, s.hdr).data(), 10) != 0) ++s.corrupt;
    s.next_expect = seq + 1;
  }
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), {}};
}

/// Pumps both streams until each received n frames or nothing moved for 10 s. Returns seconds.
inline double pump_both(Stream& a, Stream& b, std::uint64_t n) {
  const auto t0 = Clock::now();
  auto last_progress = t0;
  std::uint64_t last_total = 0;
  while (a.next_expect < n || b.next_expect < n) {
    pump_send(a, n);
    pump_send(b, n);
    pollfd p[2] = {{a.rx_fd, POLLIN, 0}, {b.rx_fd, POLLIN, 0}};
    if (a.next_send < n || b.next_send < n) p[0].events |= POLLOUT, p[1].events |= POLLOUT;
    ::poll(p, 2, 100);
    pump_recv(a);
    pump_recv(b);
    const std::uint64_t total = a.next_expect + b.next_expect;
    if (total != last_total) last_total = total, last_progress = Clock::now();
    // No progress for 10 s: frames were lost (a timeout, not a speed assertion).
    if (Clock::now() - last_progress > std::chrono::seconds(10)) break;
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// A finished program: its exit status and standard output.
struct Ran {
  int rc;
  std::string out;
};

/// Runs a program to completion, capturing its standard output.
inline Ran run(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe(p) != 0) return {-1, ""};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::close(p[1]);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    std::_Exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

/// Writes a loopback board config with seqpacket backends: device i uses <dir>/ep<i>.sock and
/// <dir>/host<i>.sock. `loopback_keys`: more lines of [loopback] (e.g. memory = "device").
/// `net_keys` go into each [device.net], `backend_keys` into each [device.ep] and [device.host].
/// `ctl add` may create files under <dir> ([control] allowed_dirs).
inline void write_board(const fs::path& file, const fs::path& dir, int devices,
                        const std::string& loopback_keys = "", const std::string& net_keys = "",
                        const std::string& backend_keys = "") {
  std::ofstream f(file);
  f << "[board]\nname = \"it\"\nplatform = \"loopback\"\n"
    << "[loopback]\nsocket = \"" << (dir / "link.sock").string() << "\"\n"
    << loopback_keys << "[control]\nallowed_dirs = [\"" << dir.string() << "\"]\n";
  for (int i = 0; i < devices; ++i) {
    f << "[[device]]\ntype = \"net\"\nqueue_size = 256\n"
      << "[device.net]\nmac = \"02:76:65:70:66:1" << i << "\"\nmtu = 1500\n"
      << net_keys << "[device.ep]\nbackend = \"seqpacket\"\npath = \""
      << (dir / ("ep" + std::to_string(i) + ".sock")).string() << "\"\n"
      << backend_keys << "[device.host]\nbackend = \"seqpacket\"\npath = \""
      << (dir / ("host" + std::to_string(i) + ".sock")).string() << "\"\n"
      << backend_keys;
  }
}

}  // namespace vepf::it
