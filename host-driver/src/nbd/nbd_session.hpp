#pragma once
// One NBD connection as a pure state machine (no syscalls, no logging): bytes from the client go
// in through receive(), bytes for the client come out through peek_output()/consume_output(),
// and block requests go to a BlockTarget. NbdServer (nbd_server.hpp) moves the bytes between a
// socket and a session; the fuzz target (tests/fuzz/nbd_session_fuzz.cc) drives it directly.
//
// Protocol (the NBD protocol document, proto.md; section names are its headings):
// - handshake: fixed newstyle only ("Fixed newstyle negotiation"); the server offers
//   NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES and drops clients that do not set
//   NBD_FLAG_C_FIXED_NEWSTYLE or set unknown flags ("Client flags").
// - options ("Option types"): EXPORT_NAME, GO, INFO (NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE,
//   NBD_INFO_DESCRIPTION when set, NBD_INFO_NAME when asked), LIST, ABORT, STRUCTURED_REPLY,
//   LIST_META_CONTEXT and SET_META_CONTEXT ("base:allocation" only). One export: every name,
//   "" included, selects it. Unknown options get NBD_REP_ERR_UNSUP, malformed ones
//   NBD_REP_ERR_INVALID; option data longer than SessionLimits::max_option_length ends the
//   connection.
// - transmission ("Request types"): READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES (NO_HOLE,
//   FUA), BLOCK_STATUS (one extent, status 0 = allocated data), DISC. Invalid requests get an
//   error reply ("Error values"); a request with a bad magic ends the connection. Replies go out
//   in completion order, simple or structured (when negotiated).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "vepf/error.hpp"

namespace vepf::host::nbd {

/// What an export looks like to NBD clients.
struct ExportInfo {
  std::uint64_t size = 0;         ///< bytes
  bool read_only = false;         ///< NBD_FLAG_READ_ONLY: writes, trims and write-zeroes get EPERM
  bool can_flush = false;         ///< NBD_FLAG_SEND_FLUSH: BlockTarget::flush() does something
  bool can_fua = false;           ///< NBD_FLAG_SEND_FUA: BlockTarget::write() honours `fua`
  bool can_trim = false;          ///< NBD_FLAG_SEND_TRIM
  bool can_write_zeroes = false;  ///< NBD_FLAG_SEND_WRITE_ZEROES
  bool can_multi_conn = false;    ///< NBD_FLAG_CAN_MULTI_CONN: a flush covers writes completed
                                  ///< on every connection
  /// NBD_INFO_BLOCK_SIZE (proto.md "Block size constraints"), bytes: min is a power of two
  /// <= 64 KiB; preferred a power of two >= max(min, 512); max a multiple of min, >= min and
  /// >= min(preferred, size), at most kMaxBlockLimit (every READ/WRITE buffer is allocated).
  std::uint32_t min_block = 1, preferred_block = 4096, max_block = 32u << 20;
  std::string description;  ///< NBD_INFO_DESCRIPTION and NBD_REP_SERVER text; empty: none
};

/// Largest ExportInfo::max_block accepted (bytes).
inline constexpr std::uint32_t kMaxBlockLimit = 256u << 20;

/// Checks `info` against the rules in ExportInfo (proto.md "Block size constraints", strings
/// at most 4096 bytes without NUL: "Conventions"). Errors: kInvalidArgument.
[[nodiscard]] Result<void> validate_export(const ExportInfo& info) noexcept;

/// The transmission flags (proto.md "Transmission flags") a session advertises for `info`;
/// `structured`: whether structured replies were negotiated (adds NBD_FLAG_SEND_DF).
std::uint16_t transmission_flags(const ExportInfo& info, bool structured) noexcept;

/// Maps an errno from a BlockTarget to an NBD error value (proto.md "Error values"): EPERM,
/// EACCES, EROFS -> EPERM; ENOSPC, EDQUOT, EFBIG -> ENOSPC; EINVAL, ENOTSUP, EOVERFLOW -> EINVAL
/// (the document reserves EOVERFLOW for NBD_CMD_FLAG_DF and ENOTSUP for FAST_ZERO); ENOMEM;
/// ESHUTDOWN; anything else -> EIO. `err` may be negative (-errno).
std::uint32_t nbd_error_from_errno(int err) noexcept;

/// Memory a BlockTarget lends a session for one WRITE's data (BlockTarget::lend_write_buffer()):
/// `bytes` until the object is destroyed, when `give_back` runs (on the event loop's thread).
/// Move-only; an empty one lends nothing.
class LentBuffer {
 public:
  LentBuffer() = default;
  LentBuffer(std::span<std::byte> bytes, std::function<void()> give_back) noexcept
      : bytes_(bytes), give_back_(std::move(give_back)) {}
  LentBuffer(LentBuffer&& o) noexcept
      : bytes_(std::exchange(o.bytes_, {})), give_back_(std::exchange(o.give_back_, nullptr)) {}
  LentBuffer& operator=(LentBuffer&& o) noexcept {
    if (this != &o) {
      release();
      bytes_ = std::exchange(o.bytes_, {});
      give_back_ = std::exchange(o.give_back_, nullptr);
    }
    return *this;
  }
  LentBuffer(const LentBuffer&) = delete;
  LentBuffer& operator=(const LentBuffer&) = delete;
  ~LentBuffer() { release(); }

