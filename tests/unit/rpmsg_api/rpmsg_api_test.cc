// The C API of vepf/rpmsg.h, as an application uses it: the EP's rpmsg device taken by a
// "service" on one thread, the host's driver by a "client" on the test's thread, over the
// loopback platform. Echo byte for byte with the destination learned from the name service, the
// bind and unbind callbacks, OpenAMP's error codes for what is refused, endpoints that outlive
// an EP restart, and the refusals of vepf_rpmsg_open and vepf_rpmsg_attach. (Attaching to a
// running vepf-ep / vepf-host: tests/integration/rpmsg_attach_test.sh.)

#include "vepf/rpmsg.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/temp_dir.hpp"

namespace {

// The callbacks are C function pointers: what they record lives here. The service's state is
// touched by its thread only until join(); the client's by the test's thread only.
struct Service {
  std::vector<std::pair<std::string, std::uint32_t>> binds;  // peer announcements seen
  unsigned echoed = 0;
};
Service* g_service = nullptr;

struct Client {
  rpmsg_endpoint ept{};
  bool bound = false;
  int unbinds = 0;
  std::vector<std::pair<std::string, std::uint32_t>> binds;
  std::vector<std::string> replies;
};
Client* g_client = nullptr;

int echo_cb(rpmsg_endpoint* ept, void* data, size_t len, uint32_t src, void*) {
  if (rpmsg_sendto(ept, data, static_cast<int>(len), src) == static_cast<int>(len)) {
    ++g_service->echoed;
  }
  return RPMSG_SUCCESS;
}

void service_bind(rpmsg_device*, const char* name, uint32_t dest) {
  g_service->binds.emplace_back(name, dest);
}

int reply_cb(rpmsg_endpoint*, void* data, size_t len, uint32_t, void*) {
  g_client->replies.emplace_back(static_cast<const char*>(data), len);
  return RPMSG_SUCCESS;
}

void client_unbind(rpmsg_endpoint* ept) {
  ++g_client->unbinds;
  g_client->bound = false;
  rpmsg_destroy_ept(ept);
}

void client_bind(rpmsg_device* rdev, const char* name, uint32_t dest) {
  g_client->binds.emplace_back(name, dest);
  if (std::strcmp(name, "echo") != 0 || g_client->bound) return;
  ASSERT_EQ(
      rpmsg_create_ept(&g_client->ept, rdev, name, RPMSG_ADDR_ANY, dest, reply_cb, client_unbind),
      RPMSG_SUCCESS)
      << vepf_rpmsg_last_error();
  g_client->bound = true;
}

int ignore_cb(rpmsg_endpoint*, void*, size_t, uint32_t, void*) { return RPMSG_SUCCESS; }

class RpmsgApi : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir.path().empty());
    board = dir.path() + "/board.toml";
    std::ofstream(board) << "[board]\nname = \"c-api\"\nplatform = \"loopback\"\n"
                         << "[link]\nep_window_size = 4194304\nrc_window_size = 4194304\n"
                         << "[loopback]\nsocket = \"" << dir.path() << "/link.sock\"\n"
                         << "[[device]]\ntype = \"console\"\n[device.console]\nhost_dir = \""
                         << dir.path() << "/console0\"\n[[device.console.port]]\nname = \"p0\"\n"
                         << "backend = \"socket\"\nsocket = \"" << dir.path() << "/c0.sock\"\n"
                         << "[[device]]\ntype = \"rpmsg\"\nqueue_size = 32\n"
                         << "rpmsg = { runtime_dir = \"" << dir.path() << "/rpmsg1\" }\n";
    g_client = &client;
  }
  void TearDown() override {
    stop_service();
    if (host != nullptr) vepf_rpmsg_close(host);
    g_client = nullptr;
  }

  /// The EP: device 1 taken by an echo service named "echo", on its own thread until
  /// stop_service().
  void start_service() {
    service = Service{};
    g_service = &service;
    stop = false;
    opened = 0;
    ep = std::thread([this] {
      rpmsg_device* rdev = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DEVICE, 1, service_bind);
      if (rdev == nullptr) {
        std::lock_guard<std::mutex> l(mu);
        ep_error = vepf_rpmsg_last_error();
        opened = -1;
        return;
      }
      rpmsg_endpoint echo{};
      if (rpmsg_create_ept(&echo, rdev, "echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, echo_cb, nullptr) !=
          RPMSG_SUCCESS) {
        opened = -1;
      } else {
        opened = 1;
        while (!stop && vepf_rpmsg_poll(rdev, 10) == RPMSG_SUCCESS) {
        }
        rpmsg_destroy_ept(&echo);
      }
      vepf_rpmsg_close(rdev);
    });
    while (opened == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(opened, 1) << ep_error;
  }
  void stop_service() {
    stop = true;
    if (ep.joinable()) ep.join();
  }

  /// Polls the host until `done` or 10 s.
  template <class F>
  bool poll_until(F done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      if (vepf_rpmsg_poll(host, 10) != RPMSG_SUCCESS) return false;
    }
    return true;
  }

  /// Sends `text` and waits for its echo.
  void round_trip(const std::string& text) {
    const auto before = client.replies.size();
    ASSERT_EQ(rpmsg_send(&client.ept, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()))
        << vepf_rpmsg_last_error();
    ASSERT_TRUE(poll_until([&] { return client.replies.size() > before; }));
    EXPECT_EQ(client.replies.back(), text);
  }

  vepf::test::TempDir dir{"vepf-rpmsg-api"};
  std::string board;
  Service service;
  Client client;
  std::thread ep;
  std::atomic<bool> stop{false};
  std::atomic<int> opened{0};
  std::mutex mu;
  std::string ep_error;
  rpmsg_device* host = nullptr;
};

