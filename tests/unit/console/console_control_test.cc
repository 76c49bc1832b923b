// layout::parse_console_control() and the queue numbering of VIRTIO 1.2 §5.3.2 / §5.3.6.2.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "vepf/layout/console.hpp"

namespace vepf::layout {
namespace {

std::vector<std::byte> msg(std::uint32_t id, std::uint16_t event, std::uint16_t value,
                           std::vector<std::uint8_t> payload = {}) {
  std::vector<std::byte> p;
  for (const std::uint8_t b : payload) p.push_back(std::byte{b});
  return console_control(id, event, value, p);
}

std::vector<std::byte> named(std::uint32_t id, const std::string& name) {
  return msg(id, VIRTIO_CONSOLE_PORT_NAME, 1, std::vector<std::uint8_t>(name.begin(), name.end()));
}

TEST(ConsoleLayout, QueueNumbersFollowTheSpec) {
  EXPECT_EQ(console_rx_queue(0), 0);
  EXPECT_EQ(console_tx_queue(0), 1);
  EXPECT_EQ(kConsoleCtrlRxQueue, 2);
  EXPECT_EQ(kConsoleCtrlTxQueue, 3);
  EXPECT_EQ(console_rx_queue(1), 4);
  EXPECT_EQ(console_tx_queue(1), 5);
  EXPECT_EQ(console_rx_queue(31), 64);
  EXPECT_EQ(console_tx_queue(31), 65);
  EXPECT_EQ(console_num_queues(1), 4);
  EXPECT_EQ(console_num_queues(kConsoleMaxPorts), 66);
}

TEST(ConsoleControl, HeaderIsLittleEndianIdEventValue) {
  const auto m = msg(0x01020304, VIRTIO_CONSOLE_PORT_OPEN, 1);
  ASSERT_EQ(m.size(), 8u);
  const std::uint8_t want[8] = {0x04, 0x03, 0x02, 0x01, VIRTIO_CONSOLE_PORT_OPEN, 0, 1, 0};
  EXPECT_EQ(std::memcmp(m.data(), want, 8), 0);
  auto p = parse_console_control(msg(3, VIRTIO_CONSOLE_PORT_OPEN, 1), 4);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->id, 3u);
  EXPECT_EQ(p->event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_EQ(p->value, 1);
}

TEST(ConsoleControl, ResizeIsColumnsThenRows) {
  // VIRTIO 1.2 §5.3.6.2: struct virtio_console_resize { le16 cols; le16 rows; }.
  auto p = parse_console_control(msg(0, VIRTIO_CONSOLE_RESIZE, 0, {80, 0, 24, 0}), 1);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->cols, 80);
  EXPECT_EQ(p->rows, 24);
  EXPECT_FALSE(parse_console_control(msg(0, VIRTIO_CONSOLE_RESIZE, 0, {80, 0, 24}), 1));
}

TEST(ConsoleControl, RefusesWhatThePeerMustNotSend) {
  auto m = msg(0, VIRTIO_CONSOLE_PORT_ADD, 0);
  EXPECT_FALSE(parse_console_control(std::span{m}.first(7), 1));                    // truncated
  EXPECT_FALSE(parse_console_control(msg(0, VIRTIO_CONSOLE_PORT_NAME + 1, 0), 1));  // unknown event
  EXPECT_FALSE(parse_console_control(msg(2, VIRTIO_CONSOLE_PORT_ADD, 0), 2));  // id out of range
  EXPECT_FALSE(parse_console_control(msg(0xffffffff, VIRTIO_CONSOLE_PORT_READY, 1), 32));
  EXPECT_FALSE(parse_console_control(msg(0, VIRTIO_CONSOLE_PORT_ADD, 0), 0));  // no ports at all
  // DEVICE_READY names no port: its id is not checked.
  EXPECT_TRUE(parse_console_control(msg(7, VIRTIO_CONSOLE_DEVICE_READY, 1), 1));
}

TEST(ConsoleControl, PortNamesAreSafeFileNames) {
  const auto m = named(1, "org.vepf.shell-0");  // the parsed name views the message
  auto p = parse_console_control(m, 2);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->name, "org.vepf.shell-0");
  const auto with_nul = named(1, std::string("log\0", 4));  // Linux peers send the NUL
  p = parse_console_control(with_nul, 2);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->name, "log");
  for (const std::string& bad :
       {std::string(), std::string("."), std::string(".."), std::string("../etc/x"),
        std::string("a/b"), std::string("a b"), std::string("x\0y", 3),
        std::string(kConsoleMaxNameLen + 1, 'n')}) {
    EXPECT_FALSE(parse_console_control(named(0, bad), 1)) << '"' << bad << '"';
  }
  EXPECT_TRUE(parse_console_control(named(0, std::string(kConsoleMaxNameLen, 'n')), 1));
}

TEST(ConsoleControl, BuildRefusesATooSmallBuffer) {
  std::vector<std::byte> out(9);
  const std::byte payload[2]{};
  EXPECT_EQ(build_console_control(out, 0, VIRTIO_CONSOLE_RESIZE, 0, payload), 0u);
  EXPECT_EQ(build_console_control(std::span{out}.first(8), 0, VIRTIO_CONSOLE_PORT_OPEN, 1), 8u);
}

}  // namespace
}  // namespace vepf::layout
