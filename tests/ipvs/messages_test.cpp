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

namespace nodeagent::ipvs {
namespace {

constexpr uint16_t kFamily = 0x1c;

struct Bytes {
  std::vector<uint8_t> b;
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void raw(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void pad() {
    while (b.size() % 4) b.push_back(0);
  }
  void attr(uint16_t type, const void* p, size_t n) {
    u16(static_cast<uint16_t>(4 + n));
    u16(type);
    raw(p, n);
    pad();
  }
  void attrU16(uint16_t type, uint16_t v) { attr(type, &v, 2); }
  void attrU32(uint16_t type, uint32_t v) { attr(type, &v, 4); }
  // Nested attribute: returns the offset to patch the length later.
  size_t nestStart(uint16_t type) {
    size_t at = b.size();
    u16(0);
    u16(type | NLA_F_NESTED);
    return at;
  }
  void nestEnd(size_t at) {
    uint16_t len = static_cast<uint16_t>(b.size() - at);
    std::memcpy(&b[at], &len, 2);
  }
};

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

std::vector<uint8_t> done(Bytes m) {
  uint32_t len = static_cast<uint32_t>(m.b.size());
  std::memcpy(m.b.data(), &len, 4);
  return m.b;
}

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
  auto s = parseServiceMessage(reinterpret_cast<const nlmsghdr*>(bytes.data()));
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
  auto p = parseDestMessage(reinterpret_cast<const nlmsghdr*>(bytes.data()), AF_INET);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->dest, d);
  EXPECT_EQ(p->activeConns, 3u);
  EXPECT_EQ(p->inactiveConns, 9u);
  Bytes bad = header(IPVS_CMD_NEW_DEST);
  auto badBytes = done(bad);
  EXPECT_FALSE(parseDestMessage(reinterpret_cast<const nlmsghdr*>(badBytes.data()), AF_INET));
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
