// The checked netlink path: the attribute policy parser, message framing, error decoding,
// and NetlinkSocket's reply checks against a unix SOCK_SEQPACKET peer that plays the kernel
// (each send is one datagram, as on a netlink socket), so that late, foreign, cut and
// missing replies can be produced at will.
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstring>

#include "common/netlink_attr.h"
#include "common/netlink_socket.h"

namespace nodeagent {
namespace {

using Buf = std::vector<uint8_t>;

void put(Buf& b, const void* p, size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
void attr(Buf& b, uint16_t type, const void* p, size_t n, bool pad = true) {
  uint16_t len = static_cast<uint16_t>(NLA_HDRLEN + n);
  put(b, &len, 2);
  put(b, &type, 2);
  put(b, p, n);
  if (pad)
    while (b.size() % 4) b.push_back(0);
}
Buf message(uint16_t type, uint32_t seq, uint16_t flags, const Buf& payload = {}) {
  Buf b;
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + payload.size());
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  h.nlmsg_seq = seq;
  put(b, &h, sizeof h);
  b.insert(b.end(), payload.begin(), payload.end());
  while (b.size() % 4) b.push_back(0);
  return b;
}
Buf ack(uint32_t seq, int error, const char* extMsg = nullptr) {
  Buf p;
  nlmsgerr e{};
  e.error = -error;
  e.msg.nlmsg_seq = seq;
  put(p, &e, sizeof e);
  uint16_t flags = NLM_F_CAPPED;
  if (extMsg) {
    attr(p, NLMSGERR_ATTR_MSG, extMsg, strlen(extMsg) + 1);
    flags |= NLM_F_ACK_TLVS;
  }
  return message(NLMSG_ERROR, seq, flags, p);
}

const AttrPolicy kTest("test space", {
    {.type = 1, .kind = AttrKind::kU8, .name = "A_U8"},
    {.type = 2, .kind = AttrKind::kU16, .name = "A_U16"},
    {.type = 3, .kind = AttrKind::kU32, .name = "A_U32"},
    {.type = 4, .kind = AttrKind::kU64, .name = "A_U64"},
    {.type = 5, .kind = AttrKind::kString, .maxLen = 8, .name = "A_STR"},
    {.type = 6, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 16, .name = "A_BIN"},
    {.type = 7, .kind = AttrKind::kNested, .name = "A_NEST"},
});

std::string errorOf(const Buf& b) {
  auto r = parseAttrs(b, kTest);
  return r ? "accepted" : r.error().message();
}

TEST(NetlinkAttrs, ReadsValuesAndSkipsUnknownTypes) {
  Buf b;
  uint8_t u8 = 7;
  uint16_t u16 = 0x1234;
  uint32_t u32 = 0xdeadbeef;
  uint64_t u64 = 1ull << 40;
  attr(b, 1, &u8, 1);
  attr(b, 2, &u16, 2);
  attr(b, 99, "ignored", 7);  // a newer kernel's attribute
  attr(b, 3, &u32, 4);
  attr(b, 4, &u64, 8);
  attr(b, 5, "rr", 3);
  attr(b, 6, "\x0a\x00\x00\x01", 4, false);  // the last attribute may omit padding
  auto r = parseAttrs(b, kTest);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->u8(1), 7);
  EXPECT_EQ(r->u16(2), 0x1234);
  EXPECT_EQ(r->be16(2), 0x3412);
  EXPECT_EQ(r->u32(3), 0xdeadbeefu);
  EXPECT_EQ(r->u64(4), 1ull << 40);
  EXPECT_EQ(r->str(5), "rr");
  EXPECT_EQ(r->payload(6).size(), 4u);
  EXPECT_FALSE(r->has(7));
  EXPECT_EQ(r->u32(7, 42), 42u);
  EXPECT_FALSE(r->has(99));
}

Buf one(uint16_t type, const void* p, size_t n, bool pad = true) {
  Buf b;
  attr(b, type, p, n, pad);
  return b;
}

TEST(NetlinkAttrs, RejectsEveryMalformedShape) {
  uint32_t u32 = 1;
  uint16_t u16 = 1;
  Buf shortHeader = {8, 0};
  Buf lenBelowHeader = one(3, &u32, 4);
  lenBelowHeader[0] = 3;
  Buf lenPastEnd = one(3, &u32, 4);
  lenPastEnd[0] = 12;
  Buf unknownPastEnd = one(99, &u32, 4);  // unknown types are framing-checked too
  unknownPastEnd[0] = 200;
  Buf padPastEnd = one(1, &u32, 1, false);  // 5 bytes, then one: not a whole padded attribute
  padPastEnd.push_back(0);
  const std::pair<Buf, std::string> cases[] = {
      {one(3, &u16, 2), "test space: attribute A_U32 (type 3) has 2 bytes, expected 4"},
      {one(2, &u32, 4), "test space: attribute A_U16 (type 2) has 4 bytes, expected 2"},
      {one(1, &u16, 2), "test space: attribute A_U8 (type 1) has 2 bytes, expected 1"},
      {one(4, &u32, 4), "test space: attribute A_U64 (type 4) has 4 bytes, expected 8"},
      {one(5, "abc", 3), "test space: attribute A_STR (type 5) is not a NUL-terminated string"},
      {one(5, "", 0), "test space: attribute A_STR (type 5) is not a NUL-terminated string"},
      {one(5, "123456789", 10), "test space: attribute A_STR (type 5) is 10 bytes, at most 8 allowed"},
      {one(6, "abc", 3), "test space: attribute A_BIN (type 6) has 3 bytes, expected 4..16"},
      {shortHeader, "test space: 2 trailing bytes, shorter than an attribute header"},
      {lenBelowHeader, "test space: attribute type 3 claims 3 bytes, 8 remain"},
      {lenPastEnd, "test space: attribute type 3 claims 12 bytes, 8 remain"},
      {unknownPastEnd, "test space: attribute type 99 claims 200 bytes, 8 remain"},
      {padPastEnd, "test space: attribute padding runs past the end"},
      {Buf{}, "accepted"},
  };
  for (const auto& [bytes, want] : cases) EXPECT_EQ(errorOf(bytes), want);
}

TEST(NetlinkFraming, MessageLengthIsChecked) {
  Buf m = message(20, 1, 0, Buf(4, 0));
  EXPECT_TRUE(netlinkMessage(m, 4, "x"));
  EXPECT_FALSE(netlinkMessage(m, 8, "x"));  // no room for an 8-byte family header
  EXPECT_FALSE(netlinkMessage(Buf(m.begin(), m.end() - 1), 4, "x"));
  EXPECT_FALSE(netlinkMessage(Buf(m.begin(), m.begin() + 15), 0, "x"));
  Buf bad = m;
  bad[0] = 8;  // below the header size
  EXPECT_FALSE(netlinkMessage(bad, 0, "x"));

  Buf two = message(20, 1, 0, Buf(4, 1));
  Buf second = message(21, 2, 0, {});
  two.insert(two.end(), second.begin(), second.end());
  int n = 0;
  EXPECT_TRUE(forEachNetlinkMessage(two, [&](Bytes) -> Result<void> {
    ++n;
    return {};
  }));
  EXPECT_EQ(n, 2);
  two.push_back(0);  // a stray byte after the last message
  EXPECT_FALSE(forEachNetlinkMessage(two, [](Bytes) -> Result<void> { return {}; }));
}

TEST(NetlinkFraming, ErrorMessagesDecode) {
  EXPECT_EQ(decodeNetlinkError(ack(1, 0)).error, 0);
  auto a = decodeNetlinkError(ack(1, EEXIST, "Service already exists"));
  EXPECT_EQ(a.error, EEXIST);
  EXPECT_EQ(a.message, "Service already exists");
  Buf cut = ack(1, EPERM);
  cut.resize(NLMSG_HDRLEN + 8);
  EXPECT_EQ(decodeNetlinkError(cut).error, EBADMSG);
  Buf badTlv = ack(1, EINVAL, "why");
  badTlv[NLMSG_HDRLEN + sizeof(nlmsgerr)] = 200;  // the TLV's length runs past the end
  auto b = decodeNetlinkError(badTlv);
  EXPECT_EQ(b.error, EINVAL);
  EXPECT_NE(b.message.find("claims 200 bytes"), std::string::npos) << b.message;
}

// A NetlinkSocket whose "kernel" is the other end of a seqpacket pair: replies queued on
// `kernel` before the call are what the call receives.
class FakeKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    kernel_ = Fd(sv[1]);
    auto s = NetlinkSocket::adopt(Fd(sv[0]), {.maxBatch = 8, .receiveTimeout = std::chrono::milliseconds(200)});
    ASSERT_TRUE(s) << s.error().message();
    sock_.emplace(std::move(*s));
  }
  void reply(const Buf& datagram) { ASSERT_EQ(::send(kernel_.get(), datagram.data(), datagram.size(), 0), ssize_t(datagram.size())); }
  Buf request() {
    Buf b(1 << 16);
    ssize_t n = ::recv(kernel_.get(), b.data(), b.size(), MSG_DONTWAIT);
    b.resize(n < 0 ? 0 : size_t(n));
    return b;
  }
  Result<void> query(int* calls) {
    return sock_->query(message(30, 0, 0), [calls](Bytes) -> Result<void> {
      ++*calls;
      return {};
    });
  }
  Fd kernel_;
  std::optional<NetlinkSocket> sock_;
};

