#include "drivers/console/console_driver.hpp"

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vepf::host {

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint32_t kBudget = 64;  // buffers per queue per call
constexpr auto kSizePoll = std::chrono::milliseconds(250);
auto log() { return spdlog::get("host.console"); }

std::string errno_text(const Error& e) {
  return e.sys_errno ? std::string(e.what) + ": " + std::strerror(e.sys_errno)
                     : std::string(e.what);
}
}  // namespace

std::uint64_t ConsoleDriver::wanted_features() noexcept {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_CONSOLE_F_SIZE) |
         bit(VIRTIO_CONSOLE_F_MULTIPORT) | bit(layout::kVepfConsoleFDriverSize);
}

ConsoleDriver::ConsoleDriver(transport::DriverTransport& t, const transport::DeviceInfo& info,
                             std::string host_dir, os::EventLoop& loop,
                             std::size_t max_control_queued)
    : Driver(t, info),
      dir_(std::move(host_dir)),
      loop_(loop),
      max_control_queued_(max_control_queued) {}

ConsoleDriver::~ConsoleDriver() {
  if (size_timer_ >= 0) loop_.remove(size_timer_);
  for (auto& p : ports_) {
    if (p->added) remove_port(p->id);
  }
}

bool ConsoleDriver::multiport() const noexcept { return has(VIRTIO_CONSOLE_F_MULTIPORT); }

Result<void> ConsoleDriver::probe() {
  if (auto r = negotiate(wanted_features()); !r) return r;
  if (auto r = t_.read_config_wait(info_.slot, std::as_writable_bytes(std::span{&cfg_, 1})); !r)
    return r;
  max_ports_ = multiport() ? cfg_.max_nr_ports.to_cpu() : 1;
  if (max_ports_ == 0 || max_ports_ > layout::kConsoleMaxPorts ||
      layout::console_num_queues(max_ports_) > info_.num_queues) {
    return fail(Errc::kRejected,
                "device reports an unusable max_nr_ports (0, above 32, or more than its queues)");
  }
  const bool event_idx = has(VIRTIO_RING_F_EVENT_IDX);
  for (std::uint32_t id = 0; id < max_ports_; ++id) {
    auto p = std::make_unique<Port>();
    p->id = id;
    p->q = std::make_unique<BufferQueues>(t_, info_);
    if (auto r = p->q->setup(layout::console_rx_queue(id), layout::console_tx_queue(id),
                             kPortBufSize, event_idx);
        !r) {
      return r;
    }
    (void)p->q->rx().kick_prepare();
    ports_.push_back(std::move(p));
  }
  if (multiport()) {
    ctrl_ = std::make_unique<BufferQueues>(t_, info_);
    if (auto r = ctrl_->setup(layout::kConsoleCtrlRxQueue, layout::kConsoleCtrlTxQueue,
                              layout::kConsoleCtrlBufSize, event_idx);
        !r) {
      return r;
    }
    (void)ctrl_->rx().kick_prepare();
  }
  if (auto r = set_driver_ok(); !r) return r;
  for (auto& p : ports_) (void)p->q->rx().enable_cb();
  if (ctrl_) (void)ctrl_->rx().enable_cb();
  auto timer = loop_.add_timer(kSizePoll, [this] { poll_sizes(); });
  if (!timer) return tl::unexpected(timer.error());
  size_timer_ = *timer;
  log()->info("device {}: virtio-console up, {} port(s) at most{}, ptys linked in {}", info_.slot,
              max_ports_, multiport() ? "" : " (no MULTIPORT)", dir_);
  if (multiport()) {
    send_control(0, VIRTIO_CONSOLE_DEVICE_READY, 1);  // VIRTIO 1.2 §5.3.6.1
  } else {
    add_port(0);
    on_config_event();  // port 0's size
  }
  return {};
}

