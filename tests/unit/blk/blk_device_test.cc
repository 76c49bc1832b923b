// The EP's virtio-blk device (BlockDevice) against a hostile driver played by the test through
// the real transports: the writable room a driver gives costs the device nothing beyond what it
// writes (data, then the status byte at the room's last byte, VIRTIO 1.2 §5.2.6).

#include <gtest/gtest.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "devices/blk/blk_device.hpp"
#include "support/driver_queue.hpp"
#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "support/temp_dir.hpp"
#include "vepf/layout/blk.hpp"
#include "vepf/layout/ring.hpp"
#include "vepf/ring/vring.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/driver_transport.hpp"

namespace vepf::test {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint16_t kQueueSize = 16;
constexpr std::byte kUntouched{0xaa};

class BlockDeviceHostileDriver : public ::testing::Test {
 protected:
  BlockDeviceHostileDriver()
      : dl(w), drl(w, dl), dev(dl, 0x5eed0004), drv(drl, std::chrono::milliseconds(20)) {
    drl.set_device(&dev);
    if (!spdlog::get("ep.blk")) spdlog::create<spdlog::sinks::null_sink_mt>("ep.blk");
  }

  void SetUp() override {
    auto f = ep::BlockFile::open(tmp.path() + "/disk.img", 1 << 20, false);
    ASSERT_TRUE(f) << f.error().what;
    bcfg.path = tmp.path() + "/disk.img";
    blk.emplace(std::move(*f), bcfg, kQueueSize, 1);
    ASSERT_TRUE(dev.init());
    auto s = dev.add_device(&*blk);
    ASSERT_TRUE(s);
    slot = *s;
    ASSERT_TRUE(drv.attach());
    auto devs = drv.scan();
    ASSERT_TRUE(devs && !devs->empty());
    auto n = drv.negotiate(
        slot, (*devs)[0].device_features,
        bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_WRITE_ZEROES));
    ASSERT_TRUE(n) << n.error().what;
    const auto p = enable_driver_queue(drv, w, slot, layout::kBlkRequestQueue, kQueueSize);
    ASSERT_TRUE(p);
    vq.emplace(*p);
    avail_off = p->avail.off;
    ASSERT_TRUE(drv.driver_ok(slot));
  }

  /// Posts a request of `type` whose writable part is `copies` descriptors, all on the same
  /// `room`-byte range of the RC window (filled with kUntouched first); returns the used entry.
  std::optional<ring::Vring::Used> request(std::uint32_t type, std::size_t room, unsigned copies) {
    const auto hdr_at = drv.ep_alloc().alloc(sizeof(layout::VirtioBlkReqHdr), 64);
    const auto in = drv.rc_alloc().alloc(room, 64);
    if (!hdr_at || !in) return std::nullopt;
    layout::VirtioBlkReqHdr hdr{};
    hdr.type = layout::le32::from_cpu(type);
    w.drv_ep.write(hdr_at->off, std::as_bytes(std::span{&hdr, 1}));
    in_off = in->off;
    std::vector<std::byte> fill(room, kUntouched);
    w.drv_rc.write(in->off, fill);
    const ring::Buf out{hdr_at->link_addr, sizeof(hdr)};
    const std::vector<ring::Buf> ins(copies,
                                     ring::Buf{in->link_addr, static_cast<std::uint32_t>(room)});
    if (!vq->add({&out, 1}, ins, ++token)) return std::nullopt;
    (void)vq->kick_prepare();
    (void)drl.ring_doorbell();  // the fake link polls the device at once
    auto u = vq->get_used();
    if (!u || !*u) return std::nullopt;
    return **u;
  }
  std::vector<std::byte> room_bytes(std::size_t room) {
    std::vector<std::byte> b(room);
    w.drv_rc.read(in_off, b);
    return b;
  }

  TempDir tmp{"vepf-blkdev"};
  config::BlockConfig bcfg;
  LinkWindows w;
  std::optional<ep::BlockDevice> blk;  // before dev: dev's destructor resets it
  FakeDeviceLink dl;
  FakeDriverLink drl;
  transport::DeviceTransport dev;
  transport::DriverTransport drv;
  std::uint32_t slot = 0;
  std::optional<ring::Vring> vq;
  std::uint64_t token = 0;
  std::size_t in_off = 0;
  std::size_t avail_off = 0;
};

