// The libgpiod provider on this machine: the build has no GPIO chips (Debian's kernel has neither
// gpio-sim nor gpio-mockup), so these check the refusals: each message names the chip the board
// config gave. Lines on real chips are exercised on the board.

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "vepf/gpio/gpio.hpp"

namespace vepf::gpio {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

class LibgpiodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::error_code ec;
    if (std::filesystem::exists("/dev/gpiochip9", ec))
      GTEST_SKIP() << "this machine has /dev/gpiochip9";
  }
  std::unique_ptr<Chips> chips_ = make_libgpiod_chips();
};

TEST_F(LibgpiodTest, MissingChipByNameIsNamed) {
  auto out = chips_->request_output(LineSpec{"gpiochip9", 0, false}, false, "vepf-test");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Errc::kSystem);
  EXPECT_EQ(out.error().sys_errno, ENOENT);
  EXPECT_TRUE(starts_with(out.error().message, "gpiochip9: no such GPIO chip ("))
      << out.error().message;
  EXPECT_NE(out.error().message.find("[gpio] chip"), std::string::npos) << out.error().message;

  auto in = chips_->request_input(LineSpec{"gpiochip9", 3, true}, "vepf-test");
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().sys_errno, ENOENT);
  EXPECT_TRUE(starts_with(in.error().message, "gpiochip9: no such GPIO chip ("))
      << in.error().message;
}

TEST_F(LibgpiodTest, MissingChipByPathOrNumberIsNamed) {
  for (const char* chip : {"/dev/gpiochip9", "9"}) {
    auto out = chips_->request_output(LineSpec{chip, 0, false}, false, "vepf-test");
    ASSERT_FALSE(out) << chip;
    EXPECT_EQ(out.error().sys_errno, ENOENT) << chip;
    EXPECT_TRUE(starts_with(out.error().message, std::string(chip) + ": no such GPIO chip"))
        << out.error().message;
  }
}

TEST_F(LibgpiodTest, InvalidChipPathIsNamed) {
  auto out =
      chips_->request_output(LineSpec{"/nonexistent/gpiochip0", 1, false}, false, "vepf-test");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Errc::kSystem);
  EXPECT_TRUE(starts_with(out.error().message, "/nonexistent/gpiochip0: no such GPIO chip"))
      << out.error().message;
}

TEST_F(LibgpiodTest, DeviceThatIsNotAGpioChipIsNamed) {
  // A character device that is not a GPIO chip: libgpiod checks /sys/bus/gpio/devices/<name>.
  auto in = chips_->request_input(LineSpec{"/dev/null", 0, false}, "vepf-test");
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().code, Errc::kSystem);
  EXPECT_TRUE(starts_with(in.error().message, "/dev/null: not a GPIO character device"))
      << in.error().message;
}

TEST_F(LibgpiodTest, EmptyChipNameIsRejectedBeforeAnySyscall) {
  auto out = chips_->request_output(LineSpec{"", 4, false}, false, "vepf-test");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(starts_with(out.error().message, "GPIO line 4: no chip given"))
      << out.error().message;
}

TEST_F(LibgpiodTest, SidebandWithoutLinesNeedsNoChip) {
  Sideband sb(*chips_, std::nullopt, std::nullopt);
  ASSERT_TRUE(sb.start());
  EXPECT_TRUE(sb.set_ready(true));
  EXPECT_EQ(sb.reset_fd(), -1);
}

TEST_F(LibgpiodTest, SidebandStartReportsTheMissingChip) {
  Sideband sb(*chips_, LineSpec{"gpiochip9", 5, false}, std::nullopt);
  auto r = sb.start();
  ASSERT_FALSE(r);
  EXPECT_TRUE(starts_with(r.error().message, "gpiochip9: no such GPIO chip")) << r.error().message;
  EXPECT_FALSE(sb.started());
}

}  // namespace
}  // namespace vepf::gpio
