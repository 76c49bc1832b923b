#pragma once
// NBD wire protocol: constants and message layouts (the NBD protocol document, proto.md, of
// github.com/NetworkBlockDevice/nbd; section names below are that document's headings).
//
// Every value that <linux/nbd.h> defines comes from there. The rest (newer than the kernel
// header) is defined here under a kName, with proto.md's constant name in the comment: plain
// C++ names cannot collide with macros a newer <linux/nbd.h> may add (NBD_FLAG_SEND_WRITE_ZEROES,
// NBD_CMD_FLAG_NO_HOLE, ...).
//
// Everything on the wire is big-endian ("network byte order", proto.md "Conventions"). The
// messages are not naturally aligned (a request is 28 bytes with a 64-bit field at offset 8),
// so they are not C++ structs laid over the bytes: each has a decoded struct, its size, and its
// field offsets in comments; load_be()/store_be() are the only byte-order code.

#include <linux/nbd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace vepf::host::nbd {

// ---- byte order

/// Reads a big-endian T (uint16/32/64) from `p` (any alignment).
template <class T>
constexpr T load_be(const std::byte* p) noexcept {
  static_assert(std::is_unsigned_v<T>);
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v = static_cast<T>((v << 8) | std::to_integer<T>(p[i]));
  return v;
}

/// Writes `v` big-endian to `p` (any alignment).
template <class T>
constexpr void store_be(std::byte* p, T v) noexcept {
  static_assert(std::is_unsigned_v<T>);
  for (std::size_t i = sizeof(T); i-- > 0;) {
    p[i] = static_cast<std::byte>(v & 0xff);
    v = static_cast<T>(v >> 8);
  }
}

/// Appends `v` big-endian to `out` (a std::vector of bytes, whatever its allocator).
template <class T, class Alloc>
void append_be(std::vector<std::byte, Alloc>& out, T v) {
  const std::size_t at = out.size();
  out.resize(at + sizeof(T));
  store_be<T>(out.data() + at, v);
}

/// Reads big-endian fields and strings of option data front to back; a read past the end
/// clears ok() (and returns 0 / an empty string).
class FieldReader {
 public:
  explicit FieldReader(std::span<const std::byte> d) noexcept : d_(d) {}
  std::uint32_t u32() noexcept { return take<std::uint32_t>(); }
  std::uint16_t u16() noexcept { return take<std::uint16_t>(); }
  std::string_view str(std::uint32_t n) noexcept {
    if (!ok_ || n > d_.size() - pos_) {
      ok_ = false;
      return {};
    }
    // Option data is raw bytes; the protocol's strings are UTF-8 text in them.
    std::string_view s(static_cast<const char*>(static_cast<const void*>(d_.data() + pos_)), n);
    pos_ += n;
    return s;
  }
  bool ok() const noexcept { return ok_; }
  void invalidate() noexcept { ok_ = false; }
  bool at_end() const noexcept { return ok_ && pos_ == d_.size(); }

