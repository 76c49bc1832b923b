// NbdServer against real clients: libnbd (in the test thread) and, when installed, nbdinfo,
// qemu-io, qemu-img and nbdcopy, with the server's EventLoop on a thread of its own. The target
// is test::MemTarget, completing inline or later from the loop (newest first).

#include "nbd/nbd_server.hpp"

#include <gtest/gtest.h>
#include <libnbd.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mem_target.hpp"
#include "support/temp_dir.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/os/eventfd.hpp"

namespace vepf::host::nbd {
namespace {

using namespace std::chrono_literals;
using test::MemTarget;
using Mode = MemTarget::Mode;

constexpr std::uint64_t kSize = 4u << 20;

ExportInfo test_info() {
  ExportInfo i;
  i.size = kSize;
  i.can_flush = i.can_fua = i.can_trim = i.can_write_zeroes = i.can_multi_conn = true;
  i.description = "vepf test disk";
  return i;
}

/// Runs an EventLoop on a thread of its own; call() runs a function on it and waits.
class LoopThread {
 public:
  // .value() throws on failure, which gtest reports as a test error.
  explicit LoopThread(os::EventLoop& loop) : loop_(loop), ev_(os::EventFd::create().value()) {
    auto added = loop_.add(ev_.fd(), EPOLLIN, [this](std::uint32_t) {
      (void)ev_.drain();
      run_tasks();
    });
    if (!added) ADD_FAILURE() << added.error().what;
  }
  ~LoopThread() {
    stop();
    loop_.remove(ev_.fd());
  }
  void start() {
    stop_ = false;
    thread_ = std::thread([this] {
      while (!stop_) {
        if (!loop_.run_once(50)) break;
      }
    });
  }
  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    (void)ev_.signal();
    thread_.join();
  }
  template <class F>
  auto call(F f) {
    if (!thread_.joinable()) return f();
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    {
      std::lock_guard lock(mu_);
      tasks_.push_back([&task] { task(); });
    }
    (void)ev_.signal();
    return fut.get();
  }

 private:
  void run_tasks() {
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard lock(mu_);
      tasks.swap(tasks_);
    }
    for (auto& t : tasks) t();
  }

  os::EventLoop& loop_;
  os::EventFd ev_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
};

struct NbdClose {
  void operator()(nbd_handle* h) const { nbd_close(h); }
};
using Handle = std::unique_ptr<nbd_handle, NbdClose>;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<std::byte>(x >> 24);
  }
  return b;
}

class NbdServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ + "/run/disk0.sock";  // the server creates run/
    auto loop = os::EventLoop::create();
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    runner_ = std::make_unique<LoopThread>(loop_);
  }
  void TearDown() override {
    runner_->stop();
    server_.reset();
    if (timer_ >= 0) loop_.remove(timer_);
    runner_.reset();
    target_.reset();  // destroys completions still queued: they only free memory
  }

  /// Serves a MemTarget; deferred targets complete every millisecond unless `auto_complete` is
  /// false (then the test completes them through runner_->call()).
  void Start(ExportInfo info = test_info(), Mode mode = Mode::kInline, bool auto_complete = true) {
    target_ = std::make_unique<MemTarget>(std::move(info), mode);
    auto s = NbdServer::listen(path_, loop_, *target_, options_);
    ASSERT_TRUE(s) << s.error().what;
    server_ = std::move(*s);
    if (mode == Mode::kDeferred) {
      auto_complete_ = auto_complete;
      auto t = loop_.add_timer(1ms, [this] {
        if (auto_complete_) target_->complete_all();
      });
      ASSERT_TRUE(t);
      timer_ = *t;
    }
    runner_->start();
  }

  Handle Connect(bool structured = true, bool meta = false) {
    Handle h(nbd_create());
    if (!h) {
      ADD_FAILURE() << nbd_get_error();
      return h;
    }
    nbd_set_request_structured_replies(h.get(), structured);
    nbd_set_full_info(h.get(), true);
    if (meta) nbd_add_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION);
    if (nbd_connect_unix(h.get(), path_.c_str()) == -1) {
      ADD_FAILURE() << "connect: " << nbd_get_error();
      h.reset();
    }
    return h;
  }

  std::size_t clients() {
    return runner_->call([this] { return server_->clients(); });
  }
  std::size_t pending() {
    return runner_->call([this] { return target_->pending(); });
  }
  /// Waits (up to 5 s) for `pred`, polling `h` meanwhile so that libnbd sends what it queued.
  template <class P>
  bool wait_for(P pred, nbd_handle* h = nullptr) {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      if (h != nullptr) {
        nbd_poll(h, 5);
      } else {
        std::this_thread::sleep_for(2ms);
      }
    }
    return true;
  }
  std::string uri() const { return "nbd+unix:///?socket=" + path_; }

  vepf::test::TempDir tmp_{"vepf-nbd"};
  std::string dir_ = tmp_.path();
  std::string path_;
  os::EventLoop loop_;
  std::unique_ptr<LoopThread> runner_;
  std::unique_ptr<MemTarget> target_;
  std::unique_ptr<NbdServer> server_;
  std::atomic<bool> auto_complete_{true};
  int timer_ = -1;
  NbdServerOptions options_;
};

