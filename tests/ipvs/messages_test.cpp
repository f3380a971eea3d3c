// Byte-for-byte checks of the IPVS netlink builders. Expected bytes are written out with a
// tiny TLV writer here (independent of libnl), from <linux/ip_vs.h> numbers.
#include "ipvs/messages.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstring>

#include "tests/common/tlv_writer.h"

namespace nodeagent::ipvs {
namespace {

constexpr uint16_t kFamily = 0x1c;

using Bytes = nodeagent::testing::TlvWriter;

Bytes header(uint8_t cmd, uint16_t extraFlags = 0) {
  Bytes m;
  m.u32(0);  // length, patched by done()
  m.u16(kFamily);
  m.u16(NLM_F_REQUEST | NLM_F_ACK | extraFlags);
  m.u32(0);  // seq: stamped by the socket
  m.u32(0);  // pid
  m.u8(cmd);
  m.u8(IPVS_GENL_VERSION);
  m.u16(0);
  return m;
}

std::vector<uint8_t> done(const Bytes& m) { return m.message(); }

Address addr(const char* s) { return *Address::parse(s); }

void svcKeyAttrs(Bytes& m, const ServiceKey& k) {
  m.attrU16(IPVS_SVC_ATTR_AF, k.family);
  if (k.fwmark) {
    m.attrU32(IPVS_SVC_ATTR_FWMARK, k.fwmark);
    return;
  }
  m.attrU16(IPVS_SVC_ATTR_PROTOCOL, static_cast<uint16_t>(k.protocol));
  m.attr(IPVS_SVC_ATTR_ADDR, k.address.bytes.data(), 16);
  m.attrU16(IPVS_SVC_ATTR_PORT, htons(k.port));
}

ServiceKey tcpKey() { return ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.0.10"), 80, 0}; }

TEST(IpvsMessages, AddServiceTcpV4) {
  // ipvsadm -A -t 10.96.0.10:80 -s rr
  Service s{tcpKey(), "rr", 0, 0, 0};
  Bytes m = header(IPVS_CMD_NEW_SERVICE);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  svcKeyAttrs(m, s.key);
  m.attr(IPVS_SVC_ATTR_SCHED_NAME, "rr", 3);
  uint32_t flags[2] = {0, 0xffffffff};
  m.attr(IPVS_SVC_ATTR_FLAGS, flags, 8);
  m.attrU32(IPVS_SVC_ATTR_TIMEOUT, 0);
  m.attrU32(IPVS_SVC_ATTR_NETMASK, 0xffffffff);
  m.nestEnd(n);
  auto expected = done(m);
  auto got = buildAddService(kFamily, s);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(got.size(), 104u);
}

TEST(IpvsMessages, EditServicePersistentV6) {
  // ipvsadm -E -u [fd00::a]:53 -s sh -p 300 -b sh-port
  Service s{ServiceKey{AF_INET6, Protocol::kUdp, addr("fd00::a"), 53, 0}, "sh",
            IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED_SH_PORT, 300, 0};
  Bytes m = header(IPVS_CMD_SET_SERVICE);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  svcKeyAttrs(m, s.key);
  m.attr(IPVS_SVC_ATTR_SCHED_NAME, "sh", 3);
  uint32_t flags[2] = {IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED_SH_PORT, 0xffffffff};
  m.attr(IPVS_SVC_ATTR_FLAGS, flags, 8);
  m.attrU32(IPVS_SVC_ATTR_TIMEOUT, 300);
  m.attrU32(IPVS_SVC_ATTR_NETMASK, 128);
  m.nestEnd(n);
  EXPECT_EQ(buildEditService(kFamily, s), done(m));
}

TEST(IpvsMessages, DelServiceFwmark) {
  // ipvsadm -D -f 7
  ServiceKey k{AF_INET, Protocol::kTcp, {}, 0, 7};
  Bytes m = header(IPVS_CMD_DEL_SERVICE);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  m.attrU16(IPVS_SVC_ATTR_AF, AF_INET);
  m.attrU32(IPVS_SVC_ATTR_FWMARK, 7);
  m.nestEnd(n);
  EXPECT_EQ(buildDelService(kFamily, k), done(m));
}

Bytes destMsg(uint8_t cmd, const Destination& d, bool full) {
  Bytes m = header(cmd);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  svcKeyAttrs(m, tcpKey());
  m.nestEnd(n);
  n = m.nestStart(IPVS_CMD_ATTR_DEST);
  m.attr(IPVS_DEST_ATTR_ADDR, d.key.address.bytes.data(), 16);
  m.attrU16(IPVS_DEST_ATTR_PORT, htons(d.key.port));
  m.attrU16(IPVS_DEST_ATTR_ADDR_FAMILY, d.key.address.family);
  if (full) {
    m.attrU32(IPVS_DEST_ATTR_FWD_METHOD, static_cast<uint32_t>(d.forward));
    m.attrU32(IPVS_DEST_ATTR_WEIGHT, d.weight);
    m.attrU32(IPVS_DEST_ATTR_U_THRESH, d.upperThreshold);
    m.attrU32(IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold);
  }
  m.nestEnd(n);
  return m;
}

TEST(IpvsMessages, AddDestMasq) {
  // ipvsadm -a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 3
  Destination d{DestKey{addr("10.244.1.5"), 8080}, Forward::kMasq, 3, 0, 0};
  EXPECT_EQ(buildAddDest(kFamily, tcpKey(), d), done(destMsg(IPVS_CMD_NEW_DEST, d, true)));
}

TEST(IpvsMessages, EditDestTunnelThresholds) {
  // ipvsadm -e -t 10.96.0.10:80 -r 10.244.1.5:8080 -i -w 0 -x 100 -y 10
  Destination d{DestKey{addr("10.244.1.5"), 8080}, Forward::kTunnel, 0, 100, 10};
  EXPECT_EQ(buildEditDest(kFamily, tcpKey(), d), done(destMsg(IPVS_CMD_SET_DEST, d, true)));
}

TEST(IpvsMessages, DelDest) {
  // ipvsadm -d -t 10.96.0.10:80 -r 10.244.1.5:8080
  Destination d{DestKey{addr("10.244.1.5"), 8080}};
  EXPECT_EQ(buildDelDest(kFamily, tcpKey(), d.key), done(destMsg(IPVS_CMD_DEL_DEST, d, false)));
}

TEST(IpvsMessages, DumpsAndTimeouts) {
  // ipvsadm -Ln
  EXPECT_EQ(buildGetServices(kFamily), done(header(IPVS_CMD_GET_SERVICE, NLM_F_DUMP)));
  // ipvsadm -Ln -t 10.96.0.10:80
  Bytes d = header(IPVS_CMD_GET_DEST, NLM_F_DUMP);
  size_t n = d.nestStart(IPVS_CMD_ATTR_SERVICE);
  svcKeyAttrs(d, tcpKey());
  d.nestEnd(n);
  EXPECT_EQ(buildGetDests(kFamily, tcpKey()), done(d));
  // ipvsadm --set 86400 120 0  (0 leaves UDP unchanged, so it is not sent)
  Bytes t = header(IPVS_CMD_SET_CONFIG);
  t.attrU32(IPVS_CMD_ATTR_TIMEOUT_TCP, 86400);
  t.attrU32(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, 120);
  EXPECT_EQ(buildSetTimeouts(kFamily, Timeouts{86400, 120, 0}), done(t));
}

// A service message as the kernel sends it (with HASHED and stats) parses back.
TEST(IpvsMessages, ParseServiceReply) {
  Bytes m = header(IPVS_CMD_NEW_SERVICE);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  svcKeyAttrs(m, tcpKey());
  m.attr(IPVS_SVC_ATTR_SCHED_NAME, "wrr", 4);
  uint32_t flags[2] = {IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT, 0xffffffff};
  m.attr(IPVS_SVC_ATTR_FLAGS, flags, 8);
  m.attrU32(IPVS_SVC_ATTR_TIMEOUT, 10800);
  m.attrU32(IPVS_SVC_ATTR_NETMASK, 0xffffffff);
  size_t st = m.nestStart(IPVS_SVC_ATTR_STATS64);
  uint64_t conns = 42;
  m.attr(IPVS_STATS_ATTR_CONNS, &conns, 8);
  m.nestEnd(st);
  m.nestEnd(n);
  auto bytes = done(m);
  auto s = parseServiceMessage(bytes);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->service.key, tcpKey());
  EXPECT_EQ(s->service.scheduler, "wrr");
  EXPECT_EQ(s->service.flags, uint32_t(IP_VS_SVC_F_PERSISTENT));
  EXPECT_EQ(s->service.timeout, 10800u);
  EXPECT_EQ(s->service.netmask, 0u);
  EXPECT_EQ(s->stats.conns, 42u);
}

TEST(IpvsMessages, ParseDestReplyAndRejectTruncated) {
  Destination d{DestKey{addr("10.244.1.5"), 8080}, Forward::kDirect, 5, 0, 0};
  Bytes m = header(IPVS_CMD_NEW_DEST);
  size_t n = m.nestStart(IPVS_CMD_ATTR_DEST);
  m.attr(IPVS_DEST_ATTR_ADDR, d.key.address.bytes.data(), 16);
  m.attrU16(IPVS_DEST_ATTR_PORT, htons(8080));
  m.attrU32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_DROUTE);
  m.attrU32(IPVS_DEST_ATTR_WEIGHT, 5);
  m.attrU32(IPVS_DEST_ATTR_ACTIVE_CONNS, 3);
  m.attrU32(IPVS_DEST_ATTR_INACT_CONNS, 9);
  m.nestEnd(n);
  auto bytes = done(m);
  auto p = parseDestMessage(bytes, AF_INET);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->dest, d);
  EXPECT_EQ(p->activeConns, 3u);
  EXPECT_EQ(p->inactiveConns, 9u);
  Bytes bad = header(IPVS_CMD_NEW_DEST);
  auto badBytes = done(bad);
  EXPECT_FALSE(parseDestMessage(badBytes, AF_INET));
}

