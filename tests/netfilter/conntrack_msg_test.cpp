// Byte-level tests of the ctnetlink builders and round trips through the parsers.
#include "netfilter/conntrack_msg.h"

#include <arpa/inet.h>
#include <algorithm>
#include <cstring>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

namespace nodeagent::netfilter {
namespace {

using Bytes = std::vector<uint8_t>;

// The bytes of the message `nlh` heads (its nlmsg_len).
nodeagent::Bytes span(const nlmsghdr* nlh) { return {reinterpret_cast<const uint8_t*>(nlh), nlh->nlmsg_len}; }

ConntrackEntry udpEntry() {
  ConntrackEntry e;
  e.orig.src = *IpAddress::parse("10.0.0.1");
  e.orig.dst = *IpAddress::parse("10.96.0.10");
  e.orig.protocol = IPPROTO_UDP;
  e.orig.srcPort = 1234;
  e.orig.dstPort = 53;
  e.reply.src = *IpAddress::parse("10.0.1.5");
  e.reply.dst = *IpAddress::parse("10.0.0.1");
  e.reply.protocol = IPPROTO_UDP;
  e.reply.srcPort = 5353;
  e.reply.dstPort = 1234;
  return e;
}

TEST(ConntrackMsg, GetGlobalStats) {
  Bytes want = {0x14, 0, 0, 0, 0x05, 0x01, 0x05, 0x00, 7, 0, 0, 0, 0, 0, 0, 0,  // nlmsghdr
                0, 0, 0, 0};                                                     // nfgenmsg
  EXPECT_EQ(msg::buildGetGlobalStats(7), want);
}

TEST(ConntrackMsg, DumpCpuStats) {
  Bytes want = {0x14, 0, 0, 0, 0x04, 0x01, 0x01, 0x03, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(msg::buildDumpCpuStats(9), want);
}

TEST(ConntrackMsg, DumpEntriesCarriesFamily) {
  Bytes want = {0x14, 0, 0, 0, 0x01, 0x01, 0x01, 0x03, 3, 0, 0, 0, 0, 0, 0, 0, AF_INET6, 0, 0, 0};
  EXPECT_EQ(msg::buildDumpEntries(3, AF_INET6), want);
}

TEST(ConntrackMsg, DeleteIpv4UdpEntry) {
  Bytes want = {
      0x48, 0, 0, 0, 0x02, 0x01, 0x05, 0x00, 1, 0, 0, 0, 0, 0, 0, 0,  // nlmsghdr: CT_DELETE, REQUEST|ACK
      AF_INET, 0, 0, 0,                                                // nfgenmsg
      0x34, 0, 0x01, 0x80,                                             // CTA_TUPLE_ORIG (nested)
      0x14, 0, 0x01, 0x80,                                             //  CTA_TUPLE_IP (nested)
      8, 0, 1, 0, 10, 0, 0, 1,                                         //   CTA_IP_V4_SRC 10.0.0.1
      8, 0, 2, 0, 10, 96, 0, 10,                                       //   CTA_IP_V4_DST 10.96.0.10
      0x1c, 0, 0x02, 0x80,                                             //  CTA_TUPLE_PROTO (nested)
      5, 0, 1, 0, 17, 0, 0, 0,                                         //   CTA_PROTO_NUM udp
      6, 0, 2, 0, 0x04, 0xd2, 0, 0,                                    //   CTA_PROTO_SRC_PORT 1234
      6, 0, 3, 0, 0x00, 0x35, 0, 0,                                    //   CTA_PROTO_DST_PORT 53
  };
  EXPECT_EQ(msg::buildDeleteEntry(1, udpEntry()), want);
}

TEST(ConntrackMsg, DeleteIpv6WithZone) {
  ConntrackEntry e;
  e.orig.src = *IpAddress::parse("fd00::1");
  e.orig.dst = *IpAddress::parse("fd00::53");
  e.orig.protocol = IPPROTO_TCP;
  e.orig.srcPort = 40000;
  e.orig.dstPort = 443;
  e.zone = 5;
  Bytes b = msg::buildDeleteEntry(2, e);
  // 20 header + tuple (4 + ip 4+20+20 + proto 28) + zone 8
  ASSERT_EQ(b.size(), 20u + 76u + 8u);
  EXPECT_EQ(b[16], AF_INET6);
  // CTA_IP_V6_SRC header right after the two nest headers.
  EXPECT_EQ(b[28], 20);
  EXPECT_EQ(b[30], CTA_IP_V6_SRC);
  EXPECT_EQ(b[32], 0xfd);
  // The zone attribute is last, big-endian.
  Bytes zone(b.end() - 8, b.end());
  EXPECT_EQ(zone, (Bytes{6, 0, CTA_ZONE, 0, 0, 5, 0, 0}));
}

// Builds a reply as the kernel would, using the same attribute layout.
Bytes kernelEntryReply(uint8_t msgType) {
  auto e = udpEntry();
  Bytes b = msg::buildDeleteEntry(11, e);  // orig tuple in the same encoding
  b.resize(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = reinterpret_cast<nlmsghdr*>(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msgType;
  nlattr* t = mnl_attr_nest_start(nlh, CTA_TUPLE_REPLY);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, e.reply.src.bytes.data());
  mnl_attr_put(nlh, CTA_IP_V4_DST, 4, e.reply.dst.bytes.data());
  mnl_attr_nest_end(nlh, ip);
  nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_UDP);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(5353));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(1234));
  mnl_attr_nest_end(nlh, p);
  mnl_attr_nest_end(nlh, t);
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(0x20));
  mnl_attr_put_u32(nlh, CTA_ID, htonl(77));
  b.resize(nlh->nlmsg_len);
  return b;
}

