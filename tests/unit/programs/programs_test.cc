// vepf-ep's ep::Server and vepf-host's host::Bus in one process, one thread and one event loop,
// over the fake links (support/fake_links.hpp: the device transport answers each request at
// once; neither side has signals, so both poll on their timers). What the programs do between
// their CLI and their exit, without a process or a socket for the link:
//  - hot-plug: a device added through the control protocol is probed by the bus; a removed one
//    is torn down;
//  - an EP restart (a new server, a new epoch) makes the bus attach again and probe again;
//  - DEVICE_NEEDS_RESET: the bus probes the device again at once, and after a back-off when it
//    breaks again soon after;
//  - an application's own rpmsg routing on both sides (rpmsg::Endpoints, no sockets): an echo
//    service on the EP found by its announcement, a client on the host.

#include <gtest/gtest.h>

#include <linux/virtio_config.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#if VEPF_TEST_LIBNBD
#include <libnbd.h>

#include <atomic>
#include <thread>
#include <vector>
#endif

#include "bus/bus.hpp"
#include "devices/rpmsg/rpmsg_device.hpp"
#include "drivers/blk/blk_driver.hpp"
#include "server/server.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "support/temp_dir.hpp"
#include "vepf/config/board_config.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/os/event_loop.hpp"
#include "vepf/rpmsg/endpoints.hpp"

namespace {

using namespace vepf;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::size_t kWindow = std::size_t{4} << 20;
constexpr auto kWait = 10s;  // how long a test waits for what must happen (it fails, not hangs)

/// Hands the bus the test's FakeDriverLink every time it connects.
class FakeSource final : public platform::HostLinkSource {
 public:
  explicit FakeSource(transport::DriverLink& l) : l_(l) {}
  tl::expected<transport::DriverLink*, std::string> open(std::chrono::milliseconds,
                                                         const std::function<bool()>&) override {
    ++opens;
    return &l_;
  }
  void close() noexcept override { ++closes; }
  std::string description() const override { return "the fake link"; }
  int opens = 0, closes = 0;

 private:
  transport::DriverLink& l_;
};

std::string rpmsg_device(const std::string& dir) {
  return "type = \"rpmsg\"\nqueue_size = 16\nrpmsg = { runtime_dir = \"" + dir + "\" }\n";
}

class ProgramsTest : public ::testing::Test {
 protected:
  ProgramsTest() = default;
  /// Windows of memory type `access`; `devices`: more [[device]] tables for the board.
  ProgramsTest(ring::MemoryAccess access, std::string devices)
      : extra_devices(std::move(devices)), w{kWindow, kWindow, access} {}

  void SetUp() override {
    for (const char* n : {"ep", "ep.net", "ep.rpmsg", "ep.blk", "ep.console", "host", "host.net",
                          "host.rpmsg", "host.blk", "host.console"}) {
      if (!spdlog::get(n)) spdlog::create<spdlog::sinks::null_sink_mt>(n);
    }
    ASSERT_FALSE(tmp.path().empty());
    const std::string toml =
        "[board]\nname = \"in-process\"\nplatform = \"loopback\"\n"
        "[link]\nep_window_size = " +
        std::to_string(kWindow) + "\nrc_window_size = " + std::to_string(kWindow) +
        "\n[loopback]\nsocket = \"" + tmp.path() + "/unused.sock\"\n[control]\nallowed_dirs = [\"" +
        tmp.path() +
        "\"]\n"
        "[[device]]\n" +
        rpmsg_device(tmp.path() + "/r0") + devices_here();
    auto c = config::parse_board_config(toml, "test.toml");
    ASSERT_TRUE(c) << c.error().message;
    cfg = *c;
    auto l = os::EventLoop::create();
    ASSERT_TRUE(l);
    loop = std::move(*l);
  }

  void TearDown() override {
    bus.reset();
    drv_link.set_device(nullptr);
    server.reset();
  }