// GET_ID with 8 descriptors of 64 KiB on one range (512 KiB of room): the id, then the status at
// the room's last byte; nothing between is written (the device used to allocate and zero-fill
// the whole room: up to 4 GiB for one request), and the used length counts only the id.
TEST_F(BlockDeviceHostileDriver, GetIdWithHugeRoomWritesOnlyTheIdAndTheStatus) {
  constexpr std::size_t kRoom = 64 * 1024;
  auto u = request(VIRTIO_BLK_T_GET_ID, kRoom, 8);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->token, token);
  EXPECT_EQ(u->len, VIRTIO_BLK_ID_BYTES);
  const auto b = room_bytes(kRoom);
  const std::string id(reinterpret_cast<const char*>(b.data()), 13);
  EXPECT_EQ(id, "vepf:disk.img");
  EXPECT_EQ(b[kRoom - 1], std::byte{VIRTIO_BLK_S_OK});  // the last byte of the last descriptor
  for (std::size_t i = VIRTIO_BLK_ID_BYTES; i < kRoom - 1; ++i)
    ASSERT_EQ(b[i], kUntouched) << "byte " << i;
}

// An unknown type with the same room: only the status byte, VIRTIO_BLK_S_UNSUPP, and a used
// length of 0 (no byte written from the start).
TEST_F(BlockDeviceHostileDriver, UnknownTypeWithHugeRoomWritesOnlyTheStatus) {
  constexpr std::size_t kRoom = 64 * 1024;
  auto u = request(0x7777, kRoom, 8);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 0u);
  const auto b = room_bytes(kRoom);
  EXPECT_EQ(b[kRoom - 1], std::byte{VIRTIO_BLK_S_UNSUPP});
  for (std::size_t i = 0; i < kRoom - 1; ++i) ASSERT_EQ(b[i], kUntouched) << "byte " << i;
}

// Room of exactly the id and the status: no gap, so the used length counts the status too.
TEST_F(BlockDeviceHostileDriver, GetIdWithExactRoomCountsTheStatus) {
  auto u = request(VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_ID_BYTES + 1, 1);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, VIRTIO_BLK_ID_BYTES + 1);
  EXPECT_EQ(room_bytes(VIRTIO_BLK_ID_BYTES + 1).back(), std::byte{VIRTIO_BLK_S_OK});
}

// A driver re-posting one FLUSH head while it is still in flight (the I/O threads are not
// started here, so nothing completes): the device takes at most a queue's worth of requests,
// whatever the avail ring says (it used to take every entry: a job queue without bound). A
// driver running further ahead breaks the queue's rules, which is its own loss.
TEST_F(BlockDeviceHostileDriver, RequestsOfEveryTypeCountAgainstTheInFlightLimit) {
  const auto hdr_at = drv.ep_alloc().alloc(sizeof(layout::VirtioBlkReqHdr), 64);
  const auto st = drv.rc_alloc().alloc(1, 64);
  ASSERT_TRUE(hdr_at && st);
  layout::VirtioBlkReqHdr hdr{};
  hdr.type = layout::le32::from_cpu(VIRTIO_BLK_T_FLUSH);
  w.drv_ep.write(hdr_at->off, std::as_bytes(std::span{&hdr, 1}));
  const ring::Buf out{hdr_at->link_addr, sizeof(hdr)}, in{st->link_addr, 1};
  ASSERT_TRUE(vq->add({&out, 1}, {&in, 1}, 1));
  (void)vq->kick_prepare();
  (void)drl.ring_doorbell();
  // The head the ring layer used, then the same head again and again: ten queues' worth.
  const std::size_t idx_off = avail_off + layout::kRingIdxOff;
  std::uint16_t idx = w.drv_ep.load_acquire<std::uint16_t>(idx_off);
  const std::uint16_t head =
      w.drv_ep.load_acquire<std::uint16_t>(avail_off + layout::avail_entry_offset(0));
  for (int round = 0; round < 10; ++round) {
    for (std::uint16_t k = 0; k < kQueueSize; ++k) {
      w.drv_ep.store_release<std::uint16_t>(
          avail_off + layout::avail_entry_offset(idx % kQueueSize), head);
      ++idx;
    }
    w.drv_ep.store_release<std::uint16_t>(idx_off, idx);
    (void)drl.ring_doorbell();
  }
  nlohmann::json d;
  blk->describe(d);
  EXPECT_LE(d["in_flight"].get<std::uint64_t>(), kQueueSize);
  EXPECT_GE(d["in_flight"].get<std::uint64_t>(), 1u);
}

