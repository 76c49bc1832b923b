// NbdSession fed raw client bytes (no sockets): handshake, options, transmission, error paths,
// completion order, the in-flight bound, late completions.

#include "nbd/nbd_session.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "mem_target.hpp"
#include "nbd/nbd_proto.hpp"
#include "nbd_wire.hpp"

namespace vepf::host::nbd {
namespace {

using test::Bytes;
using test::cat;
using test::client_flags;
using test::filled;
using test::info_data;
using test::MemTarget;
using test::meta_data;
using test::next_opt_reply;
using test::next_reply;
using test::option;
using test::OptReply;
using test::Reply;
using test::request;
using test::WireReader;

constexpr std::uint64_t kSize = 1u << 20;

ExportInfo default_info() {
  ExportInfo i;
  i.size = kSize;
  i.can_flush = i.can_fua = i.can_trim = i.can_write_zeroes = i.can_multi_conn = true;
  i.description = "test disk";
  return i;
}

struct Harness {
  explicit Harness(ExportInfo info = default_info(),
                   MemTarget::Mode mode = MemTarget::Mode::kInline, SessionLimits limits = {})
      : target(std::move(info), mode), session(make(target, limits)) {}

  static NbdSession make(MemTarget& t, SessionLimits l) {
    return std::move(NbdSession::create(t, l).value());  // throws (test error) if invalid
  }

  Result<void> send(const Bytes& b) { return session->receive(b); }
  void send_ok(const Bytes& b) {
    auto r = send(b);
    EXPECT_TRUE(r) << r.error().what;
  }
  /// Takes every byte of output.
  Bytes drain() {
    Bytes out;
    std::array<std::span<const std::byte>, 4> chunks;
    while (session->has_output()) {
      const std::size_t n = session->peek_output(chunks);
      std::size_t total = 0;
      for (std::size_t i = 0; i < n; ++i) {
        out.insert(out.end(), chunks[i].begin(), chunks[i].end());
        total += chunks[i].size();
      }
      session->consume_output(total);
    }
    return out;
  }
  /// Handshake and NBD_OPT_GO; returns the transmission flags.
  std::uint16_t go(bool structured, bool meta = false) {
    drain();  // greeting
    send_ok(client_flags(kFlagCFixedNewstyle | kFlagCNoZeroes));
    if (structured) {
      send_ok(option(kOptStructuredReply, {}));
      WireReader r(drain());
      EXPECT_EQ(next_opt_reply(r).type, kRepAck);
    }
    if (meta) {
      send_ok(option(kOptSetMetaContext, meta_data("", {kMetaBaseAllocation})));
      WireReader r(drain());
      EXPECT_EQ(next_opt_reply(r).type, kRepMetaContext);
      EXPECT_EQ(next_opt_reply(r).type, kRepAck);
    }
    send_ok(option(kOptGo, info_data("")));
    WireReader r(drain());
    std::uint16_t flags = 0;
    for (;;) {
      const OptReply o = next_opt_reply(r);
      if (r.overrun || o.type != kRepInfo) {
        EXPECT_EQ(o.type, kRepAck);
        break;
      }
      if (o.data.size() == 12 && load_be<std::uint16_t>(o.data.data()) == kInfoExport)
        flags = load_be<std::uint16_t>(o.data.data() + 10);
    }
    EXPECT_EQ(session->phase(), NbdSession::Phase::kTransmission);
    return flags;
  }
  /// Sends one request and returns its reply.
  Reply roundtrip(const Bytes& req, std::uint32_t read_len = 0) {
    send_ok(req);
    WireReader r(drain());
    Reply x = next_reply(r, read_len);
    EXPECT_FALSE(r.overrun);
    EXPECT_EQ(r.left(), 0u);
    return x;
  }

