// Integration: devices added and removed while the link is up, through `vepf-ep ctl`, with
// traffic running on another device the whole time.
//  - `ctl add` puts a second virtio-net device in the table; vepf-host notices it and brings
//    it up (the time it takes is printed); frames cross it both ways;
//  - `ctl remove` takes it away; vepf-host tears it down (its socket disappears);
//  - `remove` of slot 2^32, sent raw on the control socket, is refused (it used to be read as
//    slot 0 and removed device 0);
//  - a local user other than root and vepf-ep's own is refused on its credentials;
//  - device 0 carries numbered, checksummed frames throughout: none lost, none corrupted.

#include <gtest/gtest.h>

#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "frame_pump.hpp"

namespace {

using namespace vepf::it;

/// One raw request on vepf-ep's control socket (SOCK_SEQPACKET, one JSON message each way), as
/// any local program may send it; returns the reply, or "" when the socket could not be used.
std::string control(const fs::path& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  std::string reply(65536, '\0');
  ssize_t n = -1;
  const timeval limit{5, 0};  // a test must not hang on a server that never answers
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    // A refused client gets its reply at once and the connection closed: the send may fail
    // (EPIPE), the reply is still there to read.
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    n = ::recv(fd, reply.data(), reply.size(), 0);
  }
  ::close(fd);
  reply.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return reply;
}

/// What a child process running as `uid`/`gid` (the test runs as root) reads from the control
/// socket right after connecting, without asking: what an unprivileged local user gets when the
/// socket file lets it connect.
std::string first_reply_as(const fs::path& path, uid_t uid, gid_t gid) {
  int p[2];
  if (::pipe(p) != 0) return "";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(p[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) std::_Exit(3);
    // Only async-signal-safe calls here: the parent has threads (no malloc after fork).
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const timeval limit{5, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    static char buf[4096];
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) (void)!::write(p[1], buf, static_cast<std::size_t>(n));
    }
    std::_Exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int st = 0;
  ::waitpid(child, &st, 0);
  return out;
}

