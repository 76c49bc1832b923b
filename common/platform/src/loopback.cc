#include "vepf/platform/loopback.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "vepf/layout/epf.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::platform {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kConnectRetry{50};
constexpr std::size_t kHostHelloFds = 2;                      // RC window, interrupt
constexpr std::size_t kEpHelloFds = 2 + layout::kMaxDevices;  // EP window, doorbells

/// Milliseconds left until `deadline`, for poll() (0 once it passed).
int ms_left(Clock::time_point deadline) noexcept {
  const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, INT32_MAX));
}

/// Sizes of windows either side creates or accepts: whole 8-byte words (device-memory copies
/// work in aligned containers of up to 8 bytes: LAYOUT.md §7).
bool window_size_ok(std::uint64_t size) noexcept {
  return size != 0 && size <= kLoopbackMaxWindow && size % 8 == 0;
}

/// Sends our hello, passing the window's memfd and our signals' eventfds.
Result<void> send_hello(int sock, LoopbackRole role, const os::SharedMemory& window,
                        std::span<const int> signals) {
  LoopbackHello hello;
  hello.role = static_cast<std::uint16_t>(role);
  hello.window_size = window.size();
  std::vector<int> fds{window.fd()};
  fds.insert(fds.end(), signals.begin(), signals.end());
  return os::send_with_fds(sock, std::as_bytes(std::span{&hello, 1}), fds);
}

/// What a peer's hello brings: a window memfd of `window_size` bytes and its eventfds.
struct PeerHello {
  std::uint64_t window_size = 0;
  os::Fd mem;
  std::vector<os::Fd> events;
};

/// Waits up to `timeout` for the peer's hello and validates it (everything in it is peer input).
Result<PeerHello> recv_hello(int sock, LoopbackRole from, milliseconds timeout) {
  const std::size_t want_fds = from == LoopbackRole::kEp ? kEpHelloFds : kHostHelloFds;
  auto ready = os::poll_one(sock, POLLIN, timeout);
  if (!ready) return tl::unexpected(ready.error());
  if (*ready == 0) return fail(Errc::kTimeout, "no hello from the peer in time");
  LoopbackHello hello;
  std::vector<os::Fd> fds;
  auto n = os::recv_with_fds(sock, std::as_writable_bytes(std::span{&hello, 1}), fds, want_fds);
  if (!n) return tl::unexpected(n.error());
  if (*n == 0) return fail(Errc::kLinkDown, "peer closed the connection before its hello");
  if (*n != sizeof hello) return fail(Errc::kBadLayout, "hello has the wrong size");
  if (hello.magic != kLoopbackMagic) return fail(Errc::kBadLayout, "hello has a bad magic");
  if (hello.version != kLoopbackVersion)
    return fail(Errc::kBadLayout, "hello has an unknown version");
  if (hello.role != static_cast<std::uint16_t>(from))
    return fail(Errc::kBadLayout, "hello from the wrong role");
  if (fds.size() != want_fds) {
    return fail(Errc::kBadLayout, from == LoopbackRole::kEp
                                      ? "EP hello must carry its window and every doorbell"
                                      : "host hello must carry two descriptors");
  }
  if (!window_size_ok(hello.window_size))
    return fail(Errc::kOutOfRange, "hello announces a bad window size");
  PeerHello h{hello.window_size, std::move(fds[0]), {}};
  for (std::size_t i = 1; i < fds.size(); ++i) h.events.push_back(std::move(fds[i]));
  return h;
}

/// Connects to the EP, retrying while its socket is missing (ENOENT), stale (ECONNREFUSED)
/// or its backlog full (EAGAIN), until `deadline`.
Result<os::Fd> connect_retrying(const std::string& path, Clock::time_point deadline) {
  for (;;) {
    auto sock = os::connect_seqpacket(path);
    if (sock) return sock;
    const int e = sock.error().sys_errno;
    const bool retry =
        sock.error().code == Errc::kSystem && (e == ENOENT || e == ECONNREFUSED || e == EAGAIN);
    if (!retry) return sock;
    const auto now = Clock::now();
    if (now >= deadline) return fail(Errc::kTimeout, "no EP listening on the loopback socket", e);
    std::this_thread::sleep_for(std::min<Clock::duration>(kConnectRetry, deadline - now));
  }
}

}  // namespace

// ---- EP side ----