void ConsoleDriver::add_port(std::uint32_t id) {
  Port& p = *ports_[id];
  if (p.added) {
    ++stats_.bad;
    return log::limited(peer_log_, log(), spdlog::level::warn,
                        "device {}: PORT_ADD for port {} again; ignored", info_.slot, id);
  }
  auto pty = os::open_pty(/*raw=*/true, /*hold_slave=*/true);
  auto link = dir_ + "/port" + std::to_string(id);
  Result<void> ok = pty ? os::replace_symlink(pty->slave_path, link) : tl::unexpected(pty.error());
  if (ok)
    ok = loop_.add(pty->master.get(), EPOLLIN,
                   [this, pp = &p](std::uint32_t ev) { on_pty(*pp, ev); });
  if (!ok) {
    log()->error("device {}: port {}: cannot set up a pty at {}: {}", info_.slot, id, link,
                 errno_text(ok.error()));
    if (pty) os::remove_symlink(pty->slave_path, link);
    if (multiport()) send_control(id, VIRTIO_CONSOLE_PORT_READY, 0);
    return;
  }
  p.pty = std::move(*pty);
  p.links = {link};
  p.watched = EPOLLIN;
  p.added = true;
  if (p.size.rows != 0 && p.size.cols != 0) (void)os::set_winsize(p.pty.master.get(), p.size);
  log()->info("device {}: port {} on {} ({})", info_.slot, id, p.pty.slave_path, link);
  if (multiport()) {
    send_control(id, VIRTIO_CONSOLE_PORT_READY, 1);
    send_control(id, VIRTIO_CONSOLE_PORT_OPEN, 1);
  }
}

void ConsoleDriver::remove_port(std::uint32_t id) {
  Port& p = *ports_[id];
  if (!p.added) return;
  loop_.remove(p.pty.master.get());
  for (const auto& l : p.links) os::remove_symlink(p.pty.slave_path, l);
  log()->info("device {}: port {} removed ({} closed)", info_.slot, id, p.pty.slave_path);
  p.links.clear();
  p.pty = {};  // whoever has the slave open sees a hangup
  p.added = p.device_open = false;
  p.watched = 0;
  if (auto u = p.rx.release()) {
    p.q->refill_rx(u->token);
    p.rx_off = 0;
    p.q->kick(p.q->rx());
  }
}

void ConsoleDriver::name_port(Port& p, std::string_view name) {
  const std::string link = dir_ + "/" + std::string(name);
  for (const auto& o : ports_) {
    if (o.get() != &p && std::find(o->links.begin(), o->links.end(), link) != o->links.end()) {
      ++stats_.bad;
      return log::limited(peer_log_, log(), spdlog::level::warn,
                          "device {}: port {} named '{}' like port {}; not linked", info_.slot,
                          p.id, name, o->id);
    }
  }
  if (std::find(p.links.begin(), p.links.end(), link) != p.links.end()) return;
  if (auto r = os::replace_symlink(p.pty.slave_path, link); !r) {
    return log::limited(peer_log_, log(), spdlog::level::err,
                        "device {}: port {}: cannot link {}: {}", info_.slot, p.id, link,
                        errno_text(r.error()));
  }
  // One name per port (links = {port<P>, name}): a device that renames its port replaces the
  // name's link; one that sent a new name each time used to leave a link per name in host_dir.
  if (p.links.size() > 1) {
    os::remove_symlink(p.pty.slave_path, p.links.back());
    p.links.pop_back();
  }
  p.links.push_back(link);
  log::limited(peer_log_, log(), spdlog::level::info, "device {}: port {} is '{}' ({})", info_.slot,
               p.id, name, link);
}

void ConsoleDriver::set_size(Port& p, os::WinSize ws) {
  p.size = ws;  // recorded first: the size poll must not send it back
  ++stats_.resizes_received;
  if (!p.added) return;
  if (auto r = os::set_winsize(p.pty.master.get(), ws); !r) {
    log::limited(peer_log_, log(), spdlog::level::warn, "device {}: port {}: cannot set size: {}",
                 info_.slot, p.id, errno_text(r.error()));
  }
}

void ConsoleDriver::update_watch(Port& p) {
  if (!p.added) return;
  std::uint32_t want = 0;
  if (driver_ok_ && !p.q->tx().broken() && !p.q->tx_full()) want |= EPOLLIN;
  if (p.rx.holding()) want |= EPOLLOUT;
  if (want != p.watched && loop_.modify(p.pty.master.get(), want)) p.watched = want;
}

void ConsoleDriver::on_pty(Port& p, std::uint32_t events) {
  if (events & EPOLLOUT) receive(p);
  if (events & EPOLLIN) transmit(p);
}

// pty -> device: what the program on the pty writes, in transmit buffers.
void ConsoleDriver::transmit(Port& p) {
  if (!driver_ok_ || !p.added) return;
  std::byte buf[kPortBufSize];
  for (int budget = kBudget; budget > 0; --budget) {
    if (p.q->tx_full()) {
      if (auto r = p.q->reclaim_tx(); !r)
        log::limited(peer_log_, log(), spdlog::level::err, "device {}: port {} transmit queue: {}",
                     info_.slot, p.id, r.error().what);
    }
    if (p.q->tx_full()) {
      if (p.q->tx().enable_cb()) break;  // the interrupt resumes us
      continue;
    }
    const ssize_t n = ::read(p.pty.master.get(), buf, sizeof(buf));
    if (n <= 0) break;  // EAGAIN; EIO cannot happen while we hold the slave
    if (!p.q->send(std::span{buf}.first(static_cast<std::size_t>(n)))) break;
    stats_.sent_bytes += static_cast<std::size_t>(n);
  }
  p.q->kick(p.q->tx());
  update_watch(p);
}

