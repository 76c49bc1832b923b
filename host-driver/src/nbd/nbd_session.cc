#include "nbd/nbd_session.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string_view>
#include <utility>
#include <vector>

#include "nbd/nbd_proto.hpp"
#include "vepf/byte_buffer.hpp"

namespace vepf::host::nbd {
namespace {

/// Bytes charged per request in flight on top of its buffer (the request, its callback), so
/// that a stream of zero-length requests is bounded too.
constexpr std::size_t kOpOverhead = 256;
/// Small replies are appended to one output segment until it holds this many bytes.
constexpr std::size_t kOutputSegment = 64u << 10;
/// The context id this server gives "base:allocation" in NBD_REP_META_CONTEXT.
constexpr std::uint32_t kBaseAllocationId = 1;
/// A WRITE at least this long (bytes) makes read_hint() ask for the next header alone: one more
/// read(2) per request instead of a copy of up to a shared buffer's worth of its data.
constexpr std::uint32_t kBigWrite = 64u << 10;

constexpr bool is_pow2(std::uint32_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

/// A request accepted and not replied to yet. Owned by the target's `done` callbacks (so the
/// buffer outlives the session if it must) and, while it waits, by the session.
struct Op {
  Request req;
  ByteBuffer buf;   // READ: filled by the target; WRITE: the client's data (not zeroed first)
  LentBuffer lent;  // WRITE: the target's memory for the data instead of `buf`, when it lent some
  std::span<std::byte> data() noexcept { return lent ? lent.bytes() : std::span<std::byte>(buf); }
  std::size_t charge = 0;    // bytes counted in Impl::op_bytes
  std::uint32_t stage = 0;   // bumped by every accepted completion: a repeated call is ignored
  bool flush_after = false;  // TRIM / WRITE_ZEROES with FUA: flush before replying
};

/// Verdict on a request: 0 or an NBD error value, with a message for structured errors.
struct Check {
  std::uint32_t err = 0;
  const char* msg = "";
};

/// Copies from the front of `in` into `dst` at `fill` (advancing both). True when dst is full.
bool copy_in(std::span<const std::byte>& in, std::span<std::byte> dst, std::size_t& fill) {
  const std::size_t n = std::min(in.size(), dst.size() - fill);
  std::memcpy(dst.data() + fill, in.data(), n);
  fill += n;
  in = in.subspan(n);
  return fill == dst.size();
}

}  // namespace

Result<void> validate_export(const ExportInfo& i) noexcept {
  if (!is_pow2(i.min_block) || i.min_block > (64u << 10))
    return fail(Errc::kInvalidArgument, "nbd export: min_block must be a power of two <= 64 KiB");
  if (!is_pow2(i.preferred_block) || i.preferred_block < std::max(i.min_block, 512u))
    return fail(Errc::kInvalidArgument,
                "nbd export: preferred_block must be a power of two >= max(min_block, 512)");
  if (i.max_block < i.min_block || i.max_block % i.min_block != 0 ||
      i.max_block < std::min<std::uint64_t>(i.preferred_block, i.size))
    return fail(
        Errc::kInvalidArgument,
        "nbd export: max_block must be a multiple of min_block and >= min(preferred, size)");
  if (i.max_block > kMaxBlockLimit)
    return fail(Errc::kInvalidArgument, "nbd export: max_block above kMaxBlockLimit");
  if (i.description.size() > kMaxString || i.description.find('\0') != std::string::npos)
    return fail(Errc::kInvalidArgument,
                "nbd export: description longer than 4096 bytes or has NUL");
  return {};
}

std::uint16_t transmission_flags(const ExportInfo& i, bool structured) noexcept {
  std::uint16_t f = kFlagHasFlags;
  if (i.read_only) f |= kFlagReadOnly;
  if (i.can_flush) f |= kFlagSendFlush;
  if (i.can_fua) f |= kFlagSendFua;
  if (i.can_trim && !i.read_only) f |= kFlagSendTrim;
  if (i.can_write_zeroes && !i.read_only) f |= kFlagSendWriteZeroes;
  if (i.can_multi_conn) f |= kFlagCanMultiConn;
  // Reads are always answered with a single content chunk, so DF costs nothing; proto.md
  // ("Transmission flags") forbids the flag without structured replies.
  if (structured) f |= kFlagSendDf;
  return f;
}

std::uint32_t nbd_error_from_errno(int err) noexcept {
  switch (err < 0 ? -err : err) {
    case EPERM:
    case EACCES:
    case EROFS:
      return kEPerm;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return kENoSpc;  // proto.md "Error values": EDQUOT and EFBIG map to ENOSPC
    case EINVAL:
    case EOPNOTSUPP:
    case EOVERFLOW:
      return kEInval;
    case ENOMEM:
      return kENoMem;
    case ESHUTDOWN:
      return kEShutdown;
    default:
      return kEIo;
  }
}

struct NbdSession::Impl : std::enable_shared_from_this<NbdSession::Impl> {
  enum class In : std::uint8_t {
    kClientFlags,
    kOptionHeader,
    kOptionData,
    kRequestHeader,
    kWriteData,
    kDiscard
  };

