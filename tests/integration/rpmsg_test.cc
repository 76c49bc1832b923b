// Integration: virtio-rpmsg between vepf-ep and vepf-host on the loopback platform. Name-service
// CREATE and DESTROY are observed on both sides, through the sockets each side opens and removes:
//  - EchoThroughNameServiceChannel: an echo service registers channel "echo" with vepf-ep; the
//    CREATE reaches vepf-host, which opens <runtime_dir>/host/echo.sock; `vepf-rpmsg bench` sends
//    100,000 messages of random sizes 1..496 through it one at a time and checks every echo byte
//    for byte (fewer messages when the link is slow: see below); round trip p50/p99 and
//    messages/s at 64 and 496 bytes are printed; stopping the echo service sends DESTROY: the
//    host socket disappears.
//  - EchoAnnouncedByTheHost: the mirror image. The echo service registers channel "hecho" with
//    vepf-host (<runtime_dir>/host/announce.sock); vepf-ep opens <runtime_dir>/ep/hecho.sock;
//    3,000 random-size messages go through it byte for byte; stopping the service removes the
//    EP socket.

#include <gtest/gtest.h>

#include <functional>
#include <sstream>

#include "frame_pump.hpp"

namespace {

using namespace vepf::it;

/// The number after `key` in a bench report line, or -1.
double field(const std::string& out, const std::string& key) {
  std::istringstream in(out);
  for (std::string w; in >> w;) {
    if (w == key && in >> w) return std::stod(w);
  }
  return -1;
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

/// vepf-ep and vepf-host joined by the loopback platform, one rpmsg device, runtime dir rt_.
class LoopbackRpmsg : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vepf-rp-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    rt_ = dir_ / "rt";
    {
      std::ofstream f(dir_ / "board.toml");
      f << "[board]\nname = \"it\"\nplatform = \"loopback\"\n"
        << "[loopback]\nsocket = \"" << (dir_ / "link.sock").string() << "\"\n"
        << "[[device]]\ntype = \"rpmsg\"\nqueue_size = 256\n"
        << "[device.rpmsg]\nruntime_dir = \"" << rt_.string() << "\"\n";
    }
    const std::string board = (dir_ / "board.toml").string();
    ep_ = spawn({VEPF_EP_BIN, "--board", board}, dir_ / "ep.log");
    ASSERT_TRUE(wait_for([&] { return fs::exists(rt_ / "ep" / "announce.sock"); },
                         std::chrono::seconds(10)))
        << logs();
    host_ = spawn({VEPF_HOST_BIN, "--board", board, "--once"}, dir_ / "host.log");
  }
  void TearDown() override {
    for (pid_t* p : {&echo_, &host_, &ep_}) {
      if (*p > 0) stop(*p);
    }
    fs::remove_all(dir_);
  }

