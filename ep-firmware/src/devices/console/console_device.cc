#include "devices/console/console_device.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vepf/os/unix_socket.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::ep {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 64;  // chains per queue per call
constexpr std::size_t kMaxPending =
    64 * 1024;  // bytes read from a backend before the driver took them
constexpr std::uint64_t kMaxChain = 64 * 1024;  // largest transmit chain accepted, bytes
constexpr std::uint64_t kMaxControl = 4096;     // largest control chain accepted, bytes
constexpr auto kSizePoll = std::chrono::milliseconds(250);
constexpr auto kRespawnDelay = std::chrono::seconds(1);
auto log() { return spdlog::get("ep.console"); }

std::string errno_text(const Error& e) {
  return e.sys_errno ? std::string(e.what) + ": " + std::strerror(e.sys_errno)
                     : std::string(e.what);
}
}  // namespace

int ConsoleDevice::Port::io_fd() const noexcept {
  if (cfg.backend == config::ConsoleBackend::kSocket) return conn.get();
  return attached ? pty.master.get() : -1;
}

ConsoleDevice::ConsoleDevice(config::ConsoleConfig cfg, std::uint16_t queue_size)
    : cfg_(std::move(cfg)), queue_size_(queue_size), max_control_queued_(cfg_.max_control_queued) {
  for (std::size_t i = 0; i < cfg_.ports.size(); ++i) {
    auto p = std::make_unique<Port>();
    p->cfg = cfg_.ports[i];
    p->id = static_cast<std::uint32_t>(i);
    ports_.push_back(std::move(p));
  }
  space_.max_nr_ports = layout::le32::from_cpu(static_cast<std::uint32_t>(ports_.size()));
}

ConsoleDevice::~ConsoleDevice() {
  if (loop_ == nullptr) return;
  if (size_timer_ >= 0) loop_->remove(size_timer_);
  for (auto& p : ports_) {
    if (p->respawn_timer >= 0) loop_->remove(p->respawn_timer);
    if (p->child.pidfd.valid()) loop_->remove(p->child.pidfd.get());
    os::terminate(p->child, 200);
    for (int fd : {p->pty.master.get(), p->conn.get()}) {
      if (fd >= 0) loop_->remove(fd);
    }
    if (p->cfg.backend == config::ConsoleBackend::kPty)
      os::remove_symlink(p->pty.slave_path, p->cfg.link);
    if (p->listen) {
      p->listen.reset();
      ::unlink(p->cfg.socket.c_str());
    }
  }
}

Result<void> ConsoleDevice::start(os::EventLoop& loop) {
  loop_ = &loop;
  for (auto& p : ports_) {
    if (auto r = open_port(*p); !r) return r;
  }
  auto t = loop.add_timer(kSizePoll, [this] { poll_sizes(); });
  if (!t) return tl::unexpected(t.error());
  size_timer_ = *t;
  return {};
}

Result<void> ConsoleDevice::open_port(Port& p) {
  switch (p.cfg.backend) {
    case config::ConsoleBackend::kPty: {
      auto pty = os::open_pty(/*raw=*/true, /*hold_slave=*/true);
      if (!pty) return tl::unexpected(pty.error());
      p.pty = std::move(*pty);
      if (auto r = os::replace_symlink(p.pty.slave_path, p.cfg.link); !r) return r;
      if (auto ws = os::get_winsize(p.pty.master.get())) p.size = *ws;
      p.attached = true;
      if (auto r = loop_->add(p.pty.master.get(), 0,
                              [this, pp = &p](std::uint32_t ev) { on_io(*pp, ev); });
          !r)
        return r;
      log()->info("port {}: pty {} linked at {}", p.id, p.pty.slave_path, p.cfg.link);
      break;
    }
    case config::ConsoleBackend::kProgram:
      start_program(p);
      break;
    case config::ConsoleBackend::kSocket: {
      auto l = os::listen_stream(p.cfg.socket, 4);
      if (!l) return tl::unexpected(l.error());
      os::Acceptor::Handlers h;
      h.open = [pp = &p] { return std::size_t{pp->conn.valid() ? 1u : 0u}; };
      h.take = [this, pp = &p](os::Fd c) { on_accept(*pp, std::move(c)); };
      h.refuse = [this, pp = &p](int, os::Acceptor::Refusal why) { refused(*pp, why); };
      auto a = os::Acceptor::create(*loop_, std::move(*l), 1, std::move(h));
      if (!a) {
        ::unlink(p.cfg.socket.c_str());
        return tl::unexpected(a.error());
      }
      p.listen = std::move(*a);
      log()->info("port {}: listening on {}", p.id, p.cfg.socket);
      break;
    }
  }
  if (p.id == 0) {
    space_.cols = layout::le16::from_cpu(p.size.cols);
    space_.rows = layout::le16::from_cpu(p.size.rows);
  }
  return {};
}