struct Param {
  Mode mode;
  bool structured;
};

class NbdServerIo : public NbdServerTest, public ::testing::WithParamInterface<Param> {
 protected:
  void StartParam(ExportInfo info = test_info()) { Start(std::move(info), GetParam().mode); }
  Handle ConnectParam(bool meta = false) { return Connect(GetParam().structured, meta); }
};

TEST_P(NbdServerIo, HandshakeAdvertisesTheExport) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<std::int64_t>(kSize));
  EXPECT_EQ(nbd_is_read_only(h.get()), 0);
  EXPECT_EQ(nbd_can_flush(h.get()), 1);
  EXPECT_EQ(nbd_can_fua(h.get()), 1);
  EXPECT_EQ(nbd_can_trim(h.get()), 1);
  EXPECT_EQ(nbd_can_zero(h.get()), 1);
  EXPECT_EQ(nbd_can_multi_conn(h.get()), 1);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h.get()), GetParam().structured ? 1 : 0);
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_MINIMUM), 1);
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_PREFERRED), 4096);
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_MAXIMUM), 32 << 20);
  char* desc = nbd_get_export_description(h.get());
  ASSERT_NE(desc, nullptr) << nbd_get_error();
  EXPECT_STREQ(desc, "vepf test disk");
  std::free(desc);
  EXPECT_EQ(clients(), 1u);
}

TEST_P(NbdServerIo, ReadsReturnWritesAtOddOffsetsAndLengths) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  const std::vector<std::pair<std::uint64_t, std::size_t>> ranges = {
      {3, 1000}, {4095, 2}, {12345, 70001}, {kSize - 7, 7}, {1u << 20, (1u << 20) + 3}, {0, 1}};
  unsigned seed = 1;
  for (const auto& [off, len] : ranges) {
    const auto data = pattern(len, seed++);
    ASSERT_EQ(nbd_pwrite(h.get(), data.data(), len, off, 0), 0) << nbd_get_error();
  }
  seed = 1;
  for (const auto& [off, len] : ranges) {
    const auto expect = pattern(len, seed++);
    std::vector<std::byte> got(len);
    ASSERT_EQ(nbd_pread(h.get(), got.data(), len, off, 0), 0) << nbd_get_error();
    EXPECT_EQ(got, expect) << "offset " << off << " length " << len;
  }
  const auto expect = pattern(1000, 1);
  EXPECT_TRUE(runner_->call(
      [&] { return std::memcmp(target_->data().data() + 3, expect.data(), 1000) == 0; }));
  const auto st = runner_->call([&] { return server_->stats(); });
  EXPECT_EQ(st.bytes_written, st.bytes_read);
  EXPECT_EQ(st.errors, 0u);
}

