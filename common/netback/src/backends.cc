// TAP and SOCK_SEQPACKET frame backends.

#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vepf/layout/net.hpp"
#include "vepf/netback/frame_backend.hpp"
#include "vepf/os/acceptor.hpp"
#include "vepf/os/fd.hpp"
#include "vepf/os/tap.hpp"
#include "vepf/os/unix_socket.hpp"

namespace vepf::netback {
namespace {

Result<void> set_hwaddr(const std::string& ifname, const std::array<std::uint8_t, 6>& mac) {
  os::Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return fail(Errc::kSystem, "socket(AF_INET) for SIOCSIFHWADDR", errno);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data(), mac.size());
  if (::ioctl(s.get(), SIOCSIFHWADDR, &ifr) < 0) return fail(Errc::kSystem, "SIOCSIFHWADDR", errno);
  return {};
}

/// Events a backend fd is polled for, from its flow-control state.
std::uint32_t events_for(bool rx_paused, bool tx_wait) {
  return (rx_paused ? 0u : static_cast<std::uint32_t>(EPOLLIN)) |
         (tx_wait ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
}

/// Flow-control state and event dispatch shared by the backends: which events the data fd is
/// polled for follows set_rx_paused()/set_tx_wait().
class PolledBackend : public FrameBackend {
 public:
  explicit PolledBackend(std::string name) : name_(std::move(name)) {}
  void set_rx_paused(bool paused) override {
    if (paused == rx_paused_) return;
    rx_paused_ = paused;
    update();
  }
  void set_tx_wait(bool wait) override {
    if (wait == tx_wait_) return;
    tx_wait_ = wait;
    update();
  }
  const std::string& name() const override { return name_; }

 protected:
  bool tx_waiting() const noexcept { return tx_wait_; }
  const std::function<void()>& writable_cb() const noexcept { return cb_.writable; }
  /// The fd frames travel on, or -1 while there is none.
  virtual int data_fd() const = 0;
  Result<void> watch(int fd) {
    return loop_->add(fd, events_for(rx_paused_, tx_wait_), [this](std::uint32_t ev) {
      if ((ev & EPOLLOUT) && cb_.writable) cb_.writable();
      if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && cb_.readable) cb_.readable();
    });
  }
  /// Stores the callbacks; returns true the first time (the caller registers its fds then).
  bool bind(os::EventLoop& loop, Callbacks cb) {
    cb_ = std::move(cb);
    if (loop_) return false;
    loop_ = &loop;
    return true;
  }
  os::EventLoop* loop_ = nullptr;

 private:
  void update() {
    if (loop_ && data_fd() >= 0) (void)loop_->modify(data_fd(), events_for(rx_paused_, tx_wait_));
  }
  std::string name_;
  Callbacks cb_;
  bool rx_paused_ = false, tx_wait_ = false;
};

class TapBackend final : public PolledBackend {
 public:
  explicit TapBackend(os::Tap tap) : PolledBackend("tap " + tap.name()), tap_(std::move(tap)) {}
  ~TapBackend() override {
    if (loop_) loop_->remove(tap_.fd());
  }

  Result<void> start(os::EventLoop& loop, Callbacks cb) override {
    if (!bind(loop, std::move(cb))) return {};  // already registered: callbacks replaced
    return watch(tap_.fd());
  }
  Result<std::size_t> recv(std::span<std::byte> buf) override { return tap_.read(buf); }
  bool vectored() const override { return true; }
  Result<std::size_t> recvv(std::span<const iovec> iov) override { return tap_.readv(iov); }
  Result<void> sendv(std::span<const iovec> iov) override {
    auto n = tap_.writev(iov);
    if (!n) return tl::unexpected(n.error());
    return {};
  }
  Result<void> send(std::span<const std::byte> frame) override {
    auto n = tap_.write(frame);
    if (!n) return tl::unexpected(n.error());
    return {};
  }
  void set_link(bool up) override { (void)tap_.set_carrier(up); }
  bool carries_offloads() const override { return true; }
  Result<void> set_offload(const layout::NetOffloads& o) override {
    return tap_.set_offload((o.csum ? TUN_F_CSUM : 0u) | (o.tso4 ? TUN_F_TSO4 : 0u) |
                            (o.tso6 ? TUN_F_TSO6 : 0u));
  }

 private:
  int data_fd() const override { return tap_.fd(); }
  os::Tap tap_;
};

/// One listening socket; one client at a time. Messages are bare Ethernet frames (the header
/// is added on recv and stripped on send), or with `vnet_hdr` the header and the frame as a TAP
/// with IFF_VNET_HDR has them. Lossless: without a client (or while it does not read), send()
/// says kNoSpace and the frame waits.
class SeqpacketBackend final : public PolledBackend {
 public:
  SeqpacketBackend(os::Fd listener, const std::string& path, bool vnet_hdr)
      : PolledBackend("seqpacket " + path),
        listener_(std::move(listener)),
        path_(path),
        hdr_(vnet_hdr ? 0 : layout::kNetHdrSize) {}
  ~SeqpacketBackend() override {
    drop_client();
    acceptor_.reset();
    ::unlink(path_.c_str());  // the device is gone: so is its socket
  }