// A fresh pty per run: the program gets clean modes and the size both sides agreed on.
void ConsoleDevice::start_program(Port& p) {
  p.respawn_timer = -1;
  auto retry = [&](const std::string& why) {
    log()->error("port {}: cannot run {}: {}; trying again in {} s", p.id, p.cfg.program[0], why,
                 kRespawnDelay.count());
    schedule_program(p);
  };
  // The slave stays open here too: the master never reads EIO while the program starts or after
  // it exits; the pidfd says when it exited.
  auto pty = os::open_pty(/*raw=*/false, /*hold_slave=*/true);
  if (!pty) return retry(errno_text(pty.error()));
  if (p.size.rows != 0 && p.size.cols != 0) (void)os::set_winsize(pty->master.get(), p.size);
  auto child = os::spawn_on_tty(p.cfg.program, pty->slave_path);
  if (!child) return retry(errno_text(child.error()));
  p.pty = std::move(*pty);
  p.child = std::move(*child);
  p.watched = 0;
  if (!loop_->add(p.child.pidfd.get(), EPOLLIN,
                  [this, pp = &p](std::uint32_t) { on_program_exit(*pp); }) ||
      !loop_->add(p.pty.master.get(), 0, [this, pp = &p](std::uint32_t ev) { on_io(*pp, ev); })) {
    os::terminate(p.child, 0);
    return retry("cannot poll it");
  }
  p.attached = true;
  log()->info("port {}: {} running (pid {}) on {}", p.id, p.cfg.program[0], p.child.pid,
              p.pty.slave_path);
  send_open(p);
  update_watch(p);
}

void ConsoleDevice::on_program_exit(Port& p) {
  loop_->remove(p.child.pidfd.get());
  const pid_t pid = p.child.pid;
  auto st = os::reap(p.child);
  // What the program wrote last is still in the pty: take it before closing.
  read_backend(p);
  log()->info("port {}: {} (pid {}) exited{}; running it again in {} s", p.id, p.cfg.program[0],
              pid, st ? " with status " + std::to_string(*st) : std::string(),
              kRespawnDelay.count());
  detach(p, "program exited");
  schedule_program(p);
}

// One shot: the loop's timers are periodic, so the callback removes its own.
void ConsoleDevice::schedule_program(Port& p) {
  auto t = loop_->add_timer(kRespawnDelay, [this, pp = &p] {
    loop_->remove(pp->respawn_timer);
    start_program(*pp);
  });
  if (t) p.respawn_timer = *t;
}

void ConsoleDevice::refused(Port& p, os::Acceptor::Refusal why) {
  ++stats_.refused_clients;
  log::limited(client_log_, log(), spdlog::level::warn,
               "port {}: refused a client on {} ({}; {} so far)", p.id, p.cfg.socket,
               why == os::Acceptor::Refusal::kFull ? "one at a time" : "out of file descriptors",
               stats_.refused_clients);
}

void ConsoleDevice::on_accept(Port& p, os::Fd c) {
  const int fd = c.get();
  if (!loop_->add(fd, EPOLLRDHUP, [this, pp = &p](std::uint32_t ev) { on_io(*pp, ev); })) return;
  p.conn = std::move(c);
  p.watched = EPOLLRDHUP;
  p.attached = true;
  log()->info("port {}: client connected on {}", p.id, p.cfg.socket);
  send_open(p);
  update_watch(p);
}

void ConsoleDevice::detach(Port& p, const char* why) {
  const int fd = p.io_fd();
  if (fd >= 0) loop_->remove(fd);
  if (p.cfg.backend == config::ConsoleBackend::kSocket) {
    p.conn.reset();
    log()->info("port {}: client gone ({})", p.id, why);
  } else {
    p.pty = {};
  }
  p.attached = false;
  p.watched = 0;
  if (p.to_backend_off < p.to_backend.size())
    stats_.dropped_bytes += p.to_backend.size() - p.to_backend_off;
  p.to_backend.clear();
  p.to_backend_off = 0;
  send_open(p);
  flush_port(p);  // what it wrote last
  process_port_tx(p);
}