 private:
  template <class T>
  T take() noexcept {
    if (!ok_ || sizeof(T) > d_.size() - pos_) {
      ok_ = false;
      return 0;
    }
    const T v = load_be<T>(d_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::span<const std::byte> d_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// ---- handshake (proto.md "Newstyle negotiation", "Fixed newstyle negotiation")

inline constexpr std::uint64_t kNbdMagic = 0x4e42444d41474943;    // 'NBDMAGIC' (INIT_PASSWD)
inline constexpr std::uint64_t kIHaveOpt = 0x49484156454F5054;    // 'IHAVEOPT'
inline constexpr std::uint64_t kOptReplyMagic = 0x3e889045565a9;  // option reply magic

/// Server greeting: NBDMAGIC (0), IHAVEOPT (8), 16-bit handshake flags (16).
inline constexpr std::size_t kGreetingSize = 18;
/// Client flags: 32 bits after the greeting.
inline constexpr std::size_t kClientFlagsSize = 4;
/// Reply to NBD_OPT_EXPORT_NAME: size u64 (0), transmission flags u16 (8), then 124 zero bytes
/// unless NBD_FLAG_C_NO_ZEROES was negotiated.
inline constexpr std::size_t kExportNameReplySize = 10;
inline constexpr std::size_t kExportNameZeroes = 124;

// Handshake flags (proto.md "Handshake flags").
inline constexpr std::uint16_t kFlagFixedNewstyle = 1u << 0;  // NBD_FLAG_FIXED_NEWSTYLE
inline constexpr std::uint16_t kFlagNoZeroes = 1u << 1;       // NBD_FLAG_NO_ZEROES
// Client flags (proto.md "Client flags"): any other bit makes the server drop the connection.
inline constexpr std::uint32_t kFlagCFixedNewstyle = 1u << 0;  // NBD_FLAG_C_FIXED_NEWSTYLE
inline constexpr std::uint32_t kFlagCNoZeroes = 1u << 1;       // NBD_FLAG_C_NO_ZEROES

/// Option request header: IHAVEOPT u64 (0), option u32 (8), data length u32 (12); then data.
struct OptionHeader {
  std::uint64_t magic = 0;
  std::uint32_t option = 0;
  std::uint32_t length = 0;
};
inline constexpr std::size_t kOptionHeaderSize = 16;

constexpr OptionHeader decode_option_header(
    std::span<const std::byte, kOptionHeaderSize> b) noexcept {
  return OptionHeader{load_be<std::uint64_t>(&b[0]), load_be<std::uint32_t>(&b[8]),
                      load_be<std::uint32_t>(&b[12])};
}

/// Option reply header: kOptReplyMagic u64 (0), option u32 (8), reply type u32 (12),
/// data length u32 (16); then data.
inline constexpr std::size_t kOptionReplyHeaderSize = 20;

// Option types (proto.md "Option types").
inline constexpr std::uint32_t kOptExportName = 1;       // NBD_OPT_EXPORT_NAME
inline constexpr std::uint32_t kOptAbort = 2;            // NBD_OPT_ABORT
inline constexpr std::uint32_t kOptList = 3;             // NBD_OPT_LIST
inline constexpr std::uint32_t kOptStartTls = 5;         // NBD_OPT_STARTTLS (not supported)
inline constexpr std::uint32_t kOptInfo = 6;             // NBD_OPT_INFO
inline constexpr std::uint32_t kOptGo = 7;               // NBD_OPT_GO
inline constexpr std::uint32_t kOptStructuredReply = 8;  // NBD_OPT_STRUCTURED_REPLY
inline constexpr std::uint32_t kOptListMetaContext = 9;  // NBD_OPT_LIST_META_CONTEXT
inline constexpr std::uint32_t kOptSetMetaContext = 10;  // NBD_OPT_SET_META_CONTEXT

// Option reply types (proto.md "Option reply types"); errors have bit 31 set.
inline constexpr std::uint32_t kRepAck = 1;          // NBD_REP_ACK
inline constexpr std::uint32_t kRepServer = 2;       // NBD_REP_SERVER
inline constexpr std::uint32_t kRepInfo = 3;         // NBD_REP_INFO
inline constexpr std::uint32_t kRepMetaContext = 4;  // NBD_REP_META_CONTEXT
inline constexpr std::uint32_t kRepErrBit = 1u << 31;
inline constexpr std::uint32_t kRepErrUnsup = kRepErrBit + 1;     // NBD_REP_ERR_UNSUP
inline constexpr std::uint32_t kRepErrPolicy = kRepErrBit + 2;    // NBD_REP_ERR_POLICY
inline constexpr std::uint32_t kRepErrInvalid = kRepErrBit + 3;   // NBD_REP_ERR_INVALID
inline constexpr std::uint32_t kRepErrPlatform = kRepErrBit + 4;  // NBD_REP_ERR_PLATFORM
inline constexpr std::uint32_t kRepErrTlsReqd = kRepErrBit + 5;   // NBD_REP_ERR_TLS_REQD
inline constexpr std::uint32_t kRepErrUnknown = kRepErrBit + 6;   // NBD_REP_ERR_UNKNOWN
inline constexpr std::uint32_t kRepErrShutdown = kRepErrBit + 7;  // NBD_REP_ERR_SHUTDOWN
inline constexpr std::uint32_t kRepErrTooBig = kRepErrBit + 9;    // NBD_REP_ERR_TOO_BIG
// NBD_REP_ERR_BLOCK_SIZE_REQD
inline constexpr std::uint32_t kRepErrBlockSizeReqd = kRepErrBit + 8;

// NBD_REP_INFO information types (proto.md "Option reply types", NBD_REP_INFO).
inline constexpr std::uint16_t kInfoExport = 0;       // NBD_INFO_EXPORT: size u64, flags u16
inline constexpr std::uint16_t kInfoName = 1;         // NBD_INFO_NAME: string
inline constexpr std::uint16_t kInfoDescription = 2;  // NBD_INFO_DESCRIPTION: string
inline constexpr std::uint16_t kInfoBlockSize = 3;  // NBD_INFO_BLOCK_SIZE: min, preferred, max u32

/// Longest string the protocol allows (export names, messages: proto.md "Conventions").
inline constexpr std::size_t kMaxString = 4096;

/// The one metadata context this server knows (proto.md "The base: metadata namespace").
inline constexpr char kMetaBaseAllocation[] = "base:allocation";
inline constexpr std::uint32_t kStateHole = 1u << 0;  // NBD_STATE_HOLE
inline constexpr std::uint32_t kStateZero = 1u << 1;  // NBD_STATE_ZERO

// ---- transmission (proto.md "Transmission", "Transmission flags")

// From <linux/nbd.h>: NBD_FLAG_HAS_FLAGS, NBD_FLAG_READ_ONLY, NBD_FLAG_SEND_FLUSH,
// NBD_FLAG_SEND_FUA, NBD_FLAG_SEND_TRIM, NBD_FLAG_CAN_MULTI_CONN.
inline constexpr std::uint16_t kFlagHasFlags = NBD_FLAG_HAS_FLAGS;
inline constexpr std::uint16_t kFlagReadOnly = NBD_FLAG_READ_ONLY;
inline constexpr std::uint16_t kFlagSendFlush = NBD_FLAG_SEND_FLUSH;
inline constexpr std::uint16_t kFlagSendFua = NBD_FLAG_SEND_FUA;
inline constexpr std::uint16_t kFlagSendTrim = NBD_FLAG_SEND_TRIM;
inline constexpr std::uint16_t kFlagCanMultiConn = NBD_FLAG_CAN_MULTI_CONN;
inline constexpr std::uint16_t kFlagSendWriteZeroes = 1u << 6;  // NBD_FLAG_SEND_WRITE_ZEROES
inline constexpr std::uint16_t kFlagSendDf = 1u << 7;           // NBD_FLAG_SEND_DF
inline constexpr std::uint16_t kFlagSendFastZero = 1u << 11;    // NBD_FLAG_SEND_FAST_ZERO

// Request types (proto.md "Request types"); 0..4 from <linux/nbd.h>.
inline constexpr std::uint16_t kCmdRead = NBD_CMD_READ;
inline constexpr std::uint16_t kCmdWrite = NBD_CMD_WRITE;
inline constexpr std::uint16_t kCmdDisc = NBD_CMD_DISC;
inline constexpr std::uint16_t kCmdFlush = NBD_CMD_FLUSH;
inline constexpr std::uint16_t kCmdTrim = NBD_CMD_TRIM;
inline constexpr std::uint16_t kCmdCache = 5;        // NBD_CMD_CACHE (not supported)
inline constexpr std::uint16_t kCmdWriteZeroes = 6;  // NBD_CMD_WRITE_ZEROES
inline constexpr std::uint16_t kCmdBlockStatus = 7;  // NBD_CMD_BLOCK_STATUS

// Command flags, the 16-bit field of a request (proto.md "Command flags"). <linux/nbd.h> gives
// NBD_CMD_FLAG_FUA as a bit of the 32-bit word "flags << 16 | type": shifted down here.
inline constexpr std::uint16_t kCmdFlagFua = NBD_CMD_FLAG_FUA >> 16;  // NBD_CMD_FLAG_FUA
inline constexpr std::uint16_t kCmdFlagNoHole = 1u << 1;              // NBD_CMD_FLAG_NO_HOLE
inline constexpr std::uint16_t kCmdFlagDf = 1u << 2;                  // NBD_CMD_FLAG_DF
inline constexpr std::uint16_t kCmdFlagReqOne = 1u << 3;              // NBD_CMD_FLAG_REQ_ONE
inline constexpr std::uint16_t kCmdFlagFastZero = 1u << 4;            // NBD_CMD_FLAG_FAST_ZERO
static_assert(kCmdFlagFua == 1);

/// Request (proto.md "Request message"), 28 bytes; a write's data follows it.
struct Request {
  std::uint32_t magic = 0;   // 0  NBD_REQUEST_MAGIC
  std::uint16_t flags = 0;   // 4  command flags
  std::uint16_t type = 0;    // 6  NBD_CMD_*
  std::uint64_t cookie = 0;  // 8  "handle": echoed in the reply
  std::uint64_t offset = 0;  // 16
  std::uint32_t length = 0;  // 24
};
inline constexpr std::size_t kRequestSize = 28;
inline constexpr std::uint32_t kRequestMagic = NBD_REQUEST_MAGIC;

constexpr Request decode_request(std::span<const std::byte, kRequestSize> b) noexcept {
  return Request{load_be<std::uint32_t>(&b[0]),  load_be<std::uint16_t>(&b[4]),
                 load_be<std::uint16_t>(&b[6]),  load_be<std::uint64_t>(&b[8]),
                 load_be<std::uint64_t>(&b[16]), load_be<std::uint32_t>(&b[24])};
}

/// Simple reply (proto.md "Simple reply message"): magic u32 (0), error u32 (4), cookie u64 (8);
/// a successful read's data follows.
inline constexpr std::size_t kSimpleReplySize = 16;
inline constexpr std::uint32_t kSimpleReplyMagic = NBD_REPLY_MAGIC;  // NBD_SIMPLE_REPLY_MAGIC

/// Structured reply chunk (proto.md "Structured reply chunk message"): magic u32 (0),
/// flags u16 (4), type u16 (6), cookie u64 (8), payload length u32 (16); then the payload.
inline constexpr std::size_t kStructuredReplyHeaderSize = 20;
inline constexpr std::uint32_t kStructuredReplyMagic = 0x668e33ef;  // NBD_STRUCTURED_REPLY_MAGIC

// Structured reply flags and types (proto.md "Structured reply flags", "Structured reply types").
inline constexpr std::uint16_t kReplyFlagDone = 1u << 0;          // NBD_REPLY_FLAG_DONE
inline constexpr std::uint16_t kReplyTypeNone = 0;                // NBD_REPLY_TYPE_NONE
inline constexpr std::uint16_t kReplyTypeOffsetData = 1;          // NBD_REPLY_TYPE_OFFSET_DATA
inline constexpr std::uint16_t kReplyTypeOffsetHole = 2;          // NBD_REPLY_TYPE_OFFSET_HOLE
inline constexpr std::uint16_t kReplyTypeBlockStatus = 5;         // NBD_REPLY_TYPE_BLOCK_STATUS
inline constexpr std::uint16_t kReplyTypeError = (1u << 15) + 1;  // NBD_REPLY_TYPE_ERROR
inline constexpr std::uint16_t kReplyTypeErrorOffset =
    (1u << 15) + 2;  // NBD_REPLY_TYPE_ERROR_OFFSET

// Error values on the wire (proto.md "Error values"): fixed numbers, not the host's errno.
inline constexpr std::uint32_t kEPerm = 1;        // NBD_EPERM
inline constexpr std::uint32_t kEIo = 5;          // NBD_EIO
inline constexpr std::uint32_t kENoMem = 12;      // NBD_ENOMEM
inline constexpr std::uint32_t kEInval = 22;      // NBD_EINVAL
inline constexpr std::uint32_t kENoSpc = 28;      // NBD_ENOSPC
inline constexpr std::uint32_t kEOverflow = 75;   // NBD_EOVERFLOW
inline constexpr std::uint32_t kEShutdown = 108;  // NBD_ESHUTDOWN

}  // namespace vepf::host::nbd
