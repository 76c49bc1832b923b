// The C API attached to a running vepf-ep or vepf-host that lends it one rpmsg device
// ([device.rpmsg] ep_serve / host_serve = "application"): the program keeps the link and its other
// devices; this device's rpmsgs come and go as frames on <runtime_dir>/{ep,host}/device.sock
// (rpmsg::Relay, relay.hpp), and the application's endpoints run here as they would in-process.
#include <sys/epoll.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device.hpp"
#include "vepf/os/seqpacket_batch.hpp"
#include "vepf/os/unix_socket.hpp"
#include "vepf/rpmsg/relay.hpp"

namespace vepf::rpmsg_api {
namespace {

using Clock = std::chrono::steady_clock;

/// How long attaching waits for the program's socket and its first frame, and how long a
/// device whose program went is waited for before it is gone: vepf-host's connect timeout.
constexpr std::chrono::milliseconds kConnectTimeout{30000};
/// How often a lost program's socket is tried again.
constexpr std::chrono::milliseconds kRetry{100};
/// How long attaching asks again when the program says another application has the device.
constexpr std::chrono::milliseconds kTakenGrace{1000};
/// Frames that may wait for the program's socket: as the sides' own transmit queues.
constexpr std::size_t kMaxOut = 256;
/// Frames handled per readable event before the loop runs again.
constexpr int kBudget = 256;

class DaemonSide final : public Side, private rpmsg::Port {
 public:
  DaemonSide(std::unique_ptr<config::BoardConfig> cfg, std::uint32_t index, rpmsg_ns_bind_cb bind,
             std::string path)
      : Side(std::move(cfg), index, bind), path_(std::move(path)) {}
  ~DaemonSide() override {
    router_.reset();  // the endpoints see the link go
    close_socket();
    if (retry_timer_ >= 0) loop_.remove(retry_timer_);
  }
  DaemonSide(const DaemonSide&) = delete;
  DaemonSide& operator=(const DaemonSide&) = delete;

 private:
  bool start() override {
    const auto begin = Clock::now();
    const auto deadline = begin + kConnectTimeout;
    for (;;) {
      auto s = os::connect_seqpacket(path_);
      if (!s) {
        const std::string why =
            s.error().sys_errno != 0 ? std::strerror(s.error().sys_errno) : s.error().what;
        if (Clock::now() >= deadline) {
          set_error("no program lends an rpmsg device on " + path_ + " (" + why +
                    "): start vepf-ep or vepf-host with this board config");
          return false;
        }
        std::this_thread::sleep_for(kRetry);
        continue;
      }
      attach(std::move(*s));
      // Attached once the program has said how the link is (or that the device is taken).
      while (!greeted_ && sock_.valid() && Clock::now() < deadline) (void)loop_.run_once(50);
      if (greeted_) return true;
      if (!refused_.empty() && Clock::now() - begin < kTakenGrace) {
        // The application before us may be gone with the program not yet aware of it (a
        // restart right after a crash): ask again for a moment.
        refused_.clear();
        gone_ = false;
        std::this_thread::sleep_for(kRetry);
        continue;
      }
      set_error(refused_.empty() ? "the program on " + path_ + " did not answer" : refused_);
      return false;
    }
  }

  bool run(int timeout_ms) override {
    if (gone_) return false;
    if (!loop_.run_once(timeout_ms)) return false;
    return !gone_;
  }

  // Port
  bool can_send() override { return up_ && out_.size() < kMaxOut; }
  std::size_t send_room() override { return can_send() ? kMaxOut - out_.size() : 0; }
  void send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload) override {
    std::vector<std::byte> f(1 + layout::kRpmsgHdrSize + payload.size());
    f[0] = static_cast<std::byte>(rpmsg::RelayFrame::kMessage);
    (void)rpmsg::encode(std::span{f}.subspan(1), src, dst, payload);
    out_.push_back(std::move(f));
  }
  void flush() override { flush_out(); }