  Impl(BlockTarget& t, ExportInfo i, SessionLimits l) : target(t), info(std::move(i)), limits(l) {}

  BlockTarget& target;
  const ExportInfo info;
  const SessionLimits limits;
  Phase phase = Phase::kHandshake;
  In in = In::kClientFlags;
  bool no_zeroes = false;        // NBD_FLAG_C_NO_ZEROES
  bool structured = false;       // NBD_OPT_STRUCTURED_REPLY acknowledged
  bool base_allocation = false;  // "base:allocation" selected by NBD_OPT_SET_META_CONTEXT
  std::uint16_t tflags = 0;      // transmission flags sent on entering transmission

  // Input being assembled.
  std::array<std::byte, kRequestSize> hdr{};  // a fixed-size message (client flags, headers)
  std::size_t hdr_fill = 0;
  OptionHeader opt;
  std::vector<std::byte> opt_data;
  std::size_t opt_fill = 0;
  std::shared_ptr<Op> cur;  // WRITE whose data is arriving
  std::size_t data_fill = 0;
  bool last_big_write = false;     // the last request was a WRITE of at least kBigWrite bytes
  std::uint64_t discard_left = 0;  // data of a refused WRITE still to skip
  std::vector<std::byte> kept;     // input received while over budget
  std::size_t kept_pos = 0;

  // Output: segments in order; small replies share the open back segment, read data is a
  // segment of its own (moved, not copied).
  std::deque<ByteBuffer> out;
  std::size_t out_pos = 0;    // consumed bytes of out.front()
  std::size_t out_bytes = 0;  // unsent bytes in total
  bool back_open = false;

  std::deque<std::shared_ptr<Op>> followups;  // completed TRIM/WRITE_ZEROES awaiting their flush
  std::size_t ops = 0;                        // requests accepted and not replied to
  std::size_t op_bytes = 0;                   // their charge
  bool busy = false;  // inside receive()/resume(): completions don't call on_completion
  std::function<void()> on_completion;
  SessionStats stats;

  bool accepting() const noexcept {
    return phase == Phase::kHandshake || phase == Phase::kOptions || phase == Phase::kTransmission;
  }
  bool over_budget() const noexcept { return op_bytes + out_bytes > limits.max_in_flight_bytes; }
  /// Input waits only between messages: a message already begun (a WRITE's data above all,
  /// whose buffer is charged already) must be allowed to finish, or nothing could complete.
  bool at_boundary() const noexcept {
    return (in == In::kOptionHeader || in == In::kRequestHeader) && hdr_fill == 0;
  }
  bool paused() const noexcept { return at_boundary() && over_budget(); }

  // ---- output
  ByteBuffer& back() {
    if (!back_open || out.back().size() >= kOutputSegment) {
      out.emplace_back();
      back_open = true;
    }
    return out.back();
  }
  void put(std::span<const std::byte> b) {
    if (b.empty()) return;
    auto& v = back();
    v.insert(v.end(), b.begin(), b.end());
    out_bytes += b.size();
  }
  template <class T>
  void put_be(T x) {
    append_be<T>(back(), x);
    out_bytes += sizeof(T);
  }
  void put_owned(ByteBuffer&& b) {
    if (b.empty()) return;
    out_bytes += b.size();
    out.push_back(std::move(b));
    back_open = false;
  }