  MemTarget target;
  std::optional<NbdSession> session;
};

TEST(NbdSession, GreetsWithFixedNewstyle) {
  Harness h;
  WireReader r(h.drain());
  EXPECT_EQ(r.get<std::uint64_t>(), kNbdMagic);
  EXPECT_EQ(r.get<std::uint64_t>(), kIHaveOpt);
  EXPECT_EQ(r.get<std::uint16_t>(), kFlagFixedNewstyle | kFlagNoZeroes);
  EXPECT_EQ(r.left(), 0u);
  EXPECT_EQ(h.session->phase(), NbdSession::Phase::kHandshake);
}

TEST(NbdSession, DropsClientWithoutFixedNewstyleOrWithUnknownFlags) {
  for (std::uint32_t flags : {0u, kFlagCNoZeroes, kFlagCFixedNewstyle | 4u, 0x80000001u}) {
    Harness h;
    auto r = h.send(client_flags(flags));
    ASSERT_FALSE(r) << flags;
    EXPECT_EQ(r.error().code, Errc::kBadRing);
    EXPECT_TRUE(h.session->finished());
    EXPECT_EQ(h.session->phase(), NbdSession::Phase::kFailed);
    EXPECT_FALSE(h.session->wants_input());
  }
}

TEST(NbdSession, DropsBadOptionMagic) {
  Harness h;
  h.send_ok(client_flags(kFlagCFixedNewstyle));
  auto r = h.send(option(kOptList, {}, 0x1122334455667788));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadRing);
}

TEST(NbdSession, UnknownOptionGetsErrUnsupAndTheSessionGoesOn) {
  Harness h;
  h.drain();
  h.send_ok(
      cat({client_flags(kFlagCFixedNewstyle), option(42, filled(5, 1)), option(kOptStartTls, {})}));
  WireReader r(h.drain());
  for (std::uint32_t opt : {42u, kOptStartTls}) {
    const OptReply o = next_opt_reply(r);
    EXPECT_FALSE(o.bad_magic);
    EXPECT_EQ(o.option, opt);
    EXPECT_EQ(o.type, kRepErrUnsup);
  }
  EXPECT_EQ(r.left(), 0u);
  h.send_ok(option(kOptGo, info_data("any name")));
  EXPECT_EQ(h.session->phase(), NbdSession::Phase::kTransmission);
}

TEST(NbdSession, MalformedOptionsGetErrInvalid) {
  Bytes bad_go = info_data("disk", {kInfoBlockSize});
  bad_go.push_back(std::byte{0});  // trailing byte
  Bytes short_go;
  test::put<std::uint32_t>(short_go, 100);  // name longer than the data
  Bytes bad_meta = meta_data("", {"base:allocation"});
  bad_meta.resize(bad_meta.size() - 1);
  const std::vector<std::pair<std::uint32_t, Bytes>> cases = {
      {kOptList, filled(1, 0)},
      {kOptGo, bad_go},
      {kOptInfo, short_go},
      {kOptGo, {}},
      {kOptStructuredReply, filled(2, 0)},
      {kOptSetMetaContext, meta_data("", {"base:allocation"})},  // before STRUCTURED_REPLY
  };
  Harness h;
  h.drain();
  h.send_ok(client_flags(kFlagCFixedNewstyle));
  for (const auto& [opt, data] : cases) {
    h.send_ok(option(opt, data));
    WireReader r(h.drain());
    const OptReply o = next_opt_reply(r);
    EXPECT_EQ(o.option, opt);
    EXPECT_EQ(o.type, kRepErrInvalid) << "option " << opt;
    EXPECT_EQ(r.left(), 0u);
  }
  h.send_ok(option(kOptStructuredReply, {}));
  h.drain();
  h.send_ok(option(kOptSetMetaContext, bad_meta));
  WireReader r(h.drain());
  EXPECT_EQ(next_opt_reply(r).type, kRepErrInvalid);
  EXPECT_EQ(h.session->phase(), NbdSession::Phase::kOptions);
}

TEST(NbdSession, OversizedOptionEndsTheConnection) {
  Harness h;
  h.send_ok(client_flags(kFlagCFixedNewstyle));
  // Exactly the limit is fine (an unknown option: ERR_UNSUP).
  h.send_ok(option(1000, filled(64u << 10, 7)));
  h.drain();
  Bytes hdr = option(1000, {});
  hdr.resize(12);
  test::put<std::uint32_t>(hdr,
                           (64u << 10) + 1);  // header only: the server must not wait for the data
  auto r = h.send(hdr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kOutOfRange);
  EXPECT_TRUE(h.session->finished());
}

TEST(NbdSession, ExportNameRepliesWithOrWithoutZeroes) {
  for (bool no_zeroes : {false, true}) {
    Harness h;
    h.drain();
    h.send_ok(client_flags(kFlagCFixedNewstyle | (no_zeroes ? kFlagCNoZeroes : 0)));
    h.send_ok(option(kOptExportName, {}));
    WireReader r(h.drain());
    EXPECT_EQ(r.get<std::uint64_t>(), kSize);
    const auto flags = r.get<std::uint16_t>();
    EXPECT_EQ(flags, kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagSendTrim |
                         kFlagSendWriteZeroes | kFlagCanMultiConn);
    EXPECT_EQ(r.left(), no_zeroes ? 0u : kExportNameZeroes);
    EXPECT_EQ(h.session->phase(), NbdSession::Phase::kTransmission);
    const Reply x = h.roundtrip(request(kCmdRead, 9, 0, 16), 16);
    EXPECT_EQ(x.error, 0u);
    EXPECT_EQ(x.cookie, 9u);
    EXPECT_EQ(x.payload.size(), 16u);
  }
}

TEST(NbdSession, InfoAndGoDescribeTheExport) {
  Harness h;
  h.drain();
  h.send_ok(client_flags(kFlagCFixedNewstyle));
  for (std::uint32_t opt : {kOptInfo, kOptGo}) {
    h.send_ok(option(opt, info_data("disk0", {kInfoName, kInfoBlockSize, kInfoDescription, 77})));
    WireReader r(h.drain());
    bool seen_export = false, seen_bs = false, seen_name = false, seen_desc = false;
    for (;;) {
      const OptReply o = next_opt_reply(r);
      ASSERT_FALSE(r.overrun);
      EXPECT_EQ(o.option, opt);
      if (o.type == kRepAck) break;
      ASSERT_EQ(o.type, kRepInfo);
      WireReader d(o.data);
      switch (d.get<std::uint16_t>()) {
        case kInfoExport:
          seen_export = true;
          EXPECT_EQ(d.get<std::uint64_t>(), kSize);
          EXPECT_TRUE(d.get<std::uint16_t>() & kFlagHasFlags);
          break;
        case kInfoBlockSize:
          seen_bs = true;
          EXPECT_EQ(d.get<std::uint32_t>(), 1u);
          EXPECT_EQ(d.get<std::uint32_t>(), 4096u);
          EXPECT_EQ(d.get<std::uint32_t>(), 32u << 20);
          break;
        case kInfoName:
          seen_name = true;
          EXPECT_EQ(d.str(d.left()), "disk0");
          break;
        case kInfoDescription:
          seen_desc = true;
          EXPECT_EQ(d.str(d.left()), "test disk");
          break;
        default:
          ADD_FAILURE() << "unexpected info type";
      }
      EXPECT_EQ(d.left(), 0u);
    }
    EXPECT_TRUE(seen_export && seen_bs && seen_name && seen_desc);
    EXPECT_EQ(r.left(), 0u);
    EXPECT_EQ(h.session->phase(),
              opt == kOptGo ? NbdSession::Phase::kTransmission : NbdSession::Phase::kOptions);
  }
}

TEST(NbdSession, ListNamesTheOneExport) {
  Harness h;
  h.drain();
  h.send_ok(cat({client_flags(kFlagCFixedNewstyle), option(kOptList, {})}));
  WireReader r(h.drain());
  const OptReply s = next_opt_reply(r);
  EXPECT_EQ(s.type, kRepServer);
  WireReader d(s.data);
  EXPECT_EQ(d.get<std::uint32_t>(), 0u);  // name "" (the default export)
  EXPECT_EQ(d.str(d.left()), "test disk");
  EXPECT_EQ(next_opt_reply(r).type, kRepAck);
  EXPECT_EQ(r.left(), 0u);
}

TEST(NbdSession, ListMetaContextKnowsBaseAllocation) {
  Harness h;
  h.drain();
  h.send_ok(cat({client_flags(kFlagCFixedNewstyle), option(kOptStructuredReply, {})}));
  h.drain();
  const std::vector<std::pair<Bytes, bool>> cases = {
      {meta_data("", {}), true},
      {meta_data("", {"base:"}), true},
      {meta_data("x", {"base:allocation", "qemu:dirty-bitmap:a"}), true},
      {meta_data("", {"x-other:thing", "base:nothing"}), false},
  };
  for (const auto& [data, listed] : cases) {
    h.send_ok(option(kOptListMetaContext, data));
    WireReader r(h.drain());
    if (listed) {
      const OptReply m = next_opt_reply(r);
      ASSERT_EQ(m.type, kRepMetaContext);
      WireReader d(m.data);
      EXPECT_EQ(d.get<std::uint32_t>(), 0u);  // LIST: id reserved
      EXPECT_EQ(d.str(d.left()), kMetaBaseAllocation);
    }
    EXPECT_EQ(next_opt_reply(r).type, kRepAck);
    EXPECT_EQ(r.left(), 0u);
  }
}

TEST(NbdSession, BlockStatusNeedsAContextAndReportsOneAllocatedExtent) {
  Harness h;
  h.go(/*structured=*/true, /*meta=*/true);
  const Reply x = h.roundtrip(request(kCmdBlockStatus, 5, 4096, 65536));
  EXPECT_TRUE(x.structured);
  EXPECT_EQ(x.type, kReplyTypeBlockStatus);
  EXPECT_EQ(x.flags, kReplyFlagDone);
  WireReader d(x.payload);
  EXPECT_NE(d.get<std::uint32_t>(), 0u);  // the id from SET_META_CONTEXT
  EXPECT_EQ(d.get<std::uint32_t>(), 65536u);
  EXPECT_EQ(d.get<std::uint32_t>(), 0u);  // allocated, contents unknown
  EXPECT_EQ(d.left(), 0u);
  EXPECT_EQ(h.roundtrip(request(kCmdBlockStatus, 6, kSize - 10, 20)).error, kEInval);

  Harness no_meta;
  no_meta.go(true, false);
  EXPECT_EQ(no_meta.roundtrip(request(kCmdBlockStatus, 1, 0, 512)).error, kEInval);
}

class NbdSessionReplies : public ::testing::TestWithParam<bool> {};  // structured?

TEST_P(NbdSessionReplies, RequestsBeyondTheEndFailAndTheSessionGoesOn) {
  Harness h;
  h.go(GetParam());
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 1, kSize - 4, 8)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 2, ~std::uint64_t{0} - 1, 4)).error,
            kEInval);  // no overflow
  EXPECT_EQ(h.roundtrip(request(kCmdTrim, 3, kSize, 1)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdWriteZeroes, 4, kSize, 1)).error, kENoSpc);
  // A refused write's data is skipped, and the next request parses.
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 5, kSize - 2, 4), filled(4, 0xee)})).error,
            kENoSpc);
  const Reply ok = h.roundtrip(request(kCmdRead, 6, kSize - 4, 4), 4);
  EXPECT_EQ(ok.error, 0u);
  EXPECT_EQ(ok.cookie, 6u);
  EXPECT_EQ(h.target.violations, 0);
  EXPECT_EQ(h.session->stats().errors, 5u);
}