LoopbackEp::LoopbackEp(os::SharedMemory ep_mem, os::EventFd doorbell,
                       DeviceDoorbells device_doorbells, os::Fd listen,
                       ring::MemoryAccess access) noexcept
    : ep_mem_(std::move(ep_mem)),
      doorbell_(std::move(doorbell)),
      device_doorbells_(std::move(device_doorbells)),
      listen_(std::move(listen)),
      access_(access),
      ep_window_(layout::WindowId::kEp, ep_mem_.bytes(), nullptr, access) {}

Result<std::unique_ptr<LoopbackEp>> LoopbackEp::create(const std::string& socket_path,
                                                       std::size_t ep_window_size,
                                                       ring::MemoryAccess access) {
  if (!window_size_ok(ep_window_size)) return fail(Errc::kInvalidArgument, "bad EP window size");
  auto mem = os::SharedMemory::create("vepf-ep-window", ep_window_size);
  if (!mem) return tl::unexpected(mem.error());
  auto doorbell = os::EventFd::create();
  if (!doorbell) return tl::unexpected(doorbell.error());
  DeviceDoorbells device_doorbells;
  for (auto& d : device_doorbells) {
    auto e = os::EventFd::create();
    if (!e) return tl::unexpected(e.error());
    d = std::move(*e);
  }
  auto listen = os::listen_seqpacket(socket_path);
  if (!listen) return tl::unexpected(listen.error());
  return std::unique_ptr<LoopbackEp>(new LoopbackEp(std::move(*mem), std::move(*doorbell),
                                                    std::move(device_doorbells), std::move(*listen),
                                                    access));
}

Result<void> LoopbackEp::accept_peer() {
  auto conn = os::accept_seqpacket(listen_.get());
  if (!conn) return tl::unexpected(conn.error());
  return accept_peer(std::move(*conn));
}

Result<void> LoopbackEp::accept_peer(os::Fd conn) {
  // One host per link, as one RC per PCIe function: the newcomer is closed here.
  if (peer_.valid()) return fail(Errc::kRejected, "a host is already connected");
  return handshake(std::move(conn));
}

Result<void> LoopbackEp::handshake(os::Fd conn) {
  auto hello = recv_hello(conn.get(), LoopbackRole::kHost, kLoopbackHelloTimeout);
  if (!hello) return tl::unexpected(hello.error());
  auto rc_mem = os::SharedMemory::map(std::move(hello->mem), hello->window_size);
  if (!rc_mem) return tl::unexpected(rc_mem.error());
  auto interrupt = os::EventFd::adopt(std::move(hello->events[0]));
  if (!interrupt) return tl::unexpected(interrupt.error());
  std::vector<int> signals{doorbell_.fd()};
  for (const auto& d : device_doorbells_) signals.push_back(d.fd());
  auto sent = send_hello(conn.get(), LoopbackRole::kEp, ep_mem_, signals);
  if (!sent) return sent;
  // Commit only after the whole exchange worked: on any error above, conn and the received
  // descriptors are closed by their owners and the host sees EOF.
  peer_ = std::move(conn);
  rc_mem_ = std::move(*rc_mem);
  interrupt_ = std::move(*interrupt);
  rc_window_ = ring::Window{};
  return {};
}

void LoopbackEp::drop_peer() noexcept {
  peer_.reset();
  interrupt_ = os::EventFd{};
  detach_rc_window();
  rc_mem_ = os::SharedMemory{};
}

Result<std::uint64_t> LoopbackEp::drain_doorbell() {
  auto n = doorbell_.drain();
  if (n && *n > 0) ++counters_.signals_received;
  return n;
}

Result<std::uint64_t> LoopbackEp::drain_device_doorbell(std::uint32_t slot) {
  auto n = device_doorbells_[slot].drain();
  if (n && *n > 0) ++counters_.signals_received;
  return n;
}

Result<ring::Window*> LoopbackEp::attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) {
  if (!peer_.valid()) return fail(Errc::kLinkDown, "no host connected");
  if (bus_addr != 0 || size != rc_mem_.size()) {
    return fail(Errc::kOutOfRange,
                "RC window is not the host's loopback window (bus address 0, its size)");
  }
  rc_window_ = ring::Window(layout::WindowId::kRc, rc_mem_.bytes(), &counters_, access_);
  return &rc_window_;
}

Result<void> LoopbackEp::raise_interrupt() {
  if (!peer_.valid()) return fail(Errc::kLinkDown, "no host connected");
  auto r = interrupt_.signal();
  if (!r) return r;
  ++counters_.signals_sent;
  return {};
}

// ---- host side ----

