#pragma once
// The references the ring's round trip is measured against in the same run (the issue's
// "cache-line ping-pong" and "eventfd ping-pong"): two processes, one pinned to each CPU,
// passing a token back and forth.

#include <cstdint>
#include <string>
#include <vector>

namespace vepf::bench {

struct Rtt {
  std::uint64_t samples = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p99_ns = 0;
  std::string error;  // empty on success
};

/// The p50 and p99 of round-trip samples in ns (reorders `ns`); an error when there are none.
Rtt rtt_of(std::vector<std::uint32_t>& ns);

/// A counter in one cache line of shared memory, both sides spinning on it: the floor of any
/// polled cross-core round trip on this machine.
Rtt cacheline_pingpong(int ms, int cpu_a, int cpu_b);
/// Two eventfds, each side blocking in read(): the floor of any notified round trip.
Rtt eventfd_pingpong(int ms, int cpu_a, int cpu_b);

}  // namespace vepf::bench