// A service reply with one attribute replaced by `bad` (type, bytes), everything else valid.
std::vector<uint8_t> serviceWith(uint16_t badType, const void* bad, size_t badLen, uint16_t family = AF_INET) {
  Bytes m = header(IPVS_CMD_NEW_SERVICE);
  size_t n = m.nestStart(IPVS_CMD_ATTR_SERVICE);
  auto k = tcpKey();
  auto put = [&](uint16_t type, const void* p, size_t len) {
    if (type == badType)
      m.attr(type, bad, badLen);
    else
      m.attr(type, p, len);
  };
  put(IPVS_SVC_ATTR_AF, &family, 2);
  uint16_t proto = IPPROTO_TCP, port = htons(80);
  put(IPVS_SVC_ATTR_PROTOCOL, &proto, 2);
  put(IPVS_SVC_ATTR_ADDR, k.address.bytes.data(), 16);
  put(IPVS_SVC_ATTR_PORT, &port, 2);
  put(IPVS_SVC_ATTR_SCHED_NAME, "rr", 3);
  uint32_t flags[2] = {0, 0xffffffff};
  put(IPVS_SVC_ATTR_FLAGS, flags, 8);
  uint32_t timeout = 0;
  put(IPVS_SVC_ATTR_TIMEOUT, &timeout, 4);
  m.nestEnd(n);
  return done(m);
}

