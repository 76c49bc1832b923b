// Integration (issue 14, "faults under traffic"): a hostile peer on each side of a running link.
// vepf-ep and vepf-host carry frames both ways through seqpacket backends while this test,
// holding both windows (the memfds, reopened through /proc/<pid>/fd), writes random values at
// random aligned places in each: the EP window as a hostile host would through the BAR, the RC
// window as a hostile EP would through its outbound window. Then:
//  - both programs are still running (the strict link model is on: an access real device
//    memory would fault on ends a program, and fails the test);
//  - a reset brings the link back: vepf-host restarted (a fresh attach, which resets every
//    device) and frames cross both ways again, intact and in order, without restarting vepf-ep;
//  - both stop cleanly on SIGTERM.
// VEPF_HOSTILE_WRITES sets the number of writes (default 40000), VEPF_HOSTILE_WINDOW=ep|rc limits
// them to one window.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "frame_pump.hpp"

namespace {

using namespace vepf::it;

/// One of a program's shared windows, mapped into this test through /proc/<pid>/fd.
struct Mapped {
  std::uint8_t* base = nullptr;
  std::size_t size = 0;
  ~Mapped() {
    if (base != nullptr) ::munmap(base, size);
  }
};

/// Maps the memfd named `name` ("vepf-ep-window", "vepf-rc-window") that process `pid` holds.
bool map_window(pid_t pid, const std::string& name, Mapped& out) {
  const fs::path fds = fs::path("/proc") / std::to_string(pid) / "fd";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fds, ec)) {
    std::error_code lec;
    const std::string target = fs::read_symlink(e.path(), lec).string();
    if (lec || target.rfind("/memfd:" + name, 0) != 0) continue;
    const int fd = ::open(e.path().c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      return false;
    }
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return false;
    out.base = static_cast<std::uint8_t*>(p);
    out.size = static_cast<std::size_t>(st.st_size);
    return true;
  }
  return false;
}

/// A value a hostile peer would try: anything, or the edges parsers get wrong.
std::uint64_t hostile_value(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:
      return 0;
    case 1:
      return ~std::uint64_t{0};
    case 2:
      return rng() % 4096;  // small counts, indices, lengths
    case 3:
      return std::uint64_t{1} << (rng() % 64);  // one bit: flags, sizes
    case 4:
      return 0x8000000000000000ull | rng() % 65536;
    default:
      return rng();
  }
}

/// Writes one random value of 1, 2, 4 or 8 bytes at a naturally aligned place of `w`.
void scribble(const Mapped& w, std::mt19937_64& rng) {
  const unsigned width = 1u << (rng() % 4);
  const std::size_t off = (rng() % w.size) & ~std::size_t{width - 1};
  const std::uint64_t v = hostile_value(rng);
  auto* p = w.base + off;
  switch (width) {
    case 1:
      __atomic_store_n(p, static_cast<std::uint8_t>(v), __ATOMIC_RELAXED);
      break;
    case 2:
      __atomic_store_n(reinterpret_cast<std::uint16_t*>(p), static_cast<std::uint16_t>(v),
                       __ATOMIC_RELAXED);
      break;
    case 4:
      __atomic_store_n(reinterpret_cast<std::uint32_t*>(p), static_cast<std::uint32_t>(v),
                       __ATOMIC_RELAXED);
      break;
    default:
      __atomic_store_n(reinterpret_cast<std::uint64_t*>(p), v, __ATOMIC_RELAXED);
      break;
  }
}

bool running(pid_t pid) {
  int st = 0;
  return ::waitpid(pid, &st, WNOHANG) == 0;
}

/// Frames of `dir` only: anything else that arrives (left over from before the reset) is counted
/// as stale and skipped; frames of `dir` must come intact and in order.
struct Checked {
  int tx_fd = -1, rx_fd = -1, dir = 0;
  std::uint64_t sent = 0, received = 0, stale = 0, bad = 0;
};