TEST_P(NbdSessionReplies, ReadReturnsWhatWasWritten) {
  Harness h;
  h.go(GetParam());
  Bytes data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<std::byte>(i * 7));
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 1, 3, 1000), data})).error, 0u);
  const Reply x = h.roundtrip(request(kCmdRead, 2, 3, 1000), 1000);
  EXPECT_EQ(x.error, 0u);
  if (GetParam()) {
    EXPECT_EQ(x.type, kReplyTypeOffsetData);
    EXPECT_EQ(x.flags, kReplyFlagDone);
    WireReader d(x.payload);
    EXPECT_EQ(d.get<std::uint64_t>(), 3u);
    EXPECT_EQ(d.take(d.left()), data);
  } else {
    EXPECT_EQ(x.payload, data);
  }
  EXPECT_EQ(h.session->stats().bytes_written, 1000u);
  EXPECT_EQ(h.session->stats().bytes_read, 1000u);
}

TEST_P(NbdSessionReplies, TargetErrorsAreMappedAndSimpleErrorsCarryNoData) {
  Harness h;
  h.go(GetParam());
  h.target.fail_errno = EROFS;
  h.send_ok(request(kCmdRead, 1, 0, 512));
  h.send_ok(request(kCmdRead, 2, 0, 8));
  WireReader r(h.drain());
  const Reply e = next_reply(r, 512);
  EXPECT_EQ(e.error, kEPerm);
  EXPECT_EQ(e.cookie, 1u);
  if (GetParam()) {
    EXPECT_EQ(e.type, kReplyTypeError);
    EXPECT_EQ(e.flags, kReplyFlagDone);
    WireReader d(e.payload);
    d.get<std::uint32_t>();
    const std::size_t msg_len = d.get<std::uint16_t>();
    EXPECT_GT(msg_len, 0u);
    EXPECT_EQ(msg_len, d.left());  // the message length covers the rest
  }
  const Reply ok = next_reply(r, 8);  // parses only if the error carried no data
  EXPECT_EQ(ok.error, 0u);
  EXPECT_EQ(ok.cookie, 2u);
  EXPECT_EQ(r.left(), 0u);
}