TEST_F(FakeKernel, QueryMatchesItsSequenceNumberAndDropsStaleReplies) {
  reply(message(31, 0xfffffff0, 0));  // a reply to an older request that timed out
  Buf d = message(31, 1, 0);
  Buf a = ack(1, 0);
  d.insert(d.end(), a.begin(), a.end());
  reply(d);
  int calls = 0;
  auto r = query(&calls);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(calls, 1);
  Buf sent = request();
  ASSERT_GE(sent.size(), NLMSG_HDRLEN);
  nlmsghdr h;
  std::memcpy(&h, sent.data(), sizeof h);
  EXPECT_EQ(h.nlmsg_seq, 1u);
  EXPECT_EQ(h.nlmsg_flags & (NLM_F_REQUEST | NLM_F_ACK), NLM_F_REQUEST | NLM_F_ACK);
}

TEST_F(FakeKernel, ReplyToARequestNeverMadeIsAnError) {
  reply(message(31, 1000, 0));
  int calls = 0;
  auto r = query(&calls);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errnoValue(), EPROTO);
  EXPECT_EQ(calls, 0);
}

TEST_F(FakeKernel, SilenceTimesOut) {
  int calls = 0;
  auto r = query(&calls);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errnoValue(), ETIMEDOUT) << r.error().message();
}