void checked_pump(Checked& a, Checked& b, std::uint64_t n) {
  auto send = [n](Checked& s) {
    while (s.sent < n) {
      const auto f = make_frame(s.sent, s.dir);
      if (::send(s.tx_fd, f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) return;
      ++s.sent;
    }
  };
  auto recv = [](Checked& s) {
    std::uint8_t msg[2048];
    for (;;) {
      const ssize_t len = ::recv(s.rx_fd, msg, sizeof msg, MSG_DONTWAIT);
      if (len <= 0) return;
      if (static_cast<std::size_t>(len) < kHdr || msg[5] != s.dir) {
        ++s.stale;
        continue;
      }
      std::uint64_t seq = 0;
      std::memcpy(&seq, msg + 16, 8);
      const auto want = make_frame(seq, s.dir);
      if (seq != s.received || static_cast<std::size_t>(len) != want.size() ||
          std::memcmp(msg, want.data(), want.size()) != 0) {
        ++s.bad;
      }
      s.received = seq + 1;
    }
  };
  auto last = Clock::now();
  std::uint64_t seen = 0;
  while ((a.received < n || b.received < n) && Clock::now() - last < std::chrono::seconds(10)) {
    send(a);
    send(b);
    pollfd p[2] = {{a.rx_fd, POLLIN, 0}, {b.rx_fd, POLLIN, 0}};
    ::poll(p, 2, 50);
    recv(a);
    recv(b);
    if (a.received + b.received != seen) seen = a.received + b.received, last = Clock::now();
  }
}

std::uint64_t writes_wanted() {
  const char* e = std::getenv("VEPF_HOSTILE_WRITES");
  return e != nullptr ? std::strtoull(e, nullptr, 10) : 40000;
}

TEST(LoopbackHostile, RandomWritesIntoBothWindowsUnderTrafficThenAResetBringsTheLinkBack) {
  const fs::path dir = fs::temp_directory_path() / ("vepf-hostile-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path board = dir / "board.toml";
  write_board(board, dir, 1);
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", board.string()}, dir / "ep.log");
  pid_t host = spawn({VEPF_HOST_BIN, "--board", board.string()}, dir / "host.log");
  auto logs = [&] {
    return "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
  };
  int ep0 = connect_retry((dir / "ep0.sock").string(), std::chrono::seconds(10));
  int host0 = connect_retry((dir / "host0.sock").string(), std::chrono::seconds(10));
  ASSERT_GE(ep0, 0) << logs();
  ASSERT_GE(host0, 0) << logs();
  {
    Checked a{ep0, host0, 0}, b{host0, ep0, 1};
    checked_pump(a, b, 2000);
    ASSERT_EQ(a.received + b.received, 4000u) << "no traffic before the hostile writes\n" << logs();
  }

  Mapped ep_window, rc_window;
  ASSERT_TRUE(map_window(ep, "vepf-ep-window", ep_window)) << "vepf-ep holds no EP window memfd";
  ASSERT_TRUE(map_window(ep, "vepf-rc-window", rc_window)) << "vepf-ep holds no RC window memfd";

  // Traffic both ways for as long as the writes go on; what arrives is not checked (the writes
  // corrupt it), only that the programs keep going.
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> moved{0};
  std::thread traffic([&] {
    std::uint64_t seq = 0;
    std::uint8_t msg[2048];
    while (!done) {
      for (int fd : {ep0, host0}) {
        const auto f = make_frame(seq++, 2 + (fd == host0));
        (void)::send(fd, f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        while (::recv(fd, msg, sizeof msg, MSG_DONTWAIT) > 0) ++moved;
      }
      pollfd p[2] = {{ep0, POLLIN, 0}, {host0, POLLIN, 0}};
      ::poll(p, 2, 1);
    }
  });
  const std::uint64_t writes = writes_wanted();
  std::mt19937_64 rng(0x14);
  // VEPF_HOSTILE_WINDOW=ep or rc: one window only (to tell which side's parsing a failure is in).
  const std::string only =
      std::getenv("VEPF_HOSTILE_WINDOW") ? std::getenv("VEPF_HOSTILE_WINDOW") : "";
  for (std::uint64_t i = 0; i < writes; ++i) {
    const bool ep_side = only == "ep" || (only != "rc" && rng() % 2 == 0);
    scribble(ep_side ? ep_window : rc_window, rng);
    if (i % 20 == 19)
      std::this_thread::sleep_for(std::chrono::microseconds(500));  // let traffic run
  }
  done = true;
  traffic.join();
  std::printf("%llu random writes into both windows; %llu frames arrived meanwhile\n",
              static_cast<unsigned long long>(writes),
              static_cast<unsigned long long>(moved.load()));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(running(ep)) << "vepf-ep did not survive the hostile writes\n" << logs();
  EXPECT_TRUE(running(host)) << "vepf-host did not survive the hostile writes\n" << logs();
  if (!running(ep) || !running(host)) return;

  // The reset: a new vepf-host attaches (a new RC window; the EP re-publishes what it owns and
  // resets every device). vepf-ep keeps running throughout.
  ::close(host0);
  ::close(ep0);
  EXPECT_EQ(stop(host), 0) << logs();
  host = spawn({VEPF_HOST_BIN, "--board", board.string()}, dir / "host2.log");
  // The attach resets every device, and the EP's backend lets go of its client then: connect
  // once the new host has brought the device up.
  const auto t0 = Clock::now();
  while (slurp(dir / "host2.log").find("virtio-net up") == std::string::npos &&
         Clock::now() - t0 < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ep0 = connect_retry((dir / "ep0.sock").string(), std::chrono::seconds(10));
  host0 = connect_retry((dir / "host0.sock").string(), std::chrono::seconds(15));
  ASSERT_GE(ep0, 0) << logs();
  ASSERT_GE(host0, 0) << logs() << "--- host2.log\n" << slurp(dir / "host2.log");
  Checked a{ep0, host0, 4}, b{host0, ep0, 5};
  const std::uint64_t n = 5000;
  checked_pump(a, b, n);
  std::printf(
      "after the reset: EP->host %llu/%llu, host->EP %llu/%llu (stale frames skipped: %llu)\n",
      static_cast<unsigned long long>(a.received), static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(b.received), static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(a.stale) + b.stale);
  const std::string all = logs() + "--- host2.log\n" + slurp(dir / "host2.log");
  // What the programs noticed (their logs): the writes reached them, or the test tested nothing.
  auto count = [&all](const std::string& what) {
    std::size_t k = 0;
    for (std::size_t p = all.find(what); p != std::string::npos; p = all.find(what, p + 1)) ++k;
    return k;
  };
  const std::size_t resets = count("DEVICE_NEEDS_RESET"), republished = count("re-published");
  std::printf(
      "noticed: DEVICE_NEEDS_RESET reported to the host %zu times, EP control region re-published "
      "%zu times\n",
      resets, republished);
  EXPECT_GT(resets + republished, 0u) << "neither program noticed " << writes << " hostile writes\n"
                                      << all;
  EXPECT_EQ(a.received, n) << all;
  EXPECT_EQ(b.received, n) << all;
  EXPECT_EQ(a.bad + b.bad, 0u) << all;
  ::close(ep0);
  ::close(host0);
  EXPECT_EQ(stop(host), 0) << all;
  EXPECT_EQ(stop(ep), 0) << all;
  fs::remove_all(dir);
}

}  // namespace
