// Link requests a driver wrote by hand (LAYOUT.md §2.2), answered by DeviceTransport alone.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "support/fake_links.hpp"
#include "support/link_windows.hpp"
#include "vepf/layout/epf.hpp"
#include "vepf/transport/device_transport.hpp"

namespace vepf::test {
namespace {

using layout::ControlRegion;
using layout::EpfHeader;
using layout::LinkDriverLine;

constexpr std::uint32_t kEpoch = 0x5eed0003;
constexpr auto kBus = static_cast<std::uint32_t>(kRcBusAddr);  // where the fake link's RC window is

std::size_t hdr_off(std::size_t field) { return offsetof(ControlRegion, header) + field; }
std::size_t link_off(std::size_t field) { return offsetof(ControlRegion, link) + field; }

TEST(LinkRequest, AttachOfAnRcWindowNotInWholeWordsIsRefused) {
  // Address and size multiples of 8, so that device-memory copies (aligned containers of up to
  // 8 bytes) stay inside the window.
  LinkWindows w;
  FakeDeviceLink dl(w);
  transport::DeviceTransport dev(dl, kEpoch);
  ASSERT_TRUE(dev.init());
  for (const auto& [addr, size] :
       {std::pair<std::uint32_t, std::uint32_t>{kBus, 0x10004}, {kBus + 4, 0x10000}}) {
    const std::uint32_t seq =
        peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, link_ack_seq))) + 1;
    poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, req_op)),
                        static_cast<std::uint32_t>(layout::LinkOp::kAttach));
    poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, rc_window_addr_lo)), addr);
    poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, rc_window_size_lo)), size);
    poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, driver_epoch)), kEpoch);
    poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, req_seq)), seq);
    dev.poll();
    EXPECT_EQ(peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, link_ack_seq))), seq);
    EXPECT_EQ(peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, link_ack_result))),
              static_cast<std::uint32_t>(layout::AckResult::kBadOp))
        << "addr " << addr << " size " << size;
    EXPECT_FALSE(dev.attached());
  }
  EXPECT_EQ(dl.attach_calls, 0);
}

TEST(LinkRequest, AttachOfAWholeWordRcWindowIsTaken) {
  // The same request with a good size: what the refusals above are measured against.
  LinkWindows w;
  FakeDeviceLink dl(w);
  transport::DeviceTransport dev(dl, kEpoch);
  ASSERT_TRUE(dev.init());
  poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, req_op)),
                      static_cast<std::uint32_t>(layout::LinkOp::kAttach));
  poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, rc_window_addr_lo)), kBus);
  poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, rc_window_size_lo)), 0x10000);
  poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, driver_epoch)), kEpoch);
  const std::uint32_t seq =
      peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, link_ack_seq))) + 1;
  poke<std::uint32_t>(w.ep(), link_off(offsetof(LinkDriverLine, req_seq)), seq);
  dev.poll();
  EXPECT_EQ(peek<std::uint32_t>(w.ep(), hdr_off(offsetof(EpfHeader, link_ack_result))),
            static_cast<std::uint32_t>(layout::AckResult::kOk));
  EXPECT_TRUE(dev.attached());
  EXPECT_EQ(dl.attach_calls, 1);
}

}  // namespace
}  // namespace vepf::test