bool connectable(const fs::path& path) {
  const int fd = connect_retry(path.string(), std::chrono::seconds(0));
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

TEST(LoopbackHotplug, AddAndRemoveWhileAnotherDeviceCarriesTraffic) {
  const fs::path dir = fs::temp_directory_path() / ("vepf-hp-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // The EP starts with one device; the host's board describes two (slot 1's host backend).
  write_board(dir / "ep.toml", dir, 1);
  write_board(dir / "host.toml", dir, 2);
  const pid_t ep = spawn({VEPF_EP_BIN, "--board", (dir / "ep.toml").string()}, dir / "ep.log");
  const pid_t host =
      spawn({VEPF_HOST_BIN, "--board", (dir / "host.toml").string(), "--once"}, dir / "host.log");
  const int ep0 = connect_retry((dir / "ep0.sock").string(), std::chrono::seconds(10));
  const int host0 = connect_retry((dir / "host0.sock").string(), std::chrono::seconds(10));
  ASSERT_GE(ep0, 0);
  ASSERT_GE(host0, 0);
  EXPECT_FALSE(connectable(dir / "host1.sock")) << "slot 1 exists before it was added";

  // Device 0: traffic both ways for the whole test.
  const std::uint64_t n = 60000;
  Stream a{ep0, host0, 0, 0, 0, 0, 0, {}}, b{host0, ep0, 1, 0, 0, 0, 0, {}};
  std::thread traffic([&] { pump_both(a, b, n); });

  const std::string ep_bin = VEPF_EP_BIN, board = (dir / "ep.toml").string();
  const auto t0 = Clock::now();
  const Ran add =
      run({ep_bin, "ctl", "--board", board, "add", "type = \"net\"",
           "net = { mac = \"02:76:65:70:66:11\" }",
           "ep = { backend = \"seqpacket\", path = \"" + (dir / "ep1.sock").string() + "\" }"});
  EXPECT_EQ(add.rc, 0) << add.out;
  EXPECT_NE(add.out.find("\"slot\": 1"), std::string::npos) << add.out;
  const int host1 = connect_retry((dir / "host1.sock").string(), std::chrono::seconds(5));
  const double appear_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_GE(host1, 0) << "the host did not bring up the added device\n" << slurp(dir / "host.log");
  // A figure, not an assertion (no test asserts wall-clock time): the closing note reports it.
  std::printf("hot-added device appeared on the host after %.1f ms\n", appear_ms);
  const int ep1 = connect_retry((dir / "ep1.sock").string(), std::chrono::seconds(5));
  ASSERT_GE(ep1, 0);
  Stream c{ep1, host1, 0, 0, 0, 0, 0, {}}, d{host1, ep1, 1, 0, 0, 0, 0, {}};
  pump_both(c, d, 5000);
  EXPECT_EQ(c.next_expect, 5000u);
  EXPECT_EQ(d.next_expect, 5000u);
  EXPECT_EQ(c.corrupt + d.corrupt + c.out_of_order + d.out_of_order, 0u);

  const Ran list = run({ep_bin, "ctl", "--board", board, "list"});
  EXPECT_EQ(list.rc, 0);
  EXPECT_NE(list.out.find("\"slot\": 1"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("\"driver_ok\": true"), std::string::npos) << list.out;

  const Ran rm = run({ep_bin, "ctl", "--board", board, "remove", "1"});
  EXPECT_EQ(rm.rc, 0) << rm.out;
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !fs::exists(dir / "host1.sock");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the host kept the removed device\n" << slurp(dir / "host.log");
  const Ran again = run({ep_bin, "ctl", "--board", board, "remove", "1"});
  EXPECT_EQ(again.rc, 2) << "removing an empty slot is the caller's error";
  const Ran bad = run({ep_bin, "ctl", "--board", board, "add", "type = \"net\"",
                       "net = { mac = \"01:00:00:00:00:01\" }"});
  EXPECT_EQ(bad.rc, 2);
  // Files and programs only under [control] allowed_dirs (here: the test's directory). Outside
  // it, through a symbolic link out of it, or a program: refused, nothing created.
  char out_tmpl[] = "/tmp/vepf-hotplug-out-XXXXXX";
  ASSERT_NE(::mkdtemp(out_tmpl), nullptr);
  const std::string elsewhere = out_tmpl;
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dir / "escape").c_str()), 0);
  for (const std::string& img : {elsewhere + "/a.img", (dir / "escape" / "b.img").string()}) {
    const Ran out = run({ep_bin, "ctl", "--board", board, "add", "type = \"block\"",
                         "block = { path = \"" + img + "\", size = 1048576 }"});
    EXPECT_EQ(out.rc, 2) << out.out;
    const std::string why = control(
        dir / "link.sock.ctl", R"({"op": "add", "device": "type = \"block\"\nblock = { path = \")" +
                                   img + R"(\", size = 1048576 }"})");
    EXPECT_NE(why.find("is outside [control] allowed_dirs"), std::string::npos) << why;
    EXPECT_NE(why.find(img), std::string::npos) << why;
    EXPECT_FALSE(fs::exists(img)) << img;
  }
  const Ran prog =
      run({ep_bin, "ctl", "--board", board, "add", "type = \"console\"",
           "console = { port = [ { backend = \"program\", program = [\"/bin/sh\"] } ] }"});
  EXPECT_EQ(prog.rc, 2) << prog.out;
  const std::string why =
      control(dir / "link.sock.ctl",
              R"({"op": "add", "device": "type = \"console\"\nconsole = )"
              R"({ port = [ { backend = \"program\", program = [\"/bin/sh\"] } ] }"})");
  EXPECT_NE(why.find(R"(program[0] = \"/bin/sh\" is outside)"), std::string::npos) << why;
  fs::remove_all(elsewhere);
  // Past the slot range: refused, and device 0 (checked below) keeps its traffic.
  const std::string wide =
      control(dir / "link.sock.ctl", R"({"op": "remove", "slot": 4294967296})");
  EXPECT_NE(wide.find("\"ok\":false"), std::string::npos) << wide;
  EXPECT_NE(wide.find("no device in slot 4294967296"), std::string::npos) << wide;
  // Another local user, with the socket file opened to everyone: refused on its credentials
  // (SO_PEERCRED), not just on the file's mode; root still gets in.
  ASSERT_EQ(::chmod((dir / "link.sock.ctl").c_str(), 0666), 0);
  const std::string nobody = first_reply_as(dir / "link.sock.ctl", 65534, 65534);
  EXPECT_NE(nobody.find("permission denied for uid 65534"), std::string::npos)
      << "reply: '" << nobody << "'";
  EXPECT_NE(control(dir / "link.sock.ctl", R"({"op": "list"})").find("\"ok\":true"),
            std::string::npos);
  // vepf-ep out of descriptors: the control socket refuses the connection with a reason instead
  // of spinning on accept(), and serves again once descriptors are free.
  {
    std::size_t open_fds = 0;
    for ([[maybe_unused]] const auto& e :
         fs::directory_iterator("/proc/" + std::to_string(ep) + "/fd"))
      ++open_fds;
    rlimit old{};
    ASSERT_EQ(::prlimit(ep, RLIMIT_NOFILE, nullptr, &old), 0);
    const rlimit low{open_fds + 1, old.rlim_max};  // the soft limit only: raised again below
    ASSERT_EQ(::prlimit(ep, RLIMIT_NOFILE, &low, nullptr), 0);
    std::vector<int> held;
    for (int i = 0; i < 4; ++i)
      held.push_back(connect_retry((dir / "link.sock.ctl").string(), std::chrono::seconds(0)));
    bool paused = false;
    for (int i = 0; i < 100 && !paused; ++i) {
      paused = slurp(dir / "ep.log").find("control socket: out of file descriptors") !=
               std::string::npos;
      if (!paused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(paused) << slurp(dir / "ep.log");
    EXPECT_EQ(::prlimit(ep, RLIMIT_NOFILE, &old, nullptr), 0) << std::strerror(errno);
    for (int fd : held) {
      if (fd >= 0) ::close(fd);
    }
    std::string after;
    for (int i = 0; i < 50 && after.find("\"ok\":true") == std::string::npos; ++i) {
      after = control(dir / "link.sock.ctl", R"({"op": "list"})");
      if (after.find("\"ok\":true") == std::string::npos)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(after.find("\"ok\":true"), std::string::npos)
        << "the control socket did not come back: " << after;
  }

  traffic.join();
  ::close(ep1);
  ::close(host1);
  ::close(ep0);
  ::close(host0);
  const std::string logs =
      "--- ep.log\n" + slurp(dir / "ep.log") + "--- host.log\n" + slurp(dir / "host.log");
  EXPECT_EQ(a.next_expect, n) << logs;
  EXPECT_EQ(b.next_expect, n) << logs;
  EXPECT_EQ(a.corrupt + b.corrupt + a.out_of_order + b.out_of_order, 0u)
      << "device 0 was disturbed";
  EXPECT_EQ(stop(host), 0) << logs;
  EXPECT_EQ(stop(ep), 0) << logs;
  fs::remove_all(dir);
}

}  // namespace
