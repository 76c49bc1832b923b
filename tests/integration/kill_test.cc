// kill -9 of either program while virtio-net and virtio-blk carry traffic, then a restart: the
// traffic comes back, and not one block write the NBD client saw acknowledged is lost.
//
// The board: a net device with seqpacket backends (numbered, checksummed frames both ways,
// frame_pump.hpp) and a block device on a 4 MiB file, exported by vepf-host as NBD. Each cycle:
//   - a writer thread writes 4 KiB blocks through libnbd (nbd_pwrite), each with a content that
//     names its block and write, and records it as acknowledged when nbd_pwrite returned 0; the
//     write it was in when the program died may or may not have landed;
//   - frames flow both ways meanwhile;
//   - after 150..400 ms one side gets SIGKILL and is started again;
//   - the time until frames arrive again each way and until an NBD write and read succeed is
//     measured from the restart (printed: a figure, not an assertion; no progress in 20 s fails);
//   - every block written so far is read back: an acknowledged block holds exactly its last
//     acknowledged content; the one in flight holds the old or the new.
// kKills cycles per side (20; VEPF_KILLS overrides). The note of the run gives the figures.

#include <gtest/gtest.h>
#include <libnbd.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "frame_pump.hpp"

namespace {

using namespace vepf::it;
using namespace std::chrono_literals;

constexpr std::size_t kBlock = 4096;
constexpr std::size_t kDisk = 4 << 20;
constexpr std::size_t kBlocks = kDisk / kBlock;

/// Block `b`'s content for write number `n` (never all zero: a block never written reads zero).
std::vector<std::uint8_t> content(std::size_t b, std::uint64_t n) {
  std::vector<std::uint8_t> v(kBlock);
  std::mt19937_64 rng(b * 1000003 + n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng());
  std::memcpy(v.data(), &b, sizeof b);
  std::memcpy(v.data() + 8, &n, sizeof n);
  v[16] = 1;
  return v;
}

struct Nbd {
  nbd_handle* h = nullptr;
  ~Nbd() { close(); }
  void close() {
    if (h) nbd_close(h);
    h = nullptr;
  }
  bool connect(const std::string& sock) {
    close();
    h = nbd_create();
    if (!h) return false;
    if (nbd_connect_unix(h, sock.c_str()) == -1) {
      close();
      return false;
    }
    return true;
  }
};

/// What a block may hold: its last acknowledged write, or (after a kill) also the one in flight.
struct Model {
  std::mutex m;
  std::map<std::size_t, std::uint64_t> acked;      // block -> write number
  std::optional<std::pair<std::size_t, std::uint64_t>> in_flight;
};

void writer(const std::string& sock, Model& model, std::atomic<bool>& stop, std::uint64_t& next, std::uint64_t& acks,
            std::uint32_t seed) {
  Nbd c;
  if (!c.connect(sock)) return;
  std::mt19937 rng(seed);
  while (!stop.load()) {
    const std::size_t b = rng() % (kBlocks - 1);  // the last block is blk_back()'s
    const std::uint64_t n = ++next;
    const auto v = content(b, n);
    {
      std::lock_guard<std::mutex> l(model.m);
      model.in_flight = {b, n};
    }
    if (nbd_pwrite(c.h, v.data(), v.size(), b * kBlock, 0) == -1) return;  // the link went: in flight stays
    std::lock_guard<std::mutex> l(model.m);
    model.acked[b] = n;
    model.in_flight.reset();
    ++acks;
  }
}

class LoopbackKill : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vepf-kill-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    std::ofstream f(dir / "board.toml");
    f << "[board]\nname = \"kill\"\nplatform = \"loopback\"\n"
      << "[loopback]\nsocket = \"" << (dir / "link.sock").string() << "\"\n"
      << "[control]\nallowed_dirs = [\"" << dir.string() << "\"]\n"
      << "[[device]]\ntype = \"net\"\nqueue_size = 256\n[device.net]\nmac = \"02:76:65:70:66:31\"\n"
      << "[device.ep]\nbackend = \"seqpacket\"\npath = \"" << (dir / "ep0.sock").string() << "\"\n"
      << "[device.host]\nbackend = \"seqpacket\"\npath = \"" << (dir / "host0.sock").string() << "\"\n"
      << "[[device]]\ntype = \"block\"\nqueue_size = 64\n[device.block]\npath = \"" << (dir / "disk.img").string()
      << "\"\nsize = " << kDisk << "\nnbd_socket = \"" << (dir / "blk.sock").string() << "\"\n";
  }
  void TearDown() override {
    for (pid_t* p : {&ep, &host}) {
      if (*p > 0) stop(*p);
    }
    if (!HasFailure()) fs::remove_all(dir);
  }

  pid_t start_ep() { return spawn({VEPF_EP_BIN, "--board", (dir / "board.toml").string()}, dir / "ep.log"); }
  pid_t start_host() { return spawn({VEPF_HOST_BIN, "--board", (dir / "board.toml").string()}, dir / "host.log"); }

  /// Seconds until a frame arrived each way through both backends, or -1. A backend the restart
  /// replaces (the survivor re-creates its devices too) closes our connection: connect again.
  double net_back(Clock::time_point t0) {
    int fd[2] = {-1, -1};
    const fs::path path[2] = {dir / "ep0.sock", dir / "host0.sock"};
    bool got[2] = {false, false};  // got[0]: a frame reached the EP's client
    char buf[2048];
    // The directions of the traffic phase (frames sent by the EP's client are direction 0): a
    // frame still on its way when that phase starts is an old frame there, not a corrupt one.
    const std::vector<std::uint8_t> f[2] = {make_frame(1, 0), make_frame(1, 1)};
    while (!(got[0] && got[1]) && Clock::now() - t0 < 20s) {
      for (int i = 0; i < 2; ++i) {
        if (fd[i] < 0) fd[i] = connect_retry(path[i].string(), 0s);
        if (fd[i] >= 0 && ::send(fd[i], f[i].data(), f[i].size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
          ::close(fd[i]);
          fd[i] = -1;
        }
      }
      pollfd p[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
      ::poll(p, 2, 20);
      for (int i = 0; i < 2; ++i) {
        if (fd[i] < 0) continue;
        ssize_t n;
        while ((n = ::recv(fd[i], buf, sizeof buf, MSG_DONTWAIT)) > 0) got[i] = true;
        if (n == 0 || (n < 0 && errno != EAGAIN)) {  // the backend went away
          ::close(fd[i]);
          fd[i] = -1;
        }
      }
    }
    for (int s : fd) {
      if (s >= 0) ::close(s);
    }
    return got[0] && got[1] ? std::chrono::duration<double>(Clock::now() - t0).count() : -1;
  }

  /// Seconds until an NBD write and read of a scratch block (the last one) succeeded, or -1.
  double blk_back(Clock::time_point t0) {
    const auto v = content(kBlocks - 1, 0);
    std::vector<std::uint8_t> got(kBlock);
    while (Clock::now() - t0 < 20s) {
      Nbd c;
      if (c.connect((dir / "blk.sock").string()) && nbd_pwrite(c.h, v.data(), kBlock, (kBlocks - 1) * kBlock, 0) == 0 &&
          nbd_pread(c.h, got.data(), kBlock, (kBlocks - 1) * kBlock, 0) == 0 && got == v) {
        return std::chrono::duration<double>(Clock::now() - t0).count();
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  /// Every block of the model read back: acknowledged ones exact, the one in flight old or new.
  void check_model(Model& model) {
    Nbd c;
    ASSERT_TRUE(c.connect((dir / "blk.sock").string()));
    std::lock_guard<std::mutex> l(model.m);
    std::vector<std::uint8_t> got(kBlock);
    if (model.in_flight) {
      const auto [b, n] = *model.in_flight;
      ASSERT_EQ(nbd_pread(c.h, got.data(), kBlock, b * kBlock, 0), 0) << nbd_get_error();
      const auto it = model.acked.find(b);
      const bool is_new = got == content(b, n);
      const bool is_old = it != model.acked.end() ? got == content(b, it->second)
                                                  : std::all_of(got.begin(), got.end(), [](std::uint8_t x) { return x == 0; });
      EXPECT_TRUE(is_new || is_old) << "block " << b << ": neither the write in flight nor the one before";
      if (is_new) model.acked[b] = n;
      model.in_flight.reset();
    }
    for (const auto& [b, n] : model.acked) {
      ASSERT_EQ(nbd_pread(c.h, got.data(), kBlock, b * kBlock, 0), 0) << nbd_get_error();
      if (got != content(b, n)) {
        ++lost;
        ADD_FAILURE() << "block " << b << " lost its acknowledged write " << n;
      }
    }
  }

  fs::path dir;
  pid_t ep = -1, host = -1;
  int lost = 0;
};

TEST_F(LoopbackKill, TrafficComesBackAndNoAcknowledgedWriteIsLost) {
  const int kills = std::getenv("VEPF_KILLS") ? std::atoi(std::getenv("VEPF_KILLS")) : 20;
  ep = start_ep();
  host = start_host();
  ASSERT_GE(net_back(Clock::now()), 0) << slurp(dir / "host.log");
  ASSERT_GE(blk_back(Clock::now()), 0) << slurp(dir / "host.log");

  Model model;
  std::uint64_t next = 0, acks = 0;
  std::mt19937 rng(7);
  std::vector<double> net_s[2], blk_s[2];
  for (int i = 0; i < 2 * kills; ++i) {
    const bool kill_ep = i % 2 == 0;
    // Traffic: block writes in a thread, frames both ways here, for 150..400 ms.
    std::atomic<bool> stop_w{false};
    std::thread w(writer, (dir / "blk.sock").string(), std::ref(model), std::ref(stop_w), std::ref(next),
                  std::ref(acks), rng());
    {
      const int e = connect_retry((dir / "ep0.sock").string(), 5s), h = connect_retry((dir / "host0.sock").string(), 5s);
      ASSERT_TRUE(e >= 0 && h >= 0);
      Stream a{e, h, 0, 0, 0, 0, 0, {}}, b{h, e, 1, 0, 0, 0, 0, {}};
      const auto until = Clock::now() + std::chrono::milliseconds(150 + rng() % 250);
      while (Clock::now() < until) {
        pump_send(a, a.next_send + 8);
        pump_send(b, b.next_send + 8);
        std::this_thread::sleep_for(1ms);
        pump_recv(a);
        pump_recv(b);
      }
      EXPECT_EQ(a.corrupt + b.corrupt, 0u) << "corrupt frames";
      // SIGKILL with the frames and the writes still going.
      pid_t& victim = kill_ep ? ep : host;
      ::kill(victim, SIGKILL);
      ::waitpid(victim, nullptr, 0);
      ::close(e);
      ::close(h);
    }
    stop_w = true;
    w.join();
    pid_t& victim = kill_ep ? ep : host;
    const auto t0 = Clock::now();
    victim = kill_ep ? start_ep() : start_host();
    const double tn = net_back(t0);
    const double tb = blk_back(t0);
    ASSERT_GE(tn, 0) << "frames did not come back after killing " << (kill_ep ? "vepf-ep" : "vepf-host") << "\n"
                     << slurp(dir / "host.log");
    ASSERT_GE(tb, 0) << "block I/O did not come back after killing " << (kill_ep ? "vepf-ep" : "vepf-host") << "\n"
                     << slurp(dir / "host.log");
    net_s[kill_ep].push_back(tn);
    blk_s[kill_ep].push_back(tb);
    ASSERT_NO_FATAL_FAILURE(check_model(model));
  }
  EXPECT_EQ(lost, 0);
  EXPECT_GT(acks, 0u) << "no write was acknowledged: the test tested nothing";
  // Figures for the closing note (no assertion on time).
  for (int side = 1; side >= 0; --side) {
    auto& n = net_s[side];
    auto& b = blk_s[side];
    std::sort(n.begin(), n.end());
    std::sort(b.begin(), b.end());
    std::printf("kill -9 %s x%zu: frames back after median %.3f s (max %.3f s), block I/O after median %.3f s (max %.3f s)\n",
                side ? "vepf-ep" : "vepf-host", n.size(), n[n.size() / 2], n.back(), b[b.size() / 2], b.back());
  }
  std::printf("block writes acknowledged: %llu over %zu blocks, lost: %d\n", static_cast<unsigned long long>(acks),
              model.acked.size(), lost);
}

}  // namespace