  /// extra_devices with every "@TMP@" made the test's directory.
  std::string devices_here() const {
    std::string d = extra_devices;
    for (std::size_t at = d.find("@TMP@"); at != std::string::npos; at = d.find("@TMP@", at))
      d.replace(at, 5, tmp.path());
    return d;
  }

  /// A server on the test's device link (a new epoch each time).
  void start_server() {
    platform::EpLink link{std::make_unique<test::BorrowedDeviceLink>(dev_link), nullptr,
                          "fake link"};
    server = std::make_unique<ep::Server>(cfg, std::move(link), loop, ep::Server::Options{});
    ASSERT_TRUE(server->start());
    drv_link.set_device(&server->transport());
  }

  void start_bus(host::Bus::Options o = {}) {
    auto src = std::make_unique<FakeSource>(drv_link);
    source = src.get();
    bus = std::make_unique<host::Bus>(cfg, std::move(src), loop, o);
  }

  /// Steps the bus (which runs the shared loop, so the server's callbacks too) until `done`.
  bool step_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (!bus->step(5)) return done();
    }
    return true;
  }

  bool driver_ok_on_ep(std::uint32_t slot) {
    const std::uint8_t st = server->transport().status(slot);
    return (st & VIRTIO_CONFIG_S_DRIVER_OK) != 0 && (st & VIRTIO_CONFIG_S_NEEDS_RESET) == 0;
  }

  /// Plays a broken driver: moves the avail index of device `slot`'s queue `q` far beyond what
  /// the queue holds (in the EP window, where the driver writes it), then kicks the device.
  void break_queue(std::uint32_t slot, std::uint16_t q) {
    const std::size_t line =
        layout::queue_block_off(slot, q) + offsetof(layout::QueueBlock, driver);
    const auto lo = test::peek<std::uint32_t>(
        w.ep(), line + offsetof(layout::QueueDriverLine, queue_driver_lo));
    const auto hi = test::peek<std::uint32_t>(
        w.ep(), line + offsetof(layout::QueueDriverLine, queue_driver_hi));
    const std::uint64_t avail = layout::link_addr_offset((std::uint64_t{hi} << 32) | lo);
    ASSERT_LT(avail + 4, w.ep().size());
    const auto idx = test::peek<std::uint16_t>(w.ep(), avail + layout::kRingIdxOff);
    test::poke<std::uint16_t>(w.ep(), avail + layout::kRingIdxOff,
                              static_cast<std::uint16_t>(idx + 0x4000));
    server->transport().notify(slot);
  }

  std::string extra_devices;
  test::TempDir tmp{"vepf-programs"};
  config::BoardConfig cfg;
  os::EventLoop loop;
  test::LinkWindows w{kWindow, kWindow};
  test::FakeDeviceLink dev_link{w};
  test::FakeDriverLink drv_link{w, dev_link};
  std::unique_ptr<ep::Server> server;
  FakeSource* source = nullptr;
  std::unique_ptr<host::Bus> bus;
};

TEST_F(ProgramsTest, BusProbesTheBoardsDevicesAndFollowsHotPlug) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  start_bus();
  ASSERT_TRUE(step_until([&] { return bus->driver(0) != nullptr && driver_ok_on_ep(0); }));
  EXPECT_EQ(bus->state(), host::Bus::State::kSession);
  EXPECT_EQ(bus->epoch(), server->transport().epoch());

  // `vepf-ep ctl add`, as the control socket hands it to the server.
  const json added = json::parse(server->handle_control(
      json{{"op", "add"}, {"device", rpmsg_device(tmp.path() + "/r1")}}.dump()));
  ASSERT_TRUE(added.value("ok", false)) << added.dump();
  const std::uint32_t slot = added["slot"];
  EXPECT_EQ(slot, 1u);
  ASSERT_TRUE(step_until([&] { return bus->driver(slot) != nullptr && driver_ok_on_ep(slot); }));
  EXPECT_EQ(bus->driver_count(), 2u);
  const json listed = json::parse(server->handle_control(R"({"op":"list"})"));
  ASSERT_EQ(listed["devices"].size(), 2u);
  EXPECT_TRUE(listed["devices"][1]["driver_ok"].get<bool>());

  // A directory the board config does not allow is refused, and nothing is added.
  const json refused = json::parse(server->handle_control(
      json{{"op", "add"}, {"device", rpmsg_device("/var/tmp/elsewhere")}}.dump()));
  EXPECT_FALSE(refused.value("ok", true));
  EXPECT_EQ(server->device(2), nullptr);

  const json removed =
      json::parse(server->handle_control(json{{"op", "remove"}, {"slot", slot}}.dump()));
  ASSERT_TRUE(removed.value("ok", false)) << removed.dump();
  ASSERT_TRUE(step_until([&] { return bus->driver(slot) == nullptr; }));
  EXPECT_NE(bus->driver(0), nullptr);  // the other device stays up
  EXPECT_TRUE(driver_ok_on_ep(0));
  EXPECT_EQ(bus->sessions(), 1u);
}