TEST_P(NbdServerIo, TrimAndWriteZeroesReadBackAsZeroes) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  std::vector<std::byte> buf(65536, std::byte{0xaa});
  ASSERT_EQ(nbd_pwrite(h.get(), buf.data(), buf.size(), 0, 0), 0);
  ASSERT_EQ(nbd_trim(h.get(), 4096, 8192, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h.get(), 3001, 20000, LIBNBD_CMD_FLAG_NO_HOLE), 0) << nbd_get_error();
  const int flushes = target_->flushes;
  ASSERT_EQ(nbd_zero(h.get(), 100, 40000, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  EXPECT_EQ(target_->flushes, flushes + 1);  // FUA on write-zeroes: a flush before the reply
  ASSERT_EQ(nbd_pread(h.get(), buf.data(), buf.size(), 0, 0), 0);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    const bool zero =
        (i >= 8192 && i < 12288) || (i >= 20000 && i < 23001) || (i >= 40000 && i < 40100);
    ASSERT_EQ(buf[i], zero ? std::byte{0} : std::byte{0xaa}) << "byte " << i;
  }
  EXPECT_EQ(target_->trims, 1);
  EXPECT_EQ(target_->zeroes, 2);
  EXPECT_EQ(target_->zeroes_no_hole, 1);
}

TEST_P(NbdServerIo, FlushAndFuaReachTheTarget) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_flush(h.get(), 0), 0);
  EXPECT_EQ(target_->flushes, 1);
  const auto data = pattern(512, 7);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 512, LIBNBD_CMD_FLAG_FUA), 0);
  EXPECT_EQ(target_->fua_writes, 1);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 1024, 0), 0);
  EXPECT_EQ(target_->fua_writes, 1);
}