  std::span<std::byte> bytes() const noexcept { return bytes_; }
  explicit operator bool() const noexcept { return !bytes_.empty(); }

 private:
  void release() noexcept {
    bytes_ = {};
    if (auto g = std::exchange(give_back_, nullptr)) g();
  }
  std::span<std::byte> bytes_;
  std::function<void()> give_back_;
};

/// What the server exports. Calls come from the event loop's thread; `done` is called exactly
/// once, from the same thread, either inline (inside the call) or later, with 0 or a positive
/// errno. The buffer passed to read()/write() stays valid until `done` runs. A target being torn
/// down may destroy pending `done` callbacks without calling them (they only free memory).
/// `done` may run after the connection that asked is gone: the completion is then dropped.
class BlockTarget {
 public:
  using Done = std::function<void(int err)>;
  virtual ~BlockTarget() = default;
  /// The export as it is now; a session reads it once, when it is created.
  virtual ExportInfo info() const = 0;
  /// Fills `dst` with the bytes at `offset` (in range, dst.size() <= max_block).
  virtual void read(std::uint64_t offset, std::span<std::byte> dst, Done done) = 0;
  /// Writes `src` at `offset`; `fua`: persist before `done` (only when can_fua).
  virtual void write(std::uint64_t offset, std::span<const std::byte> src, bool fua, Done done) = 0;
  /// Optional: memory of the target's own to receive the data of a WRITE of `length` bytes into
  /// (1 <= length <= max_block), so that write() finds it where it must go and copies nothing.
  /// The session passes exactly `bytes()` to write() and keeps the buffer until that write's
  /// `done` has run, or until the request is dropped (a connection closed while the data was
  /// arriving, a torn-down target's callbacks destroyed). An empty buffer (the default): the
  /// session receives into memory of its own.
  virtual LentBuffer lend_write_buffer(std::size_t length) {
    (void)length;
    return {};
  }
  /// Persists every write completed before the call (only when can_flush).
  virtual void flush(Done done) = 0;
  /// Discards `length` bytes at `offset` (a hint; only when can_trim).
  virtual void trim(std::uint64_t offset, std::uint32_t length, Done done) = 0;
  /// Makes `length` bytes at `offset` read as zero; `may_trim`: the range may be deallocated
  /// (false for NBD_CMD_FLAG_NO_HOLE). Only when can_write_zeroes.
  virtual void write_zeroes(std::uint64_t offset, std::uint32_t length, bool may_trim,
                            Done done) = 0;
};

/// Per-connection limits.
struct SessionLimits {
  /// receive() stops taking requests while more than this many bytes are in flight: request
  /// buffers handed to the target plus replies not yet sent (plus a small per-request overhead).
  std::size_t max_in_flight_bytes = 64u << 20;
  /// Longest option data accepted (bytes); a longer option ends the connection.
  std::uint32_t max_option_length = 64u << 10;
};

/// Counters of one session (transmission phase).
struct SessionStats {
  std::uint64_t requests = 0;       ///< requests received (DISC included)
  std::uint64_t bytes_read = 0;     ///< bytes of successful reads sent
  std::uint64_t bytes_written = 0;  ///< bytes of successful writes
  std::uint64_t errors = 0;         ///< error replies (invalid requests and target errors)
};

class NbdSession {
 public:
  enum class Phase : std::uint8_t {
    kHandshake,     ///< waiting for the client flags
    kOptions,       ///< option haggling
    kTransmission,  ///< requests
    kClosing,       ///< NBD_CMD_DISC or NBD_OPT_ABORT received: input is ignored; finished()
                    ///< once every request in flight has completed
    kFailed,        ///< the client broke the protocol (receive() returned the error)
  };

