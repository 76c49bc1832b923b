// Fuzz target: DeviceTransport (the EP side of the control region, LAYOUT.md) with one device,
// against a hostile driver that rewrites the link line, the device's driver line, queue lines,
// rings and buffers in the EP window (and its own RC window) between poll() calls.
//
// Run (clang 14, libFuzzer):
//   cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++
//   -DCMAKE_BUILD_TYPE=RelWithDebInfo cmake --build build/fuzz --target transport_fuzz
//   build/fuzz/tests/fuzz/transport_fuzz tests/fuzz/corpus/transport_fuzz
// Replay only (any compiler; ctest fuzz.transport_fuzz.corpus does this):
//   build/default/tests/fuzz/transport_fuzz_replay tests/fuzz/corpus/transport_fuzz
// Seeds: tests/fuzz/gen_corpus.py. To fuzz past a known finding, list its name (the [name] a
// failed check prints) in VEPF_FUZZ_IGNORE, e.g. VEPF_FUZZ_IGNORE=notify-before-driver-ok.
//
// Input: operations until the input ends, each a u8 opcode (mod kOps) and its arguments
// (little-endian, zero once the input runs out); see run_op().
//
// The device is FuzzDevice below: test::FakeVirtioDevice (tests/unit/support/fake_device.hpp)
// with a budget (at most kBudget chains and 256 bytes copied per chain and notification, as a
// real device has: FakeVirtioDevice copies read_len bytes, up to 4 GiB, and pops until the ring
// is empty, which a driver can keep from happening with rings that overlap) and with checks.
// The link is FuzzLink below: test::FakeDeviceLink, except that the RC window it hands out is
// exactly the size the driver asked for and is ASan-poisoned while not attached.
//
// Checks (abort on violation): no byte outside the windows is read or written (guards,
// ASan-poisoned; the RC window is poisoned while detached); the device holds a status byte that
// matches DeviceLine.status and never has DRIVER_OK without FEATURES_OK; broken_queues names
// only existing queues and implies NEEDS_RESET; every request is acknowledged by the next poll()
// (ack_seq == req_seq, link_ack_seq == link req_seq); the device is notified only between
// on_driver_ok() and on_reset(); every chain it pops lies inside the windows, above the control
// region; every queue it gets has a valid size; a queue it reported broken is hidden from it;
// attached() matches the link.

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "fuzz_support.hpp"
#include "vepf/error.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/vringh.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/link.hpp"

namespace vepf::fuzz {
namespace {

using layout::DeviceLine;
using layout::DriverLine;
using layout::EpfHeader;
using layout::LinkDriverLine;
using layout::QueueDriverLine;

constexpr std::size_t kDrvSpace = 0x4000;  // driver-managed EP space after the control region
constexpr std::size_t kEpSize = layout::kControlRegionSize + kDrvSpace;
constexpr std::size_t kRcCap = 0x4000;             // most the RC window can be
constexpr std::uint64_t kRcBusAddr = 0x8000'0000;  // as test::kRcBusAddr
constexpr std::uint64_t kFeatures = (std::uint64_t{1} << VIRTIO_F_VERSION_1) |
                                    (std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX) |
                                    (std::uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);

std::uint64_t ep_addr(std::uint64_t off) { return layout::link_addr(layout::WindowId::kEp, off); }
std::uint64_t rc_addr(std::uint64_t off) { return layout::link_addr(layout::WindowId::kRc, off); }

class FuzzLink final : public transport::DeviceLink {
 public:
  FuzzLink(GuardedMemory& ep, GuardedMemory& rc)
      : rc_mem_(rc), ep_(layout::WindowId::kEp, ep.bytes(), nullptr) {
    rc_mem_.poison(0, rc_mem_.size());
  }