TEST_F(RpmsgApi, EchoThroughBothSidesWithTheNameService) {
  ASSERT_NO_FATAL_FAILURE(start_service());
  host = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DRIVER, 1, client_bind);
  ASSERT_NE(host, nullptr) << vepf_rpmsg_last_error();
  ASSERT_TRUE(poll_until([&] { return client.bound; })) << "no announcement of \"echo\"";
  EXPECT_TRUE(vepf_rpmsg_link_up(host));
  EXPECT_TRUE(is_rpmsg_ept_ready(&client.ept));
  EXPECT_GE(client.ept.addr, RPMSG_RESERVED_ADDRESSES);
  EXPECT_STREQ(client.ept.name, "echo");
  EXPECT_EQ(rpmsg_get_tx_buffer_size(&client.ept), 496);
  EXPECT_GE(vepf_rpmsg_fd(host), 0);

  ASSERT_NO_FATAL_FAILURE(round_trip("hello"));
  ASSERT_NO_FATAL_FAILURE(round_trip(std::string(496, 'x')));
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  ASSERT_NO_FATAL_FAILURE(round_trip(all.substr(0, 256)));
  // A burst larger than the queue: rpmsg_send waits for room, nothing is lost or reordered.
  const auto before = client.replies.size();
  for (int i = 0; i < 200; ++i) {
    const std::string m = "burst " + std::to_string(i);
    ASSERT_EQ(rpmsg_send(&client.ept, m.data(), static_cast<int>(m.size())),
              static_cast<int>(m.size()))
        << vepf_rpmsg_last_error();
  }
  ASSERT_TRUE(poll_until([&] { return client.replies.size() == before + 200; }));
  for (int i = 0; i < 200; ++i) EXPECT_EQ(client.replies[before + i], "burst " + std::to_string(i));
  // The service's endpoint was found by its announcement, not announced back: the EP saw none.
  stop_service();
  EXPECT_TRUE(service.binds.empty());
  EXPECT_EQ(service.echoed, client.replies.size());
}

TEST_F(RpmsgApi, RefusalsCarryOpenAmpErrorCodes) {
  ASSERT_NO_FATAL_FAILURE(start_service());
  host = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DRIVER, 1, client_bind);
  ASSERT_NE(host, nullptr) << vepf_rpmsg_last_error();
  ASSERT_TRUE(poll_until([&] { return client.bound; }));

  rpmsg_endpoint e{};
  EXPECT_EQ(rpmsg_create_ept(&e, host, "x", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, nullptr, nullptr),
            RPMSG_ERR_PARAM);
  EXPECT_EQ(
      rpmsg_create_ept(nullptr, host, "x", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, ignore_cb, nullptr),
      RPMSG_ERR_PARAM);
  EXPECT_EQ(rpmsg_create_ept(&e, host, std::string(32, 'a').c_str(), RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
                             ignore_cb, nullptr),
            RPMSG_ERR_PARAM);
  EXPECT_EQ(
      rpmsg_create_ept(&e, host, "bad name", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, ignore_cb, nullptr),
      RPMSG_ERR_PARAM);
  EXPECT_NE(std::string(vepf_rpmsg_last_error()), "");
  EXPECT_EQ(rpmsg_create_ept(&e, host, "echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, ignore_cb, nullptr),
            RPMSG_ERR_ADDR);  // the name has an endpoint
  EXPECT_EQ(
      rpmsg_create_ept(&e, host, nullptr, client.ept.addr, RPMSG_ADDR_ANY, ignore_cb, nullptr),
      RPMSG_ERR_ADDR);  // so has the address

  // An unnamed endpoint with nowhere to send yet.
  ASSERT_EQ(rpmsg_create_ept(&e, host, nullptr, 3000, RPMSG_ADDR_ANY, ignore_cb, nullptr),
            RPMSG_SUCCESS);
  EXPECT_EQ(e.addr, 3000u);
  EXPECT_FALSE(is_rpmsg_ept_ready(&e));
  EXPECT_EQ(rpmsg_send(&e, "x", 1), RPMSG_ERR_ADDR);
  EXPECT_EQ(rpmsg_trysend(&e, "x", 1), RPMSG_ERR_ADDR);
  const std::string big(497, 'b');
  EXPECT_EQ(rpmsg_sendto(&e, big.data(), 497, client.ept.dest_addr), RPMSG_ERR_BUFF_SIZE);
  EXPECT_EQ(rpmsg_sendto(&e, nullptr, 4, client.ept.dest_addr), RPMSG_ERR_PARAM);
  EXPECT_EQ(rpmsg_sendto(&e, "x", -1, client.ept.dest_addr), RPMSG_ERR_PARAM);
  EXPECT_EQ(rpmsg_sendto(&e, "x", 1, RPMSG_NS_EPT_ADDR), RPMSG_ERR_PARAM);
  rpmsg_destroy_ept(&e);
  EXPECT_EQ(e.rdev, nullptr);
  EXPECT_EQ(rpmsg_sendto(&e, "x", 1, client.ept.dest_addr), RPMSG_ERR_PARAM);  // destroyed
  rpmsg_destroy_ept(&e);  // twice: nothing happens
  EXPECT_EQ(rpmsg_send(nullptr, "x", 1), RPMSG_ERR_PARAM);
  EXPECT_EQ(vepf_rpmsg_poll(nullptr, 0), RPMSG_ERR_PARAM);
  // Still serving.
  ASSERT_NO_FATAL_FAILURE(round_trip("after the refusals"));
}