void expectRejected(const std::vector<uint8_t>& bytes, const std::string& mention) {
  auto r = parseServiceMessage(bytes);
  ASSERT_FALSE(r) << "accepted; expected an error mentioning " << mention;
  EXPECT_NE(r.error().message().find(mention), std::string::npos) << r.error().message();
}

TEST(IpvsMessages, ParseServiceRejectsMalformedAttributes) {
  ASSERT_TRUE(parseServiceMessage(serviceWith(0, nullptr, 0)));
  uint8_t one = 2;
  expectRejected(serviceWith(IPVS_SVC_ATTR_AF, &one, 1), "IPVS_SVC_ATTR_AF");
  uint32_t port32 = 80;
  expectRejected(serviceWith(IPVS_SVC_ATTR_PORT, &port32, 4), "IPVS_SVC_ATTR_PORT");
  uint8_t addr3[3] = {10, 96, 0};
  expectRejected(serviceWith(IPVS_SVC_ATTR_ADDR, addr3, 3), "IPVS_SVC_ATTR_ADDR");
  uint8_t addr17[17] = {};
  expectRejected(serviceWith(IPVS_SVC_ATTR_ADDR, addr17, 17), "IPVS_SVC_ATTR_ADDR");
  expectRejected(serviceWith(IPVS_SVC_ATTR_SCHED_NAME, "rr", 2), "NUL-terminated");
  expectRejected(serviceWith(IPVS_SVC_ATTR_SCHED_NAME, "a-very-long-scheduler", 22), "IPVS_SVC_ATTR_SCHED_NAME");
  uint32_t flags4 = 0;
  expectRejected(serviceWith(IPVS_SVC_ATTR_FLAGS, &flags4, 4), "IPVS_SVC_ATTR_FLAGS");
  uint16_t timeout2 = 0;
  expectRejected(serviceWith(IPVS_SVC_ATTR_TIMEOUT, &timeout2, 2), "IPVS_SVC_ATTR_TIMEOUT");
  // An IPv6 service whose address attribute holds only 4 bytes.
  uint8_t addr4[4] = {10, 96, 0, 10};
  expectRejected(serviceWith(IPVS_SVC_ATTR_ADDR, addr4, 4, AF_INET6), "address of 4 bytes");
  // A family that is neither IPv4 nor IPv6.
  expectRejected(serviceWith(0, nullptr, 0, 7), "neither IPv4 nor IPv6");
}

