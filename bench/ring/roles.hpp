#pragma once
// The two sides of the ring benchmark: the device (Vringh, on the EP side of a loopback link)
// and the driver (Vring, on the RC side), each in its own process or thread, meeting in a
// Control block of shared memory that is not part of the link (so it costs no link accesses).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "vepf/platform/loopback.hpp"
#include "vepf/ring/access.hpp"

namespace vepf::bench {

enum class Mode { kPoll, kNotify, kAdaptive };
enum class Direction { kToDevice, kToDriver };

/// One benchmark run.
struct Case {
  Mode mode = Mode::kPoll;
  Direction dir = Direction::kToDevice;
  std::size_t size = 64;                 // bytes per message
  int copies = 1;                        // 0: descriptors only; 1: the producer copies the message
                                         // across the link; 2: the consumer also copies it out
  bool pingpong = false;                 // one message in flight, RTT samples (driver -> device)
  std::uint16_t num = 256;               // queue size, entries
  int burst = 32;                        // messages per publish (avail or used index store)
  int ms = 1000;                         // run time, milliseconds
  int spin_us = 50;                      // adaptive: microseconds of spinning before sleeping
  bool event_idx = true;                 // VIRTIO_F_EVENT_IDX
  ring::MemoryAccess access;             // how both windows are treated (memory type, widths)
  int device_cpu = -1, driver_cpu = -1;  // CPU to pin each side to (-1: not pinned)
};

std::string to_string(Mode m);
std::string to_string(Direction d);

/// What one side measured. Written by that side only, before it sets its bit in Control::done.
struct SideStats {
  std::uint64_t messages = 0;     // consumed (the measuring side) or produced
  double elapsed_s = 0;           // wall time of the measured loop
  double cpu_s = 0;               // CPU time of the side's thread over the loop
  ring::LinkCounters link;        // link-model counts over the loop
  std::uint64_t sleeps = 0;       // times the side slept waiting for a signal
  std::uint64_t idle_rounds = 0;  // rounds that found nothing to do (spins included)
  std::uint64_t rtt_p50_ns = 0;   // pingpong only (driver)
  std::uint64_t rtt_p99_ns = 0;
  std::uint64_t rtt_samples = 0;
  char error[96] = {};  // empty: the side ran to the end
};

/// Shared between the two sides (MAP_SHARED anonymous memory, or one process's memory).
struct Control {
  std::atomic<std::uint32_t> ready{0};  // bit 0: device set up, bit 1: driver set up
  std::atomic<std::uint32_t> stop{0};   // set by the measuring side at its deadline (or on error)
  std::atomic<std::uint32_t> done{0};   // bit 0: device stats written, bit 1: driver's
  SideStats device, driver;
};

/// Runs the device side of `c` over `ep` (connected to a host). Returns when stopped.
void run_device(const Case& c, platform::LoopbackEp& ep, Control& ctl);
/// Runs the driver side of `c` over `host`. Returns when stopped.
void run_driver(const Case& c, platform::LoopbackHost& host, Control& ctl);

/// Pins the calling thread to `cpu` (no-op for -1). Returns false when the kernel refused.
bool pin_to_cpu(int cpu);
/// CPU seconds used by the calling thread so far.
double thread_cpu_seconds();

}  // namespace vepf::bench