LoopbackHost::LoopbackHost(os::SharedMemory rc_mem, os::EventFd interrupt, os::Fd peer,
                           os::SharedMemory ep_mem, os::EventFd doorbell,
                           DeviceDoorbells device_doorbells, ring::MemoryAccess access) noexcept
    : rc_mem_(std::move(rc_mem)),
      interrupt_(std::move(interrupt)),
      peer_(std::move(peer)),
      ep_mem_(std::move(ep_mem)),
      doorbell_(std::move(doorbell)),
      device_doorbells_(std::move(device_doorbells)),
      ep_window_(layout::WindowId::kEp, ep_mem_.bytes(), &counters_, access),
      rc_window_(layout::WindowId::kRc, rc_mem_.bytes(), nullptr, access) {}

Result<std::unique_ptr<LoopbackHost>> LoopbackHost::connect(const std::string& socket_path,
                                                            std::size_t rc_window_size,
                                                            milliseconds timeout,
                                                            ring::MemoryAccess access) {
  if (!window_size_ok(rc_window_size)) return fail(Errc::kInvalidArgument, "bad RC window size");
  const auto deadline = Clock::now() + timeout;
  auto rc_mem = os::SharedMemory::create("vepf-rc-window", rc_window_size);
  if (!rc_mem) return tl::unexpected(rc_mem.error());
  auto interrupt = os::EventFd::create();
  if (!interrupt) return tl::unexpected(interrupt.error());
  auto sock = connect_retrying(socket_path, deadline);
  if (!sock) return tl::unexpected(sock.error());
  const int interrupt_fd = interrupt->fd();
  auto sent = send_hello(sock->get(), LoopbackRole::kHost, *rc_mem, std::span{&interrupt_fd, 1});
  if (!sent) return tl::unexpected(sent.error());
  auto hello = recv_hello(sock->get(), LoopbackRole::kEp, milliseconds{ms_left(deadline)});
  if (!hello) return tl::unexpected(hello.error());
  auto ep_mem = os::SharedMemory::map(std::move(hello->mem), hello->window_size);
  if (!ep_mem) return tl::unexpected(ep_mem.error());
  auto doorbell = os::EventFd::adopt(std::move(hello->events[0]));
  if (!doorbell) return tl::unexpected(doorbell.error());
  DeviceDoorbells device_doorbells;
  for (std::size_t i = 0; i < device_doorbells.size(); ++i) {
    auto d = os::EventFd::adopt(std::move(hello->events[1 + i]));
    if (!d) return tl::unexpected(d.error());
    device_doorbells[i] = std::move(*d);
  }
  return std::unique_ptr<LoopbackHost>(new LoopbackHost(
      std::move(*rc_mem), std::move(*interrupt), std::move(*sock), std::move(*ep_mem),
      std::move(*doorbell), std::move(device_doorbells), access));
}

Result<void> LoopbackHost::ring_doorbell() {
  auto r = doorbell_.signal();
  if (!r) return r;
  ++counters_.signals_sent;
  return {};
}

Result<void> LoopbackHost::ring_device_doorbell(std::uint32_t slot) {
  if (slot >= device_doorbells_.size()) return ring_doorbell();
  auto r = device_doorbells_[slot].signal();
  if (!r) return r;
  ++counters_.signals_sent;
  return {};
}

Result<std::uint64_t> LoopbackHost::drain_interrupt() {
  auto n = interrupt_.drain();
  if (n && *n > 0) ++counters_.signals_received;
  return n;
}

Result<bool> LoopbackHost::wait_interrupt(milliseconds timeout) {
  const bool forever = timeout.count() < 0;
  const auto deadline = Clock::now() + (forever ? milliseconds{0} : timeout);
  for (;;) {
    // The EP sends nothing after its hello: any event on the connection means it went away.
    std::array<pollfd, 2> p{{{peer_.get(), POLLIN, 0}, {interrupt_.fd(), POLLIN, 0}}};
    const int n = ::poll(p.data(), p.size(), forever ? -1 : ms_left(deadline));
    if (n < 0 && errno != EINTR)
      return fail(Errc::kSystem, "poll on interrupt and connection", errno);
    if (n > 0 && p[0].revents != 0)
      return fail(Errc::kLinkDown, "EP closed the loopback connection");
    if (n > 0 && (p[1].revents & (POLLERR | POLLNVAL)))
      return fail(Errc::kSystem, "poll on interrupt eventfd", EBADF);
    if (n > 0 && (p[1].revents & POLLIN)) {
      auto got = drain_interrupt();
      if (!got) return tl::unexpected(got.error());
      if (*got > 0) return true;  // 0: another reader drained it first; keep waiting
    }
    if (n == 0 || (!forever && Clock::now() >= deadline)) return false;
  }
}

}  // namespace vepf::platform