TEST_F(ProgramsTest, BusAttachesAgainWhenTheEpRestarts) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  start_bus();
  ASSERT_TRUE(step_until([&] { return bus->driver(0) != nullptr && driver_ok_on_ep(0); }));
  const std::uint32_t first = bus->epoch();

  // vepf-ep restarts: the old server goes, a new one publishes a new epoch on the same window.
  drv_link.set_device(nullptr);
  server.reset();
  ASSERT_NO_FATAL_FAILURE(start_server());
  const std::uint32_t second = server->transport().epoch();
  ASSERT_NE(second, first);

  ASSERT_TRUE(step_until(
      [&] { return bus->sessions() == 2 && bus->driver(0) != nullptr && driver_ok_on_ep(0); }));
  EXPECT_EQ(bus->epoch(), second);
  EXPECT_EQ(source->closes, 1);  // the first session let go of its link before the second
  EXPECT_EQ(source->opens, 2);
}

TEST_F(ProgramsTest, BusProbesADeviceAgainAfterNeedsResetWithBackOff) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  host::Bus::Options o;
  o.first_retry = 300ms;  // long enough that the step which saw the break ends before it
  start_bus(o);
  ASSERT_TRUE(step_until([&] { return bus->driver(0) != nullptr && driver_ok_on_ep(0); }));

  // The first break: probed again at once.
  ASSERT_NO_FATAL_FAILURE(break_queue(0, 1));
  EXPECT_NE(server->transport().status(0) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
  ASSERT_TRUE(step_until(
      [&] { return bus->reprobes() == 1 && bus->driver(0) != nullptr && driver_ok_on_ep(0); }));

  // Broken again right after: the bus lets go of it and waits before probing it again.
  ASSERT_NO_FATAL_FAILURE(break_queue(0, 1));
  ASSERT_TRUE(step_until([&] { return bus->driver(0) == nullptr; }));
  EXPECT_EQ(bus->reprobes(), 1u);
  ASSERT_TRUE(step_until(
      [&] { return bus->reprobes() == 2 && bus->driver(0) != nullptr && driver_ok_on_ep(0); }));
  EXPECT_EQ(bus->sessions(), 1u);  // the link stayed up throughout
}

TEST_F(ProgramsTest, BusStopsOnRequestAndWithOnceWhenTheLinkGoes) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  host::Bus::Options o;
  o.once = true;
  start_bus(o);
  ASSERT_TRUE(step_until([&] { return bus->driver(0) != nullptr; }));
  // The EP goes away and does not come back: with `once` the bus gives up with exit code 1.
  drv_link.set_device(nullptr);
  server.reset();
  ASSERT_TRUE(step_until([&] { return bus->state() == host::Bus::State::kDone; }));
  EXPECT_EQ(bus->exit_code(), 1);

  // stop() ends a running session with exit code 0.
  ASSERT_NO_FATAL_FAILURE(start_server());
  start_bus();
  ASSERT_TRUE(step_until([&] { return bus->driver(0) != nullptr; }));
  bus->stop();
  ASSERT_TRUE(step_until([&] { return bus->state() == host::Bus::State::kDone; }));
  EXPECT_EQ(bus->exit_code(), 0);
  EXPECT_FALSE(bus->step(0));
}