  void attach(os::Fd s) {
    const int fd = s.get();
    if (!loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this](std::uint32_t ev) { on_socket(ev); })) {
      return;
    }
    sock_ = std::move(s);
    if (retry_timer_ >= 0) {
      loop_.remove(retry_timer_);
      retry_timer_ = -1;
    }
    router_ = endpoints.attachment()(*this);
  }

  void close_socket() {
    if (!sock_.valid()) return;
    loop_.remove(sock_.get());
    sock_.reset();
    up_ = blocked_ = false;
    out_.clear();
  }

  /// The program closed the connection (it stopped, or refused us): the endpoints see the link
  /// go, and the socket is tried again every kRetry until kConnectTimeout has passed.
  void lost() {
    router_.reset();
    close_socket();
    if (!refused_.empty()) {
      gone_ = true;
      return;
    }
    lost_at_ = Clock::now();
    auto t = loop_.add_timer(kRetry, [this] { retry(); });
    retry_timer_ = t ? *t : -1;
    if (!t) gone_ = true;
  }

  void retry() {
    if (auto s = os::connect_seqpacket(path_); s) {
      attach(std::move(*s));
    } else if (Clock::now() - lost_at_ >= kConnectTimeout) {
      gone_ = true;
    }
  }

  void flush_out() {
    if (!sock_.valid()) return;
    const auto r = os::send_queued(sock_.get(), out_);
    if (r.blocked == blocked_) return;
    blocked_ = r.blocked;
    (void)loop_.modify(
        sock_.get(), EPOLLIN | EPOLLRDHUP | (blocked_ ? static_cast<std::uint32_t>(EPOLLOUT) : 0u));
  }

  void on_socket(std::uint32_t events) {
    if ((events & EPOLLOUT) && blocked_) {
      flush_out();
      if (router_ && can_send()) router_->resume();
    }
    if (!sock_.valid()) return;
    if (events & EPOLLIN) {
      read();
    } else if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      lost();
    }
  }

  void read() {
    for (int budget = kBudget; budget > 0;) {
      const auto got = recv_.recv(sock_.get(), os::kBatch);
      if (!got) return lost();
      if (*got == 0) break;
      budget -= static_cast<int>(*got);
      for (std::size_t i = 0; i < *got; ++i) {
        if (!frame(recv_.message(i), recv_.truncated(i))) return lost();
      }
      if (router_) router_->flush_received();
      if (*got < os::kBatch) break;
    }
  }

  /// One frame from the program. False when the connection must close.
  bool frame(std::span<const std::byte> f, bool truncated) {
    if (f.empty() || truncated || !router_) return false;  // empty: the end of the connection
    switch (static_cast<rpmsg::RelayFrame>(f[0])) {
      case rpmsg::RelayFrame::kMessage:
        router_->on_message(f.subspan(1));
        return true;
      case rpmsg::RelayFrame::kLinkUp:
        if (f.size() < 2) return false;
        greeted_ = up_ = true;
        router_->link_up(f[1] != std::byte{0});
        return true;
      case rpmsg::RelayFrame::kLinkDown:
        greeted_ = true;
        up_ = false;
        out_.clear();  // for the link that went
        router_->link_down();
        return true;
      case rpmsg::RelayFrame::kTaken:
        refused_ = "another application has the rpmsg device lent on " + path_;
        return false;
    }
    return false;
  }

  std::string path_;
  os::Fd sock_;
  std::unique_ptr<rpmsg::Router> router_;  // attaches the endpoints to this Port
  std::deque<std::vector<std::byte>> out_;
  os::RecvBatch recv_{rpmsg::kRelayMaxFrame + 1};
  int retry_timer_ = -1;
  Clock::time_point lost_at_{};
  std::string refused_;   // why the program refused us (kTaken)
  bool greeted_ = false;  // the program's first frame came
  bool up_ = false;
  bool blocked_ = false;  // the socket was full: EPOLLOUT watched
  bool gone_ = false;
};

}  // namespace

std::unique_ptr<rpmsg_device> attach_side(std::unique_ptr<config::BoardConfig> cfg,
                                          std::uint32_t index, rpmsg_ns_bind_cb bind,
                                          std::string path) {
  auto d = std::make_unique<DaemonSide>(std::move(cfg), index, bind, std::move(path));
  if (!d->open()) return nullptr;
  return d;
}

}  // namespace vepf::rpmsg_api
