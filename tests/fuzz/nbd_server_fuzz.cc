// Fuzz target: NbdServer (host-driver/src/nbd/nbd_server.cc), the NBD server's socket layer: real
// unix stream connections on an EventLoop, in front of the in-memory export of nbd_fuzz_target.hpp.
// Clients connect, send any bytes in any pieces, read their replies slowly or never, shut down
// their side or vanish, while the export completes at once or later (a completion may come after
// its connection is gone).
//
// Input (missing bytes read as zero):
//   u8 cfg   bit 0: the export completes later; bit 1: read-only; bits 4-5: max_clients 1..4;
//            bit 6: small in-flight budget (8 KiB) per connection
//   then operations until the input ends: u8 opcode % 7 and its arguments:
//     0 connect a client (at most kClients at once here)
//     1 send: u8 client, u16 length % 2048, that many bytes (as many as the socket takes)
//     2 read: u8 client, u16 bytes at most (the client drains its replies that far)
//     3 shutdown(SHUT_WR): u8 client
//     4 close: u8 client
//     5 run the loop: u8 turns % 8
//     6 complete: u8 (bit 0: all, else every other) pending export calls
//   The loop runs one turn after every operation.
//
// Checks (abort on violation): the export's (target-range, target-max-block, target-read-only);
// never more than max_clients connections served; once every client closed and the loop ran,
// none is left; after the server is destroyed (late completions included) this process has the
// descriptors it had before the input, and the socket file is gone.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"
#include "nbd/nbd_server.hpp"
#include "nbd_fuzz_target.hpp"
#include "vepf/os/event_loop.hpp"

namespace vepf::fuzz {
namespace {

namespace fs = std::filesystem;
using host::nbd::NbdServer;

constexpr std::size_t kClients = 6;

int connect_to(const std::string& path) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) std::abort();
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    return -1;  // the backlog is full
  }
  return s;
}

void run(const std::uint8_t* data, std::size_t size) {
  ByteReader in(data, size);
  const std::uint8_t cfg = in.u8();
  const bool deferred = (cfg & 1) != 0;
  NbdServer::Options options;
  options.max_clients = 1 + ((cfg >> 4) & 3);
  options.backlog = 4;
  if ((cfg & 0x40) != 0) options.limits.max_in_flight_bytes = 8u << 10;
  const std::string path = std::string(scratch_dir()) + "/nbd.sock";

  auto target = std::make_unique<FuzzTarget>(deferred, (cfg & 2) != 0);
  auto loop = os::EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  auto server = NbdServer::listen(path, *loop, *target, options);
  FUZZ_CHECK(server.has_value());
  std::array<int, kClients> clients{};
  clients.fill(-1);
  auto close_client = [&](int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  std::byte buf[4096];
  std::size_t ops = 0;
  while (!in.empty()) {
    ++ops;
    switch (in.u8() % 7) {
      case 0:
        for (int& fd : clients) {
          if (fd < 0) {
            fd = connect_to(path);
            break;
          }
        }
        break;
      case 1: {
        int& fd = clients[in.u8() % kClients];
        const auto bytes = in.bytes(in.u16() % 2048);
        if (fd >= 0 && !bytes.empty())
          (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      case 2: {
        int& fd = clients[in.u8() % kClients];
        std::size_t want = in.u16();
        while (fd >= 0 && want > 0) {
          const ssize_t n = ::recv(fd, buf, want < sizeof buf ? want : sizeof buf, MSG_DONTWAIT);
          if (n <= 0) break;
          want -= static_cast<std::size_t>(n);
        }
        break;
      }
      case 3: {
        const int fd = clients[in.u8() % kClients];
        if (fd >= 0) ::shutdown(fd, SHUT_WR);
        break;
      }
      case 4:
        close_client(clients[in.u8() % kClients]);
        break;
      case 5:
        for (unsigned t = in.u8() % 8; t > 0; --t) (void)loop->run_once(0);
        break;
      default:
        target->complete((in.u8() & 1) != 0);
        break;
    }
    (void)loop->run_once(0);
    FUZZ_EXPECT("max-clients", (*server)->clients() <= options.max_clients);
  }
  // Every client goes; the server must notice each and keep none.
  for (int& fd : clients) close_client(fd);
  for (int t = 0; t < 8; ++t) {
    (void)loop->run_once(0);
    target->complete(true);
  }
  FUZZ_EXPECT("clients-gone", (*server)->clients() == 0);
  const auto stats = (*server)->stats();
  if (deferred) target->complete(false);  // half before the server goes, half after
  server->reset();
  target->complete(true);
  FUZZ_EXPECT("lent-given-back", target->all_given_back());
  FUZZ_EXPECT("socket-removed", !fs::exists(path));
  if (verbose()) {
    std::fprintf(stderr,
                 "nbd_server_fuzz: %zu ops, %llu connections, %llu refused, %llu requests, %llu "
                 "protocol errors\n",
                 ops, static_cast<unsigned long long>(stats.connections),
                 static_cast<unsigned long long>(stats.refused),
                 static_cast<unsigned long long>(stats.requests),
                 static_cast<unsigned long long>(stats.protocol_errors));
  }
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::fuzz;
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // refusals are logged
  (void)quiet;
  (void)scratch_dir();
  const std::size_t before = open_fds();
  run(data, size);
  FUZZ_EXPECT("no-descriptor-leak", open_fds() == before);
  return 0;
}