  Result<void> start(os::EventLoop& loop, Callbacks cb) override {
    if (!bind(loop, std::move(cb))) return {};  // already registered: callbacks replaced
    // One client at a time; a second one is closed at once (os::Acceptor: also when out of
    // descriptors, without spinning on the listener).
    os::Acceptor::Handlers h;
    h.open = [this] { return std::size_t{client_.valid() ? 1u : 0u}; };
    h.take = [this](os::Fd c) { take_client(std::move(c)); };
    auto a = os::Acceptor::create(loop, std::move(listener_), 1, std::move(h));
    if (!a) return tl::unexpected(a.error());
    acceptor_ = std::move(*a);
    return {};
  }
  Result<std::size_t> recv(std::span<std::byte> buf) override {
    if (!client_.valid() || buf.size() < layout::kNetHdrSize)
      return fail(Errc::kNoSpace, "no client");
    // hdr_: the bytes of header we add (bare frames) rather than receive (vnet_hdr).
    const ssize_t n =
        ::recv(client_.get(), buf.data() + hdr_, buf.size() - hdr_, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN) return fail(Errc::kNoSpace, "no frame waiting");
      return fail(Errc::kSystem, "recv from seqpacket client", errno);
    }
    if (n == 0) {  // client closed
      drop_client();
      return fail(Errc::kNoSpace, "client closed");
    }
    if (static_cast<std::size_t>(n) > buf.size() - hdr_)
      return fail(Errc::kOutOfRange, "frame larger than the MTU");
    std::memset(buf.data(), 0, hdr_);
    return hdr_ + static_cast<std::size_t>(
                      n);  // with vnet_hdr, maybe shorter than a header: the caller drops it
  }
  Result<void> send(std::span<const std::byte> frame) override {
    // No client yet: hold the frame (lossless backpressure); take_client() resumes the sender.
    if (!client_.valid()) return fail(Errc::kNoSpace, "no client connected yet");
    if (frame.size() < layout::kNetHdrSize)
      return fail(Errc::kInvalidArgument, "frame shorter than its header");
    const ssize_t n = ::send(client_.get(), frame.data() + hdr_, frame.size() - hdr_,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) return fail(Errc::kNoSpace, "client not reading");
      const int e = errno;
      drop_client();
      return fail(Errc::kSystem, "send to seqpacket client", e);
    }
    return {};
  }
  void set_link(bool) override {}
  bool carries_offloads() const override { return hdr_ == 0; }

 private:
  int data_fd() const override { return client_.valid() ? client_.get() : -1; }
  void take_client(os::Fd c) {
    client_ = std::move(c);
    if (!watch(client_.get())) return client_.reset();
    if (tx_waiting() && writable_cb()) writable_cb()();  // frames held for want of a client
  }
  void drop_client() {
    if (!client_.valid()) return;
    if (loop_) loop_->remove(client_.get());
    client_.reset();
  }

  os::Fd listener_;  // until start() hands it to acceptor_
  std::unique_ptr<os::Acceptor> acceptor_;
  os::Fd client_;
  std::string path_;
  std::size_t hdr_;  // 0 with vnet_hdr, else kNetHdrSize
};

}  // namespace

Result<std::size_t> FrameBackend::recvv(std::span<const iovec>) {
  return fail(Errc::kInvalidArgument, "this backend takes no scattered frames (see vectored())");
}

Result<void> FrameBackend::sendv(std::span<const iovec>) {
  return fail(Errc::kInvalidArgument, "this backend takes no gathered frames (see vectored())");
}

Result<std::unique_ptr<FrameBackend>> listen_seqpacket(const std::string& path, bool vnet_hdr) {
  auto l = os::listen_seqpacket(path);
  if (!l) return tl::unexpected(l.error());
  return std::make_unique<SeqpacketBackend>(std::move(*l), path, vnet_hdr);
}

Result<std::unique_ptr<FrameBackend>> open_tap(const std::string& ifname,
                                               const BackendOptions& opt) {
  auto tap = os::Tap::open(ifname, static_cast<int>(layout::kNetHdrSize));
  if (!tap) return tl::unexpected(tap.error());
  if (auto r = tap->set_mtu(opt.mtu); !r) return tl::unexpected(r.error());
  if (opt.mac) {
    if (auto r = set_hwaddr(ifname, *opt.mac); !r) return tl::unexpected(r.error());
  }
  if (auto r = tap->set_carrier(false); !r) return tl::unexpected(r.error());
  if (auto r = tap->set_up(true); !r) return tl::unexpected(r.error());
  return std::make_unique<TapBackend>(std::move(*tap));
}

}  // namespace vepf::netback