TEST_F(RpmsgApi, EndpointsOutliveAnEpRestart) {
  ASSERT_NO_FATAL_FAILURE(start_service());
  host = vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DRIVER, 1, client_bind);
  ASSERT_NE(host, nullptr) << vepf_rpmsg_last_error();
  // A named host endpoint with no destination: announced to the EP (its bind callback).
  rpmsg_endpoint mine{};
  ASSERT_EQ(
      rpmsg_create_ept(&mine, host, "host-svc", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, ignore_cb, nullptr),
      RPMSG_SUCCESS);
  ASSERT_TRUE(poll_until([&] { return client.bound; }));
  ASSERT_NO_FATAL_FAILURE(round_trip("before"));

  // The EP goes: the endpoint bound to its service is unbound (and destroys itself); ours stays.
  stop_service();
  ASSERT_TRUE(poll_until([&] { return client.unbinds == 1; }));
  EXPECT_FALSE(client.bound);
  EXPECT_EQ(mine.rdev, host);

  // A new EP: "echo" is announced again and bound again; "host-svc" is announced to it.
  client.binds.clear();
  ASSERT_NO_FATAL_FAILURE(start_service());
  ASSERT_TRUE(poll_until([&] { return client.bound; }));
  ASSERT_NO_FATAL_FAILURE(round_trip("after"));
  stop_service();
  ASSERT_EQ(service.binds.size(), 1u);
  EXPECT_EQ(service.binds[0].first, "host-svc");
  EXPECT_EQ(service.binds[0].second, mine.addr);
  rpmsg_destroy_ept(&mine);
}

TEST_F(RpmsgApi, OpenRefusesWhatIsNotAnRpmsgDevice) {
  EXPECT_EQ(vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DEVICE, 0, nullptr), nullptr);
  EXPECT_NE(std::string(vepf_rpmsg_last_error()).find("not an rpmsg device"), std::string::npos)
      << vepf_rpmsg_last_error();
  EXPECT_EQ(vepf_rpmsg_open(board.c_str(), VEPF_RPMSG_DEVICE, 7, nullptr), nullptr);
  EXPECT_EQ(vepf_rpmsg_open((dir.path() + "/none.toml").c_str(), VEPF_RPMSG_DRIVER, 1, nullptr),
            nullptr);
  EXPECT_NE(std::string(vepf_rpmsg_last_error()), "");
  EXPECT_EQ(vepf_rpmsg_open(nullptr, VEPF_RPMSG_DRIVER, 1, nullptr), nullptr);
}

TEST_F(RpmsgApi, AttachRefusesADeviceItsProgramServesAsChannels) {
  // Device 1 has no ep_serve / host_serve: vepf-ep and vepf-host serve it as socket channels.
  EXPECT_EQ(vepf_rpmsg_attach(board.c_str(), VEPF_RPMSG_DRIVER, 1, nullptr), nullptr);
  const std::string host_error = vepf_rpmsg_last_error();
  EXPECT_NE(host_error.find("device[1].rpmsg.host_serve is \"channels\""), std::string::npos)
      << host_error;
  EXPECT_NE(host_error.find("Set host_serve = \"application\""), std::string::npos) << host_error;
  EXPECT_EQ(vepf_rpmsg_attach(board.c_str(), VEPF_RPMSG_DEVICE, 1, nullptr), nullptr);
  EXPECT_NE(std::string(vepf_rpmsg_last_error()).find("ep_serve"), std::string::npos);
  EXPECT_EQ(vepf_rpmsg_attach(board.c_str(), VEPF_RPMSG_DRIVER, 0, nullptr), nullptr);
  EXPECT_NE(std::string(vepf_rpmsg_last_error()).find("not an rpmsg device"), std::string::npos);
}

}  // namespace
