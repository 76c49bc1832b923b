// Fuzz target: the loopback platform's hello (common/platform/src/loopback.cc), the one message
// each program takes from the other when they meet, with the descriptors it carries
// (SCM_RIGHTS): the peer chooses the bytes, the number of descriptors and what each one is.
//
// Input (missing bytes read as zero):
//   u8 side   bit 0 clear: vepf-ep takes a hostile host's hello (LoopbackEp::accept_peer(conn));
//             set: vepf-host takes a hostile EP's hello (LoopbackHost::connect, the EP played by a
//             thread that accepts, reads the host's hello and answers with the input's)
//   u8 fix    a set bit writes that field right instead of from the input: bit 0 magic, bit 1
//             version, bit 2 role, bit 3 window_size = the size of the first descriptor's memfd
//   16 bytes  the hello (LoopbackHello) as the peer wrote it
//   u8 len    0: the 16 bytes are sent; else len % 40 bytes of them (zero-padded)
//   u8 nfds   % 32 descriptors, each: u8 kind (see make_fd) and u8 size selector
//   u8 after  0: the peer keeps the connection; 1: closes it right after its hello (EP side:
//             before vepf-ep answers); 2: sends its hello twice
//
// Checks (abort on violation):
//   - taken => valid: a hello is taken only when it is exactly 16 bytes with the right magic,
//     version and role, exactly the descriptors the role sends (host 2, EP 2 + kMaxDevices), the
//     first a memfd with F_SEAL_SHRINK whose size is the announced window size (non-zero, a
//     multiple of 8), the others eventfds;
//   - valid => taken (unless the peer closed before vepf-ep could answer);
//   - a taken window is mapped whole: its first and last 8 bytes are written and read back
//     (a window mapped past the end of its memfd would end the process with SIGBUS);
//   - no descriptor leaks: after each input this process has the descriptors it had before.

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fuzz_support.hpp"
#include "vepf/os/unix_socket.hpp"
#include "vepf/platform/loopback.hpp"