  /// Option reply header (proto.md "Fixed newstyle negotiation"); `length` bytes must follow.
  void put_option_header(std::uint32_t type, std::size_t length) {
    put_be<std::uint64_t>(kOptReplyMagic);
    put_be<std::uint32_t>(opt.option);
    put_be<std::uint32_t>(type);
    put_be<std::uint32_t>(static_cast<std::uint32_t>(length));
  }
  void put_option_reply(std::uint32_t type, std::span<const std::byte> data) {
    put_option_header(type, data.size());
    put(data);
  }
  /// NBD_REP_INFO carrying a string (NBD_INFO_NAME, NBD_INFO_DESCRIPTION).
  void put_info_string(std::uint16_t info_type, std::string_view text) {
    put_option_header(kRepInfo, 2 + text.size());
    put_be<std::uint16_t>(info_type);
    put(as_bytes(text));
  }
  void put_option_error(std::uint32_t type, std::string_view msg) {
    put_option_reply(type, as_bytes(msg));
  }

  void put_chunk_header(std::uint64_t cookie, std::uint16_t type, std::uint32_t length) {
    put_be<std::uint32_t>(kStructuredReplyMagic);
    put_be<std::uint16_t>(kReplyFlagDone);  // every reply here is a single chunk
    put_be<std::uint16_t>(type);
    put_be<std::uint64_t>(cookie);
    put_be<std::uint32_t>(length);
  }
  void put_simple(std::uint64_t cookie, std::uint32_t err) {
    put_be<std::uint32_t>(kSimpleReplyMagic);
    put_be<std::uint32_t>(err);
    put_be<std::uint64_t>(cookie);
  }
  void put_ok(const Request& r) {
    if (structured) {
      put_chunk_header(r.cookie, kReplyTypeNone, 0);
    } else {
      put_simple(r.cookie, 0);
    }
  }
  /// proto.md "Structured reply types" NBD_REPLY_TYPE_ERROR: error u32, message length u16,
  /// message. Without structured replies: a simple reply with the error and no data.
  void put_error(const Request& r, std::uint32_t err, std::string_view msg) {
    ++stats.errors;
    if (!structured) {
      put_simple(r.cookie, err);
      return;
    }
    put_chunk_header(r.cookie, kReplyTypeError, static_cast<std::uint32_t>(6 + msg.size()));
    put_be<std::uint32_t>(err);
    put_be<std::uint16_t>(static_cast<std::uint16_t>(msg.size()));
    put(as_bytes(msg));
  }
  void put_read(Op& op) {
    const Request& r = op.req;
    if (!structured) {
      put_simple(r.cookie, 0);
    } else if (r.length == 0) {
      put_chunk_header(r.cookie, kReplyTypeNone, 0);  // OFFSET_DATA must carry >= 1 byte
    } else {
      put_chunk_header(r.cookie, kReplyTypeOffsetData, 8 + r.length);
      put_be<std::uint64_t>(r.offset);
    }
    put_owned(std::move(op.buf));
  }
  /// One extent with status 0 ("allocated, contents unknown") covering the request: proto.md
  /// "NBD_CMD_BLOCK_STATUS" allows status 0 for any block.
  void put_block_status(const Request& r) {
    put_chunk_header(r.cookie, kReplyTypeBlockStatus, 12);
    put_be<std::uint32_t>(kBaseAllocationId);
    put_be<std::uint32_t>(r.length);
    put_be<std::uint32_t>(0);
  }

  void greet() {
    put_be<std::uint64_t>(kNbdMagic);
    put_be<std::uint64_t>(kIHaveOpt);
    put_be<std::uint16_t>(kFlagFixedNewstyle | kFlagNoZeroes);
  }

  // ---- input
  /// Collects a fixed-size message of `need` bytes in hdr. True (and hdr_fill reset) when whole.
  bool fill(std::span<const std::byte>& in_bytes, std::size_t need) {
    if (!copy_in(in_bytes, std::span<std::byte>(hdr.data(), need), hdr_fill)) return false;
    hdr_fill = 0;
    return true;
  }

  void close_input() {
    kept.clear();
    kept_pos = 0;
  }

