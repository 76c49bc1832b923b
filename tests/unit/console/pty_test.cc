// os::open_pty(), window sizes, stable links and a program on a pty (both console sides use them).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "vepf/os/pty.hpp"

namespace vepf::os {
namespace {

namespace fs = std::filesystem;

std::string read_until(int fd, const std::string& want, int timeout_ms) {
  std::string out;
  for (int waited = 0; out.find(want) == std::string::npos && waited < timeout_ms; waited += 20) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

TEST(Pty, RawPairPassesBytesUnchangedBothWays) {
  auto p = open_pty(/*raw=*/true, /*hold_slave=*/true);
  ASSERT_TRUE(p) << p.error().what;
  ASSERT_TRUE(p->slave.valid());
  const std::string in = "a\rb\nc\x03\x04";  // no CR/NL translation, no signals, no EOF in raw mode
  ASSERT_EQ(::write(p->master.get(), in.data(), in.size()), static_cast<ssize_t>(in.size()));
  EXPECT_EQ(read_until(p->slave.get(), in, 2000), in);
  ASSERT_EQ(::write(p->slave.get(), "xyz", 3), 3);
  EXPECT_EQ(read_until(p->master.get(), "xyz", 2000), "xyz");  // and no echo of the input before it
}

TEST(Pty, WindowSizeSetOnTheMasterIsSeenOnTheSlave) {
  auto p = open_pty(true, true);
  ASSERT_TRUE(p);
  ASSERT_TRUE(set_winsize(p->master.get(), {41, 123}));
  auto ws = get_winsize(p->slave.get());
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->rows, 41);
  EXPECT_EQ(ws->cols, 123);
  const Fd not_a_tty(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(get_winsize(not_a_tty.get()));
}

TEST(Pty, ProgramRunsWithThePtyAsItsTerminal) {
  auto p = open_pty(/*raw=*/false, /*hold_slave=*/true);
  ASSERT_TRUE(p);
  ASSERT_TRUE(set_winsize(p->master.get(), {33, 99}));
  auto c = spawn_on_tty({"/bin/sh", "-c", "stty size; tty; exit 3"}, p->slave_path);
  ASSERT_TRUE(c) << c.error().what;
  const std::string out = read_until(p->master.get(), p->slave_path, 5000);
  EXPECT_NE(out.find("33 99"), std::string::npos) << out;
  EXPECT_NE(out.find(p->slave_path), std::string::npos) << out;
  pollfd pf{c->pidfd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  auto st = reap(*c);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 3);
  EXPECT_EQ(c->pid, -1);
}

TEST(Pty, MissingProgramExitsWith127) {
  auto p = open_pty(false, true);
  ASSERT_TRUE(p);
  auto c = spawn_on_tty({"/nonexistent/program"}, p->slave_path);
  ASSERT_TRUE(c);
  pollfd pf{c->pidfd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  auto st = reap(*c);
  ASSERT_TRUE(st);
  EXPECT_EQ(WEXITSTATUS(*st), 127);
  EXPECT_FALSE(spawn_on_tty({}, p->slave_path));
}

TEST(Pty, StableLinkIsReplacedButNeverAFile) {
  const fs::path dir = fs::temp_directory_path() / ("vepf-pty-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string link = (dir / "sub" / "port0").string();
  ASSERT_TRUE(replace_symlink("/dev/pts/100", link));  // creates the parent directories
  EXPECT_EQ(fs::read_symlink(link), "/dev/pts/100");
  ASSERT_TRUE(replace_symlink("/dev/pts/101", link));
  EXPECT_EQ(fs::read_symlink(link), "/dev/pts/101");
  remove_symlink("/dev/pts/100", link);  // someone else's target now: kept
  EXPECT_TRUE(fs::is_symlink(link));
  remove_symlink("/dev/pts/101", link);
  EXPECT_FALSE(fs::exists(fs::symlink_status(link)));
  const std::string file = (dir / "file").string();
  std::ofstream(file) << "data";
  auto r = replace_symlink("/dev/pts/1", file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(fs::is_regular_file(file));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vepf::os