  ring::Window& ep_window() override { return ep_; }
  Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) override {
    FUZZ_CHECK(!attached);  // the transport drops the old window first
    if (bus_addr != kRcBusAddr || size > rc_mem_.size())
      return fail(Errc::kOutOfRange, "fuzz link: not reachable");
    attached = true;
    rc_size = static_cast<std::size_t>(size);
    rc_ = ring::Window(layout::WindowId::kRc, rc_mem_.bytes().first(rc_size), &counters_);
    rc_mem_.unpoison(0, rc_size);
    return &rc_;
  }
  void detach_rc_window() override {
    FUZZ_CHECK(attached);
    attached = false;
    rc_size = 0;
    rc_mem_.poison(0, rc_mem_.size());
  }
  Result<void> raise_interrupt() override {
    ++irqs;
    return {};
  }
  ring::LinkCounters& counters() override { return counters_; }

  const ring::Window& ep() const { return ep_; }
  const ring::Window& rc() const { return rc_; }

  bool attached = false;
  std::size_t rc_size = 0;
  std::uint64_t irqs = 0;

 private:
  GuardedMemory& rc_mem_;
  ring::Window ep_;
  ring::Window rc_;
  ring::LinkCounters counters_;
};

class FuzzDevice final : public transport::VirtioDevice {
 public:
  static constexpr std::uint16_t kQueues = 2;
  static constexpr std::uint16_t kMaxQueueSize = 256;
  static constexpr int kBudget = 512;

  explicit FuzzDevice(const FuzzLink& link) : link_(link) {
    for (std::size_t i = 0; i < config_.size(); ++i) config_[i] = std::byte(0x10 + i);
  }

  std::uint32_t device_id() const override { return VIRTIO_ID_NET; }
  std::uint64_t device_features() const override { return kFeatures; }
  std::uint16_t num_queues() const override { return kQueues; }
  std::uint16_t max_queue_size() const override { return kMaxQueueSize; }
  std::span<const std::byte> config() const override { return config_; }

  void on_driver_ok(transport::DeviceHandle& h) override {
    started = true;
    handle.emplace(h);
  }
  void on_reset() override {
    started = false;
    handle.reset();
  }
  void on_notify(transport::DeviceHandle& h) override {
    // VirtioDevice's contract: on_notify() serves queues after on_driver_ok(), until on_reset().
    FUZZ_EXPECT("notify-before-driver-ok", started);
    for (std::uint16_t q = 0; q < kQueues; ++q) serve(h, q);
  }

  void check_segment(const ring::Segment& s) const {
    FUZZ_CHECK(s.len > 0);
    if (s.window == &link_.ep()) {
      FUZZ_CHECK(s.off >= layout::kControlRegionSize);  // never the control region
    } else {
      FUZZ_CHECK(link_.attached && s.window == &link_.rc());
    }
    FUZZ_CHECK(s.window->contains(s.off, s.len));
  }

  void serve(transport::DeviceHandle& h, std::uint16_t q) {
    ring::Vringh* v = h.queue(q);
    if (v == nullptr) return;
    FUZZ_CHECK(layout::queue_size_valid(v->num()) && v->num() <= kMaxQueueSize);
    for (int budget = kBudget; budget > 0; --budget) {
      auto r = v->pop();
      if (!r) {
        FUZZ_CHECK(r.error().code == Errc::kBadRing);
        h.queue_broken(q);
        ++broken;
        FUZZ_CHECK(h.queue(q) == nullptr);
        return;
      }
      if (!*r) break;
      const ring::Chain& c = **r;
      FUZZ_CHECK(c.head < v->num());
      std::uint64_t rl = 0, wl = 0;
      for (const auto& s : c.readable()) {
        check_segment(s);
        rl += s.len;
      }
      for (const auto& s : c.writable()) {
        check_segment(s);
        wl += s.len;
      }
      FUZZ_CHECK(rl == c.read_len && wl == c.write_len && rl + wl <= UINT32_MAX);
      std::array<std::byte, 256> buf{};
      const std::size_t n = ring::chain_read(c, buf);
      const std::size_t w = ring::chain_write(c, std::span<const std::byte>(buf).first(n));
      FUZZ_CHECK(v->complete(c.head, static_cast<std::uint32_t>(w)).has_value());
      ++chains;
    }
    if (v->need_notify()) h.notify_driver();
  }