TEST(IpvsMessages, ParseServiceRejectsMalformedFraming) {
  auto good = serviceWith(0, nullptr, 0);
  // Cut datagram: nlmsg_len claims more than the bytes received.
  expectRejected(std::vector<uint8_t>(good.begin(), good.end() - 4), "outside");
  // Shorter than nlmsghdr; no room for the genetlink header.
  expectRejected(std::vector<uint8_t>(good.begin(), good.begin() + 12), "shorter than a netlink header");
  {
    auto b = std::vector<uint8_t>(good.begin(), good.begin() + 18);
    uint32_t len = 18;
    std::memcpy(b.data(), &len, 4);
    expectRejected(b, "family header");
  }
  // The nest's length runs past the message.
  {
    auto b = good;
    uint16_t len = 0x400;
    std::memcpy(&b[20], &len, 2);  // first attribute: IPVS_CMD_ATTR_SERVICE
    expectRejected(b, "claims 1024 bytes");
  }
  // An inner attribute's length below the header size.
  {
    auto b = good;
    uint16_t len = 2;
    std::memcpy(&b[24], &len, 2);  // first attribute inside the nest: IPVS_SVC_ATTR_AF
    expectRejected(b, "claims 2 bytes");
  }
  // A reply to another command.
  {
    auto b = good;
    b[16] = IPVS_CMD_NEW_DEST;
    expectRejected(b, "command");
  }
  // No service nest at all.
  expectRejected(done(header(IPVS_CMD_NEW_SERVICE)), "without IPVS_CMD_ATTR_SERVICE");
}

TEST(IpvsMessages, ParseStatsRejectsWrongWidth) {
  Bytes m = header(IPVS_CMD_NEW_DEST);
  size_t n = m.nestStart(IPVS_CMD_ATTR_DEST);
  auto a = addr("10.244.1.5");
  m.attr(IPVS_DEST_ATTR_ADDR, a.bytes.data(), 16);
  m.attrU16(IPVS_DEST_ATTR_PORT, htons(8080));
  size_t st = m.nestStart(IPVS_DEST_ATTR_STATS64);
  m.attrU32(IPVS_STATS_ATTR_CONNS, 42);  // a 64-bit counter sent as 32 bits
  m.nestEnd(st);
  m.nestEnd(n);
  auto r = parseDestMessage(done(m), AF_INET);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("IPVS stats64"), std::string::npos) << r.error().message();
}

