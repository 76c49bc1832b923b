// Integration: vepf-ep and vepf-host as two processes over the loopback platform, each with a
// SOCK_SEQPACKET frame backend. Pushes frames with sequence numbers and checksums through the
// virtio-net link in both directions at once and checks that none is lost, reordered or
// corrupted. Frame count per direction: VEPF_FRAMES (default 500000, so 1,000,000 in all). Runs
// with bare frames, with the virtio_net_hdr and checksum offloads, with the header and the
// offloads masked off, and over windows treated as device memory (the copies a BAR or /dev/mem
// range gets).
// Both programs run with the strict link model (VEPF_STRICT_LINK=1 from ctest).

#include <gtest/gtest.h>

#include "frame_pump.hpp"

namespace {

using namespace vepf::it;

std::uint64_t frames(std::uint64_t fallback) {
  return std::getenv("VEPF_FRAMES") ? std::strtoull(std::getenv("VEPF_FRAMES"), nullptr, 10)
                                    : fallback;
}

/// n frames each way through one net device; `loopback_keys` are added to [loopback],
/// `net_keys` to [device.net], `backend_keys` to both sides' backend tables; `hdr`: what the
/// messages carry in front of each frame.
void pump_frames(std::uint64_t n, const std::string& loopback_keys,
                 const std::string& net_keys = "", const std::string& backend_keys = "",
                 Hdr hdr = Hdr::kNone) {
  const fs::path dir = fs::temp_directory_path() / ("vepf-it-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path board = dir / "board.toml";
  write_board(board, dir, 1, loopback_keys, net_keys, backend_keys);
  // Host first: the loopback platform lets either side start first.
  const pid_t host = spawn({VEPF_HOST_BIN, "--board", board.string(), "--once"}, dir / "host.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", board.string()}, dir / "ep.log");
  const int ep_fd = connect_retry((dir / "ep0.sock").string(), std::chrono::seconds(10));
  const int host_fd = connect_retry((dir / "host0.sock").string(), std::chrono::seconds(10));
  ASSERT_GE(ep_fd, 0) << slurp(dir / "ep.log");
  ASSERT_GE(host_fd, 0) << slurp(dir / "host.log");

  Stream to_host{ep_fd, host_fd, 0, 0, 0, 0, 0, {}};  // EP backend -> receiveq -> host backend
  Stream to_ep{host_fd, ep_fd, 1, 0, 0, 0, 0, {}};    // host backend -> transmitq -> EP backend
  to_host.hdr = to_ep.hdr = hdr;
  const double secs = pump_both(to_host, to_ep, n);
  std::printf(
      "frames: EP->host %llu/%llu, host->EP %llu/%llu in %.2f s (%.0f frames/s)\n",
      static_cast<unsigned long long>(to_host.next_expect), static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(to_ep.next_expect), static_cast<unsigned long long>(n), secs,
      (to_host.next_expect + to_ep.next_expect) / secs);
  ::close(ep_fd);
  ::close(host_fd);
  const int host_rc = stop(host);
  const int ep_rc = stop(ep);
  const std::string logs =
      "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
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

TEST(LoopbackIntegration, MillionFramesBothWaysArriveIntactAndInOrder) {
  pump_frames(frames(500000), "");
}

// The backends carry the virtio_net_hdr (seqpacket vnet_hdr = true, as a TAP): with the
// offloads negotiated every third frame asks for a partial checksum, which must cross the link
// in each direction with its header intact (a header the other side refused would be dropped,
// and the count would fall short).
TEST(LoopbackIntegration, MillionFramesWithChecksumOffloadsArriveIntact) {
  pump_frames(frames(500000), "", "offloads = true\n", "vnet_hdr = true\n", Hdr::kCsum);
}

// The same with the offloads masked off in the board config: plain headers only.
TEST(LoopbackIntegration, MillionFramesWithOffloadsMaskedOffArriveIntact) {
  pump_frames(frames(500000), "", "offloads = false\n", "vnet_hdr = true\n", Hdr::kPlain);
}

// Device memory: aligned copies of every width (hw::copy_to_io), no memcpy; still posted writes
// only.
TEST(LoopbackIntegration, FramesOverDeviceMemoryWindowsArriveIntact) {
  pump_frames(frames(100000), "memory = \"device\"\n");
}

}  // namespace