TEST_P(NbdSessionReplies, UnknownCommandsAndUnadvertisedFlagsGetEinval) {
  ExportInfo info = default_info();
  info.can_fua = false;
  info.can_trim = false;
  Harness h(info);
  h.go(GetParam());
  EXPECT_EQ(h.roundtrip(request(kCmdCache, 1, 0, 512)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(99, 2, 0, 512)).error, kEInval);
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 3, 0, 4, kCmdFlagFua), filled(4, 1)})).error,
            kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdTrim, 4, 0, 512)).error, kEInval);
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 5, 0, 4, kCmdFlagNoHole), filled(4, 1)})).error,
            kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 6, 0, 4, 1u << 9)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdFlush, 7, 512, 0)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdWriteZeroes, 8, 0, 4, kCmdFlagFastZero)).error, kEInval);
  // DF needs structured replies (NBD_FLAG_SEND_DF).
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 9, 0, 4, kCmdFlagDf), 4).error,
            GetParam() ? 0u : kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdFlush, 10, 0, 0)).error, 0u);
  EXPECT_EQ(h.target.writes, 0);
  EXPECT_EQ(h.target.trims, 0);
}

TEST_P(NbdSessionReplies, ReadOnlyExportRefusesWritesWithEperm) {
  ExportInfo info = default_info();
  info.read_only = true;
  Harness h(info);
  const std::uint16_t flags = h.go(GetParam());
  EXPECT_TRUE(flags & kFlagReadOnly);
  EXPECT_FALSE(flags & (kFlagSendTrim | kFlagSendWriteZeroes));
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 1, 0, 4), filled(4, 1)})).error, kEPerm);
  EXPECT_EQ(h.roundtrip(request(kCmdTrim, 2, 0, 512)).error, kEPerm);
  EXPECT_EQ(h.roundtrip(request(kCmdWriteZeroes, 3, 0, 512)).error, kEPerm);
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 4, 0, 4), 4).error, 0u);
  EXPECT_EQ(h.target.violations, 0);
}

TEST_P(NbdSessionReplies, BlockSizeLimitsAreEnforced) {
  ExportInfo info = default_info();
  info.min_block = 512;
  info.max_block = 8192;
  Harness h(info);
  h.go(GetParam());
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 1, 0, 16384)).error, kEInval);
  EXPECT_EQ(h.roundtrip(cat({request(kCmdWrite, 2, 0, 16384), filled(16384, 3)})).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 3, 100, 512)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 4, 512, 100)).error, kEInval);
  EXPECT_EQ(h.roundtrip(request(kCmdTrim, 5, 0, 65536)).error, 0u);  // trim has no max
  EXPECT_EQ(h.roundtrip(request(kCmdRead, 6, 512, 8192), 8192).error, 0u);
}