class BlockDeviceRangeLimit : public BlockDeviceHostileDriver {
 protected:
  BlockDeviceRangeLimit() { bcfg.max_range_bytes = 64 << 10; }

  /// A WRITE_ZEROES with `segs` segments of `sectors` each; returns the status byte, or -1
  /// when the device did not complete the request.
  int write_zeroes(unsigned segs, std::uint32_t sectors) {
    std::vector<std::byte> out(sizeof(layout::VirtioBlkReqHdr) +
                               segs * sizeof(layout::VirtioBlkDiscardWz));
    layout::VirtioBlkReqHdr hdr{};
    hdr.type = layout::le32::from_cpu(VIRTIO_BLK_T_WRITE_ZEROES);
    std::memcpy(out.data(), &hdr, sizeof(hdr));
    for (unsigned i = 0; i < segs; ++i) {
      layout::VirtioBlkDiscardWz seg{};
      seg.sector = layout::le64::from_cpu(std::uint64_t{i} * sectors);
      seg.num_sectors = layout::le32::from_cpu(sectors);
      std::memcpy(out.data() + sizeof(hdr) + i * sizeof(seg), &seg, sizeof(seg));
    }
    const auto o = drv.ep_alloc().alloc(out.size(), 64);
    const auto st = drv.rc_alloc().alloc(1, 64);
    if (!o || !st) return -2;
    w.drv_ep.write(o->off, out);
    const ring::Buf ob{o->link_addr, static_cast<std::uint32_t>(out.size())}, ib{st->link_addr, 1};
    if (!vq->add({&ob, 1}, {&ib, 1}, ++token)) return -2;
    (void)vq->kick_prepare();
    (void)drl.ring_doorbell();
    auto u = vq->get_used();
    if (!u || !*u) return -1;
    std::byte status{};
    w.drv_rc.read(st->off, std::span{&status, 1});
    return static_cast<int>(status);
  }
};

// The device's limits come from the board config (block.max_range_bytes) and hold: a
// WRITE_ZEROES may name one range of at most that many bytes. It used to take 16 ranges of
// 4 GiB each, all of which the EP writes itself on a file system that cannot zero a range.
TEST_F(BlockDeviceRangeLimit, AWriteZeroesBeyondTheConfiguredRangeIsRefusedUnexecuted) {
  layout::VirtioBlkConfig cfg{};
  ASSERT_TRUE(drv.read_config(slot, std::as_writable_bytes(std::span{&cfg, 1})));
  EXPECT_EQ(cfg.max_write_zeroes_sectors.to_cpu(), (64u << 10) / 512);
  EXPECT_EQ(cfg.max_write_zeroes_seg.to_cpu(), 1u);
  EXPECT_EQ(cfg.max_discard_sectors.to_cpu(), (64u << 10) / 512);
  EXPECT_EQ(write_zeroes(1, (128u << 10) / 512), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(write_zeroes(2, (32u << 10) / 512), VIRTIO_BLK_S_IOERR);
  nlohmann::json d;
  blk->describe(d);
  EXPECT_EQ(d["in_flight"].get<std::uint64_t>(), 0u) << "a refused request went to the I/O threads";
  // Within the limit it is taken (the I/O threads are not started here: it stays in flight).
  EXPECT_EQ(write_zeroes(1, (64u << 10) / 512), -1);
  blk->describe(d);
  EXPECT_EQ(d["in_flight"].get<std::uint64_t>(), 1u);
}

}  // namespace
}  // namespace vepf::test
