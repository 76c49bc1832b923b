// Integration: virtio-rpmsg between vepf-ep and vepf-host on the loopback platform.
//  - an echo service registers channel "echo" with vepf-ep; the name-service CREATE reaches
//    vepf-host, which opens <runtime_dir>/host/echo.sock;
//  - `vepf-rpmsg bench` sends 100,000 messages of random sizes 1..496 through it one at a time
//    and checks every echo byte for byte (fewer messages when the link is slow: see below);
//  - round trip p50/p99 and messages/s at 64 and 496 bytes are printed;
//  - stopping the echo service sends DESTROY: the host socket disappears.

#include <gtest/gtest.h>

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

TEST(LoopbackRpmsg, EchoThroughNameServiceChannel) {
  const fs::path dir = fs::temp_directory_path() / ("vepf-rp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path rt = dir / "rt";
  {
    std::ofstream f(dir / "board.toml");
    f << "[board]\nname = \"it\"\nplatform = \"loopback\"\n"
      << "[loopback]\nsocket = \"" << (dir / "link.sock").string() << "\"\n"
      << "[[device]]\ntype = \"rpmsg\"\nqueue_size = 256\n"
      << "[device.rpmsg]\nruntime_dir = \"" << rt.string() << "\"\n";
  }
  const std::string board = (dir / "board.toml").string();
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", board}, dir / "ep.log");
  ASSERT_TRUE(wait_for([&] { return fs::exists(rt / "ep" / "announce.sock"); }, std::chrono::seconds(10)))
      << slurp(dir / "ep.log");
  const pid_t host = spawn({VEPF_HOST_BIN, "--board", board, "--once"}, dir / "host.log");
  const pid_t echo = spawn({VEPF_RPMSG_BIN, "echo", "--announce", (rt / "ep" / "announce.sock").string(), "--name", "echo"},
                           dir / "echo.log");
  const fs::path sock = rt / "host" / "echo.sock";
  const bool created = wait_for([&] { return fs::exists(sock); }, std::chrono::seconds(10));
  auto logs = [&] {
    return "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log") + "--- echo.log\n" +
           slurp(dir / "echo.log");
  };
  ASSERT_TRUE(created) << "name-service CREATE not seen on the host\n" << logs();

  // Random sizes: a short probe sizes the long run so that it stays under about 60 s.
  const std::string bench = VEPF_RPMSG_BIN;
  const Ran probe = run({bench, "bench", "--socket", sock.string(), "--count", "2000", "--size", "random"});
  ASSERT_EQ(probe.rc, 0) << probe.out << logs();
  const double probe_rate = field(probe.out, "msgs_per_s");
  std::uint64_t n = 100000;
  if (probe_rate > 0 && probe_rate * 55 < static_cast<double>(n)) n = static_cast<std::uint64_t>(probe_rate * 55);
  const Ran random = run({bench, "bench", "--socket", sock.string(), "--count", std::to_string(n), "--size", "random"});
  std::printf("random 1..496 B: %s", random.out.c_str());
  EXPECT_EQ(random.rc, 0) << random.out << logs();
  EXPECT_EQ(field(random.out, "messages"), static_cast<double>(n));
  EXPECT_EQ(field(random.out, "mismatches"), 0);
  EXPECT_EQ(field(random.out, "lost"), 0);

  for (const char* size : {"64", "496"}) {
    const Ran r = run({bench, "bench", "--socket", sock.string(), "--count", "10000", "--size", size});
    std::printf("%s B: %s", size, r.out.c_str());
    EXPECT_EQ(r.rc, 0) << r.out << logs();
    EXPECT_EQ(field(r.out, "messages"), 10000);
  }
  // A message larger than a buffer is refused (the client is closed), not a crash.
  {
    const int c = connect_retry(sock.string(), std::chrono::seconds(1));
    ASSERT_GE(c, 0);
    std::vector<char> big(497, 'x');
    ASSERT_EQ(::send(c, big.data(), big.size(), MSG_NOSIGNAL), 497);
    char b;
    pollfd p{c, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_EQ(::recv(c, &b, 1, 0), 0) << "the host should close a client that sends > 496 bytes";
    ::close(c);
  }

  // Stopping the echo service closes its channel: DESTROY reaches the host.
  EXPECT_EQ(stop(echo), 0);
  EXPECT_TRUE(wait_for([&] { return !fs::exists(sock); }, std::chrono::seconds(5)))
      << "name-service DESTROY not seen on the host\n" << logs();

  EXPECT_EQ(stop(host), 0) << logs();
  EXPECT_EQ(stop(ep), 0) << logs();
  fs::remove_all(dir);
}

}  // namespace