// Device -> pty: completed receive buffers, written to the pty as far as it takes them.
void ConsoleDriver::receive(Port& p) {
  Error err;
  const auto d = p.rx.drain(
      p.q->rx(), kBudget,
      [&](const ring::Vring::Used& u) {
        if (p.rx_off == 0 && (u.len > kPortBufSize || !p.added)) {
          ++stats_.bad;  // longer than the buffer, or data for a port the device never added
          p.q->refill_rx(u.token);
          return ring::Handled::used();
        }
        const auto data = p.q->rx_view(u.token, u.len).subspan(p.rx_off);
        const ssize_t n = data.empty() ? 0 : ::write(p.pty.master.get(), data.data(), data.size());
        if (n < 0 && errno == EAGAIN)
          return ring::Handled::hold();  // the pty is full: EPOLLOUT resumes us
        if (n > 0) {
          p.rx_off += static_cast<std::uint32_t>(n);
          stats_.received_bytes += static_cast<std::size_t>(n);
          if (p.rx_off < u.len) return ring::Handled::retry();
        }
        p.rx_off = 0;
        p.q->refill_rx(u.token);
        return ring::Handled::used();
      },
      &err);
  if (d.end == ring::Drained::End::kBroken) {
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: port {} receive queue: {}",
                 info_.slot, p.id, err.what);
  }
  backlog_ = backlog_ || d.end == ring::Drained::End::kBudget;
  p.q->kick(p.q->rx());
  update_watch(p);
}

void ConsoleDriver::send_control(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                                 std::span<const std::byte> payload) {
  // A device that adds and removes ports again and again (each add answered with PORT_READY and
  // PORT_OPEN) while it takes nothing from the control transmitq must not grow this without
  // bound.
  if (ctrl_out_.size() >= max_control_queued_) {
    ++stats_.control_dropped;
    return log::limited(peer_log_, log(), spdlog::level::warn,
                        "device {}: control event {} for port {} dropped: {} messages already "
                        "wait for the device to take them",
                        info_.slot, event, id, ctrl_out_.size());
  }
  ctrl_out_.push_back(layout::console_control(id, event, value, payload));
  flush_control();
}

void ConsoleDriver::flush_control() {
  if (!ctrl_ || !driver_ok_) return;
  if (auto r = ctrl_->reclaim_tx(); !r)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: control transmit queue: {}",
                 info_.slot, r.error().what);
  bool sent = false;
  while (!ctrl_out_.empty() && !ctrl_->tx_full()) {
    if (!ctrl_->send(ctrl_out_.front())) break;
    ctrl_out_.pop_front();
    sent = true;
  }
  if (!ctrl_out_.empty()) (void)ctrl_->tx().enable_cb();
  if (sent) ctrl_->kick(ctrl_->tx());
}

void ConsoleDriver::receive_control() {
  if (!ctrl_) return;
  Error err;
  const auto d = ctrl_rx_.drain(
      ctrl_->rx(), kBudget,
      [this](const ring::Vring::Used& u) {
        std::byte msg[layout::kConsoleCtrlBufSize];
        if (u.len > sizeof(msg)) {
          ++stats_.bad;
        } else {
          // Our own window, but the device may still write it: parse a private copy.
          const auto view = ctrl_->rx_view(u.token, u.len);
          std::memcpy(msg, view.data(), u.len);
          handle_control(std::span{msg, u.len});
        }
        ctrl_->refill_rx(u.token);
        return ring::Handled::used();
      },
      &err);
  if (d.end == ring::Drained::End::kBroken)
    log::limited(peer_log_, log(), spdlog::level::err, "device {}: control receive queue: {}",
                 info_.slot, err.what);
  backlog_ = backlog_ || d.end == ring::Drained::End::kBudget;
  ctrl_->kick(ctrl_->rx());
}