TEST_F(FakeKernel, DatagramLargerThanTheBufferIsTruncationNotAShortReply) {
  reply(message(31, 1, 0, Buf(80 << 10, 0)));
  int calls = 0;
  auto r = query(&calls);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errnoValue(), EMSGSIZE) << r.error().message();
  EXPECT_EQ(calls, 0);
}

TEST_F(FakeKernel, MessageLengthPastTheDatagramIsAnError) {
  Buf d = message(31, 1, 0, Buf(8, 0));
  d[0] = 200;
  reply(d);
  int calls = 0;
  auto r = query(&calls);
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 0);
  EXPECT_NE(r.error().message().find("outside"), std::string::npos) << r.error().message();
}

TEST_F(FakeKernel, InterruptedDumpAndDumpErrorAreReported) {
  Buf d = message(31, 1, NLM_F_MULTI | NLM_F_DUMP_INTR);
  int32_t zero = 0;
  Buf done = message(NLMSG_DONE, 1, NLM_F_MULTI, Buf(reinterpret_cast<uint8_t*>(&zero), reinterpret_cast<uint8_t*>(&zero) + 4));
  d.insert(d.end(), done.begin(), done.end());
  reply(d);
  auto r = sock_->dump(message(30, 0, 0), [](Bytes) -> Result<void> { return {}; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errnoValue(), EAGAIN);

  int32_t eperm = -EPERM;
  reply(message(NLMSG_DONE, 2, NLM_F_MULTI, Buf(reinterpret_cast<uint8_t*>(&eperm), reinterpret_cast<uint8_t*>(&eperm) + 4)));
  r = sock_->dump(message(30, 0, 0), [](Bytes) -> Result<void> { return {}; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errnoValue(), EPERM);
}

TEST_F(FakeKernel, TransactReturnsAcksInRequestOrder) {
  Buf d = ack(3, 0);
  Buf b = ack(2, ENOENT, "No such destination");
  Buf a = ack(1, 0);
  d.insert(d.end(), b.begin(), b.end());
  d.insert(d.end(), a.begin(), a.end());
  reply(d);
  std::vector<std::vector<uint8_t>> msgs{message(40, 0, 0), message(41, 0, 0), message(42, 0, 0)};
  auto acks = sock_->transact(msgs);
  ASSERT_TRUE(acks) << acks.error().message();
  ASSERT_EQ(acks->size(), 3u);
  EXPECT_EQ((*acks)[0].error, 0);
  EXPECT_EQ((*acks)[1].error, ENOENT);
  EXPECT_EQ((*acks)[1].message, "No such destination");
  EXPECT_EQ((*acks)[2].error, 0);
}

TEST_F(FakeKernel, TransactWithAMissingAckTimesOut) {
  reply(ack(1, 0));
  std::vector<std::vector<uint8_t>> msgs{message(40, 0, 0), message(41, 0, 0)};
  auto acks = sock_->transact(msgs);
  ASSERT_FALSE(acks);
  EXPECT_EQ(acks.error().errnoValue(), ETIMEDOUT) << acks.error().message();
}

TEST_F(FakeKernel, DatagramRepliesAreReadWithoutWaiting) {
  // Replies to a prebuilt batch (sequence numbers 1..4): an error for message 3.
  Buf d = ack(2, 0);
  Buf e = ack(3, EINVAL, "bad set");
  d.insert(d.end(), e.begin(), e.end());
  reply(d);
  uint32_t first = sock_->reserveSequence(4);
  EXPECT_EQ(first, 1u);
  Buf batch = message(50, 1, 0);
  iovec iov{batch.data(), batch.size()};
  auto acks = sock_->sendDatagram(std::span<const iovec>(&iov, 1), first, 4);
  ASSERT_TRUE(acks) << acks.error().message();
  EXPECT_EQ((*acks)[0].error, -1);  // no answer for the batch begin
  EXPECT_EQ((*acks)[1].error, 0);
  EXPECT_EQ((*acks)[2].error, EINVAL);
  EXPECT_EQ((*acks)[2].message, "bad set");
  EXPECT_EQ((*acks)[3].error, -1);
}

}  // namespace
}  // namespace nodeagent