  bool started = false;
  int chains = 0;  // served
  int broken = 0;  // queues reported broken
  std::optional<transport::DeviceHandle> handle;

 private:
  const FuzzLink& link_;
  std::array<std::byte, 8> config_{};
};

struct QueueCfg {
  std::uint16_t size = 0;
  std::uint64_t desc = 0, avail = 0;
};

struct Harness {
  Harness(GuardedMemory& ep_m, GuardedMemory& rc_m)
      : ep_mem((ep_m.reset(), ep_m)), rc_mem((rc_m.reset(), rc_m)) {}

  GuardedMemory& ep_mem;
  GuardedMemory& rc_mem;
  FuzzLink link{ep_mem, rc_mem};
  FuzzDevice dev{link};
  std::optional<transport::DeviceTransport> t;  // last: destroyed first (it resets dev)
  std::uint32_t slot = 0;
  std::array<QueueCfg, layout::kMaxQueuesPerDevice> qcfg{};
  bool ctrl_dirty = false;  // the driver scribbled over device-written lines we check

  std::span<std::byte> ep() { return ep_mem.bytes(); }
  std::span<std::byte> rc() { return rc_mem.bytes(); }

  /// A driver write into the EP window (clipped); remembers when it hits lines the checks read.
  void ep_write(std::size_t off, std::span<const std::uint8_t> b) {
    if (off >= kEpSize || b.empty()) return;
    const std::size_t end = off + b.size();
    const std::size_t dl = layout::device_slot_off(slot);
    if (off < sizeof(EpfHeader) || (off < dl + sizeof(DeviceLine) && end > dl)) ctrl_dirty = true;
    put_bytes(ep(), off, b);
  }
  template <class T>
  void ep_put(std::size_t off, T v) {
    std::array<std::uint8_t, sizeof(T)> b{};
    for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
    ep_write(off, b);
  }
  /// A driver write into its own RC window: only while attached, inside the attached size.
  void rc_write(std::size_t off, std::span<const std::uint8_t> b) {
    if (!link.attached || off >= link.rc_size) return;
    put_bytes(rc().first(link.rc_size), off, b);
  }
  /// Writes through a link address, as the driver would (it knows both windows).
  template <class T>
  void put_at(std::uint64_t addr, std::uint64_t extra, T v) {
    const auto w = layout::link_addr_window(addr);
    const std::uint64_t off = layout::link_addr_offset(addr) + extra;
    std::array<std::uint8_t, sizeof(T)> b{};
    for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
    if (w == static_cast<std::uint8_t>(layout::WindowId::kEp) && off + sizeof(T) <= kEpSize) {
      ep_write(static_cast<std::size_t>(off), b);
    } else if (w == static_cast<std::uint8_t>(layout::WindowId::kRc) &&
               off + sizeof(T) <= link.rc_size) {
      rc_write(static_cast<std::size_t>(off), b);
    }
  }
  template <class T>
  T get_at(std::uint64_t addr, std::uint64_t extra) {
    const auto w = layout::link_addr_window(addr);
    const std::uint64_t off = layout::link_addr_offset(addr) + extra;
    if (w == static_cast<std::uint8_t>(layout::WindowId::kEp) && off + sizeof(T) <= kEpSize) {
      return test::peek<T>(ep(), static_cast<std::size_t>(off));
    }
    if (link.attached && w == static_cast<std::uint8_t>(layout::WindowId::kRc) &&
        off + sizeof(T) <= link.rc_size) {
      return test::peek<T>(rc(), static_cast<std::size_t>(off));
    }
    return 0;
  }

  /// A ring or buffer address, mostly in the right places: u8 mode, u16 offset (or u64).
  static std::uint64_t addr_from(ByteReader& in, std::size_t align) {
    const std::uint8_t m = in.u8();
    if ((m & 3) == 3) return in.u64();
    std::uint64_t off = in.u16();
    if (m & 4) off &= ~std::uint64_t{align - 1};
    switch (m & 3) {
      case 0:
        return ep_addr(layout::kControlRegionSize + off % kDrvSpace);
      case 1:
        return rc_addr(off % kRcCap);
      default:
        return ep_addr(off);  // anywhere, the control region included
    }
  }

