// The PCI platforms without PCI: the ivshmem doorbell over fake registers, the links' windows
// and signals over ordinary memory and eventfds, open_devmem() over a file standing in for
// /dev/mem, and open_vfio()'s errors on a machine without the function.
#include "vepf/platform/pci.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace vepf::platform {
namespace {

using std::chrono::milliseconds;

std::uint32_t word(const std::vector<std::byte>& m, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, m.data() + off, 4);
  return v;
}

void set_word(std::array<std::uint32_t, 4>& regs, std::size_t off, std::uint32_t v) {
  regs[off / 4] = v;
}

volatile std::byte* as_regs(std::array<std::uint32_t, 4>& r) {
  return reinterpret_cast<volatile std::byte*>(r.data());
}

TEST(IvshmemDoorbell, EachSidePublishesItsIdAndRingsThePeers) {
  std::vector<std::byte> ids(4096);
  std::array<std::uint32_t, 4> ep_regs{}, host_regs{};
  set_word(ep_regs, kIvshmemIvPosition, 1);  // ids follow connect order: the EP came second
  set_word(host_regs, kIvshmemIvPosition, 0);
  {
    IvshmemDoorbell ep(as_regs(ep_regs), ids, PciRole::kEp, 0);
    IvshmemDoorbell host(as_regs(host_regs), ids, PciRole::kHost, 1);
    auto id = ep.publish();
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, 1);
    EXPECT_EQ(word(ids, 0), kPeerIdValid | 1);
    EXPECT_FALSE(ep.ring());  // the host has not published: nothing rung
    EXPECT_EQ(ep_regs[kIvshmemDoorbell / 4], 0u);
    ASSERT_TRUE(host.publish());
    EXPECT_EQ(word(ids, 4), kPeerIdValid | 0);
    EXPECT_TRUE(ep.ring());
    EXPECT_EQ(ep_regs[kIvshmemDoorbell / 4], (0u << 16) | 0);  // the host's ID, the EP's vector
    EXPECT_TRUE(host.ring());
    EXPECT_EQ(host_regs[kIvshmemDoorbell / 4], (1u << 16) | 1);  // the EP's ID, the host's vector
  }
  // Both withdrew their IDs.
  EXPECT_EQ(word(ids, 0), 0u);
  EXPECT_EQ(word(ids, 4), 0u);
}

TEST(IvshmemDoorbell, NoServerIsABadLayout) {
  std::vector<std::byte> ids(4096);
  std::array<std::uint32_t, 4> regs{};
  set_word(regs, kIvshmemIvPosition, 0xffffffffu);  // -1: ivshmem-plain, or no server
  IvshmemDoorbell d(as_regs(regs), ids, PciRole::kHost, 0);
  auto id = d.publish();
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Errc::kBadLayout);
  EXPECT_EQ(word(ids, 4), 0u);
}

/// EP and host over one shared "BAR": [0, 64K) EP window, [64K, 128K) RC window at bus 0x10000.
struct Shared {
  std::vector<std::byte> bar = std::vector<std::byte>(128 << 10);
  PciParts parts(bool host) {
    PciParts p;
    p.ep_window = std::span(bar).subspan(0, 64 << 10);
    p.rc_window = std::span(bar).subspan(64 << 10, 64 << 10);
    p.rc_window_bus_addr = 0x10000;
    p.description = host ? "host" : "ep";
    return p;
  }
};

TEST(PciLink, EpReachesTheRcWindowThroughItsOutboundWindow) {
  Shared s;
  PciHost host(s.parts(true));
  PciEp ep(s.parts(false));
  EXPECT_EQ(host.rc_window_bus_addr(), 0x10000u);
  EXPECT_EQ(host.rc_window().size(), 64u << 10);
  EXPECT_FALSE(host.rc_window().remote());
  EXPECT_TRUE(host.ep_window().remote());
  EXPECT_FALSE(ep.ep_window().remote());
  // The whole RC window, and a part of it 4 KiB in.
  auto w = ep.attach_rc_window(0x10000, 64 << 10);
  ASSERT_TRUE(w);
  EXPECT_TRUE((*w)->remote());
  host.rc_window().store<std::uint32_t>(128, 0xabcd1234);
  EXPECT_EQ((*w)->load<std::uint32_t>(128), 0xabcd1234u);
  EXPECT_EQ(ep.counters().nonposted_reads, 1u);
  auto part = ep.attach_rc_window(0x11000, 4096);
  ASSERT_TRUE(part);
  (*part)->store<std::uint32_t>(0, 77);
  EXPECT_EQ(host.rc_window().load<std::uint32_t>(4096), 77u);
  // What the driver publishes is untrusted: anything not inside the outbound window is refused.
  for (auto [addr, size] :
       std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0xf000, 4096},
                                                            {0x10000, (64 << 10) + 1},
                                                            {0x20000, 1},
                                                            {0x10000, 0},
                                                            {0x11000, ~std::uint64_t{0}},
                                                            {~std::uint64_t{0}, 2}}) {
    auto bad = ep.attach_rc_window(addr, size);
    ASSERT_FALSE(bad) << addr << "+" << size;
    EXPECT_EQ(bad.error().code, Errc::kOutOfRange);
  }
  // Host writes to the EP window are what the EP reads locally.
  host.ep_window().store<std::uint32_t>(64, 5);
  EXPECT_EQ(ep.ep_window().load<std::uint32_t>(64), 5u);
  EXPECT_EQ(host.counters().posted_writes, 1u);
}

