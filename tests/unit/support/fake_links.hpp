#pragma once
// Test fixture: transport::DeviceLink / DriverLink over LinkWindows, in one thread.
//
// FakeDriverLink in PeerMode::kSync calls the device transport's poll() from ring_doorbell()
// and wait_interrupt(), so a driver request is answered before the driver looks for the ack.
// In PeerMode::kNeverAck it does nothing (a device that never acknowledges): wait_interrupt()
// sleeps its timeout and reports no interrupt.

#include <chrono>
#include <cstdint>
#include <thread>

#include "support/link_windows.hpp"
#include "vepf/error.hpp"
#include "vepf/transport/device_transport.hpp"
#include "vepf/transport/link.hpp"

namespace vepf::test {

/// Bus address (IOVA) the fake RC window is DMA-mapped at.
inline constexpr std::uint64_t kRcBusAddr = 0x8000'0000;

class FakeDeviceLink final : public transport::DeviceLink {
 public:
  explicit FakeDeviceLink(LinkWindows& w) : w_(w) {}

  ring::Window& ep_window() override { return w_.dev_ep; }
  Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) override {
    ++attach_calls;
    if (bus_addr != kRcBusAddr || size > w_.rc_mem.size()) {
      return fail(Errc::kOutOfRange, "fake link: RC window not reachable");
    }
    attached = true;
    return &w_.dev_rc;
  }
  void detach_rc_window() override {
    ++detach_calls;
    attached = false;
  }
  Result<void> raise_interrupt() override {
    ++w_.dev_counters.signals_sent;
    ++irqs_pending;
    return {};
  }
  ring::LinkCounters& counters() override { return w_.dev_counters; }

  /// Consumes one raised interrupt, if any.
  bool take_interrupt() {
    if (irqs_pending == 0) return false;
    --irqs_pending;
    return true;
  }

  bool attached = false;
  int attach_calls = 0;
  int detach_calls = 0;
  std::uint64_t irqs_pending = 0;

 private:
  LinkWindows& w_;
};

/// A DeviceLink that forwards to one the test keeps: for code that takes ownership of its link
/// (ep::Server), so that the test's FakeDeviceLink outlives one server and serves the next (an
/// EP restart in-process).
class BorrowedDeviceLink final : public transport::DeviceLink {
 public:
  explicit BorrowedDeviceLink(transport::DeviceLink& l) : l_(l) {}
  ring::Window& ep_window() override { return l_.ep_window(); }
  Result<ring::Window*> attach_rc_window(std::uint64_t bus_addr, std::uint64_t size) override {
    return l_.attach_rc_window(bus_addr, size);
  }
  void detach_rc_window() override { l_.detach_rc_window(); }
  Result<void> raise_interrupt() override { return l_.raise_interrupt(); }
  ring::LinkCounters& counters() override { return l_.counters(); }
  /// The test's windows outlive the server, as BAR memory outlives vepf-ep.
  bool window_outlives_process() const noexcept override { return true; }

 private:
  transport::DeviceLink& l_;
};

enum class PeerMode { kSync, kNeverAck };

class FakeDriverLink final : public transport::DriverLink {
 public:
  FakeDriverLink(LinkWindows& w, FakeDeviceLink& dev_link) : w_(w), dev_link_(dev_link) {}

  /// The device transport to poll in kSync mode (nullptr: nobody answers).
  void set_device(transport::DeviceTransport* dev) { dev_ = dev; }
  void set_mode(PeerMode m) { mode_ = m; }

  ring::Window& ep_window() override { return w_.drv_ep; }
  ring::Window& rc_window() override { return w_.drv_rc; }
  std::uint64_t rc_window_bus_addr() const override { return kRcBusAddr; }
  Result<void> ring_doorbell() override {
    ++w_.drv_counters.signals_sent;
    ++doorbells;
    if (mode_ == PeerMode::kSync && dev_ != nullptr) dev_->poll();
    return {};
  }
  Result<bool> wait_interrupt(std::chrono::milliseconds timeout) override {
    ++waits;
    if (mode_ == PeerMode::kSync && dev_ != nullptr) dev_->poll();  // the device's poll tick
    if (dev_link_.take_interrupt()) {
      ++w_.drv_counters.signals_received;
      return true;
    }
    if (mode_ == PeerMode::kNeverAck) std::this_thread::sleep_for(timeout);
    return false;
  }
  ring::LinkCounters& counters() override { return w_.drv_counters; }

  int doorbells = 0;
  int waits = 0;

 private:
  LinkWindows& w_;
  FakeDeviceLink& dev_link_;
  transport::DeviceTransport* dev_ = nullptr;
  PeerMode mode_ = PeerMode::kSync;
};

}  // namespace vepf::test