TEST_P(NbdServerIo, ReadOnlyExportRefusesWritesWithEperm) {
  ExportInfo info = test_info();
  info.read_only = true;
  StartParam(info);
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_is_read_only(h.get()), 1);
  nbd_set_strict_mode(h.get(), 0);  // let libnbd send what it knows the server must refuse
  const auto data = pattern(100, 3);
  EXPECT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPERM);
  EXPECT_EQ(nbd_trim(h.get(), 4096, 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPERM);
  EXPECT_EQ(nbd_zero(h.get(), 4096, 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPERM);
  std::vector<std::byte> got(100);
  EXPECT_EQ(nbd_pread(h.get(), got.data(), got.size(), 0, 0), 0);
  EXPECT_EQ(target_->violations, 0);
  EXPECT_EQ(target_->writes, 0);
}

TEST_P(NbdServerIo, OutOfRangeFailsAndTheConnectionStaysUsable) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  nbd_set_strict_mode(h.get(), 0);
  std::vector<std::byte> buf(64);
  EXPECT_EQ(nbd_pread(h.get(), buf.data(), 20, kSize - 10, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EINVAL);
  EXPECT_EQ(nbd_pwrite(h.get(), buf.data(), 2, kSize - 1, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ENOSPC);
  EXPECT_EQ(nbd_trim(h.get(), 1, kSize, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EINVAL);
  EXPECT_EQ(nbd_pread(h.get(), buf.data(), buf.size(), kSize - 64, 0), 0) << nbd_get_error();
  EXPECT_EQ(target_->violations, 0);
  EXPECT_EQ(runner_->call([&] { return server_->stats().errors; }), 3u);
}

int collect_extents(void* user, const char* context, std::uint64_t, std::uint32_t* entries,
                    std::size_t n, int*) {
  auto* out = static_cast<std::vector<std::uint32_t>*>(user);
  if (std::strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
    out->insert(out->end(), entries, entries + n);
  return 0;
}

TEST_P(NbdServerIo, BlockStatusReportsAllocatedData) {
  StartParam();
  Handle h = ConnectParam(/*meta=*/true);
  ASSERT_TRUE(h);
  if (!GetParam().structured) {  // meta contexts need structured replies
    EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
    return;
  }
  ASSERT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  for (std::uint32_t flags : {0u, static_cast<std::uint32_t>(LIBNBD_CMD_FLAG_REQ_ONE)}) {
    std::vector<std::uint32_t> extents;
    nbd_extent_callback cb{};
    cb.callback = collect_extents;
    cb.user_data = &extents;
    ASSERT_EQ(nbd_block_status(h.get(), 65536, 4096, cb, flags), 0) << nbd_get_error();
    EXPECT_EQ(extents, (std::vector<std::uint32_t>{65536, 0}));
  }
}

TEST_P(NbdServerIo, SeveralClientsAtOnce) {
  StartParam();
  constexpr int kClients = 4;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([this, c] {
      Handle h = ConnectParam();
      if (!h) return;
      const std::uint64_t base =
          static_cast<std::uint64_t>(c) * (1u << 20) + static_cast<unsigned>(c);
      for (int round = 0; round < 8; ++round) {
        const auto data = pattern(50000 + c, static_cast<unsigned>(c * 100 + round));
        const std::uint64_t off = base + static_cast<unsigned>(round) * 60000;
        EXPECT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), off, 0), 0) << nbd_get_error();
        std::vector<std::byte> got(data.size());
        EXPECT_EQ(nbd_pread(h.get(), got.data(), got.size(), off, 0), 0) << nbd_get_error();
        EXPECT_EQ(got, data);
      }
      EXPECT_EQ(nbd_flush(h.get(), 0), 0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(wait_for([this] { return clients() == 0; }));
  const auto st = runner_->call([this] { return server_->stats(); });
  EXPECT_EQ(st.connections, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(st.errors, 0u);
}

TEST_P(NbdServerIo, PipelinedRequestsComplete) {
  StartParam();
  Handle h = ConnectParam();
  ASSERT_TRUE(h);
  // Small and large writes in turn: the server reads a large one's data straight into its
  // request buffer and the header after it alone (NbdSession::direct_input(), read_hint()).
  constexpr int kRequests = 16;
  nbd_completion_callback none{};
  std::vector<std::vector<std::byte>> out, in;
  std::vector<std::uint64_t> offsets;
  std::vector<std::int64_t> cookies;
  std::uint64_t off = 0;
  for (int i = 0; i < kRequests; ++i) {
    const std::size_t len = i % 2 == 0 ? 4099 : 100003;
    out.push_back(pattern(len, static_cast<unsigned>(i)));
    in.emplace_back(len);
    offsets.push_back(off);
    cookies.push_back(nbd_aio_pwrite(h.get(), out.back().data(), len, off, none, 0));
    ASSERT_GE(cookies.back(), 0) << nbd_get_error();
    off += len;
  }
  while (nbd_aio_in_flight(h.get()) > 0) ASSERT_GE(nbd_poll(h.get(), -1), 0) << nbd_get_error();
  for (int i = 0; i < kRequests; ++i) {
    cookies.push_back(nbd_aio_pread(h.get(), in[i].data(), in[i].size(), offsets[i], none, 0));
    ASSERT_GE(cookies.back(), 0) << nbd_get_error();
  }
  while (nbd_aio_in_flight(h.get()) > 0) ASSERT_GE(nbd_poll(h.get(), -1), 0) << nbd_get_error();
  for (auto c : cookies)
    EXPECT_EQ(nbd_aio_command_completed(h.get(), static_cast<std::uint64_t>(c)), 1);
  EXPECT_EQ(in, out);
  const auto st = runner_->call([&] { return server_->stats(); });
  EXPECT_EQ(st.bytes_written, off);
}

INSTANTIATE_TEST_SUITE_P(Targets, NbdServerIo,
                         ::testing::Values(Param{Mode::kInline, true}, Param{Mode::kInline, false},
                                           Param{Mode::kDeferred, true},
                                           Param{Mode::kDeferred, false}),
                         [](const auto& i) {
                           return std::string(i.param.mode == Mode::kInline ? "Inline"
                                                                            : "Deferred") +
                                  (i.param.structured ? "Structured" : "Simple");
                         });

TEST_F(NbdServerTest, ClientDisconnectingWithRequestsInFlight) {
  Start(test_info(), Mode::kDeferred, /*auto_complete=*/false);
  Handle h = Connect();
  ASSERT_TRUE(h);
  nbd_completion_callback none{};
  std::vector<std::byte> wbuf(65536, std::byte{1}), rbuf(4 * 65536);
  for (int i = 0; i < 4; ++i) {
    ASSERT_GE(nbd_aio_pwrite(h.get(), wbuf.data(), wbuf.size(), static_cast<std::uint64_t>(i) << 16,
                             none, 0),
              0);
    ASSERT_GE(nbd_aio_pread(h.get(), rbuf.data() + i * 65536, 65536,
                            static_cast<std::uint64_t>(i) << 16, none, 0),
              0);
  }
  ASSERT_TRUE(wait_for([this] { return pending() == 8; }, h.get()));
  h.reset();  // gone, with eight requests in the target
  ASSERT_TRUE(wait_for([this] { return clients() == 0; }));
  // The target completes them now: they find no connection, write into buffers that are
  // still theirs, and are dropped.
  EXPECT_EQ(runner_->call([this] { return target_->complete_all(); }), 8u);
  EXPECT_EQ(target_->violations, 0);
  auto_complete_ = true;
  Handle again = Connect();
  ASSERT_TRUE(again);
  std::vector<std::byte> got(16);
  ASSERT_EQ(nbd_pread(again.get(), got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(got, std::vector<std::byte>(16, std::byte{1}));
}

TEST_F(NbdServerTest, TargetTearDownMayDropCallbacks) {
  Start(test_info(), Mode::kDeferred, /*auto_complete=*/false);
  Handle h = Connect();
  ASSERT_TRUE(h);
  nbd_completion_callback none{};
  std::vector<std::byte> buf(8192);
  ASSERT_GE(nbd_aio_pread(h.get(), buf.data(), 4096, 0, none, 0), 0);
  ASSERT_GE(nbd_aio_pwrite(h.get(), buf.data() + 4096, 4096, 0, none, 0), 0);
  ASSERT_TRUE(wait_for([this] { return pending() == 2; }, h.get()));
  runner_->call([this] { target_->drop_pending(); });  // buffers freed with the callbacks
  h.reset();
  EXPECT_TRUE(wait_for([this] { return clients() == 0; }));
}

TEST_F(NbdServerTest, DestroyedWithClientsConnected) {
  Start(test_info(), Mode::kDeferred, /*auto_complete=*/false);
  Handle a = Connect();
  Handle b = Connect(false);
  ASSERT_TRUE(a && b);
  nbd_completion_callback none{};
  std::vector<std::byte> buf(4096);
  ASSERT_GE(nbd_aio_pread(a.get(), buf.data(), buf.size(), 0, none, 0), 0);
  ASSERT_TRUE(wait_for([this] { return pending() == 1; }, a.get()));
  EXPECT_EQ(clients(), 2u);
  runner_->stop();
  server_.reset();
  struct stat st {};
  EXPECT_EQ(::lstat(path_.c_str(), &st), -1);  // the socket path is gone
  EXPECT_EQ(loop_.size(), 2u);                 // only the test's timer and eventfd remain
  EXPECT_EQ(target_->complete_all(), 1u);      // a completion for a destroyed server
  std::vector<std::byte> got(16);
  EXPECT_EQ(nbd_pread(b.get(), got.data(), got.size(), 0, 0), -1);  // the server hung up
}

/// A unix stream socket connected to `path` without libnbd (receives time out after 5 s), or -1.
int connect_raw(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  timeval tv{5, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, static_cast<const sockaddr*>(static_cast<const void*>(&addr)), sizeof addr) !=
      0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Connects without libnbd, reads the greeting and answers with client flags that lack
/// NBD_FLAG_C_FIXED_NEWSTYLE. Returns true when the server then closed the connection.
bool send_bad_client_flags(const std::string& path) {
  const int fd = connect_raw(path);
  if (fd < 0) return false;
  std::array<char, 18> greeting{};
  const std::array<unsigned char, 4> no_fixed_newstyle{0, 0, 0, 0};
  char c = 0;
  const bool ok = ::recv(fd, greeting.data(), greeting.size(), MSG_WAITALL) == 18 &&
                  std::memcmp(greeting.data(), "NBDMAGICIHAVEOPT", 16) == 0 &&
                  ::send(fd, no_fixed_newstyle.data(), 4, MSG_NOSIGNAL) == 4 &&
                  ::recv(fd, &c, 1, 0) == 0;
  ::close(fd);
  return ok;
}

/// Connects without libnbd; returns true when the server closed the connection without a
/// greeting (end of file first).
bool closed_without_greeting(const std::string& path) {
  const int fd = connect_raw(path);
  if (fd < 0) return false;
  char c = 0;
  const bool ok = ::recv(fd, &c, 1, 0) == 0;
  ::close(fd);
  return ok;
}

// [device.block] max_nbd_clients: past it a client is closed at once and counted; the served ones
// keep working (before, every connection took a session and a descriptor).
TEST_F(NbdServerTest, ClientsPastTheLimitAreClosedAndCounted) {
  options_.max_clients = 1;
  Start();
  Handle a = Connect();
  ASSERT_TRUE(a);
  EXPECT_TRUE(closed_without_greeting(path_));
  EXPECT_TRUE(closed_without_greeting(path_));
  EXPECT_EQ(runner_->call([this] { return server_->stats().refused; }), 2u);
  EXPECT_EQ(clients(), 1u);
  std::vector<std::byte> got(16);
  EXPECT_EQ(nbd_pread(a.get(), got.data(), got.size(), 0, 0), 0);
  a.reset();
  ASSERT_TRUE(wait_for([this] { return clients() == 0; }));
  Handle b = Connect();
  ASSERT_TRUE(b);
  EXPECT_EQ(nbd_pread(b.get(), got.data(), got.size(), 0, 0), 0);
}

TEST_F(NbdServerTest, ProtocolErrorDropsOnlyThatClient) {
  Start();
  Handle good = Connect();
  ASSERT_TRUE(good);
  EXPECT_TRUE(send_bad_client_flags(path_));
  EXPECT_EQ(runner_->call([this] { return server_->stats().protocol_errors; }), 1u);
  std::vector<std::byte> got(16);
  EXPECT_EQ(nbd_pread(good.get(), got.data(), got.size(), 0, 0), 0);
}

TEST_F(NbdServerTest, LogsToHostBlk) {
  std::ostringstream text;
  auto logger = std::make_shared<spdlog::logger>(
      "host.blk", std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
  spdlog::register_logger(logger);
  struct Drop {
    ~Drop() { spdlog::drop("host.blk"); }
  } drop;
  Start();
  {
    Handle h = Connect();
    ASSERT_TRUE(h);
  }
  EXPECT_TRUE(send_bad_client_flags(path_));
  EXPECT_TRUE(wait_for([this] { return clients() == 0; }));
  runner_->stop();
  server_.reset();
  logger->flush();
  const std::string log = text.str();
  EXPECT_NE(log.find("client 1 connected"), std::string::npos) << log;
  EXPECT_NE(log.find("client 1 closed"), std::string::npos) << log;
  EXPECT_NE(log.find("client 2 dropped: nbd: client did not set NBD_FLAG_C_FIXED_NEWSTYLE"),
            std::string::npos)
      << log;
}

void bind_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::bind(fd, static_cast<const sockaddr*>(static_cast<const void*>(&addr)), sizeof addr),
            0);
  ::close(fd);  // the socket file stays behind
}

TEST_F(NbdServerTest, SocketPathRules) {
  target_ = std::make_unique<MemTarget>(test_info(), Mode::kInline);
  struct stat st {};
  {
    auto s = NbdServer::listen(path_, loop_, *target_);
    ASSERT_TRUE(s) << s.error().what;  // creates the parent directory
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(loop_.size(), 2u);  // the runner's eventfd and the listening socket
  }
  EXPECT_EQ(::lstat(path_.c_str(), &st), -1);  // unlinked by the destructor
  EXPECT_EQ(loop_.size(), 1u);
  bind_stale_socket(path_);
  {
    auto s = NbdServer::listen(path_, loop_, *target_);
    EXPECT_TRUE(s) << s.error().what;  // the stale socket was replaced
  }
  { std::ofstream(path_) << "not a socket"; }
  auto s = NbdServer::listen(path_, loop_, *target_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_regular_file(path_));
  s = NbdServer::listen(dir_ + "/" + std::string(200, 'a'), loop_, *target_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInvalidArgument);
  ExportInfo bad = test_info();
  bad.min_block = 3;
  MemTarget bad_target(bad, Mode::kInline);
  s = NbdServer::listen(dir_ + "/other.sock", loop_, bad_target);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInvalidArgument);
}

std::string find_program(const char* name) {
  const char* env = std::getenv("PATH");
  const std::string path = env != nullptr ? env : "/usr/bin:/bin";
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t colon = std::min(path.find(':', pos), path.size());
    const std::string candidate = path.substr(pos, colon - pos) + "/" + name;
    if (colon > pos && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    pos = colon + 1;
  }
  return {};
}

/// Runs `cmd` through the shell: exit status (-1 if it did not exit) and stdout+stderr.
std::pair<int, std::string> run(const std::string& cmd) {
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  const int st = ::pclose(f);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST_F(NbdServerTest, StandardClientsWork) {
  const std::string nbdinfo = find_program("nbdinfo"), qemu_io = find_program("qemu-io"),
                    qemu_img = find_program("qemu-img"), nbdcopy = find_program("nbdcopy");
  if (nbdinfo.empty() && qemu_io.empty() && qemu_img.empty() && nbdcopy.empty())
    GTEST_SKIP() << "none of nbdinfo, qemu-io, qemu-img, nbdcopy is installed";
  Start(test_info(), Mode::kDeferred);
  const std::string u = "'" + uri() + "'";
  if (!nbdinfo.empty()) {
    auto [rc, out] = run(nbdinfo + " " + u);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("4194304"), std::string::npos) << out;
    std::tie(rc, out) = run(nbdinfo + " --list " + u);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("vepf test disk"), std::string::npos) << out;
    std::tie(rc, out) = run(nbdinfo + " --map " + u);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("data"), std::string::npos) << out;
  }
  if (!qemu_io.empty()) {
    auto [rc, out] =
        run(qemu_io + " -f raw " + u + " -c 'write -P 0x5a 3 1000' -c 'read -P 0x5a 3 1000'");
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("wrote 1000/1000 bytes at offset 3"), std::string::npos) << out;
    EXPECT_NE(out.find("read 1000/1000 bytes at offset 3"), std::string::npos) << out;
    EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
    EXPECT_TRUE(runner_->call([this] {
      const auto& d = target_->data();
      return d[2] == std::byte{0} && d[3] == std::byte{0x5a} && d[1002] == std::byte{0x5a} &&
             d[1003] == std::byte{0};
    }));
  }
  if (!qemu_img.empty()) {
    auto [rc, out] = run(qemu_img + " info -f raw " + u);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("4194304"), std::string::npos) << out;
  }
  if (!nbdcopy.empty()) {
    const auto in = pattern(kSize, 42);
    runner_->call([&] { std::memcpy(target_->data().data(), in.data(), in.size()); });
    const std::string file = dir_ + "/copy.img";
    auto [rc, out] = run(nbdcopy + " " + u + " " + file);
    ASSERT_EQ(rc, 0) << out;
    std::ifstream f(file, std::ios::binary);
    std::vector<char> got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_EQ(got.size(), in.size());
    EXPECT_EQ(std::memcmp(got.data(), in.data(), in.size()), 0);
    // And back, into a zeroed export.
    runner_->call([&] { std::fill(target_->data().begin(), target_->data().end(), std::byte{0}); });
    std::tie(rc, out) = run(nbdcopy + " " + file + " " + u);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_TRUE(runner_->call(
        [&] { return std::memcmp(target_->data().data(), in.data(), in.size()) == 0; }));
  }
  EXPECT_EQ(target_->violations, 0);
  EXPECT_EQ(runner_->call([this] { return server_->stats().protocol_errors; }), 0u);
}

}  // namespace
}  // namespace vepf::host::nbd