TEST_P(NbdSessionReplies, FuaOnTrimAndWriteZeroesFlushesBeforeTheReply) {
  for (auto mode : {MemTarget::Mode::kInline, MemTarget::Mode::kDeferred}) {
    Harness h(default_info(), mode);
    h.go(GetParam());
    h.send_ok(request(kCmdWriteZeroes, 1, 0, 4096, kCmdFlagFua | kCmdFlagNoHole));
    if (mode == MemTarget::Mode::kDeferred) {
      EXPECT_EQ(h.target.complete_all(), 1u);
      EXPECT_FALSE(h.session->has_output());  // the flush is still to come
      ASSERT_TRUE(h.session->can_resume());
      ASSERT_TRUE(h.session->resume());
      EXPECT_EQ(h.target.complete_all(), 1u);
    }
    WireReader r(h.drain());
    EXPECT_EQ(next_reply(r).error, 0u);
    EXPECT_EQ(h.target.zeroes, 1);
    EXPECT_EQ(h.target.zeroes_no_hole, 1);
    EXPECT_EQ(h.target.flushes, 1);
    EXPECT_EQ(h.session->in_flight(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, NbdSessionReplies, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "structured" : "simple"; });

TEST(NbdSession, DropsBadRequestMagic) {
  Harness h;
  h.go(false);
  auto r = h.send(request(kCmdRead, 1, 0, 512, 0, 0x12345678));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadRing);
  EXPECT_TRUE(h.session->finished());
  EXPECT_TRUE(h.session->receive(request(kCmdRead, 1, 0, 512)));  // ignored afterwards
}

Bytes script() {
  Bytes data = filled(777, 0x3c);
  return cat({client_flags(kFlagCFixedNewstyle | kFlagCNoZeroes), option(kOptList, {}),
              option(17, filled(3, 0)), option(kOptStructuredReply, {}),
              option(kOptSetMetaContext, meta_data("", {kMetaBaseAllocation})),
              option(kOptGo, info_data("", {kInfoBlockSize})), request(kCmdWrite, 1, 5, 777), data,
              request(kCmdRead, 2, 0, 1024), request(kCmdBlockStatus, 3, 0, 4096),
              request(kCmdFlush, 4, 0, 0), request(kCmdTrim, 5, 100, 50),
              request(kCmdRead, 6, kSize, 1), request(kCmdDisc, 7, 0, 0)});
}

TEST(NbdSession, ByteAtATimeGivesTheSameOutput) {
  Harness whole;
  whole.send_ok(script());
  const Bytes expect = whole.drain();
  EXPECT_TRUE(whole.session->finished());
  Harness bytewise;
  for (std::byte b : script()) bytewise.send_ok(Bytes{b});
  EXPECT_EQ(bytewise.drain(), expect);
  EXPECT_TRUE(bytewise.session->finished());
}

// Feeds `in` as NbdServer does: a WRITE's data straight into direct_input(), other bytes at
// most read_hint() and `piece` at a time.
void feed_direct(Harness& h, const Bytes& in, std::size_t piece) {
  std::span<const std::byte> rest(in);
  while (!rest.empty()) {
    const std::span<std::byte> direct = h.session->direct_input();
    if (!direct.empty()) {
      const std::size_t n = std::min({rest.size(), direct.size(), piece});
      std::copy_n(rest.begin(), n, direct.begin());
      rest = rest.subspan(n);
      ASSERT_TRUE(h.session->received_direct(n));
      continue;
    }
    const std::size_t n = std::min({rest.size(), h.session->read_hint(), piece});
    ASSERT_TRUE(h.session->receive(rest.first(n)));
    rest = rest.subspan(n);
  }
}

TEST(NbdSession, WriteDataStraightIntoTheRequestBufferGivesTheSameResult) {
  Bytes big = filled(96u << 10, 0);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7 + (i >> 9));
  Bytes head = script();
  head.resize(head.size() - kRequestSize);  // script() ends with DISC: it goes last here
  const Bytes all =
      cat({head, request(kCmdWrite, 8, 4096, 96u << 10), big, request(kCmdRead, 9, 4096, 512),
           request(kCmdWrite, 10, 0, 512), filled(512, 0x5a), request(kCmdDisc, 11, 0, 0)});
  Harness whole;
  whole.send_ok(all);
  const Bytes expect = whole.drain();
  ASSERT_TRUE(whole.session->finished());
  for (std::size_t piece : {std::size_t{1}, std::size_t{100}, std::size_t{64u << 10}}) {
    SCOPED_TRACE(piece);
    Harness direct;
    feed_direct(direct, all, piece);
    EXPECT_EQ(direct.drain(), expect);
    EXPECT_TRUE(direct.session->finished());
    EXPECT_EQ(direct.target.data(), whole.target.data());
    EXPECT_EQ(direct.session->stats().bytes_written, whole.session->stats().bytes_written);
  }
}

TEST(NbdSession, DirectInputIsOnlyAWritesDataAndReadHintOnlyFollowsALargeWrite) {
  Harness h;
  EXPECT_TRUE(h.session->direct_input().empty());  // handshake
  h.go(false);
  EXPECT_TRUE(h.session->direct_input().empty());  // between requests
  EXPECT_EQ(h.session->read_hint(), SIZE_MAX);
  h.send_ok(request(kCmdWrite, 1, 0, 8192));
  ASSERT_EQ(h.session->direct_input().size(), 8192u);
  EXPECT_EQ(h.session->read_hint(), SIZE_MAX);  // not a large write
  auto bad = h.session->received_direct(8193);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_FALSE(h.session->received_direct(0));
  h.send_ok(filled(4096, 0x21));  // part through receive(), part direct: both count
  auto direct = h.session->direct_input();
  ASSERT_EQ(direct.size(), 4096u);
  std::fill(direct.begin(), direct.end(), std::byte{0x42});
  ASSERT_TRUE(h.session->received_direct(4096));
  EXPECT_TRUE(h.session->direct_input().empty());
  WireReader r(h.drain());
  EXPECT_EQ(next_reply(r).error, 0u);
  EXPECT_EQ(h.target.data()[4095], std::byte{0x21});
  EXPECT_EQ(h.target.data()[4096], std::byte{0x42});

  // After a large WRITE the next header is asked for alone, even when it arrives in pieces.
  h.send_ok(cat({request(kCmdWrite, 2, 0, 64u << 10), filled(64u << 10, 1)}));
  h.drain();
  EXPECT_EQ(h.session->read_hint(), kRequestSize);
  const Bytes next = request(kCmdRead, 3, 0, 512);
  h.send_ok(Bytes(next.begin(), next.begin() + 10));
  EXPECT_EQ(h.session->read_hint(), kRequestSize - 10);
  h.send_ok(Bytes(next.begin() + 10, next.end()));
  EXPECT_EQ(h.session->read_hint(), SIZE_MAX);  // a READ came
}