bool ConsoleDevice::has(unsigned b) const noexcept { return h_ && (h_->features() & bit(b)); }

bool ConsoleDevice::flowing(const Port& p) const noexcept {
  return h_ && p.ready && p.driver_open && p.attached;
}

void ConsoleDevice::update_watch(Port& p) {
  const int fd = p.io_fd();
  if (fd < 0 || p.watched == kNotPolled) return;
  std::uint32_t want =
      p.cfg.backend == config::ConsoleBackend::kSocket ? std::uint32_t{EPOLLRDHUP} : 0u;
  if (flowing(p) && p.to_driver.size() < kMaxPending) want |= EPOLLIN;
  if (p.to_backend_off < p.to_backend.size()) want |= EPOLLOUT;
  if (want == p.watched) return;
  if (loop_->modify(fd, want)) p.watched = want;
}

void ConsoleDevice::on_io(Port& p, std::uint32_t events) {
  if (events & EPOLLOUT) write_backend(p);
  if (events & EPOLLIN) read_backend(p);
  if (p.io_fd() < 0) return;
  if (p.cfg.backend == config::ConsoleBackend::kSocket &&
      (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
    return detach(p, "hung up");
  }
  if ((events & (EPOLLHUP | EPOLLERR)) && p.cfg.backend != config::ConsoleBackend::kSocket) {
    // The program's session hung the tty up; its pidfd reports the exit. Stop polling meanwhile.
    loop_->remove(p.pty.master.get());
    p.watched = kNotPolled;
  }
}

void ConsoleDevice::read_backend(Port& p) {
  const int fd = p.io_fd();
  if (fd < 0) return;
  std::byte buf[4096];
  while (p.to_driver.size() < kMaxPending) {
    const std::size_t room = std::min(sizeof(buf), kMaxPending - p.to_driver.size());
    const ssize_t n = ::read(fd, buf, room);
    if (n > 0) {
      p.to_driver.insert(p.to_driver.end(), buf, buf + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (p.cfg.backend == config::ConsoleBackend::kSocket) {
      flush_port(p);
      return detach(p, n == 0 ? "end of file" : std::strerror(errno));
    }
    break;  // EIO: the pty's other side is gone; the pidfd handles it
  }
  flush_port(p);
  update_watch(p);
}

bool ConsoleDevice::drain_backend(Port& p) {
  const int fd = p.io_fd();
  while (fd >= 0 && p.to_backend_off < p.to_backend.size()) {
    const ssize_t n =
        ::write(fd, p.to_backend.data() + p.to_backend_off, p.to_backend.size() - p.to_backend_off);
    if (n > 0) {
      p.to_backend_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    break;  // EIO/EPIPE: nobody takes it
  }
  stats_.dropped_bytes += p.to_backend.size() - p.to_backend_off;
  p.to_backend.clear();
  p.to_backend_off = 0;
  return true;
}

void ConsoleDevice::write_backend(Port& p) {
  if (drain_backend(p)) process_port_tx(p);  // take the next chains
  update_watch(p);
}

void ConsoleDevice::poll_sizes() {
  for (auto& p : ports_) {
    if (!p->attached || p->cfg.backend == config::ConsoleBackend::kSocket) continue;
    auto ws = os::get_winsize(p->pty.master.get());
    if (ws && *ws != p->size) size_changed(*p, *ws);
  }
}

void ConsoleDevice::size_changed(Port& p, os::WinSize ws) {
  p.size = ws;
  log()->debug("port {}: size {}x{} (cols x rows)", p.id, ws.cols, ws.rows);
  if (!h_) return;
  if (p.id == 0) {
    space_.cols = layout::le16::from_cpu(ws.cols);
    space_.rows = layout::le16::from_cpu(ws.rows);
    if (has(VIRTIO_CONSOLE_F_SIZE)) h_->config_changed();
  }
  if (has(VIRTIO_CONSOLE_F_MULTIPORT) && p.ready) {
    layout::VirtioConsoleResize r{layout::le16::from_cpu(ws.cols), layout::le16::from_cpu(ws.rows)};
    send_control(p.id, VIRTIO_CONSOLE_RESIZE, 0, std::as_bytes(std::span{&r, 1}));
  }
  ++stats_.resizes_to_driver;
}

std::uint32_t ConsoleDevice::device_id() const { return VIRTIO_ID_CONSOLE; }

std::uint64_t ConsoleDevice::device_features() const {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_CONSOLE_F_SIZE) |
         bit(VIRTIO_CONSOLE_F_MULTIPORT) | bit(layout::kVepfConsoleFDriverSize);
}

std::uint16_t ConsoleDevice::num_queues() const {
  return layout::console_num_queues(static_cast<std::uint32_t>(ports_.size()));
}

std::span<const std::byte> ConsoleDevice::config() const {
  return std::as_bytes(std::span{&space_, 1});
}

void ConsoleDevice::on_driver_ok(transport::DeviceHandle& h) {
  h_ = h;
  device_ready_ = false;
  if (!has(VIRTIO_CONSOLE_F_MULTIPORT)) {
    // VIRTIO 1.2 §5.3.6: without MULTIPORT there is port 0 only, open from the start.
    Port& p0 = *ports_[0];
    p0.added = p0.ready = p0.driver_open = true;
    log()->info("driver ready (no MULTIPORT: port 0 only)");
  }
  on_notify(h);
  for (auto& p : ports_) update_watch(*p);
}

void ConsoleDevice::on_reset() {
  if (h_) log()->info("driver reset");
  h_.reset();
  device_ready_ = false;
  ctrl_out_.clear();
  ctrl_rx_.drop();
  ctrl_tx_.drop();
  backlog_ = false;
  for (auto& p : ports_) {
    p->rx.drop();
    p->tx.drop();
    p->added = p->ready = p->driver_open = false;
    p->to_driver.clear();
    update_watch(*p);
  }
}

void ConsoleDevice::on_notify(transport::DeviceHandle&) {
  backlog_ = false;
  process_control();
  for (auto& p : ports_) {
    process_port_tx(*p);
    flush_port(*p);
  }
  flush_control();
}

void ConsoleDevice::shutdown() {
  for (auto& p : ports_) {
    if (p->child.pidfd.valid()) loop_->remove(p->child.pidfd.get());
    os::terminate(p->child, 200);
  }
}

void ConsoleDevice::broken(std::uint16_t q) {
  auto* vq = h_->queue(q);
  log::limited(peer_log_, log(), spdlog::level::err,
               "driver broke queue {}'s rules ({}); device needs reset", q, vq ? vq->why() : "?");
  h_->queue_broken(q);
}

void ConsoleDevice::send_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                                 std::span<const std::byte> payload) {
  // A driver that keeps asking (PORT_READY 0/1 again and again) without giving control buffers
  // must not grow this without bound.
  if (ctrl_out_.size() >= max_control_queued_) {
    ++stats_.control_dropped;
    log::limited(
        peer_log_, log(), spdlog::level::warn,
        "control event {} for port {} dropped: {} messages already wait for the driver's buffers",
        event, id, ctrl_out_.size());
    return;
  }
  ctrl_out_.push_back(layout::console_control(id, event, value, payload));
  flush_control();
}

void ConsoleDevice::send_open(Port& p) {
  if (h_ && p.ready && has(VIRTIO_CONSOLE_F_MULTIPORT))
    send_control(p.id, VIRTIO_CONSOLE_PORT_OPEN, p.attached ? 1 : 0);
}

void ConsoleDevice::announce(Port& p) {
  if (p.id == 0) send_control(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
  if (!p.cfg.name.empty())
    send_control(p.id, VIRTIO_CONSOLE_PORT_NAME, 1, std::as_bytes(std::span{p.cfg.name}));
  if (p.size.rows != 0 && p.size.cols != 0) {
    layout::VirtioConsoleResize r{layout::le16::from_cpu(p.size.cols),
                                  layout::le16::from_cpu(p.size.rows)};
    send_control(p.id, VIRTIO_CONSOLE_RESIZE, 0, std::as_bytes(std::span{&r, 1}));
  }
  send_open(p);
}

// Device -> driver control messages (control receiveq, queue 2).
void ConsoleDevice::flush_control() {
  if (!h_ || ctrl_out_.empty() || !has(VIRTIO_CONSOLE_F_MULTIPORT)) return;
  ring::Vringh* q = h_->queue(layout::kConsoleCtrlRxQueue);
  if (q == nullptr) return;
  const auto d = ctrl_rx_.drain_while(
      *q, kBudget, [this] { return !ctrl_out_.empty(); },
      [this](ring::Chain& c) {
        const auto& m = ctrl_out_.front();
        std::uint32_t len = 0;
        if (c.write_len >= m.size()) {
          len = static_cast<std::uint32_t>(ring::chain_write(c, m));
        } else {
          log::limited(peer_log_, log(), spdlog::level::warn,
                       "control buffer of {} bytes is too small for a {}-byte message: dropped",
                       c.write_len, m.size());
        }
        ctrl_out_.pop_front();
        return ring::Handled::used(len);
      });
  finish_drain(d, layout::kConsoleCtrlRxQueue);
}

// Driver -> device control messages (control transmitq, queue 3).
void ConsoleDevice::process_control() {
  if (!h_ || !has(VIRTIO_CONSOLE_F_MULTIPORT)) return;
  ring::Vringh* q = h_->queue(layout::kConsoleCtrlTxQueue);
  if (q == nullptr) return;
  const auto d = ctrl_tx_.drain(*q, kBudget, [this](ring::Chain& c) {
    std::byte buf[kMaxControl];
    if (c.read_len > kMaxControl) {
      ++stats_.bad_control;
    } else {
      const std::size_t n = ring::chain_read(c, std::span{buf}.first(c.read_len));
      handle_control(std::span{buf}.first(n));
    }
    return ring::Handled::used();
  });
  finish_drain(d, layout::kConsoleCtrlTxQueue);
}

void ConsoleDevice::finish_drain(const ring::Drained& d, std::uint16_t q) {
  if (d.end == ring::Drained::End::kBudget) backlog_ = true;
  if (d.notify) h_->notify_driver();
  if (d.end == ring::Drained::End::kBroken || d.end == ring::Drained::End::kStopped) broken(q);
}

void ConsoleDevice::handle_control(std::span<const std::byte> msg) {
  auto m = layout::parse_console_control(msg, static_cast<std::uint32_t>(ports_.size()));
  if (!m) {
    ++stats_.bad_control;
    log::limited(peer_log_, log(), spdlog::level::warn,
                 "control message from the driver dropped: {}", m.error());
    return;
  }
  auto bad = [&](const char* why) {
    ++stats_.bad_control;
    log::limited(peer_log_, log(), spdlog::level::warn, "control event {} for port {} dropped: {}",
                 m->event, m->id, why);
  };
  switch (m->event) {
    case VIRTIO_CONSOLE_DEVICE_READY:
      if (m->value != 1)
        return log::limited(peer_log_, log(), spdlog::level::err,
                            "driver could not set the device up (DEVICE_READY 0)");
      if (device_ready_) return bad("DEVICE_READY again");
      device_ready_ = true;
      for (auto& p : ports_) {
        p->added = true;
        send_control(p->id, VIRTIO_CONSOLE_PORT_ADD, 0);
      }
      return;
    case VIRTIO_CONSOLE_PORT_READY: {
      Port& p = *ports_[m->id];
      if (!p.added) return bad("port not added");
      if (m->value != 1) {
        p.ready = false;
        log::limited(peer_log_, log(), spdlog::level::err,
                     "port {}: the driver could not set it up (PORT_READY 0)", p.id);
        return update_watch(p);
      }
      if (p.ready) return bad("PORT_READY again");
      p.ready = true;
      announce(p);
      return update_watch(p);
    }
    case VIRTIO_CONSOLE_PORT_OPEN: {
      Port& p = *ports_[m->id];
      if (!p.ready) return bad("port not ready");
      p.driver_open = m->value != 0;
      log::limited(peer_log_, log(), spdlog::level::info, "port {}: driver side {}", p.id,
                   p.driver_open ? "open" : "closed");
      flush_port(p);
      return update_watch(p);
    }
    case VIRTIO_CONSOLE_RESIZE: {
      if (!has(layout::kVepfConsoleFDriverSize))
        return bad("RESIZE from the driver was not negotiated");
      Port& p = *ports_[m->id];
      const os::WinSize ws{m->rows, m->cols};
      ++stats_.resizes_from_driver;
      if (p.cfg.backend == config::ConsoleBackend::kSocket || !p.attached) {
        p.size = ws;  // applied to the next program's pty
        return;
      }
      if (auto r = os::set_winsize(p.pty.master.get(), ws); !r) {
        log::limited(peer_log_, log(), spdlog::level::warn, "port {}: cannot set size {}x{}: {}",
                     p.id, ws.cols, ws.rows, errno_text(r.error()));
        return;
      }
      p.size = ws;
      if (p.id == 0) {
        space_.cols = layout::le16::from_cpu(ws.cols);
        space_.rows = layout::le16::from_cpu(ws.rows);
      }
      log()->debug("port {}: driver set size {}x{}", p.id, ws.cols, ws.rows);
      return;
    }
    default:
      return bad("not an event a driver sends");
  }
}

// Backend bytes -> the port's receiveq.
void ConsoleDevice::flush_port(Port& p) {
  if (!h_ || !p.ready || p.to_driver.empty()) return;
  const std::uint16_t qi = layout::console_rx_queue(p.id);
  ring::Vringh* q = h_->queue(qi);
  if (q == nullptr) return;
  std::size_t taken = 0;
  const auto d = p.rx.drain_while(
      *q, kBudget, [&] { return taken < p.to_driver.size(); },
      [&](ring::Chain& c) {
        const std::size_t n = ring::chain_write(c, std::span{p.to_driver}.subspan(taken));
        taken += n;
        return ring::Handled::used(static_cast<std::uint32_t>(n));
      });
  stats_.to_driver_bytes += taken;
  p.to_driver.erase(p.to_driver.begin(), p.to_driver.begin() + static_cast<std::ptrdiff_t>(taken));
  finish_drain(d, qi);
  update_watch(p);
}

// The port's transmitq -> backend. One chain's bytes at a time wait for a slow backend.
void ConsoleDevice::process_port_tx(Port& p) {
  if (!h_ || p.to_backend_off < p.to_backend.size()) return;
  const std::uint16_t qi = layout::console_tx_queue(p.id);
  ring::Vringh* q = h_->queue(qi);
  if (q == nullptr) return;
  const auto d = p.tx.drain_while(
      *q, kBudget, [&] { return p.to_backend.empty(); },
      [&](ring::Chain& c) {
        if (c.read_len > kMaxChain)
          return ring::Handled::stop();  // more than any console chain: broken
        p.to_backend.resize(c.read_len);
        p.to_backend.resize(ring::chain_read(c, p.to_backend));
        stats_.from_driver_bytes += p.to_backend.size();
        (void)drain_backend(p);  // drops the bytes when nothing is attached
        return ring::Handled::used();
      });
  finish_drain(d, qi);
  update_watch(p);
}

void ConsoleDevice::describe(nlohmann::json& out) const {
  auto ports = nlohmann::json::array();
  for (const auto& p : ports_) {
    nlohmann::json j;
    j["id"] = p->id;
    if (!p->cfg.name.empty()) j["name"] = p->cfg.name;
    j["backend"] = config::to_string(p->cfg.backend);
    if (p->cfg.backend == config::ConsoleBackend::kPty) j["link"] = p->cfg.link;
    if (p->cfg.backend == config::ConsoleBackend::kSocket) j["socket"] = p->cfg.socket;
    if (p->cfg.backend == config::ConsoleBackend::kProgram) j["program"] = p->cfg.program;
    j["attached"] = p->attached;
    j["ready"] = p->ready;
    j["driver_open"] = p->driver_open;
    j["cols"] = p->size.cols;
    j["rows"] = p->size.rows;
    ports.push_back(std::move(j));
  }
  out["ports"] = std::move(ports);
  out["bytes_to_driver"] = stats_.to_driver_bytes;
  out["bytes_from_driver"] = stats_.from_driver_bytes;
  out["bad_control"] = stats_.bad_control;
  out["control_dropped"] = stats_.control_dropped;
  out["refused_clients"] = stats_.refused_clients;
  out["control_queued"] = ctrl_out_.size();
}

void ConsoleDevice::report(std::uint32_t slot, spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  log()->log(lvl,
             "slot {}: {} ports, to driver {} B, from driver {} B (dropped {}), resizes {} out {} "
             "in, bad control {}, "
             "control messages dropped {}",
             slot, ports_.size(), s.to_driver_bytes, s.from_driver_bytes, s.dropped_bytes,
             s.resizes_to_driver, s.resizes_from_driver, s.bad_control, s.control_dropped);
}

}  // namespace vepf::ep