TEST(ConntrackMsg, ParseEntry) {
  for (uint8_t type : {uint8_t(IPCTNL_MSG_CT_GET), uint8_t(IPCTNL_MSG_CT_NEW)}) {
    Bytes b = kernelEntryReply(type);
    auto e = msg::parseEntry(b);
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(e->orig.dst.toString(), "10.96.0.10");
    EXPECT_EQ(e->orig.dstPort, 53);
    EXPECT_EQ(e->reply.src.toString(), "10.0.1.5");
    EXPECT_EQ(e->reply.srcPort, 5353);
    EXPECT_EQ(e->status, 0x20u);
    EXPECT_EQ(e->id, 77u);
  }
}

TEST(ConntrackMsg, ParseRejectsWrongType) {
  Bytes b = msg::buildGetGlobalStats(1);
  EXPECT_FALSE(msg::parseEntry(b));
  EXPECT_FALSE(msg::parseCpuStats(b));
}

TEST(ConntrackMsg, ParseStats) {
  Bytes b(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = mnl_nlmsg_put_header(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->res_id = htons(3);
  mnl_attr_put_u32(nlh, CTA_STATS_FOUND, htonl(10));
  mnl_attr_put_u32(nlh, CTA_STATS_INVALID, htonl(2));
  mnl_attr_put_u32(nlh, CTA_STATS_INSERT_FAILED, htonl(4));
  mnl_attr_put_u32(nlh, CTA_STATS_DROP, htonl(5));
  mnl_attr_put_u32(nlh, CTA_STATS_EARLY_DROP, htonl(6));
  auto s = msg::parseCpuStats(span(nlh));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->cpu, 3u);
  EXPECT_EQ(s->found, 10u);
  EXPECT_EQ(s->invalid, 2u);
  EXPECT_EQ(s->insertFailed, 4u);
  EXPECT_EQ(s->drop, 5u);
  EXPECT_EQ(s->earlyDrop, 6u);

  nlh = mnl_nlmsg_put_header(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  mnl_attr_put_u32(nlh, CTA_STATS_GLOBAL_ENTRIES, htonl(150));
  mnl_attr_put_u32(nlh, CTA_STATS_GLOBAL_MAX_ENTRIES, htonl(1000));
  auto f = msg::parseGlobalStats(span(nlh));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->count, 150u);
  EXPECT_EQ(f->max, 1000u);
  EXPECT_DOUBLE_EQ(f->percent(), 15.0);
}

// Malformed replies: each is rejected with an error naming what is wrong, never read past.
// `mutate` edits a valid reply (offsets from the kernelEntryReply layout found by search).
size_t find(const Bytes& b, std::initializer_list<uint8_t> needle, size_t from = 0) {
  auto it = std::search(b.begin() + from, b.end(), needle.begin(), needle.end());
  EXPECT_NE(it, b.end());
  return static_cast<size_t>(it - b.begin());
}

// A valid entry reply with the length byte of the first attribute matching `attrHeader`
// (length, 0, type, 0) set to `len`.
Bytes withLength(std::initializer_list<uint8_t> attrHeader, uint8_t len) {
  Bytes b = kernelEntryReply(IPCTNL_MSG_CT_GET);
  b[find(b, attrHeader)] = len;
  return b;
}

TEST(ConntrackMsg, ParseEntryRejectsMalformed) {
  Bytes good = kernelEntryReply(IPCTNL_MSG_CT_GET);
  ASSERT_TRUE(msg::parseEntry(good));
  Bytes noFamilyHeader(good.begin(), good.begin() + 18);
  uint32_t len18 = 18;
  std::memcpy(noFamilyHeader.data(), &len18, 4);
  // An entry without its reply tuple (a delete request has only the original one).
  Bytes noReply = msg::buildDeleteEntry(1, udpEntry());
  reinterpret_cast<nlmsghdr*>(noReply.data())->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  const std::pair<Bytes, std::string> cases[] = {
      {Bytes(good.begin(), good.begin() + 10), "shorter than a netlink header"},
      {noFamilyHeader, "family header"},
      {Bytes(good.begin(), good.end() - 8), "outside"},                  // a cut datagram
      {withLength({0x08, 0x00, CTA_STATUS, 0x00}, 0x40), "claims 64 bytes"},  // runs past the end
      {withLength({0x08, 0x00, CTA_STATUS, 0x00}, 0x02), "claims 2 bytes"},   // below the header
      {withLength({0x08, 0x00, CTA_STATUS, 0x00}, 0x06), "CTA_STATUS"},       // a u32 of 2 bytes
      {withLength({0x08, 0x00, CTA_IP_V4_SRC, 0x00}, 0x07), "CTA_IP_V4_SRC"}, // an address of 3
      {withLength({0x05, 0x00, CTA_PROTO_NUM, 0x00}, 0x06), "CTA_PROTO_NUM"}, // a u8 of 2 bytes
      {noReply, "reply tuple"},
  };
  for (const auto& [bytes, mention] : cases) {
    auto r = msg::parseEntry(bytes);
    ASSERT_FALSE(r) << "accepted; expected an error mentioning " << mention;
    EXPECT_NE(r.error().message().find(mention), std::string::npos) << r.error().message();
  }
}

TEST(ConntrackMsg, ParseStatsRejectsMalformed) {
  Bytes b(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = mnl_nlmsg_put_header(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  mnl_attr_put_u16(nlh, CTA_STATS_GLOBAL_ENTRIES, htons(150));  // a u32 sent as 2 bytes
  auto f = msg::parseGlobalStats(span(nlh));
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("CTA_STATS_GLOBAL_ENTRIES"), std::string::npos) << f.error().message();

  nlh = mnl_nlmsg_put_header(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  mnl_attr_put_u64(nlh, CTA_STATS_FOUND, 1);  // 8 bytes for a u32
  EXPECT_FALSE(msg::parseCpuStats(span(nlh)));
  // Three stray bytes after the last attribute.
  nlh = mnl_nlmsg_put_header(b.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  nlh->nlmsg_len += 3;
  auto c = msg::parseCpuStats(span(nlh));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("trailing"), std::string::npos) << c.error().message();
}

TEST(ConntrackMatch, OrigDstAndNatDst) {
  auto e = udpEntry();
  auto vip = *IpAddress::parse("10.96.0.10");
  auto rs = *IpAddress::parse("10.0.1.5");
  EXPECT_TRUE(tupleMatches(e.orig, {IPPROTO_UDP, "10.96.0.10", 53}, vip, false));
  EXPECT_TRUE(tupleMatches(e.orig, {IPPROTO_UDP, "10.96.0.10", 0}, vip, false));
  EXPECT_FALSE(tupleMatches(e.orig, {IPPROTO_TCP, "10.96.0.10", 53}, vip, false));
  EXPECT_FALSE(tupleMatches(e.orig, {IPPROTO_UDP, "10.96.0.10", 54}, vip, false));
  EXPECT_TRUE(tupleMatches(e.reply, {IPPROTO_UDP, "10.0.1.5", 5353}, rs, true));
  EXPECT_FALSE(tupleMatches(e.reply, {IPPROTO_UDP, "10.0.1.5", 53}, rs, true));
  EXPECT_FALSE(IpAddress::parse("10.0.0"));
  EXPECT_EQ(IpAddress::parse("::1")->family, AF_INET6);
}

}  // namespace
}  // namespace nodeagent::netfilter