TEST_F(ProgramsTest, InProcessEndpointsOnBothSidesEcho) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  // The EP: an rpmsg device of the application's own, its endpoints in this process.
  rpmsg::Endpoints* ep = nullptr;
  auto dev = std::make_unique<ep::RpmsgDevice>(
      16,
      [&](rpmsg::Port& p) {
        auto e = std::make_unique<rpmsg::Endpoints>(p);
        ep = e.get();
        return e;
      },
      "echo app");
  ASSERT_TRUE(dev->start(loop));
  auto slot = server->add_device(std::move(dev));
  ASSERT_TRUE(slot) << slot.error();
  std::uint32_t echo = 0;
  auto e = ep->create(
      "echo", rpmsg::kAddrAny, rpmsg::kAddrAny,
      [&](std::span<const std::byte> payload, std::uint32_t src) {
        ASSERT_TRUE(ep->trysendto(echo, src, payload));  // the reply goes back to the sender
      });
  ASSERT_TRUE(e);
  echo = *e;

  // The host: the same slot routed by Endpoints too; the echo service is found by its
  // announcement (OpenAMP's ns_bind_cb), and a client endpoint made for it.
  rpmsg::Endpoints* host = nullptr;
  std::uint32_t client = 0;
  std::vector<std::string> replies;
  host::Bus::Options o;
  o.rpmsg_router = [&](std::uint32_t s) -> rpmsg::RouterFactory {
    if (s != *slot) return nullptr;
    return [&](rpmsg::Port& p) {
      auto r = std::make_unique<rpmsg::Endpoints>(p);
      host = r.get();
      host->set_bind([&](const std::string& name, std::uint32_t dst) {
        if (name != "echo") return;
        auto c = host->create(
            "", rpmsg::kAddrAny, dst, [&](std::span<const std::byte> payload, std::uint32_t) {
              replies.emplace_back(reinterpret_cast<const char*>(payload.data()), payload.size());
            });
        ASSERT_TRUE(c);
        client = *c;
      });
      return r;
    };
  };
  start_bus(o);
  ASSERT_TRUE(step_until([&] { return client != 0; }));
  EXPECT_NE(bus->driver(0), nullptr);  // the board's socket-channel device is up too

  const std::string msgs[] = {"ping", std::string(layout::kRpmsgMaxPayload, 'x'), "3"};
  for (const auto& m : msgs) {
    ASSERT_TRUE(host->trysend(client, std::as_bytes(std::span{m.data(), m.size()})));
  }
  ASSERT_TRUE(step_until([&] { return replies.size() == 3; }));
  EXPECT_EQ(replies[0], "ping");
  EXPECT_EQ(replies[1], msgs[1]);
  EXPECT_EQ(replies[2], "3");
  EXPECT_EQ(ep->stats().bad + host->stats().bad, 0u);
  EXPECT_EQ(ep->destination(echo), client);  // learned from the first message
}

#if VEPF_TEST_LIBNBD
// The block path end to end: an NBD client (libnbd, on a thread of its own) writes through
// vepf-host's export into the EP's virtio-blk device and reads everything back, while the bus
// steps the shared loop. Writes of 256 KiB are received straight into EP-window buffers the
// driver lends (BlockDriver::lend_write_buffer()) while enough are free, into the session's own
// memory otherwise; a device-memory window lends none (a kernel copy into it would break its
// access rules; the strict link model fails the test on any such access).
class ProgramsBlockTest : public ProgramsTest {
 protected:
  static constexpr std::uint64_t kDisk = 4u << 20;
  explicit ProgramsBlockTest(ring::MemoryAccess access = {})
      : ProgramsTest(access,
                     "[[device]]\ntype = \"block\"\nqueue_size = 64\n[device.block]\n"
                     "path = \"@TMP@/disk.img\"\nsize = " +
                         std::to_string(kDisk) + "\nnbd_socket = \"@TMP@/blk.sock\"\n") {}

  const host::BlockDriver* blk() const {
    return dynamic_cast<const host::BlockDriver*>(bus->driver(1));
  }

