// Integration (issue 14, "each side owns its state"): both programs as processes on the
// loopback platform, and a hostile or silent peer played by this test through the platform
// library.
//  - a host that overwrote the EP's control region (header, device line, config) and stays
//    connected without attaching keeps no other host out: the next vepf-host attaches without
//    an EP restart and frames cross both ways;
//  - vepf-host stops on SIGTERM while it waits for an EP that never acknowledges (an ack
//    timeout of 60 s), and while it retries an EP whose header it cannot use.

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "frame_pump.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/platform/loopback.hpp"
#include "vepf/transport/device_transport.hpp"

namespace {

using namespace vepf::it;
namespace layout = vepf::layout;
namespace platform = vepf::platform;

constexpr std::size_t kWindow = std::size_t{4} << 20;  // the board default of both windows

fs::path make_dir(const char* name) {
  const fs::path dir =
      fs::temp_directory_path() / (std::string(name) + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// Waits up to `limit` for `pid` to exit; its exit code, or -1 (then it is killed).
int wait_exit(pid_t pid, std::chrono::milliseconds limit, double* took_ms) {
  const auto t0 = Clock::now();
  int st = 0;
  while (Clock::now() - t0 < limit) {
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      *took_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return -1;
}

bool log_has(const fs::path& log, const std::string& what, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (slurp(log).find(what) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(LoopbackOwnership, AHostAttachesAfterAnotherOverwroteTheControlRegionAndHungOn) {
  const fs::path dir = make_dir("vepf-own");
  write_board(dir / "board.toml", dir, 1);
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", (dir / "board.toml").string()}, dir / "ep.log");
  const int ep0 = connect_retry((dir / "ep0.sock").string(), std::chrono::seconds(10));
  ASSERT_GE(ep0, 0) << slurp(dir / "ep.log");

  // The hostile host: connects, writes random values over every word the EP writes in its
  // control region (the header, device 0's line and config space), and stays connected
  // without ever attaching.
  auto hostile = platform::LoopbackHost::connect((dir / "link.sock").string(), kWindow,
                                                 std::chrono::seconds(5));
  ASSERT_TRUE(hostile) << hostile.error().what;
  vepf::ring::Window& epw = (*hostile)->ep_window();
  std::mt19937 rng(14);
  auto scribble = [&](std::size_t off, std::size_t len) {
    for (std::size_t i = 0; i < len; i += 4)
      epw.store<std::uint32_t>(off + i, static_cast<std::uint32_t>(rng()));
  };
  scribble(layout::header_off(0), sizeof(layout::EpfHeader));
  scribble(layout::device_line_off(0, 0), sizeof(layout::DeviceLine));
  scribble(layout::device_slot_off(0) + offsetof(layout::DeviceSlot, config),
           layout::kConfigSpaceSize);

  // A real host now. The EP takes it once the hostile one has sat unattached long enough, and
  // it reads what the EP owns, not what the hostile host wrote.
  const pid_t host =
      spawn({VEPF_HOST_BIN, "--board", (dir / "board.toml").string()}, dir / "host.log");
  const int host0 = connect_retry((dir / "host0.sock").string(), std::chrono::seconds(15));
  const std::string logs0 =
      "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
  ASSERT_GE(host0, 0) << "no host could attach after the overwrite\n" << logs0;
  const std::uint64_t n = 3000;
  Stream a{ep0, host0, 0, 0, 0, 0, 0, {}}, b{host0, ep0, 1, 0, 0, 0, 0, {}};
  pump_both(a, b, n);
  hostile->reset();
  ::close(host0);
  ::close(ep0);
  const std::string logs =
      "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
  EXPECT_EQ(a.next_expect, n) << logs;
  EXPECT_EQ(b.next_expect, n) << logs;
  EXPECT_EQ(a.corrupt + b.corrupt + a.out_of_order + b.out_of_order, 0u) << logs;
  EXPECT_NE(logs.find("dropping it for the host now connecting"), std::string::npos) << logs;
  EXPECT_EQ(stop(host), 0) << logs;
  EXPECT_EQ(stop(ep), 0) << logs;
  fs::remove_all(dir);
}

/// An EP that publishes a valid control region and then never answers a request: the test's
/// own LoopbackEp and DeviceTransport, with no poll().
class SilentEp {
 public:
  explicit SilentEp(const fs::path& socket) {
    auto l = platform::LoopbackEp::create(socket.string(), kWindow);
    if (!l) return;
    link_ = std::move(*l);
    transport_ = std::make_unique<vepf::transport::DeviceTransport>(*link_, 0x51e47001);
    if (!transport_->init()) return;
    // Takes hosts as they come (one at a time), answering nothing else.
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{link_->listen_fd(), POLLIN, 0};
        if (::poll(&p, 1, 20) == 1) {
          if (link_->connected()) link_->drop_peer();
          if (link_->accept_peer()) ++accepted;
        }
      }
    });
  }
  ~SilentEp() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool ok() const { return thread_.joinable(); }
  vepf::ring::Window& window() { return link_->ep_window(); }

  std::atomic<int> accepted{0};

 private:
  std::unique_ptr<platform::LoopbackEp> link_;
  std::unique_ptr<vepf::transport::DeviceTransport> transport_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(LoopbackOwnership, TheHostStopsOnSigtermWhileTheEpNeverAcknowledges) {
  const fs::path dir = make_dir("vepf-own-ack");
  write_board(dir / "board.toml", dir, 1);
  std::ofstream(dir / "board.toml", std::ios::app) << "[link]\nack_timeout_ms = 60000\n";
  SilentEp silent(dir / "link.sock");
  ASSERT_TRUE(silent.ok());
  const pid_t host =
      spawn({VEPF_HOST_BIN, "--board", (dir / "board.toml").string()}, dir / "host.log");
  for (int i = 0; i < 500 && silent.accepted == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GT(silent.accepted, 0) << slurp(dir / "host.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // well inside the attach's ack wait
  ::kill(host, SIGTERM);
  double took = 0;
  // Not a timing assertion: the old host sat out the whole 60 s ack timeout; 10 s is far from
  // both that and the one second the program is meant to take.
  const int rc = wait_exit(host, std::chrono::seconds(10), &took);
  EXPECT_EQ(rc, 0) << slurp(dir / "host.log");
  std::printf("vepf-host stopped %.0f ms after SIGTERM while waiting for an ack\n", took);
  fs::remove_all(dir);
}

TEST(LoopbackOwnership, TheHostStopsOnSigtermWhileRetryingAnEpWithABadHeader) {
  const fs::path dir = make_dir("vepf-own-hdr");
  write_board(dir / "board.toml", dir, 1);
  SilentEp silent(dir / "link.sock");
  ASSERT_TRUE(silent.ok());
  // A header of another layout version: the host cannot attach and tries again, and again.
  silent.window().store<std::uint16_t>(layout::header_off(offsetof(layout::EpfHeader, version)), 9);
  const pid_t host =
      spawn({VEPF_HOST_BIN, "--board", (dir / "board.toml").string()}, dir / "host.log");
  ASSERT_TRUE(log_has(dir / "host.log", "bringing up the link failed", std::chrono::seconds(10)))
      << slurp(dir / "host.log");
  for (int i = 0; i < 300 && silent.accepted < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(silent.accepted, 3) << "the host did not let go of the EP between attempts\n"
                                << slurp(dir / "host.log");
  ::kill(host, SIGTERM);
  double took = 0;
  const int rc = wait_exit(host, std::chrono::seconds(10), &took);
  const std::string log = slurp(dir / "host.log");
  EXPECT_EQ(rc, 0) << log;
  std::printf("vepf-host stopped %.0f ms after SIGTERM while retrying a bad header\n", took);
  // Attempts come with a growing pause, and the failure is not logged for every one.
  std::size_t lines = 0;
  for (std::size_t p = log.find("bringing up the link failed"); p != std::string::npos;
       p = log.find("bringing up the link failed", p + 1)) {
    ++lines;
  }
  EXPECT_LE(lines, 5u) << log;
  fs::remove_all(dir);
}

}  // namespace