TEST(NbdSession, AWritesDataIsReceivedIntoTheTargetsLentBufferUntilItsDone) {
  Harness h(default_info(), MemTarget::Mode::kDeferred);
  h.target.lend = true;
  h.go(true);
  const Bytes data = filled(8192, 0x6b);
  h.send_ok(request(kCmdWrite, 1, 4096, 8192));
  EXPECT_EQ(h.target.lent, 1);
  ASSERT_EQ(h.session->direct_input().size(), 8192u);
  h.send_ok(Bytes(data.begin(), data.begin() + 100));  // through receive() and then direct
  auto direct = h.session->direct_input();
  std::copy(data.begin() + 100, data.end(), direct.begin());
  ASSERT_TRUE(h.session->received_direct(direct.size()));
  EXPECT_EQ(h.target.writes_from_lent, 1);  // write() was handed the lent bytes
  EXPECT_EQ(h.target.given_back, 0);        // still the target's to read
  // A READ meanwhile is not lent anything; a second WRITE finds none to borrow (one at a time)
  // and is received into the session's own memory.
  h.send_ok(cat({request(kCmdRead, 2, 0, 512), request(kCmdWrite, 3, 0, 512), filled(512, 1)}));
  EXPECT_EQ(h.target.lent, 1);
  EXPECT_EQ(h.target.complete_all(), 3u);
  EXPECT_EQ(h.target.given_back, 1);
  EXPECT_EQ(h.target.writes_from_lent, 1);
  WireReader r(h.drain());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(next_reply(r, 512).error, 0u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), h.target.data().begin() + 4096));
}

TEST(NbdSession, ALentBufferGoesBackWhenTheRequestIsDropped) {
  {
    // The connection goes while the data is arriving.
    Harness h(default_info(), MemTarget::Mode::kDeferred);
    h.target.lend = true;
    h.go(false);
    h.send_ok(cat({request(kCmdWrite, 1, 0, 4096), filled(1000, 2)}));
    EXPECT_EQ(h.target.lent_out, 1);
    h.session.reset();
    EXPECT_EQ(h.target.lent_out, 0);
    EXPECT_EQ(h.target.writes, 0);
  }
  {
    // The target is torn down with the write pending: its callback is destroyed, not called.
    Harness h(default_info(), MemTarget::Mode::kDeferred);
    h.target.lend = true;
    h.go(false);
    h.send_ok(cat({request(kCmdWrite, 1, 0, 4096), filled(4096, 2)}));
    h.session.reset();
    EXPECT_EQ(h.target.lent_out, 1);  // the pending write may still read it
    h.target.drop_pending();
    EXPECT_EQ(h.target.lent_out, 0);
  }
  {
    // A buffer of the wrong size is given back at once and not used.
    Harness h;
    h.target.lend = true;
    h.target.lend_size = 512;
    h.go(false);
    const Reply x = h.roundtrip(cat({request(kCmdWrite, 1, 0, 4096), filled(4096, 3)}));
    EXPECT_EQ(x.error, 0u);
    EXPECT_EQ(h.target.lent, 1);
    EXPECT_EQ(h.target.given_back, 1);
    EXPECT_EQ(h.target.writes_from_lent, 0);
    EXPECT_EQ(h.target.data()[4095], std::byte{3});
  }
}

TEST(NbdSession, DeferredCompletionsGoOutInCompletionOrder) {
  Harness h(default_info(), MemTarget::Mode::kDeferred);
  h.go(true);
  int notified = 0;
  h.session->set_on_completion([&] { ++notified; });
  h.send_ok(cat(
      {request(kCmdRead, 1, 0, 16), request(kCmdRead, 2, 16, 16), request(kCmdFlush, 3, 0, 0)}));
  EXPECT_EQ(notified, 0);
  EXPECT_FALSE(h.session->has_output());
  EXPECT_EQ(h.session->in_flight(), 3u);
  EXPECT_EQ(h.target.complete_all(), 3u);  // newest first
  EXPECT_EQ(notified, 3);
  WireReader r(h.drain());
  for (std::uint64_t cookie : {3u, 2u, 1u}) EXPECT_EQ(next_reply(r).cookie, cookie);
  EXPECT_EQ(r.left(), 0u);
}

TEST(NbdSession, StopsTakingRequestsWhileTooMuchIsInFlight) {
  SessionLimits limits;
  limits.max_in_flight_bytes = 16u << 10;
  Harness h(default_info(), MemTarget::Mode::kDeferred, limits);
  h.go(true);
  Bytes reqs;
  for (std::uint64_t i = 0; i < 12; ++i) reqs = cat({reqs, request(kCmdRead, i, i * 4096, 4096)});
  h.send_ok(reqs);
  EXPECT_EQ(h.target.pending(), 4u);  // 4 x (4096 + overhead) > 16 KiB
  EXPECT_FALSE(h.session->wants_input());
  EXPECT_FALSE(h.session->can_resume());
  std::size_t replies = 0;
  while (replies < 12) {
    ASSERT_GT(h.target.complete_all(), 0u);
    ASSERT_LE(h.session->in_flight_bytes(), limits.max_in_flight_bytes + 4096 + 1024);
    WireReader r(h.drain());  // sending the replies frees the budget
    while (r.left() > 0) {
      EXPECT_EQ(next_reply(r).error, 0u);
      ++replies;
    }
    if (h.session->can_resume()) {
      ASSERT_TRUE(h.session->resume());
    }
  }
  EXPECT_TRUE(h.session->wants_input());
  EXPECT_EQ(h.session->in_flight(), 0u);
}

