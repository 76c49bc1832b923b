// Fuzz target: NbdSession (host-driver/src/nbd), the NBD server's protocol state machine, fed
// arbitrary client bytes the way NbdServer feeds it (only while it wants input), in front of an
// in-memory target.
//
// Run (clang 14, libFuzzer):
//   cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++
//   -DCMAKE_BUILD_TYPE=RelWithDebInfo cmake --build build/fuzz --target nbd_session_fuzz
//   build/fuzz/tests/fuzz/nbd_session_fuzz tests/fuzz/corpus/nbd_session_fuzz
// Replay only (any compiler; ctest fuzz.nbd_session_fuzz.corpus does this):
//   build/default/tests/fuzz/nbd_session_fuzz_replay tests/fuzz/corpus/nbd_session_fuzz
// Seeds: written by the unit test NbdSessionSeeds.Write (tests/unit/nbd/nbd_session_test.cc):
//   VEPF_NBD_SEED_DIR=tests/fuzz/corpus/nbd_session_fuzz build/default/tests/unit/nbd/nbd_test
//     --gtest_filter=NbdSessionSeeds.Write
//
// Input: one config byte, then the client's bytes.
//   bit 0: the target completes later (newest first, some after each chunk) instead of inline
//   bit 1: the bytes arrive in chunks of 1 + (config >> 4) bytes instead of all at once
//   bit 2: read-only export
//   bit 3: small in-flight budget (8 KiB), so that input is held back and resumed
// The export: 64 KiB, block sizes 1 / 4096 / 16 KiB, every feature on.
//
// Every other round the bytes go in as NbdServer passes them: a WRITE's data straight into
// direct_input(), other bytes at most read_hint() at a time.
//
// Checks (abort on violation): every target call lies inside the export, READ/WRITE/
// WRITE_ZEROES are at most max_block long, nothing writes a read-only export, every `done` of a
// live session is called once; the bytes in flight stay within the budget plus one request;
// the session never stops wanting input without a way to go on (completions, output, resume()
// or the end of the session); output is consumed in arbitrary pieces without loss.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "fuzz_support.hpp"
#include "nbd/nbd_session.hpp"
#include "nbd_fuzz_target.hpp"

namespace vepf::fuzz {
namespace {

using host::nbd::NbdSession;
using host::nbd::SessionLimits;

/// Consumes up to `max` bytes of output, chunk by chunk. Returns how many.
std::size_t drain(NbdSession& s, std::size_t max) {
  std::size_t total = 0;
  std::array<std::span<const std::byte>, 4> chunks;
  while (s.has_output() && total < max) {
    const std::size_t before = s.output_size();
    const std::size_t n = s.peek_output(chunks);
    FUZZ_CHECK(n > 0);
    std::size_t avail = 0;
    for (std::size_t i = 0; i < n; ++i) avail += chunks[i].size();
    const std::size_t take = avail < max - total ? avail : max - total;
    s.consume_output(take);
    FUZZ_CHECK(s.output_size() == before - take);
    total += take;
  }
  return total;
}

void run(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t config = data[0];
  const bool deferred = (config & 1) != 0, chunked = (config & 2) != 0;
  const std::size_t chunk = chunked ? 1u + (config >> 4) : ~std::size_t{0};
  SessionLimits limits;
  if ((config & 8) != 0) limits.max_in_flight_bytes = 8u << 10;
  FuzzTarget target(deferred, (config & 4) != 0);
  std::optional<NbdSession> session;
  {
    auto s = NbdSession::create(target, limits);
    FUZZ_CHECK(s.has_value());
    session.emplace(std::move(*s));
  }
  // Worst case above the budget: one more request (max_block and its bookkeeping) and the
  // replies to the options and requests accepted while at the limit.
  const std::size_t bound = limits.max_in_flight_bytes + kMaxBlock + 16384;

  std::span<const std::uint8_t> rest(data + 1, size - 1);
  std::size_t round = 0;
  while (!session->finished()) {
    ++round;
    if (!rest.empty() && session->wants_input()) {
      // Every other round as NbdServer reads: a WRITE's data straight into direct_input(), the
      // rest no longer than read_hint().
      const std::span<std::byte> direct =
          round % 2 == 1 ? session->direct_input() : std::span<std::byte>{};
      std::size_t n = rest.size() < chunk ? rest.size() : chunk;
      if (!direct.empty()) {
        n = n < direct.size() ? n : direct.size();
        std::memcpy(direct.data(), rest.data(), n);
        rest = rest.subspan(n);
        FUZZ_CHECK(session->received_direct(n).has_value());
      } else {
        if (round % 2 == 1 && n > session->read_hint()) n = session->read_hint();
        const auto bytes = std::as_bytes(rest.first(n));
        rest = rest.subspan(n);
        if (!session->receive(bytes)) break;  // the client broke the protocol: connection closed
      }
    }
    FUZZ_EXPECT("in-flight-bound", session->in_flight_bytes() <= bound);
    if (deferred) target.complete(round % 3 == 0);
    drain(*session, round % 2 == 0 ? 100 : ~std::size_t{0});
    if (session->can_resume() && !session->resume()) break;
    const bool progress = (!rest.empty() && session->wants_input()) || !target.idle() ||
                          session->has_output() || session->can_resume();
    if (!progress) {
      // Input left over is fine only when the session stopped taking it for good.
      const auto phase = session->phase();
      FUZZ_EXPECT("no-deadlock", rest.empty() || phase == NbdSession::Phase::kClosing ||
                                     phase == NbdSession::Phase::kFailed);
      break;
    }
  }
  drain(*session, ~std::size_t{0});
  const auto phase = session->phase();
  const auto stats = session->stats();
  // Half of what is still pending completes before the session goes, the rest after: late
  // completions must be dropped without touching freed memory.
  if (deferred) target.complete(false);
  session.reset();
  if (deferred) target.complete(true);
  FUZZ_CHECK(target.idle());
  FUZZ_EXPECT("lent-given-back", target.all_given_back());
  if (verbose())
    std::fprintf(
        stderr,
        "nbd_session_fuzz: phase %d, %llu requests, %llu errors, %zu rounds, %zu bytes unread\n",
        static_cast<int>(phase), static_cast<unsigned long long>(stats.requests),
        static_cast<unsigned long long>(stats.errors), round, rest.size());
}

}  // namespace
}  // namespace vepf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vepf::fuzz::run(data, size);
  return 0;
}