TEST(PciLink, InterruptsArriveAsEventfdsAndWithoutOneTheHostPolls) {
  Shared s;
  auto p = s.parts(true);
  auto irq = os::EventFd::create();
  ASSERT_TRUE(irq);
  p.irq = std::move(*irq);
  const int fd = p.irq.fd();
  PciHost host(std::move(p));
  EXPECT_EQ(host.interrupt_fd(), fd);
  auto none = host.wait_interrupt(milliseconds(0));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  std::uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), 8);
  auto got = host.wait_interrupt(milliseconds(1000));
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
  EXPECT_EQ(host.counters().signals_received, 1u);
  // No doorbell: ringing is a no-op that counts nothing; no eventfd: waiting just polls.
  EXPECT_TRUE(host.ring_doorbell());
  EXPECT_EQ(host.counters().signals_sent, 0u);
  PciHost polled(s.parts(true));
  EXPECT_EQ(polled.interrupt_fd(), -1);
  auto w = polled.wait_interrupt(milliseconds(50));
  ASSERT_TRUE(w);
  EXPECT_FALSE(*w);
  PciEp ep(s.parts(false));
  EXPECT_EQ(ep.doorbell_fd(), -1);
  auto d = ep.drain_doorbell();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, 0u);
  EXPECT_TRUE(ep.raise_interrupt());
}

TEST(PciLink, SignalsGoThroughTheIvshmemDoorbell) {
  Shared s;
  std::array<std::uint32_t, 4> ep_regs{}, host_regs{};
  set_word(ep_regs, kIvshmemIvPosition, 4);
  set_word(host_regs, kIvshmemIvPosition, 9);
  std::span<std::byte> ids = std::span(s.bar).subspan(0, 4096);  // any shared page
  auto hp = s.parts(true);
  hp.doorbell = std::make_unique<IvshmemDoorbell>(as_regs(host_regs), ids, PciRole::kHost, 0);
  ASSERT_TRUE(hp.doorbell->publish());
  auto ep_parts = s.parts(false);
  ep_parts.doorbell = std::make_unique<IvshmemDoorbell>(as_regs(ep_regs), ids, PciRole::kEp, 0);
  PciHost host(std::move(hp));
  ASSERT_TRUE(host.ring_doorbell());  // the EP has not published yet
  EXPECT_EQ(host.counters().signals_sent, 0u);
  ASSERT_TRUE(ep_parts.doorbell->publish());
  PciEp ep(std::move(ep_parts));
  ASSERT_TRUE(host.ring_doorbell());
  EXPECT_EQ(host.counters().signals_sent, 1u);
  EXPECT_EQ(host_regs[kIvshmemDoorbell / 4], 4u << 16);
  ASSERT_TRUE(ep.raise_interrupt());
  EXPECT_EQ(ep.counters().signals_sent, 1u);
  EXPECT_EQ(ep_regs[kIvshmemDoorbell / 4], 9u << 16);
}