// Fuzz finding (corpus/nbd_session_fuzz/crash-write-data-over-budget): a WRITE whose buffer
// took the session over its budget stopped input before its own data had arrived, so nothing
// could ever complete. Input now pauses only between messages.
TEST(NbdSession, RegressionFuzzWriteDataOverBudget) {
  SessionLimits limits;
  limits.max_in_flight_bytes = 8u << 10;
  Harness h(default_info(), MemTarget::Mode::kDeferred, limits);
  h.go(false);
  h.send_ok(request(kCmdWrite, 1, 0, 12u << 10));
  EXPECT_GT(h.session->in_flight_bytes(), limits.max_in_flight_bytes);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(h.session->wants_input());  // the data of the write must still come in
    h.send_ok(filled(4u << 10, 0x11));
  }
  EXPECT_FALSE(h.session->wants_input());  // now between messages, over budget
  EXPECT_EQ(h.target.complete_all(), 1u);
  WireReader r(h.drain());
  EXPECT_EQ(next_reply(r).error, 0u);
  EXPECT_TRUE(h.session->wants_input());
}

TEST(NbdSession, CompletionsAfterTheSessionIsGoneAreDropped) {
  Harness h(default_info(), MemTarget::Mode::kDeferred);
  h.go(true);
  h.send_ok(cat({request(kCmdRead, 1, 0, 4096), request(kCmdWrite, 2, 0, 4096), filled(4096, 9),
                 request(kCmdWriteZeroes, 3, 0, 512, kCmdFlagFua), request(kCmdWrite, 4, 0, 100)}));
  h.session.reset();  // the last write is half received
  // The target still writes into the read buffer and reads the write buffer: they must live.
  EXPECT_EQ(h.target.complete_all(), 3u);  // newest first: zeroes, then the write
  EXPECT_EQ(h.target.data()[0], std::byte{9});
  EXPECT_EQ(h.target.flushes, 0);  // no follow-up flush for a gone session
}

TEST(NbdSession, TargetMayDropPendingCallbacks) {
  Harness h(default_info(), MemTarget::Mode::kDeferred);
  h.go(false);
  h.send_ok(cat({request(kCmdRead, 1, 0, 4096), request(kCmdWrite, 2, 0, 8), filled(8, 1)}));
  h.target.drop_pending();  // frees the buffers (LeakSanitizer checks)
  h.session.reset();
}

TEST(NbdSession, DiscFinishesAfterRequestsInFlight) {
  Harness h(default_info(), MemTarget::Mode::kDeferred);
  h.go(false);
  h.send_ok(
      cat({request(kCmdRead, 1, 0, 64), request(kCmdDisc, 2, 0, 0), request(kCmdRead, 3, 0, 64)}));
  EXPECT_EQ(h.session->phase(), NbdSession::Phase::kClosing);
  EXPECT_FALSE(h.session->finished());
  EXPECT_FALSE(h.session->wants_input());
  EXPECT_EQ(h.target.complete_all(), 1u);  // the read after DISC was ignored
  EXPECT_TRUE(h.session->finished());
  WireReader r(h.drain());
  EXPECT_EQ(next_reply(r, 64).cookie, 1u);
  EXPECT_EQ(r.left(), 0u);
}

TEST(NbdSession, AbortIsAcknowledged) {
  Harness h;
  h.drain();
  h.send_ok(cat(
      {client_flags(kFlagCFixedNewstyle), option(kOptAbort, filled(3, 0)), option(kOptList, {})}));
  WireReader r(h.drain());
  const OptReply a = next_opt_reply(r);
  EXPECT_EQ(a.option, kOptAbort);
  EXPECT_EQ(a.type, kRepAck);
  EXPECT_EQ(r.left(), 0u);  // the LIST after ABORT is ignored
  EXPECT_TRUE(h.session->finished());
}

TEST(NbdSession, SecondCallOfTheSameDoneIsIgnored) {
  struct Twice final : BlockTarget {
    ExportInfo info() const override { return default_info(); }
    void read(std::uint64_t, std::span<std::byte>, Done done) override {
      done(0);
      done(EIO);
    }
    void write(std::uint64_t, std::span<const std::byte>, bool, Done done) override { done(0); }
    void flush(Done done) override {
      auto copy = done;
      done(0);
      copy(0);
    }
    void trim(std::uint64_t, std::uint32_t, Done done) override { done(0); }
    void write_zeroes(std::uint64_t, std::uint32_t, bool, Done done) override { done(0); }
  } t;
  auto s = NbdSession::create(t);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->receive(cat({client_flags(kFlagCFixedNewstyle), option(kOptGo, info_data(""))})));
  std::array<std::span<const std::byte>, 1> c;
  while (s->has_output()) s->consume_output(c[s->peek_output(c) - 1].size());
  ASSERT_TRUE(s->receive(cat({request(kCmdRead, 1, 0, 8), request(kCmdFlush, 2, 0, 0)})));
  EXPECT_EQ(s->output_size(), 2 * kSimpleReplySize + 8);
  EXPECT_EQ(s->in_flight(), 0u);
  EXPECT_EQ(s->stats().errors, 0u);
}