  // ---- operations of the driver

  void op_link_request(ByteReader& in) {
    const std::uint8_t sel = in.u8();
    const std::uint8_t mode = in.u8();
    std::uint32_t op = sel & 3;
    if (op == 3) op = in.u32();
    const std::uint32_t epoch =
        (mode & 1)
            ? in.u32()
            : test::peek<std::uint32_t>(ep(), layout::header_off(offsetof(EpfHeader, epoch)));
    const std::uint64_t addr = (mode & 2) ? in.u64() : kRcBusAddr;
    const std::uint64_t size = (mode & 4) ? in.u64() : 4096 + in.u16() % (kRcCap - 4096 + 1);
    const std::size_t seq_off = layout::link_line_off(offsetof(LinkDriverLine, req_seq));
    const std::uint32_t seq = (mode & 8) ? in.u32() : test::peek<std::uint32_t>(ep(), seq_off) + 1;
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, req_op)), op);
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_lo)),
                          static_cast<std::uint32_t>(addr));
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_addr_hi)),
                          static_cast<std::uint32_t>(addr >> 32));
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_lo)),
                          static_cast<std::uint32_t>(size));
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, rc_window_size_hi)),
                          static_cast<std::uint32_t>(size >> 32));
    ep_put<std::uint32_t>(layout::link_line_off(offsetof(LinkDriverLine, driver_epoch)), epoch);
    ep_put<std::uint32_t>(seq_off, seq);
  }

  void op_device_request(ByteReader& in) {
    const std::uint8_t sel = in.u8();
    std::uint32_t op = sel % 5;
    std::uint32_t arg;
    if (op == 4) op = in.u32();
    if (sel & 0x80) {
      arg = in.u32();
    } else if (op == static_cast<std::uint32_t>(layout::DeviceOp::kSetStatus)) {
      arg = in.u8();
    } else {
      arg = in.u8() % 17;
    }
    const std::uint8_t fsel = in.u8();
    std::uint64_t df = 0;
    if (fsel & 0x80) {
      df = in.u64();
    } else {
      if (fsel & 1) df |= std::uint64_t{1} << VIRTIO_F_VERSION_1;
      if (fsel & 2) df |= std::uint64_t{1} << VIRTIO_RING_F_EVENT_IDX;
      if (fsel & 4) df |= std::uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC;
      if (fsel & 8) df |= 1;  // not offered
    }
    ep_put<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, driver_feature_lo)),
                          static_cast<std::uint32_t>(df));
    ep_put<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, driver_feature_hi)),
                          static_cast<std::uint32_t>(df >> 32));
    ep_put<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_op)), op);
    ep_put<std::uint32_t>(layout::driver_line_off(slot, offsetof(DriverLine, req_arg0)), arg);
    bump_req_seq();
  }

  void bump_req_seq() {
    const std::size_t off = layout::driver_line_off(slot, offsetof(DriverLine, req_seq));
    ep_put<std::uint32_t>(off, test::peek<std::uint32_t>(ep(), off) + 1);
  }

  void op_queue_line(ByteReader& in) {
    const std::uint32_t q = in.u8() % layout::kMaxQueuesPerDevice;
    const std::uint8_t ssel = in.u8();
    const std::uint16_t size =
        (ssel & 0x80) ? in.u16() : static_cast<std::uint16_t>(1u << (ssel % 10));
    QueueCfg& c = qcfg[q];
    c.size = size;
    c.desc = addr_from(in, layout::kDescAlign);
    c.avail = addr_from(in, layout::kAvailAlign);
    const std::uint64_t used = addr_from(in, layout::kUsedAlign);
    const std::size_t b = layout::queue_block_off(slot, q);
    ep_put<std::uint16_t>(b + offsetof(QueueDriverLine, queue_size), size);
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_desc_lo),
                          static_cast<std::uint32_t>(c.desc));
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_desc_hi),
                          static_cast<std::uint32_t>(c.desc >> 32));
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_driver_lo),
                          static_cast<std::uint32_t>(c.avail));
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_driver_hi),
                          static_cast<std::uint32_t>(c.avail >> 32));
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_device_lo),
                          static_cast<std::uint32_t>(used));
    ep_put<std::uint32_t>(b + offsetof(QueueDriverLine, queue_device_hi),
                          static_cast<std::uint32_t>(used >> 32));
  }

  /// Offers one descriptor on queue q: u8 q, u8 head, addr, u16 len, u8 flags, u8 next.
  void op_offer(ByteReader& in) {
    const QueueCfg& c = qcfg[in.u8() % FuzzDevice::kQueues];
    const std::uint8_t head_sel = in.u8();
    const std::uint64_t addr = addr_from(in, 1);
    const std::uint32_t len = in.u16();
    const std::uint16_t flags = in.u8() & 7;
    const std::uint8_t next_sel = in.u8();
    if (!layout::queue_size_valid(c.size) || c.size > FuzzDevice::kMaxQueueSize) return;
    const std::uint16_t mask = static_cast<std::uint16_t>(c.size - 1);
    const std::uint16_t head = head_sel & mask;
    const std::uint64_t d = layout::desc_offset(head);
    put_at<std::uint64_t>(c.desc, d, addr);
    put_at<std::uint32_t>(c.desc, d + 8, len);
    put_at<std::uint16_t>(c.desc, d + 12, flags);
    put_at<std::uint16_t>(c.desc, d + 14, static_cast<std::uint16_t>(next_sel & mask));
    const auto idx = get_at<std::uint16_t>(c.avail, layout::kRingIdxOff);
    put_at<std::uint16_t>(c.avail, layout::avail_entry_offset(idx & mask), head);
    put_at<std::uint16_t>(c.avail, layout::kRingIdxOff, static_cast<std::uint16_t>(idx + 1));
  }

  // ---- checks

  void check_state() {
    const std::uint8_t s = t->status(slot);
    FUZZ_EXPECT("driver-ok-without-features-ok",
                !(s & VIRTIO_CONFIG_S_DRIVER_OK) || (s & VIRTIO_CONFIG_S_FEATURES_OK));
    if (dev.started)
      FUZZ_CHECK((s & VIRTIO_CONFIG_S_DRIVER_OK) && (s & VIRTIO_CONFIG_S_FEATURES_OK));
    FUZZ_CHECK(t->attached() == link.attached);
    if (!ctrl_dirty) {
      const auto mem_status = test::peek<std::uint32_t>(
          ep(), layout::device_line_off(slot, offsetof(DeviceLine, status)));
      FUZZ_CHECK(mem_status == s);  // a byte, and the byte the device holds
      const auto bq = test::peek<std::uint32_t>(
          ep(), layout::device_line_off(slot, offsetof(DeviceLine, broken_queues)));
      FUZZ_CHECK((bq & ~((1u << FuzzDevice::kQueues) - 1)) == 0);
      if (bq) FUZZ_CHECK(s & VIRTIO_CONFIG_S_NEEDS_RESET);
    }
  }

  void check_acked() {
    if (ctrl_dirty) return;
    FUZZ_CHECK(test::peek<std::uint32_t>(
                   ep(), layout::device_line_off(slot, offsetof(DeviceLine, ack_seq))) ==
               test::peek<std::uint32_t>(
                   ep(), layout::driver_line_off(slot, offsetof(DriverLine, req_seq))));
    FUZZ_CHECK(
        test::peek<std::uint32_t>(ep(), layout::header_off(offsetof(EpfHeader, link_ack_seq))) ==
        test::peek<std::uint32_t>(ep(), layout::link_line_off(offsetof(LinkDriverLine, req_seq))));
  }

  static constexpr unsigned kOps = 14;

  void run_op(ByteReader& in) {
    const ring::LinkCounters before = link.counters();
    const bool was_attached = link.attached;
    switch (in.u8() % kOps) {
      case 0:
        t->poll();
        check_acked();
        break;
      case 1:
        op_link_request(in);
        break;
      case 2:
        op_device_request(in);
        break;
      case 3:
        op_queue_line(in);
        break;
      case 4:
        op_offer(in);
        break;
      case 5: {  // raw write anywhere in the EP window: u16 offset, u8 length, bytes
        const std::size_t off = in.u16() % kEpSize;
        const std::size_t n = in.u8() % 33;
        ep_write(off, in.bytes(n));
        break;
      }
      case 6: {  // raw write into driver-managed EP space
        const std::size_t off = layout::kControlRegionSize + in.u16() % kDrvSpace;
        const std::size_t n = in.u8() % 33;
        ep_write(off, in.bytes(n));
        break;
      }
      case 7: {  // raw write into the RC window (while attached)
        const std::size_t off = in.u16() % kRcCap;
        const std::size_t n = in.u8() % 33;
        rc_write(off, in.bytes(n));
        break;
      }
      case 8:  // the EP notices the host went away
        t->link_down();
        FUZZ_CHECK(!link.attached && !dev.started);
        break;
      case 9: {  // the EP replaces its device (slot reused)
        t->remove_device(slot);
        FUZZ_CHECK(!dev.started);
        auto r = t->add_device(&dev);
        FUZZ_CHECK(r.has_value());
        slot = *r;
        FUZZ_CHECK(t->status(slot) == 0);
        break;
      }
      case 10:  // the device's config changes
        if (dev.handle) dev.handle->config_changed();
        break;
      case 11:
        bump_req_seq();
        break;    // the same request again
      case 12: {  // raw write into the driver line: u8 offset, u8 length, bytes
        const std::size_t off = in.u8() % sizeof(DriverLine);
        const std::size_t n = in.u8() % 9;
        const auto b = in.bytes(n);
        ep_write(layout::driver_line_off(slot, off),
                 b.first(std::min(b.size(), sizeof(DriverLine) - off)));
        break;
      }
      case 13: {  // raw write into a queue's driver line: u8 queue, u8 offset, u8 length, bytes
        const std::size_t q = in.u8() % layout::kMaxQueuesPerDevice;
        const std::size_t off = in.u8() % sizeof(QueueDriverLine);
        const std::size_t n = in.u8() % 9;
        const auto b = in.bytes(n);
        ep_write(layout::queue_block_off(slot, static_cast<std::uint32_t>(q)) + off,
                 b.first(std::min(b.size(), sizeof(QueueDriverLine) - off)));
        break;
      }
    }
    if (!was_attached && !link.attached) {
      // Nothing reached the RC window while there was none.
      FUZZ_CHECK(link.counters().nonposted_reads == before.nonposted_reads);
      FUZZ_CHECK(link.counters().posted_writes == before.posted_writes);
    }
    check_state();
  }

  void run(const std::uint8_t* data, std::size_t size) {
    t.emplace(link, 0x1234'5678u);
    FUZZ_CHECK(t->init().has_value());
    auto r = t->add_device(&dev);
    FUZZ_CHECK(r.has_value());
    slot = *r;
    ByteReader in(data, size);
    // Each operation consumes at least one byte: the loop ends with the input.
    while (!in.empty()) run_op(in);
    t->poll();
    check_acked();
    check_state();
    if (verbose()) {
      std::fprintf(stderr,
                   "transport: status %#x attached %d started %d chains %d broken %d irqs %llu\n",
                   t->status(slot), link.attached, dev.started, dev.chains, dev.broken,
                   static_cast<unsigned long long>(link.irqs));
    }
    t.reset();  // resets the device: must stay inside the windows too
    FUZZ_CHECK(ep_mem.guards_intact());
    FUZZ_CHECK(rc_mem.guards_intact());
  }
};

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Allocated once: see GuardedMemory.
  static vepf::fuzz::GuardedMemory ep(vepf::fuzz::kEpSize), rc(vepf::fuzz::kRcCap);
  vepf::fuzz::Harness h(ep, rc);
  h.run(data, size);
  return 0;
}