  Result<void> process(std::span<const std::byte>& bytes);
  Result<void> on_client_flags();
  Result<void> on_option_header();
  Result<void> on_option();
  Result<void> opt_export_name(std::span<const std::byte> d);
  void opt_list(std::span<const std::byte> d);
  void opt_info_go(std::span<const std::byte> d, bool go);
  void opt_meta_context(std::span<const std::byte> d, bool set);
  void enter_transmission() {
    phase = Phase::kTransmission;
    in = In::kRequestHeader;
    tflags = transmission_flags(info, structured);
  }
  Result<void> on_request();
  Check check(const Request& r) const;
  std::shared_ptr<Op> new_op(const Request& r, std::size_t buf_len);
  void start(const std::shared_ptr<Op>& op);
  BlockTarget::Done make_done(const std::shared_ptr<Op>& op);
  void complete(const std::shared_ptr<Op>& op, int err);
  void finish(Op& op, int err);
  void run_followups();
  Result<void> pump(std::span<const std::byte> fresh);
  /// The rest of the WRITE data being received, when nothing is kept (else empty).
  std::span<std::byte> direct_span() noexcept;
  /// `n` bytes of it arrived (as pump() of them would take them).
  void take_direct(std::size_t n);
  void notify() {
    if (!busy && on_completion) on_completion();
  }
};

Result<void> NbdSession::Impl::process(std::span<const std::byte>& bytes) {
  while (!bytes.empty()) {
    if (!accepting()) {  // DISC / ABORT: "A client MUST NOT send anything" after them
      bytes = {};
      break;
    }
    Result<void> r;
    switch (in) {
      case In::kClientFlags:
        if (fill(bytes, kClientFlagsSize)) r = on_client_flags();
        break;
      case In::kOptionHeader:
        if (paused()) return {};  // replies pile up: wait (the rest is kept)
        if (fill(bytes, kOptionHeaderSize)) r = on_option_header();
        break;
      case In::kOptionData:
        if (copy_in(bytes, opt_data, opt_fill)) r = on_option();
        break;
      case In::kRequestHeader:
        if (paused()) return {};
        if (fill(bytes, kRequestSize)) r = on_request();
        break;
      case In::kWriteData:
        if (copy_in(bytes, cur->data(), data_fill)) {
          in = In::kRequestHeader;
          start(std::exchange(cur, nullptr));
        }
        break;
      case In::kDiscard: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), discard_left));
        discard_left -= n;
        bytes = bytes.subspan(n);
        if (discard_left == 0) in = In::kRequestHeader;
        break;
      }
    }
    if (!r) return r;
  }
  return {};
}

Result<void> NbdSession::Impl::on_client_flags() {
  const std::uint32_t f = load_be<std::uint32_t>(hdr.data());
  // proto.md "Client flags": the server MUST drop the connection on an unknown flag.
  if ((f & kFlagCFixedNewstyle) == 0)
    return fail(Errc::kBadRing, "nbd: client did not set NBD_FLAG_C_FIXED_NEWSTYLE");
  if ((f & ~(kFlagCFixedNewstyle | kFlagCNoZeroes)) != 0)
    return fail(Errc::kBadRing, "nbd: unknown client flags");
  no_zeroes = (f & kFlagCNoZeroes) != 0;
  phase = Phase::kOptions;
  in = In::kOptionHeader;
  return {};
}

Result<void> NbdSession::Impl::on_option_header() {
  opt = decode_option_header(
      std::span<const std::byte, kOptionHeaderSize>(hdr.data(), kOptionHeaderSize));
  if (opt.magic != kIHaveOpt) return fail(Errc::kBadRing, "nbd: bad option magic");
  if (opt.length > limits.max_option_length)
    return fail(Errc::kOutOfRange, "nbd: option data longer than the limit");
  opt_data.assign(opt.length, std::byte{0});
  opt_fill = 0;
  if (opt.length == 0) return on_option();
  in = In::kOptionData;
  return {};
}