class Devmem : public ::testing::Test {
 protected:
  void SetUp() override {
    mem_ = dir_ + "/mem";
    std::ofstream(mem_).close();
    std::filesystem::resize_file(mem_, 1 << 20);  // 1 MiB of "physical memory"
    link_.ep_window_size = 64 << 10;
    link_.rc_window_size = 64 << 10;
    side_.ep_window = {.is_phys = true, .phys = 0x10000, .memory = {}};
    side_.rc_window = config::Place{.is_phys = true, .phys = 0x40000, .memory = {}};
    side_.rc_window_bus_addr = 0x800000;
  }
  /// side_ with an ivshmem doorbell: the "register page" at physical 0 (its IVPosition set to
  /// `ivposition`), the peer-ID page at 0x80000.
  config::PciSide with_ivshmem(std::uint32_t ivposition) {
    std::fstream f(mem_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kIvshmemIvPosition);
    f.write(reinterpret_cast<const char*>(&ivposition), 4);
    auto s = side_;
    s.doorbell = config::DoorbellKind::kIvshmem;
    s.doorbell_regs = {.is_phys = true, .phys = 0, .memory = {}};
    s.peer_ids = {.is_phys = true, .phys = 0x80000, .memory = {}};
    return s;
  }
  std::vector<char> read_mem() {
    std::ifstream in(mem_, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  }
  vepf::test::TempDir tmp_{"vepf-devmem-test"};
  std::string dir_ = tmp_.path();
  std::string mem_;
  config::LinkConfig link_;
  config::PciSide side_;
};

TEST_F(Devmem, MapsTheNamedRangesAtTheirPhysicalAddresses) {
  auto parts = open_devmem(side_, link_, mem_);
  ASSERT_TRUE(parts) << parts.error();
  EXPECT_EQ(parts->ep_window.size(), 64u << 10);
  EXPECT_EQ(parts->rc_window.size(), 64u << 10);
  EXPECT_EQ(parts->irq.valid(), false);
  EXPECT_NE(parts->description.find("0x10000"), std::string::npos) << parts->description;
  PciEp ep(std::move(*parts));
  ep.ep_window().store<std::uint32_t>(8, 0x11223344);
  auto rc = ep.attach_rc_window(0x800000, 64 << 10);
  ASSERT_TRUE(rc);
  (*rc)->store<std::uint32_t>(16, 0x55667788);
  const auto m = read_mem();
  std::uint32_t a, b;
  std::memcpy(&a, m.data() + 0x10000 + 8, 4);
  std::memcpy(&b, m.data() + 0x40000 + 16, 4);
  EXPECT_EQ(a, 0x11223344u);
  EXPECT_EQ(b, 0x55667788u);
}

TEST_F(Devmem, WindowsAreDeviceMemoryUnlessTheConfigSaysOtherwise) {
  auto parts = open_devmem(side_, link_, mem_);
  ASSERT_TRUE(parts) << parts.error();
  EXPECT_EQ(parts->ep_access.type, ring::MemoryType::kDevice);
  EXPECT_EQ(parts->rc_access.type, ring::MemoryType::kDevice);
  EXPECT_NE(parts->description.find("EP window device, RC window device"), std::string::npos)
      << parts->description;
  PciEp ep(std::move(*parts));
  EXPECT_FALSE(ep.ep_window().viewable());

  auto s = side_;
  s.ep_window.memory.type = config::MemoryType::kCachedNoncoherent;
  s.rc_window->memory = {config::MemoryType::kDevice, 4};
  auto typed = open_devmem(s, link_, mem_);
  ASSERT_TRUE(typed) << typed.error();
  EXPECT_EQ(typed->ep_access.type, ring::MemoryType::kCachedNoncoherent);
  EXPECT_EQ(typed->rc_access.type, ring::MemoryType::kDevice);
  EXPECT_FALSE(typed->rc_access.widths.allows(8));
  EXPECT_NE(typed->description.find("RC window device (32-bit accesses)"), std::string::npos)
      << typed->description;
  // The RC window takes 32-bit accesses only: a 16-bit field is a read-modify-write of its word.
  PciEp ep2(std::move(*typed));
  auto rc = ep2.attach_rc_window(0x800000, 64 << 10);
  ASSERT_TRUE(rc);
  (*rc)->store<std::uint32_t>(0x20, 0xaaaabbbb);
  (*rc)->store<std::uint16_t>(0x22, 0x1234);
  EXPECT_EQ((*rc)->load<std::uint32_t>(0x20), 0x1234bbbbu);
}

TEST_F(Devmem, PublishesItsPeerIdAndWithdrawsItAfterUse) {
  auto parts = open_devmem(with_ivshmem(3), link_, mem_);
  ASSERT_TRUE(parts) << parts.error();
  EXPECT_NE(parts->description.find("ivshmem peer 3"), std::string::npos) << parts->description;
  std::uint32_t ep_id;
  {
    PciEp ep(std::move(*parts));
    const auto m = read_mem();
    std::memcpy(&ep_id, m.data() + 0x80000, 4);
    EXPECT_EQ(ep_id, kPeerIdValid | 3);
    EXPECT_TRUE(ep.raise_interrupt());  // the host has not published: nothing rung
    EXPECT_EQ(ep.counters().signals_sent, 0u);
  }  // the doorbell withdraws the ID before the mappings go
  const auto m = read_mem();
  std::memcpy(&ep_id, m.data() + 0x80000, 4);
  EXPECT_EQ(ep_id, 0u);
}

TEST_F(Devmem, AFunctionThatDecodesNothingIsNamedAsSuch) {
  auto e = open_devmem(with_ivshmem(0xffffffff), link_,
                       mem_);  // what reads of a disabled function return
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("IVPosition reads as all ones: the function does not decode its BARs"),
            std::string::npos)
      << e.error();
}