  /// A session for `target` (its info() is read now). The greeting is queued as output at once.
  /// Errors: kInvalidArgument when target.info() fails validate_export().
  [[nodiscard]] static Result<NbdSession> create(BlockTarget& target, SessionLimits limits = {});

  NbdSession(NbdSession&&) noexcept;
  NbdSession& operator=(NbdSession&&) noexcept;
  NbdSession(const NbdSession&) = delete;
  NbdSession& operator=(const NbdSession&) = delete;
  /// Completions that arrive afterwards are dropped (their buffers are freed with the callback).
  ~NbdSession();

  /// Takes bytes the client sent. Bytes that cannot be processed yet (too much in flight) are
  /// kept and processed by resume(). Errors end the connection (phase() becomes kFailed):
  /// kBadRing for a protocol violation (bad option or request magic, client flags, an
  /// NBD_OPT_EXPORT_NAME name over 4096 bytes; Errc's "the peer broke a rule" code),
  /// kOutOfRange for option data longer than max_option_length. Error::what says which.
  [[nodiscard]] Result<void> receive(std::span<const std::byte> data);
  /// Where the next bytes of a WRITE's data belong while the session is taking one and keeps no
  /// earlier input: the caller may read(2) the socket straight into it (one copy fewer) and
  /// then call received_direct(). Empty otherwise: use receive().
  std::span<std::byte> direct_input() noexcept;
  /// How many bytes the next read(2) into a shared buffer should take at most: after a large
  /// WRITE, just the next request header, so that the data of another WRITE goes to
  /// direct_input() rather than through the shared buffer. SIZE_MAX: no limit.
  std::size_t read_hint() const noexcept;
  /// `n` bytes (1 <= n <= direct_input().size()) were written at the start of direct_input():
  /// the same as receive() of those bytes. Errors: kInvalidArgument for an `n` out of range.
  [[nodiscard]] Result<void> received_direct(std::size_t n);
  /// Processes kept input and follow-up work of completions (a flush after a TRIM or
  /// WRITE_ZEROES with FUA). Call when can_resume(). Errors: as receive().
  [[nodiscard]] Result<void> resume();

  /// True when receive() should be given more bytes now: not closing, nothing kept, and not
  /// over the budget between two messages (a message already begun may always finish).
  bool wants_input() const noexcept;
  /// True when resume() has work it can do now.
  bool can_resume() const noexcept;

  /// Bytes queued for the client.
  std::size_t output_size() const noexcept;
  bool has_output() const noexcept { return output_size() != 0; }
  /// Fills `chunks` with the queued output, in order, without consuming it (for writev).
  /// Returns the number of chunks filled.
  std::size_t peek_output(std::span<std::span<const std::byte>> chunks) const noexcept;
  /// Drops the first `n` bytes of output (n <= output_size()).
  void consume_output(std::size_t n) noexcept;

  /// True when the connection should be closed once the output is sent.
  bool finished() const noexcept;
  Phase phase() const noexcept;
  /// Requests accepted and not replied to yet (with the target, waiting for a follow-up
  /// flush, or a WRITE whose data is still arriving).
  std::size_t in_flight() const noexcept;
  /// Bytes counted against SessionLimits::max_in_flight_bytes.
  std::size_t in_flight_bytes() const noexcept;
  const SessionStats& stats() const noexcept;

  /// `cb` runs after a completion that arrived outside receive()/resume() queued output or
  /// follow-up work (not called from inside receive()/resume()). It must not destroy the
  /// session; it may send output (peek/consume_output).
  void set_on_completion(std::function<void()> cb);

 private:
  struct Impl;
  explicit NbdSession(std::shared_ptr<Impl> impl) noexcept;
  // Shared with weak_ptr copies in the target's `done` callbacks (a late completion must find
  // out whether the session still exists).
  std::shared_ptr<Impl> impl_;
};

}  // namespace vepf::host::nbd