Result<void> NbdSession::Impl::on_option() {
  in = In::kOptionHeader;
  const std::vector<std::byte> d = std::exchange(opt_data, {});
  switch (opt.option) {
    case kOptExportName:
      return opt_export_name(d);
    case kOptAbort:  // proto.md: reply NBD_REP_ACK (ignoring any data), then the client closes
      put_option_reply(kRepAck, {});
      phase = Phase::kClosing;  // pump() drops the rest of the input
      break;
    case kOptList:
      opt_list(d);
      break;
    case kOptInfo:
      opt_info_go(d, false);
      break;
    case kOptGo:
      opt_info_go(d, true);
      break;
    case kOptStructuredReply:
      if (!d.empty()) {
        put_option_error(kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
        break;
      }
      structured = true;
      put_option_reply(kRepAck, {});
      break;
    case kOptListMetaContext:
      opt_meta_context(d, false);
      break;
    case kOptSetMetaContext:
      opt_meta_context(d, true);
      break;
    default:
      put_option_error(kRepErrUnsup, "option not supported");
      break;
  }
  return {};
}

Result<void> NbdSession::Impl::opt_export_name(std::span<const std::byte> d) {
  // Every name selects the one export; a name that is not a valid string cannot be refused
  // with an error reply, so proto.md ("NBD_OPT_EXPORT_NAME") has the server end the session.
  if (d.size() > kMaxString) return fail(Errc::kBadRing, "nbd: export name longer than 4096 bytes");
  put_be<std::uint64_t>(info.size);
  put_be<std::uint16_t>(transmission_flags(info, structured));
  if (!no_zeroes) {
    static constexpr std::array<std::byte, kExportNameZeroes> kZeroes{};
    put(kZeroes);
  }
  enter_transmission();
  return {};
}

void NbdSession::Impl::opt_list(std::span<const std::byte> d) {
  if (!d.empty()) {
    put_option_error(kRepErrInvalid, "NBD_OPT_LIST takes no data");
    return;
  }
  // NBD_REP_SERVER: name length u32, name (the default export ""), then the description.
  put_option_header(kRepServer, 4 + info.description.size());
  put_be<std::uint32_t>(0);
  put(as_bytes(info.description));
  put_option_reply(kRepAck, {});
}

void NbdSession::Impl::opt_info_go(std::span<const std::byte> d, bool go) {
  // Data (proto.md "NBD_OPT_INFO and NBD_OPT_GO"): name length u32, name, count u16,
  // count x info type u16.
  FieldReader f(d);
  const std::string_view name = f.str(f.u32());
  const std::uint16_t count = f.u16();
  bool want_name = false;
  for (std::uint32_t i = 0; i < count && f.ok(); ++i) want_name |= f.u16() == kInfoName;
  if (!f.at_end() || name.size() > kMaxString) {
    put_option_error(kRepErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO");
    return;
  }
  put_option_header(kRepInfo, 12);  // NBD_INFO_EXPORT: type u16, size u64, flags u16
  put_be<std::uint16_t>(kInfoExport);
  put_be<std::uint64_t>(info.size);
  put_be<std::uint16_t>(transmission_flags(info, structured));
  // NBD_INFO_BLOCK_SIZE: type u16, min, preferred, max u32. Sent even when not asked for
  // ("The server MAY send information requests back which are not explicitly requested"):
  // max_block is not the default.
  put_option_header(kRepInfo, 14);
  put_be<std::uint16_t>(kInfoBlockSize);
  put_be<std::uint32_t>(info.min_block);
  put_be<std::uint32_t>(info.preferred_block);
  put_be<std::uint32_t>(info.max_block);
  if (want_name) put_info_string(kInfoName, name);
  if (!info.description.empty()) put_info_string(kInfoDescription, info.description);
  put_option_reply(kRepAck, {});
  if (go) enter_transmission();
}

void NbdSession::Impl::opt_meta_context(std::span<const std::byte> d, bool set) {
  // SET replaces the selection "including when this command fails" (proto.md
  // "NBD_OPT_SET_META_CONTEXT"); both need structured replies first.
  if (set) base_allocation = false;
  if (!structured) {
    put_option_error(kRepErrInvalid, "negotiate NBD_OPT_STRUCTURED_REPLY first");
    return;
  }
  // Data: export name length u32, name, query count u32, count x (length u32, query).
  FieldReader f(d);
  const std::string_view name = f.str(f.u32());
  const std::uint32_t count = f.u32();
  bool match = !set && count == 0;  // LIST without queries: every context
  for (std::uint32_t i = 0; i < count && f.ok(); ++i) {
    const std::string_view q = f.str(f.u32());
    if (q.size() > kMaxString) f.invalidate();
    if (q == kMetaBaseAllocation) match = true;
    if (!set && q == "base:") match = true;  // the namespace wildcard, LIST only
  }
  if (!f.at_end() || name.size() > kMaxString) {
    put_option_error(kRepErrInvalid, "malformed meta context option");
    return;
  }
  if (match) {
    // NBD_REP_META_CONTEXT: context id u32 (LIST: reserved, 0), name.
    const std::string_view name_out = kMetaBaseAllocation;
    put_option_header(kRepMetaContext, 4 + name_out.size());
    put_be<std::uint32_t>(set ? kBaseAllocationId : 0);
    put(as_bytes(name_out));
  }
  if (set) base_allocation = match;
  put_option_reply(kRepAck, {});
}

Check NbdSession::Impl::check(const Request& r) const {
  const std::uint16_t t = r.type;
  switch (t) {
    case kCmdRead:
    case kCmdWrite:
    case kCmdFlush:
    case kCmdTrim:
    case kCmdWriteZeroes:
    case kCmdBlockStatus:
      break;
    default:
      return {kEInval, "unknown command"};
  }
  const bool writes = t == kCmdWrite || t == kCmdTrim || t == kCmdWriteZeroes;
  if (writes && info.read_only) return {kEPerm, "read-only export"};
  // proto.md "Error values": EINVAL for an unknown flag or one not documented for the command.
  std::uint16_t allowed = 0;
  if (tflags & kFlagSendFua) allowed |= kCmdFlagFua;  // "valid for all commands"
  if (t == kCmdWriteZeroes) allowed |= kCmdFlagNoHole;
  if (t == kCmdRead && (tflags & kFlagSendDf)) allowed |= kCmdFlagDf;
  if (t == kCmdBlockStatus) allowed |= kCmdFlagReqOne;
  if ((r.flags & ~allowed) != 0) return {kEInval, "command flag not supported or not advertised"};
  if (t == kCmdFlush) {
    if ((tflags & kFlagSendFlush) == 0) return {kEInval, "flush not advertised"};
    if (r.offset != 0 || r.length != 0) return {kEInval, "flush offset and length must be zero"};
    return {};
  }
  if (t == kCmdTrim && (tflags & kFlagSendTrim) == 0) return {kEInval, "trim not advertised"};
  if (t == kCmdWriteZeroes && (tflags & kFlagSendWriteZeroes) == 0)
    return {kEInval, "write zeroes not advertised"};
  if (t == kCmdBlockStatus && !base_allocation) return {kEInval, "no metadata context selected"};
  if (r.offset > info.size || r.length > info.size - r.offset) {
    // "SHOULD return ENOSPC" for writes and write-zeroes beyond the end, EINVAL otherwise.
    const bool grows = t == kCmdWrite || t == kCmdWriteZeroes;
    return {grows ? kENoSpc : kEInval, "request beyond the end of the export"};
  }
  // TRIM is a hint and BLOCK_STATUS only asks: the target rounds them; the others must align.
  const bool aligned_only = t == kCmdRead || t == kCmdWrite || t == kCmdWriteZeroes;
  if (aligned_only && (r.offset % info.min_block != 0 || r.length % info.min_block != 0))
    return {kEInval, "request not aligned to the minimum block size"};
  // proto.md "Block size constraints": READ, WRITE and WRITE_ZEROES are bounded by max_block.
  if ((t == kCmdRead || t == kCmdWrite || t == kCmdWriteZeroes) && r.length > info.max_block)
    return {kEInval, "request longer than the maximum block size"};
  if (t == kCmdBlockStatus && r.length == 0) return {kEInval, "block status of zero bytes"};
  return {};
}

std::shared_ptr<Op> NbdSession::Impl::new_op(const Request& r, std::size_t buf_len) {
  auto op = std::make_shared<Op>();
  op->req = r;
  if (r.type == kCmdWrite && buf_len != 0) {
    op->lent = target.lend_write_buffer(buf_len);
    if (op->lent && op->lent.bytes().size() != buf_len) op->lent = {};  // not what was asked
  }
  if (!op->lent) op->buf.resize(buf_len);
  op->charge = kOpOverhead + buf_len;
  ++ops;
  op_bytes += op->charge;
  return op;
}

Result<void> NbdSession::Impl::on_request() {
  const Request r = decode_request(std::span<const std::byte, kRequestSize>(hdr));
  // Without a valid magic the stream cannot be resynchronised: end the connection.
  if (r.magic != kRequestMagic) return fail(Errc::kBadRing, "nbd: bad request magic");
  ++stats.requests;
  if (r.type == kCmdDisc) {   // no reply; finish what is in flight, then close
    phase = Phase::kClosing;  // pump() drops the rest of the input
    return {};
  }
  const Check c = check(r);
  last_big_write = r.type == kCmdWrite && r.length >= kBigWrite;
  if (r.type == kCmdWrite) {
    if (c.err != 0) {  // the data follows anyway: skip it
      put_error(r, c.err, c.msg);
      discard_left = r.length;
      if (discard_left != 0) in = In::kDiscard;
      return {};
    }
    auto op = new_op(r, r.length);
    if (r.length == 0) {
      start(op);
    } else {
      cur = std::move(op);
      data_fill = 0;
      in = In::kWriteData;
    }
    return {};
  }
  if (c.err != 0) {
    put_error(r, c.err, c.msg);
    return {};
  }
  start(new_op(r, r.type == kCmdRead ? r.length : 0));
  return {};
}

void NbdSession::Impl::start(const std::shared_ptr<Op>& op) {
  const Request& r = op->req;
  const bool fua = (r.flags & kCmdFlagFua) != 0;
  switch (r.type) {
    case kCmdRead:
      if (r.length == 0) break;
      target.read(r.offset, op->buf, make_done(op));
      return;
    case kCmdWrite:
      if (r.length == 0) break;
      target.write(r.offset, op->data(), fua && info.can_fua, make_done(op));
      return;
    case kCmdFlush:
      target.flush(make_done(op));
      return;
    case kCmdTrim:
      if (r.length == 0) break;
      op->flush_after = fua && info.can_flush;  // the target's trim has no FUA: flush after
      target.trim(r.offset, r.length, make_done(op));
      return;
    case kCmdWriteZeroes:
      if (r.length == 0) break;
      op->flush_after = fua && info.can_flush;
      target.write_zeroes(r.offset, r.length, (r.flags & kCmdFlagNoHole) == 0, make_done(op));
      return;
    default:
      break;  // BLOCK_STATUS: answered here
  }
  finish(*op, 0);  // zero-length requests: nothing to do ("SHOULD NOT disconnect")
}

BlockTarget::Done NbdSession::Impl::make_done(const std::shared_ptr<Op>& op) {
  return [weak = weak_from_this(), op, stage = op->stage](int err) {
    if (op->stage != stage) return;  // called twice: ignore the second call
    ++op->stage;
    // Hold the session while completing; a session destroyed meanwhile drops the completion
    // (the buffer goes with this callback).
    if (const auto self = weak.lock()) self->complete(op, err);
  };
}

void NbdSession::Impl::complete(const std::shared_ptr<Op>& op, int err) {
  if (err == 0 && op->flush_after) {
    // Calling the target from inside its own callback is avoided: resume() issues the flush.
    op->flush_after = false;
    followups.push_back(op);
  } else {
    finish(*op, err);
  }
  notify();
}

void NbdSession::Impl::finish(Op& op, int err) {
  --ops;
  op_bytes -= op.charge;
  const Request& r = op.req;
  if (err != 0) {
    put_error(r, nbd_error_from_errno(err), "block target error");
    return;
  }
  switch (r.type) {
    case kCmdRead:
      stats.bytes_read += r.length;
      put_read(op);
      break;
    case kCmdBlockStatus:
      put_block_status(r);
      break;
    case kCmdWrite:
      stats.bytes_written += r.length;
      [[fallthrough]];
    default:
      put_ok(r);
      break;
  }
}

void NbdSession::Impl::run_followups() {
  while (!followups.empty()) {
    auto op = std::move(followups.front());
    followups.pop_front();
    target.flush(make_done(op));
  }
}

Result<void> NbdSession::Impl::pump(std::span<const std::byte> fresh) {
  busy = true;
  run_followups();
  Result<void> r;
  if (kept_pos < kept.size() && !paused()) {
    std::span<const std::byte> k(kept.data() + kept_pos, kept.size() - kept_pos);
    r = process(k);
    kept_pos = kept.size() - k.size();
    if (kept_pos == kept.size()) close_input();
  }
  if (r && accepting() && !fresh.empty()) {
    if (kept.empty()) r = process(fresh);
    if (r && accepting() && !fresh.empty()) kept.insert(kept.end(), fresh.begin(), fresh.end());
  }
  run_followups();  // inline completions of this round
  busy = false;
  if (!r) phase = Phase::kFailed;
  if (!accepting()) close_input();
  return r;
}

std::span<std::byte> NbdSession::Impl::direct_span() noexcept {
  if (in != In::kWriteData || !accepting() || kept_pos < kept.size()) return {};
  return cur->data().subspan(data_fill);
}

void NbdSession::Impl::take_direct(std::size_t n) {
  busy = true;
  run_followups();
  data_fill += n;
  if (data_fill == cur->data().size()) {
    in = In::kRequestHeader;
    start(std::exchange(cur, nullptr));
  }
  run_followups();
  busy = false;
}

NbdSession::NbdSession(std::shared_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
NbdSession::NbdSession(NbdSession&&) noexcept = default;
NbdSession& NbdSession::operator=(NbdSession&&) noexcept = default;

NbdSession::~NbdSession() {
  if (impl_) impl_->on_completion = nullptr;
}

Result<NbdSession> NbdSession::create(BlockTarget& target, SessionLimits limits) {
  ExportInfo info = target.info();
  if (auto v = validate_export(info); !v) return tl::unexpected(v.error());
  auto impl = std::make_shared<Impl>(target, std::move(info), limits);
  impl->greet();
  return NbdSession(std::move(impl));
}

Result<void> NbdSession::receive(std::span<const std::byte> data) {
  if (!impl_->accepting()) return {};
  return impl_->pump(data);
}

Result<void> NbdSession::resume() {
  if (impl_->phase == Phase::kFailed) return {};
  return impl_->pump({});
}

std::span<std::byte> NbdSession::direct_input() noexcept { return impl_->direct_span(); }

std::size_t NbdSession::read_hint() const noexcept {
  const Impl& s = *impl_;
  if (!s.last_big_write || s.in != Impl::In::kRequestHeader) return SIZE_MAX;
  return kRequestSize - s.hdr_fill;
}

Result<void> NbdSession::received_direct(std::size_t n) {
  if (n == 0 || n > impl_->direct_span().size())
    return fail(Errc::kInvalidArgument, "nbd: received_direct() of more than direct_input()");
  impl_->take_direct(n);
  return {};
}

bool NbdSession::wants_input() const noexcept {
  return impl_->accepting() && impl_->kept.empty() && !impl_->paused();
}

bool NbdSession::can_resume() const noexcept {
  const Impl& s = *impl_;
  return !s.followups.empty() || (s.accepting() && s.kept_pos < s.kept.size() && !s.paused());
}

std::size_t NbdSession::output_size() const noexcept { return impl_->out_bytes; }

std::size_t NbdSession::peek_output(std::span<std::span<const std::byte>> chunks) const noexcept {
  const Impl& s = *impl_;
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.out.size() && n < chunks.size(); ++i) {
    const std::size_t skip = i == 0 ? s.out_pos : 0;
    if (s.out[i].size() > skip) chunks[n++] = std::span<const std::byte>(s.out[i]).subspan(skip);
  }
  return n;
}

void NbdSession::consume_output(std::size_t n) noexcept {
  Impl& s = *impl_;
  n = std::min(n, s.out_bytes);
  s.out_bytes -= n;
  while (n > 0) {
    const std::size_t avail = s.out.front().size() - s.out_pos;
    if (n < avail) {
      s.out_pos += n;
      break;
    }
    n -= avail;
    s.out.pop_front();
    s.out_pos = 0;
  }
  if (s.out_bytes == 0) {
    s.out.clear();
    s.out_pos = 0;
    s.back_open = false;
  }
}

bool NbdSession::finished() const noexcept {
  return impl_->phase == Phase::kFailed || (impl_->phase == Phase::kClosing && impl_->ops == 0);
}

NbdSession::Phase NbdSession::phase() const noexcept { return impl_->phase; }
std::size_t NbdSession::in_flight() const noexcept { return impl_->ops; }
std::size_t NbdSession::in_flight_bytes() const noexcept {
  return impl_->op_bytes + impl_->out_bytes;
}
const SessionStats& NbdSession::stats() const noexcept { return impl_->stats; }

void NbdSession::set_on_completion(std::function<void()> cb) {
  impl_->on_completion = std::move(cb);
}

}  // namespace vepf::host::nbd