TEST(IpvsMessages, ParseDestRejectsShortPortAndWeight) {
  for (int which = 0; which < 2; ++which) {
    Bytes m = header(IPVS_CMD_NEW_DEST);
    size_t n = m.nestStart(IPVS_CMD_ATTR_DEST);
    auto a = addr("10.244.1.5");
    m.attr(IPVS_DEST_ATTR_ADDR, a.bytes.data(), 16);
    uint8_t port1 = 80;
    if (which == 0) m.attr(IPVS_DEST_ATTR_PORT, &port1, 1);
    else m.attrU16(IPVS_DEST_ATTR_PORT, htons(80));
    if (which == 1) m.attrU16(IPVS_DEST_ATTR_WEIGHT, 5);
    m.nestEnd(n);
    auto r = parseDestMessage(done(m), AF_INET);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find(which == 0 ? "IPVS_DEST_ATTR_PORT" : "IPVS_DEST_ATTR_WEIGHT"), std::string::npos)
        << r.error().message();
  }
}

TEST(IpvsMessages, ParseTimeouts) {
  Bytes m = header(IPVS_CMD_SET_CONFIG);
  m.attrU32(IPVS_CMD_ATTR_TIMEOUT_TCP, 900);
  m.attrU32(IPVS_CMD_ATTR_TIMEOUT_UDP, 300);
  auto t = parseTimeoutsMessage(done(m));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->tcp, 900u);
  EXPECT_EQ(t->tcpFin, 0u);
  EXPECT_EQ(t->udp, 300u);
  Bytes bad = header(IPVS_CMD_SET_CONFIG);
  bad.attrU16(IPVS_CMD_ATTR_TIMEOUT_TCP, 900);
  auto r = parseTimeoutsMessage(done(bad));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("IPVS_CMD_ATTR_TIMEOUT_TCP"), std::string::npos) << r.error().message();
}

// genl-ctrl-list -n IPVS: request bytes, and the controller's reply parsed and checked.
TEST(IpvsMessages, FamilyLookup) {
  Bytes want;
  want.u32(0);
  want.u16(GENL_ID_CTRL);
  want.u16(NLM_F_REQUEST | NLM_F_ACK);
  want.u32(0);
  want.u32(0);
  want.u8(CTRL_CMD_GETFAMILY);
  want.u8(1);
  want.u16(0);
  want.attr(CTRL_ATTR_FAMILY_NAME, "IPVS", 5);
  EXPECT_EQ(buildGetFamily("IPVS"), done(want));

  auto reply = [](const char* name, size_t nameLen, bool withId, size_t idLen) {
    Bytes m;
    m.u32(0);
    m.u16(GENL_ID_CTRL);
    m.u16(0);
    m.u32(0);
    m.u32(0);
    m.u8(CTRL_CMD_NEWFAMILY);
    m.u8(2);
    m.u16(0);
    m.attr(CTRL_ATTR_FAMILY_NAME, name, nameLen);
    uint32_t id = 0x1c;
    if (withId) m.attr(CTRL_ATTR_FAMILY_ID, &id, idLen);
    return done(m);
  };
  auto id = parseFamilyMessage(reply("IPVS", 5, true, 2), "IPVS");
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(*id, 0x1c);
  EXPECT_FALSE(parseFamilyMessage(reply("IPVS", 5, false, 2), "IPVS"));
  EXPECT_FALSE(parseFamilyMessage(reply("IPVS", 5, true, 4), "IPVS"));      // id is a u16
  EXPECT_FALSE(parseFamilyMessage(reply("TASKSTATS", 10, true, 2), "IPVS"));
  EXPECT_FALSE(parseFamilyMessage(reply("IPVS", 4, true, 2), "IPVS"));      // no NUL
}

TEST(IpvsTypes, KeysRoundTrip) {
  for (const char* s : {"TCP 10.0.0.1:80", "UDP [fd00::1]:53", "SCTP 1.2.3.4:9", "FWM 7 (inet)", "FWM 9 (inet6)"}) {
    auto k = parseServiceKey(s);
    ASSERT_TRUE(k) << s;
    EXPECT_EQ(k->toString(), s);
  }
  auto c = Cidr::parse("10.96.0.0/12");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(addr("10.100.1.1")));
  EXPECT_FALSE(c->contains(addr("10.112.0.1")));
  EXPECT_FALSE(c->contains(addr("fd00::1")));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
}

}  // namespace
}  // namespace nodeagent::ipvs
