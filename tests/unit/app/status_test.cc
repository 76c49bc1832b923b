// The status document's pieces both programs share (vepf/app/status.hpp): feature names from the
// uapi headers, and the readable form.
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <string>

#include "vepf/app/status.hpp"

namespace vepf::app {
namespace {

using nlohmann::json;

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }

TEST(StatusFeatures, TransportAndDeviceBitsByTheSpecsNames) {
  const json n = feature_names(VIRTIO_ID_CONSOLE, bit(VIRTIO_F_VERSION_1) | bit(29) |
                                                      bit(VIRTIO_CONSOLE_F_MULTIPORT) | bit(50));
  EXPECT_EQ(n, json({"MULTIPORT", "EVENT_IDX", "VERSION_1", "bit 50"}));
  // The same bit means another thing on another device type.
  EXPECT_EQ(feature_names(VIRTIO_ID_NET, bit(1)), json({"GUEST_CSUM"}));
  EXPECT_EQ(feature_names(VIRTIO_ID_BLOCK, bit(5)), json({"RO"}));
  EXPECT_EQ(feature_names(VIRTIO_ID_RPMSG, bit(0)), json({"NS"}));
  EXPECT_EQ(feature_names(99, bit(0)), json({"bit 0"}));
  EXPECT_EQ(feature_names(VIRTIO_ID_NET, 0), json::array());
  EXPECT_EQ(device_type_name(VIRTIO_ID_BLOCK), "block");
  EXPECT_EQ(device_type_name(99), "id 99");
}

TEST(StatusFormat, ReadableLikeLspciAndEthtool) {
  const json s = json::parse(R"({
    "program": "vepf-ep", "board": "b", "platform": "loopback",
    "link": {"state": "attached", "epoch": "0x12345678", "where": "loopback at /x", "repairs": 2},
    "link_model": {"nonposted_reads": 0, "nonposted_read_bytes": 0, "posted_writes": 3,
                   "posted_write_bytes": 2048, "signals_sent": 4, "signals_received": 5},
    "devices": [{"slot": 1, "type": "net", "status": 79, "driver_ok": true, "needs_reset": true,
                 "features": "0x100000000", "feature_names": ["VERSION_1"],
                 "queues": [{"index": 0, "size": 256, "last_avail": 7, "used": 7, "pending": 0,
                             "broken": true, "why": "descriptor out of the window"}],
                 "counters": {"to_driver": 9}, "backend": "tap vepf-ep0"}]})");
  const std::string t = format_status(s);
  EXPECT_NE(t.find("vepf-ep: board b (loopback), link attached, epoch 0x12345678\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("link repairs: 2"), std::string::npos) << t;
  EXPECT_NE(t.find("3 posted writes (2.0 KiB), signals 4 sent, 5 received"), std::string::npos)
      << t;
  EXPECT_NE(t.find("[1] net: DRIVER_OK, NEEDS_RESET (status 0x4f)"), std::string::npos) << t;
  EXPECT_NE(t.find("features 0x100000000: VERSION_1"), std::string::npos) << t;
  EXPECT_NE(t.find("queue 0: 256 entries, last_avail 7, used 7, pending 0, BROKEN (descriptor out "
                   "of the window)"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("to_driver: 9"), std::string::npos) << t;
  EXPECT_NE(t.find("backend: tap vepf-ep0"), std::string::npos) << t;
  // vepf-host's document has no status byte and says so by leaving it out.
  json h = s;
  h["devices"][0].erase("status");
  h["devices"][0]["needs_reset"] = false;
  EXPECT_NE(format_status(h).find("[1] net: DRIVER_OK\n"), std::string::npos);
  h["devices"] = json::array();
  EXPECT_NE(format_status(h).find("  no devices\n"), std::string::npos);
}

}  // namespace
}  // namespace vepf::app