TEST(NbdSession, RejectsInvalidExports) {
  ExportInfo ok = default_info();
  EXPECT_TRUE(validate_export(ok));
  auto bad = [&](auto&& change) {
    ExportInfo i = ok;
    change(i);
    return !validate_export(i);
  };
  EXPECT_TRUE(bad([](ExportInfo& i) { i.min_block = 3; }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.min_block = 128u << 10; }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.preferred_block = 256; }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.max_block = 1000; }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.max_block = kMaxBlockLimit + 4096; }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.description = std::string(5000, 'x'); }));
  EXPECT_TRUE(bad([](ExportInfo& i) { i.description = std::string("a\0b", 3); }));
}

TEST(NbdSession, MapsErrnoToNbdErrors) {
  EXPECT_EQ(nbd_error_from_errno(EPERM), kEPerm);
  EXPECT_EQ(nbd_error_from_errno(EROFS), kEPerm);
  EXPECT_EQ(nbd_error_from_errno(-EACCES), kEPerm);
  EXPECT_EQ(nbd_error_from_errno(EIO), kEIo);
  EXPECT_EQ(nbd_error_from_errno(ENOENT), kEIo);
  EXPECT_EQ(nbd_error_from_errno(ENOMEM), kENoMem);
  EXPECT_EQ(nbd_error_from_errno(EINVAL), kEInval);
  EXPECT_EQ(nbd_error_from_errno(EOPNOTSUPP), kEInval);
  EXPECT_EQ(nbd_error_from_errno(ENOSPC), kENoSpc);
  EXPECT_EQ(nbd_error_from_errno(EDQUOT), kENoSpc);
  EXPECT_EQ(nbd_error_from_errno(EFBIG), kENoSpc);
  EXPECT_EQ(nbd_error_from_errno(ESHUTDOWN), kEShutdown);
}

// Writes the seed corpus of tests/fuzz/nbd_session_fuzz.cc when VEPF_NBD_SEED_DIR is set:
//   VEPF_NBD_SEED_DIR=tests/fuzz/corpus/nbd_session_fuzz build/.../nbd_test
//   --gtest_filter='*Seeds*'
// Input format: one config byte (see the fuzz target), then the client's bytes.
TEST(NbdSessionSeeds, Write) {
  const char* dir = std::getenv("VEPF_NBD_SEED_DIR");
  if (dir == nullptr) GTEST_SKIP() << "set VEPF_NBD_SEED_DIR to write the fuzz seeds";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, std::uint8_t config, const Bytes& b) {
    std::ofstream f(std::filesystem::path(dir) / ("seed-" + name), std::ios::binary);
    f.put(static_cast<char>(config));
    for (std::byte x : b) f.put(static_cast<char>(x));
  };
  const Bytes hello = client_flags(kFlagCFixedNewstyle | kFlagCNoZeroes);
  const Bytes go = option(kOptGo, info_data("", {kInfoBlockSize}));
  const Bytes sr = option(kOptStructuredReply, {});
  const Bytes meta = option(kOptSetMetaContext, meta_data("", {kMetaBaseAllocation}));
  write("go-read", 0, cat({hello, go, request(kCmdRead, 1, 0, 512)}));
  write("structured-io", 1,
        cat({hello, sr, meta, go, request(kCmdWrite, 1, 3, 100), filled(100, 0x5a),
             request(kCmdRead, 2, 0, 200), request(kCmdBlockStatus, 3, 0, 4096),
             request(kCmdWriteZeroes, 4, 0, 512, kCmdFlagFua | kCmdFlagNoHole),
             request(kCmdTrim, 5, 512, 512, kCmdFlagFua), request(kCmdFlush, 6, 0, 0),
             request(kCmdDisc, 7, 0, 0)}));
  write("export-name", 2,
        cat({client_flags(kFlagCFixedNewstyle), option(kOptExportName, {}),
             request(kCmdWrite, 1, 0, 8), filled(8, 1), request(kCmdRead, 2, 4, 8)}));
  write("options", 0,
        cat({hello, option(kOptList, {}), option(99, filled(4, 0)),
             option(kOptInfo, info_data("x", {0, 1, 2, 3})), sr,
             option(kOptListMetaContext, meta_data("", {"base:"})), option(kOptAbort, {})}));
  write("errors", 3,
        cat({hello, sr, go, request(kCmdRead, 1, kSize - 1, 2), request(kCmdWrite, 2, kSize, 4),
             filled(4, 0), request(kCmdCache, 3, 0, 1), request(kCmdRead, 4, 0, 4, 0xffff),
             request(kCmdRead, 5, 0, 1, 0, 0xdeadbeef)}));
  write("deferred-many", 1,
        cat({hello, sr, go, request(kCmdRead, 1, 0, 4096), request(kCmdRead, 2, 4096, 4096),
             request(kCmdWrite, 3, 100, 10), filled(10, 7), request(kCmdFlush, 4, 0, 0)}));
}

}  // namespace
}  // namespace vepf::host::nbd