  /// Writes a pattern over the disk (256 KiB writes, 16 in flight, one of 1 MiB + 512 bytes and
  /// one with FUA), reads it all back and compares; "" or what went wrong.
  std::string client_session(const std::string& sock) {
    std::unique_ptr<nbd_handle, decltype(&nbd_close)> h(nbd_create(), &nbd_close);
    if (!h || nbd_connect_unix(h.get(), sock.c_str()) == -1) return nbd_get_error();
    std::vector<std::byte> model(kDisk);
    for (std::size_t i = 0; i < model.size(); ++i)
      model[i] = static_cast<std::byte>((i * 131) ^ (i >> 12));
    constexpr std::size_t kWrite = 256u << 10;
    nbd_completion_callback none{};
    for (std::uint64_t off = 0; off < 3 * (1u << 20); off += kWrite) {
      if (nbd_aio_pwrite(h.get(), model.data() + off, kWrite, off, none, 0) == -1)
        return nbd_get_error();
      while (nbd_aio_in_flight(h.get()) >= 16) {
        if (nbd_poll(h.get(), -1) == -1) return nbd_get_error();
      }
    }
    while (nbd_aio_in_flight(h.get()) > 0) {
      if (nbd_poll(h.get(), -1) == -1) return nbd_get_error();
    }
    const std::uint64_t big = 3u << 20;
    if (nbd_pwrite(h.get(), model.data() + big, (1u << 20) - 4096, big, 0) == -1 ||
        nbd_pwrite(h.get(), model.data() + kDisk - 4096, 4096, kDisk - 4096, LIBNBD_CMD_FLAG_FUA) ==
            -1)
      return nbd_get_error();
    std::vector<std::byte> back(kDisk);
    for (std::uint64_t off = 0; off < kDisk; off += 1u << 20) {
      if (nbd_pread(h.get(), back.data() + off, 1u << 20, off, 0) == -1) return nbd_get_error();
    }
    if (back != model) return "the data read back differs from what was written";
    nbd_shutdown(h.get(), 0);
    return "";
  }

  /// Brings both sides up, runs client_session() while the bus steps.
  void run_client() {
    ASSERT_NO_FATAL_FAILURE(start_server());
    start_bus();
    ASSERT_TRUE(step_until([&] { return blk() != nullptr && driver_ok_on_ep(1); }));
    std::atomic<bool> done{false};
    std::string err = "did not finish";
    std::thread client([&] {
      err = client_session(tmp.path() + "/blk.sock");
      done = true;
    });
    const bool finished = step_until([&] { return done.load(); });
    if (!finished) bus->stop();
    client.join();
    ASSERT_TRUE(finished);
    EXPECT_EQ(err, "");
    // Every buffer is back once the client is gone and nothing is in flight.
    ASSERT_TRUE(step_until([&] { return blk()->free_write_bufs() == blk()->write_bufs(); }));
  }
};

TEST_F(ProgramsBlockTest, NbdWritesAreReceivedStraightIntoLentEpWindowBuffers) {
  ASSERT_NO_FATAL_FAILURE(run_client());
  const auto& st = blk()->stats();
  EXPECT_GT(st.lent_writes, 0u);
  EXPECT_LT(st.lent_writes, 12u + 2u);  // the 1 MiB write takes more than may be lent
  EXPECT_EQ(st.write_bytes, kDisk);
  EXPECT_EQ(st.errors, 0u);
}

class ProgramsBlockDeviceMemoryTest : public ProgramsBlockTest {
 protected:
  ProgramsBlockDeviceMemoryTest() : ProgramsBlockTest({ring::MemoryType::kDevice, {}}) {}
};

TEST_F(ProgramsBlockDeviceMemoryTest, NothingIsLentOnDeviceMemory) {
  ASSERT_NO_FATAL_FAILURE(run_client());
  EXPECT_EQ(blk()->stats().lent_writes, 0u);
  EXPECT_EQ(blk()->stats().write_bytes, kDisk);
}
#endif

}  // namespace