void ConsoleDriver::handle_control(std::span<const std::byte> msg) {
  // One logger for the whole function: clang 14's ASan reported a shared_ptr temporary of a
  // case's log() call as used after its scope (a false report: GCC's ASan is clean on the same
  // input, corpus/console_driver_fuzz/regression-asan-switch-temporary).
  const auto lg = log();
  auto m = layout::parse_console_control(msg, max_ports_);
  if (!m) {
    ++stats_.bad;
    return log::limited(peer_log_, lg, spdlog::level::warn,
                        "device {}: control message dropped: {}", info_.slot, m.error());
  }
  Port& p = *ports_[m->event == VIRTIO_CONSOLE_DEVICE_READY ? 0 : m->id];
  auto need_port = [&] {
    if (p.added) return true;
    ++stats_.bad;
    log::limited(peer_log_, lg, spdlog::level::warn,
                 "device {}: control event {} for port {}, which was not added; dropped",
                 info_.slot, m->event, m->id);
    return false;
  };
  switch (m->event) {
    case VIRTIO_CONSOLE_PORT_ADD:
      return add_port(m->id);
    case VIRTIO_CONSOLE_PORT_REMOVE:
      if (need_port()) remove_port(m->id);
      return;
    case VIRTIO_CONSOLE_CONSOLE_PORT:
      if (need_port()) lg->info("device {}: port {} is the console", info_.slot, m->id);
      return;
    case VIRTIO_CONSOLE_PORT_NAME:
      if (need_port()) name_port(p, m->name);
      return;
    case VIRTIO_CONSOLE_PORT_OPEN:
      if (!need_port()) return;
      p.device_open = m->value != 0;
      lg->info("device {}: port {}: EP side {}", info_.slot, m->id,
               p.device_open ? "attached" : "detached");
      return;
    case VIRTIO_CONSOLE_RESIZE:
      if (need_port()) set_size(p, {m->rows, m->cols});
      return;
    default:
      ++stats_.bad;
      log::limited(peer_log_, lg, spdlog::level::warn,
                   "device {}: control event {} is not one a device sends; dropped", info_.slot,
                   m->event);
  }
}

void ConsoleDriver::poll_sizes() {
  if (!driver_ok_ || !multiport() || !has(layout::kVepfConsoleFDriverSize)) return;
  for (auto& p : ports_) {
    if (!p->added) continue;
    auto ws = os::get_winsize(p->pty.master.get());
    if (!ws || *ws == p->size) continue;
    p->size = *ws;
    layout::VirtioConsoleResize r{layout::le16::from_cpu(ws->cols),
                                  layout::le16::from_cpu(ws->rows)};
    send_control(p->id, VIRTIO_CONSOLE_RESIZE, 0, std::as_bytes(std::span{&r, 1}));
    ++stats_.resizes_sent;
    log()->debug("device {}: port {}: size {}x{} sent", info_.slot, p->id, ws->cols, ws->rows);
  }
}

void ConsoleDriver::on_interrupt() {
  if (!driver_ok_) return;
  backlog_ = false;
  receive_control();
  flush_control();
  for (auto& p : ports_) {
    receive(*p);
    if (p->added && (p->watched & EPOLLIN) == 0) transmit(*p);  // transmit buffers came back
  }
}

void ConsoleDriver::on_needs_reset() {
  for (auto& p : ports_) {
    p->q->rx().mark_broken();
    p->q->tx().mark_broken();
    update_watch(*p);
  }
  if (ctrl_) {
    ctrl_->rx().mark_broken();
    ctrl_->tx().mark_broken();
  }
}

void ConsoleDriver::on_config_event() {
  if (!has(VIRTIO_CONSOLE_F_SIZE) || ports_.empty()) return;
  if (!read_config_or_retry(std::as_writable_bytes(std::span{&cfg_, 1}))) return;
  const os::WinSize ws{cfg_.rows.to_cpu(), cfg_.cols.to_cpu()};
  // VIRTIO 1.2 §5.3.4: cols/rows are port 0's size; with MULTIPORT a RESIZE usually says it too.
  if (ws.rows != 0 && ws.cols != 0 && ws != ports_[0]->size) set_size(*ports_[0], ws);
}

void ConsoleDriver::report(spdlog::level::level_enum lvl) const {
  const auto& s = stats_;
  std::size_t added = 0;
  for (const auto& p : ports_) added += p->added;
  log()->log(
      lvl,
      "device {}: {} port(s), sent {} B, received {} B, resizes {} sent {} received, bad {}, "
      "control messages dropped {}",
      info_.slot, added, s.sent_bytes, s.received_bytes, s.resizes_sent, s.resizes_received, s.bad,
      s.control_dropped);
}

}  // namespace vepf::host