  /// Starts `vepf-rpmsg echo` on `announce` with channel `name`.
  void start_echo(const fs::path& announce, const std::string& name) {
    echo_ = spawn({VEPF_RPMSG_BIN, "echo", "--announce", announce.string(), "--name", name},
                  dir_ / "echo.log");
  }
  /// Stops a program started here; its exit status.
  static int stop_once(pid_t& p) {
    const int rc = stop(p);
    p = -1;
    return rc;
  }
  static Ran bench(const fs::path& sock, std::uint64_t count, const std::string& size) {
    return run({VEPF_RPMSG_BIN, "bench", "--socket", sock.string(), "--count",
                std::to_string(count), "--size", size});
  }
  /// Asserts a bench report: exit 0, `n` messages, no mismatch, no loss.
  static void expect_clean(const Ran& r, std::uint64_t n, const std::string& logs) {
    EXPECT_EQ(r.rc, 0) << r.out << logs;
    EXPECT_EQ(field(r.out, "messages"), static_cast<double>(n)) << r.out;
    EXPECT_EQ(field(r.out, "mismatches"), 0) << r.out;
    EXPECT_EQ(field(r.out, "lost"), 0) << r.out;
  }
  /// A message larger than a buffer is refused (the client is closed), not a crash.
  static void expect_oversize_refused(const fs::path& sock, const char* side) {
    const int c = connect_retry(sock.string(), std::chrono::seconds(1));
    ASSERT_GE(c, 0);
    std::vector<char> big(497, 'x');
    ASSERT_EQ(::send(c, big.data(), big.size(), MSG_NOSIGNAL), 497);
    char b;
    pollfd p{c, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_EQ(::recv(c, &b, 1, 0), 0) << side << " should close a client that sends > 496 bytes";
    ::close(c);
  }
  /// Stops vepf-host, then vepf-ep, expecting clean exits.
  void stop_all() {
    EXPECT_EQ(stop_once(host_), 0) << logs();
    EXPECT_EQ(stop_once(ep_), 0) << logs();
  }
  std::string logs() const {
    return "--- ep.log\n" + slurp(dir_ / "ep.log") + "--- host.log\n" + slurp(dir_ / "host.log") +
           "--- echo.log\n" + slurp(dir_ / "echo.log");
  }

  fs::path dir_, rt_;
  pid_t ep_ = -1, host_ = -1, echo_ = -1;
};

TEST_F(LoopbackRpmsg, EchoThroughNameServiceChannel) {
  start_echo(rt_ / "ep" / "announce.sock", "echo");
  const fs::path sock = rt_ / "host" / "echo.sock";
  ASSERT_TRUE(wait_for([&] { return fs::exists(sock); }, std::chrono::seconds(10)))
      << "name-service CREATE not seen on the host\n"
      << logs();

  // Random sizes: a short probe sizes the long run so that it stays under about 60 s.
  const Ran probe = bench(sock, 2000, "random");
  ASSERT_EQ(probe.rc, 0) << probe.out << logs();
  const double probe_rate = field(probe.out, "msgs_per_s");
  std::uint64_t n = 100000;
  if (probe_rate > 0 && probe_rate * 55 < static_cast<double>(n))
    n = static_cast<std::uint64_t>(probe_rate * 55);
  const Ran random = bench(sock, n, "random");
  std::printf("random 1..496 B: %s", random.out.c_str());
  expect_clean(random, n, logs());

  for (const char* size : {"64", "496"}) {
    const Ran r = bench(sock, 10000, size);
    std::printf("%s B: %s", size, r.out.c_str());
    expect_clean(r, 10000, logs());
  }
  expect_oversize_refused(sock, "the host");

  // Stopping the echo service closes its channel: DESTROY reaches the host.
  EXPECT_EQ(stop_once(echo_), 0);
  EXPECT_TRUE(wait_for([&] { return !fs::exists(sock); }, std::chrono::seconds(5)))
      << "name-service DESTROY not seen on the host\n"
      << logs();
  stop_all();
}

TEST_F(LoopbackRpmsg, EchoAnnouncedByTheHost) {
  const fs::path announce = rt_ / "host" / "announce.sock";
  ASSERT_TRUE(wait_for([&] { return fs::exists(announce); }, std::chrono::seconds(10)))
      << "vepf-host has no announce socket\n"
      << logs();
  start_echo(announce, "hecho");
  const fs::path sock = rt_ / "ep" / "hecho.sock";
  ASSERT_TRUE(wait_for([&] { return fs::exists(sock); }, std::chrono::seconds(10)))
      << "name-service CREATE from the host not seen on the EP\n"
      << logs();

  const std::uint64_t n = 3000;
  const Ran r = bench(sock, n, "random");
  std::printf("host-announced, random 1..496 B: %s", r.out.c_str());
  expect_clean(r, n, logs());
  expect_oversize_refused(sock, "the EP");

  EXPECT_EQ(stop_once(echo_), 0);
  EXPECT_TRUE(wait_for([&] { return !fs::exists(sock); }, std::chrono::seconds(5)))
      << "name-service DESTROY from the host not seen on the EP\n"
      << logs();
  EXPECT_TRUE(fs::exists(announce)) << "the announce socket outlives its channels";
  stop_all();
  EXPECT_FALSE(fs::exists(announce)) << "vepf-host removes its announce socket when it exits";
}

}  // namespace