namespace vepf::fuzz {
namespace {

using platform::LoopbackHello;
using platform::LoopbackRole;

constexpr std::size_t kEpWindow = 64 * 1024;  // the smallest window a board may have
constexpr std::size_t kHostFds = 2;
constexpr std::size_t kEpFds = 2 + layout::kMaxDevices;
constexpr std::size_t kMaxFds = os::kMaxPassedFds;  // 32: what os::send_with_fds takes

/// What the peer passes: the kinds of descriptor a hostile peer could send.
enum Kind : std::uint8_t {
  kSealedMemfd,    // memfd, F_SEAL_SHRINK | F_SEAL_GROW: the only valid window
  kUnsealedMemfd,  // memfd whose size the peer could still shrink
  kShrunkMemfd,    // sealed memfd one word smaller than its size selector says
  kEventFd,        // the only valid signal
  kPipe,           // read end of a pipe
  kDevNull,        // a character device
  kSocket,         // one end of a socket pair
  kPathFd,         // O_PATH of a directory
  kKinds
};

struct Sent {
  Kind kind;
  std::uint64_t size;  // memfd kinds: what fstat() says
};

std::uint64_t size_of(std::uint8_t sel) {
  static constexpr std::uint64_t kSizes[] = {kEpWindow, 4096, 8, 0, 12, 65544, 1 << 20, 4104};
  return kSizes[sel % std::size(kSizes)];
}

int make_fd(Kind k, std::uint64_t size) {
  switch (k) {
    case kSealedMemfd:
    case kUnsealedMemfd:
    case kShrunkMemfd: {
      const int fd = ::memfd_create("fuzz-window", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
      if (k != kUnsealedMemfd && ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        std::abort();
      return fd;
    }
    case kEventFd:
      return ::eventfd(0, EFD_CLOEXEC);
    case kPipe: {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
      ::close(p[1]);
      return p[0];
    }
    case kDevNull:
      return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    case kSocket: {
      int s[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0) std::abort();
      ::close(s[1]);
      return s[0];
    }
    default:
      return ::open("/tmp", O_PATH | O_CLOEXEC);
  }
}

/// The hostile peer's message, and whether a correct program must take it.
struct Message {
  std::vector<std::byte> bytes;
  std::vector<Sent> fds;
  bool valid = false;
  int after = 0;
};

Message build(ByteReader& in, LoopbackRole from) {
  Message m;
  const std::uint8_t fix = in.u8();
  LoopbackHello h;
  std::byte raw[sizeof h] = {};
  const auto given = in.bytes(sizeof h);
  if (!given.empty()) std::memcpy(raw, given.data(), given.size());
  std::memcpy(&h, raw, sizeof h);
  const std::uint8_t len = in.u8();
  const std::size_t nfds = in.u8() % kMaxFds;
  for (std::size_t i = 0; i < nfds; ++i) {
    const auto kind = static_cast<Kind>(in.u8() % kKinds);
    std::uint64_t size = size_of(in.u8());
    if (kind == kShrunkMemfd) size = size >= 8 ? size - 8 : 0;
    m.fds.push_back({kind, size});
  }
  m.after = in.u8() % 3;
  const bool first_is_memfd = !m.fds.empty() && m.fds[0].kind <= kShrunkMemfd;
  if (fix & 1) h.magic = platform::kLoopbackMagic;
  if (fix & 2) h.version = platform::kLoopbackVersion;
  if (fix & 4) h.role = static_cast<std::uint16_t>(from);
  if ((fix & 8) && first_is_memfd)
    h.window_size = m.fds[0].kind == kShrunkMemfd ? m.fds[0].size + 8 : m.fds[0].size;
  const std::size_t n = len == 0 ? sizeof h : len % 40;
  m.bytes.resize(
      std::max<std::size_t>(n, 1));  // a message of no bytes is no message on SOCK_SEQPACKET
  std::memcpy(m.bytes.data(), &h, std::min(n, sizeof h));
  const std::size_t want_fds = from == LoopbackRole::kEp ? kEpFds : kHostFds;
  bool ok = n == sizeof h && h.magic == platform::kLoopbackMagic &&
            h.version == platform::kLoopbackVersion && h.role == static_cast<std::uint16_t>(from) &&
            m.fds.size() == want_fds && m.fds[0].kind == kSealedMemfd &&
            h.window_size == m.fds[0].size && h.window_size != 0 && h.window_size % 8 == 0 &&
            h.window_size <= platform::kLoopbackMaxWindow;
  for (std::size_t i = 1; ok && i < m.fds.size(); ++i) ok = m.fds[i].kind == kEventFd;
  m.valid = ok;
  return m;
}

/// Sends `m` on `sock` with fresh descriptors of the kinds it names (closed here afterwards).
void send_message(int sock, const Message& m) {
  std::vector<int> fds;
  for (const Sent& f : m.fds) fds.push_back(make_fd(f.kind, f.size));
  for (int i = 0; i < (m.after == 2 ? 2 : 1); ++i) (void)os::send_with_fds(sock, m.bytes, fds);
  for (int fd : fds) ::close(fd);
}

/// The first and last 8 bytes of `w` written and read back (SIGBUS if the mapping ran past its
/// memfd).
void touch(ring::Window& w, std::uint64_t size) {
  FUZZ_CHECK(w.size() == size);
  w.store<std::uint64_t>(0, 0x1122334455667788ull);
  FUZZ_CHECK(w.load<std::uint64_t>(0) == 0x1122334455667788ull);
  w.store<std::uint64_t>(size - 8, 0x8877665544332211ull);  // the same word when size is 8
  FUZZ_CHECK(w.load<std::uint64_t>(size - 8) == 0x8877665544332211ull);
}

std::uint64_t announced(const Message& m) {
  LoopbackHello h;
  std::memcpy(&h, m.bytes.data(), std::min(m.bytes.size(), sizeof h));
  return h.window_size;
}

/// vepf-ep takes the hostile host's hello.
void ep_side(ByteReader& in) {
  static std::unique_ptr<platform::LoopbackEp> ep = [] {
    auto e = platform::LoopbackEp::create(std::string(scratch_dir()) + "/ep.sock", kEpWindow);
    if (!e) std::abort();
    return std::move(*e);
  }();
  const Message m = build(in, LoopbackRole::kHost);
  int s[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) != 0) std::abort();
  send_message(s[0], m);
  if (m.after == 1) ::close(s[0]);
  const auto r = ep->accept_peer(os::Fd(s[1]));
  const bool taken = r.has_value();
  if (verbose())
    std::fprintf(stderr, "ep side: valid %d taken %d (%s)\n", m.valid, taken,
                 taken ? "" : r.error().what);
  FUZZ_EXPECT("taken-implies-valid", !taken || m.valid);
  FUZZ_EXPECT("valid-implies-taken", taken || !m.valid || m.after == 1);
  if (taken) {
    auto w = ep->attach_rc_window(0, announced(m));
    FUZZ_CHECK(w.has_value());
    touch(**w, announced(m));
    ep->detach_rc_window();
    ep->drop_peer();
  }
  if (m.after != 1) ::close(s[0]);
}

/// vepf-host takes the hostile EP's hello.
void host_side(ByteReader& in) {
  static const std::string path = std::string(scratch_dir()) + "/host.sock";
  static const int listener = [] {
    auto l = os::listen_seqpacket(path);
    if (!l) std::abort();
    return l->release();
  }();
  const Message m = build(in, LoopbackRole::kEp);
  std::thread peer([&m] {
    pollfd l{listener, POLLIN, 0};  // the listener is non-blocking: wait for the host's connect
    if (::poll(&l, 1, 5000) != 1) std::abort();
    const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) std::abort();
    std::byte hello[64];
    std::vector<os::Fd> theirs;
    (void)os::recv_with_fds(c, hello, theirs,
                            kHostFds);  // the host's hello; its descriptors closed here
    send_message(c, m);
    if (m.after == 1) {
      ::close(c);
      return;
    }
    // Keep the connection until the host is done with the hello (it closes on failure, or the
    // harness closes it by destroying the host).
    pollfd p{c, POLLIN, 0};
    (void)::poll(&p, 1, 2000);
    ::close(c);
  });
  {
    auto host = platform::LoopbackHost::connect(path, kEpWindow, std::chrono::milliseconds(2000));
    const bool taken = host.has_value();
    if (verbose()) {
      std::fprintf(stderr, "host side: valid %d taken %d (%s)\n", m.valid, taken,
                   taken ? "" : host.error().what);
    }
    FUZZ_EXPECT("taken-implies-valid", !taken || m.valid);
    FUZZ_EXPECT("valid-implies-taken", taken || !m.valid);
    if (taken) touch((*host)->ep_window(), announced(m));
  }  // the host closes its connection: the peer thread returns
  peer.join();
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vepf::fuzz;
  (void)scratch_dir();
  ByteReader in(data, size);
  const bool host = in.u8() & 1;
  const std::size_t before = open_fds();
  if (host) {
    host_side(in);
  } else {
    ep_side(in);
  }
  static bool warmed[2] = {false, false};
  if (warmed[host])
    FUZZ_CHECK(open_fds() == before);  // the first input of a side makes its statics
  warmed[host] = true;
  return 0;
}