TEST_F(Devmem, EnablesTheFunctionItNamesAndDisablesItAfterUse) {
  const std::string sysfs = dir_ + "/sys";
  const std::string fn = sysfs + "/bus/pci/devices/0000:00:05.0";
  std::filesystem::create_directories(fn);
  std::ofstream(fn + "/enable") << "0";
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto s = side_;
  s.device = "0000:00:05.0";
  {
    auto parts = open_devmem(s, link_, mem_, sysfs);
    ASSERT_TRUE(parts) << parts.error();
    EXPECT_EQ(slurp(fn + "/enable"), "1");
    EXPECT_NE(parts->description.find("behind 0000:00:05.0 (enabled)"), std::string::npos)
        << parts->description;
    PciEp ep(std::move(*parts));
  }
  EXPECT_EQ(slurp(fn + "/enable"), "0");

  s.device = "0000:00:09.0";
  auto e = open_devmem(s, link_, mem_, sysfs);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(),
            "ep.device: PCI function 0000:00:09.0 does not exist: check it with lspci -D");
  std::filesystem::create_directories(sysfs + "/bus/pci/drivers/virtio-pci");
  std::filesystem::create_directory_symlink(sysfs + "/bus/pci/drivers/virtio-pci", fn + "/driver");
  s.device = "0000:00:05.0";
  e = open_devmem(s, link_, mem_, sysfs);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(),
            "ep.device: 0000:00:05.0 is bound to virtio-pci, and /dev/mem cannot reach a function "
            "a driver holds: "
            "unbind it (echo 0000:00:05.0 > /sys/bus/pci/drivers/virtio-pci/unbind)");
  EXPECT_EQ(slurp(fn + "/enable"), "0");  // refused before anything was written
}

TEST_F(Devmem, RefusesWhatTheConfigDoesNotNameProperly) {
  auto s = side_;
  s.ep_window.phys = 0x10800;
  auto e = open_devmem(s, link_, mem_);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("ep.ep_window.phys = 0x10800 is not aligned to the"), std::string::npos)
      << e.error();
  s = side_;
  s.rc_window = config::Place{.bar = 2, .memory = {}};
  e = open_devmem(s, link_, mem_);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("ep.rc_window names a BAR"), std::string::npos) << e.error();
  s = side_;
  s.rc_window.reset();
  e = open_devmem(s, link_, mem_);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("ep.rc_window is missing"), std::string::npos) << e.error();
  e = open_devmem(side_, link_, dir_ + "/no-such-mem");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("cannot open " + dir_ + "/no-such-mem: No such file or directory"),
            std::string::npos)
      << e.error();
}

TEST(Vfio, ErrorsSayWhatIsWrong) {
  config::LinkConfig link;
  config::PciSide side;
  side.ep_window = {.bar = 2, .offset = 0, .memory = {}};
  side.rc_window = config::Place{.bar = 2, .offset = 0x400000, .memory = {}};
  int calls = 0;
  PciFinder finder = [&](const vfio::PciMatch& m) -> tl::expected<vfio::PciAddress, std::string> {
    ++calls;
    return tl::unexpected("no PCI function " + m.str() + " here");
  };
  side.device = "dead:beef";
  auto e = open_vfio(side, link, PciRole::kHost, finder);
  ASSERT_FALSE(e);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(e.error(), "no PCI function dead:beef here");
  // An address is not looked up: the sysfs check says it is absent.
  side.device = "0000:7e:1f.7";
  e = open_vfio(side, link, PciRole::kEp, finder);
  ASSERT_FALSE(e);
  EXPECT_EQ(calls, 1);
  EXPECT_NE(e.error().find("0000:7e:1f.7"), std::string::npos) << e.error();
  side.device = "not-a-device";
  e = open_vfio(side, link, PciRole::kEp, finder);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("ep.device = \"not-a-device\" is neither"), std::string::npos)
      << e.error();
}

}  // namespace
}  // namespace vepf::platform
