#include "ipvs/messages.h"

#include <arpa/inet.h>
#include <linux/ip_vs.h>
#include <linux/genetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "common/netlink_attr.h"
#include "common/netlink_writer.h"

namespace nodeagent::ipvs {

namespace {

// A request of the IPVS family: nlmsghdr + genlmsghdr, acked.
NetlinkWriter start(uint16_t familyId, uint8_t cmd, uint16_t flags = 0) {
  NetlinkWriter w(familyId, static_cast<uint16_t>(flags | NLM_F_REQUEST | NLM_F_ACK));
  genlmsghdr g{};
  g.cmd = cmd;
  g.version = IPVS_GENL_VERSION;
  w.header(g);
  return w;
}

void putServiceKey(NetlinkWriter& m, const ServiceKey& k) {
  m.putU16(IPVS_SVC_ATTR_AF, k.family);
  if (k.fwmark != 0) {
    m.putU32(IPVS_SVC_ATTR_FWMARK, k.fwmark);
    return;
  }
  m.putU16(IPVS_SVC_ATTR_PROTOCOL, static_cast<uint16_t>(k.protocol));
  m.put(IPVS_SVC_ATTR_ADDR, k.address.bytes.data(), 16);
  m.putU16(IPVS_SVC_ATTR_PORT, htons(k.port));
}

void putService(NetlinkWriter& m, const Service& s) {
  nlattr* nest = m.beginNest(IPVS_CMD_ATTR_SERVICE);
  putServiceKey(m, s.key);
  m.putString(IPVS_SVC_ATTR_SCHED_NAME, s.scheduler);
  ip_vs_flags flags{s.flags & ~uint32_t(IP_VS_SVC_F_HASHED), ~0u};
  m.put(IPVS_SVC_ATTR_FLAGS, &flags, sizeof flags);
  m.putU32(IPVS_SVC_ATTR_TIMEOUT, s.timeout);
  m.putU32(IPVS_SVC_ATTR_NETMASK, effectiveNetmask(s));
  m.endNest(nest);
}

void putServiceKeyNest(NetlinkWriter& m, const ServiceKey& k) {
  nlattr* nest = m.beginNest(IPVS_CMD_ATTR_SERVICE);
  putServiceKey(m, k);
  m.endNest(nest);
}

void putDestKey(NetlinkWriter& m, const DestKey& d) {
  m.put(IPVS_DEST_ATTR_ADDR, d.address.bytes.data(), 16);
  m.putU16(IPVS_DEST_ATTR_PORT, htons(d.port));
  m.putU16(IPVS_DEST_ATTR_ADDR_FAMILY, d.address.family);
}

void putDest(NetlinkWriter& m, const Destination& d) {
  nlattr* nest = m.beginNest(IPVS_CMD_ATTR_DEST);
  putDestKey(m, d.key);
  m.putU32(IPVS_DEST_ATTR_FWD_METHOD, static_cast<uint32_t>(d.forward));
  m.putU32(IPVS_DEST_ATTR_WEIGHT, d.weight);
  m.putU32(IPVS_DEST_ATTR_U_THRESH, d.upperThreshold);
  m.putU32(IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold);
  m.endNest(nest);
}

}  // namespace

Message buildGetFamily(const char* name) {
  NetlinkWriter m(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK);
  genlmsghdr g{};
  g.cmd = CTRL_CMD_GETFAMILY;
  g.version = 1;
  m.header(g);
  m.putString(CTRL_ATTR_FAMILY_NAME, name);
  return std::move(m).finish();
}

Message buildAddService(uint16_t familyId, const Service& s) {
  auto m = start(familyId, IPVS_CMD_NEW_SERVICE);
  putService(m, s);
  return std::move(m).finish();
}

Message buildEditService(uint16_t familyId, const Service& s) {
  auto m = start(familyId, IPVS_CMD_SET_SERVICE);
  putService(m, s);
  return std::move(m).finish();
}

Message buildDelService(uint16_t familyId, const ServiceKey& k) {
  auto m = start(familyId, IPVS_CMD_DEL_SERVICE);
  putServiceKeyNest(m, k);
  return std::move(m).finish();
}

Message buildAddDest(uint16_t familyId, const ServiceKey& k, const Destination& d) {
  auto m = start(familyId, IPVS_CMD_NEW_DEST);
  putServiceKeyNest(m, k);
  putDest(m, d);
  return std::move(m).finish();
}

Message buildEditDest(uint16_t familyId, const ServiceKey& k, const Destination& d) {
  auto m = start(familyId, IPVS_CMD_SET_DEST);
  putServiceKeyNest(m, k);
  putDest(m, d);
  return std::move(m).finish();
}

Message buildDelDest(uint16_t familyId, const ServiceKey& k, const DestKey& d) {
  auto m = start(familyId, IPVS_CMD_DEL_DEST);
  putServiceKeyNest(m, k);
  nlattr* nest = m.beginNest(IPVS_CMD_ATTR_DEST);
  putDestKey(m, d);
  m.endNest(nest);
  return std::move(m).finish();
}

Message buildGetServices(uint16_t familyId) { return start(familyId, IPVS_CMD_GET_SERVICE, NLM_F_DUMP).finish(); }

Message buildGetDests(uint16_t familyId, const ServiceKey& k) {
  auto m = start(familyId, IPVS_CMD_GET_DEST, NLM_F_DUMP);
  putServiceKeyNest(m, k);
  return std::move(m).finish();
}

Message buildSetTimeouts(uint16_t familyId, const Timeouts& t) {
  auto m = start(familyId, IPVS_CMD_SET_CONFIG);
  if (t.tcp) m.putU32(IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcp);
  if (t.tcpFin) m.putU32(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcpFin);
  if (t.udp) m.putU32(IPVS_CMD_ATTR_TIMEOUT_UDP, t.udp);
  return std::move(m).finish();
}

Message buildGetTimeouts(uint16_t familyId) { return start(familyId, IPVS_CMD_GET_CONFIG).finish(); }

namespace {

// The attribute policies of IPVS replies, as the kernel fills them (ip_vs_ctl.c).
const AttrPolicy kCmdPolicy("IPVS reply", {
    {.type = IPVS_CMD_ATTR_SERVICE, .kind = AttrKind::kNested, .name = "IPVS_CMD_ATTR_SERVICE"},
    {.type = IPVS_CMD_ATTR_DEST, .kind = AttrKind::kNested, .name = "IPVS_CMD_ATTR_DEST"},
    {.type = IPVS_CMD_ATTR_TIMEOUT_TCP, .kind = AttrKind::kU32, .name = "IPVS_CMD_ATTR_TIMEOUT_TCP"},
    {.type = IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, .kind = AttrKind::kU32, .name = "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN"},
    {.type = IPVS_CMD_ATTR_TIMEOUT_UDP, .kind = AttrKind::kU32, .name = "IPVS_CMD_ATTR_TIMEOUT_UDP"},
});

const AttrPolicy kServicePolicy("IPVS service", {
    {.type = IPVS_SVC_ATTR_AF, .kind = AttrKind::kU16, .name = "IPVS_SVC_ATTR_AF"},
    {.type = IPVS_SVC_ATTR_PROTOCOL, .kind = AttrKind::kU16, .name = "IPVS_SVC_ATTR_PROTOCOL"},
    {.type = IPVS_SVC_ATTR_ADDR, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 16, .name = "IPVS_SVC_ATTR_ADDR"},
    {.type = IPVS_SVC_ATTR_PORT, .kind = AttrKind::kU16, .name = "IPVS_SVC_ATTR_PORT"},
    {.type = IPVS_SVC_ATTR_FWMARK, .kind = AttrKind::kU32, .name = "IPVS_SVC_ATTR_FWMARK"},
    {.type = IPVS_SVC_ATTR_SCHED_NAME, .kind = AttrKind::kString, .maxLen = IP_VS_SCHEDNAME_MAXLEN,
     .name = "IPVS_SVC_ATTR_SCHED_NAME"},
    {.type = IPVS_SVC_ATTR_FLAGS, .kind = AttrKind::kBinary, .minLen = sizeof(ip_vs_flags),
     .maxLen = sizeof(ip_vs_flags), .name = "IPVS_SVC_ATTR_FLAGS"},
    {.type = IPVS_SVC_ATTR_TIMEOUT, .kind = AttrKind::kU32, .name = "IPVS_SVC_ATTR_TIMEOUT"},
    {.type = IPVS_SVC_ATTR_NETMASK, .kind = AttrKind::kU32, .name = "IPVS_SVC_ATTR_NETMASK"},
    {.type = IPVS_SVC_ATTR_STATS, .kind = AttrKind::kNested, .name = "IPVS_SVC_ATTR_STATS"},
    {.type = IPVS_SVC_ATTR_PE_NAME, .kind = AttrKind::kString, .maxLen = IP_VS_PENAME_MAXLEN,
     .name = "IPVS_SVC_ATTR_PE_NAME"},
    {.type = IPVS_SVC_ATTR_STATS64, .kind = AttrKind::kNested, .name = "IPVS_SVC_ATTR_STATS64"},
});

const AttrPolicy kDestPolicy("IPVS destination", {
    {.type = IPVS_DEST_ATTR_ADDR, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 16, .name = "IPVS_DEST_ATTR_ADDR"},
    {.type = IPVS_DEST_ATTR_PORT, .kind = AttrKind::kU16, .name = "IPVS_DEST_ATTR_PORT"},
    {.type = IPVS_DEST_ATTR_FWD_METHOD, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_FWD_METHOD"},
    {.type = IPVS_DEST_ATTR_WEIGHT, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_WEIGHT"},
    {.type = IPVS_DEST_ATTR_U_THRESH, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_U_THRESH"},
    {.type = IPVS_DEST_ATTR_L_THRESH, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_L_THRESH"},
    {.type = IPVS_DEST_ATTR_ACTIVE_CONNS, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_ACTIVE_CONNS"},
    {.type = IPVS_DEST_ATTR_INACT_CONNS, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_INACT_CONNS"},
    {.type = IPVS_DEST_ATTR_PERSIST_CONNS, .kind = AttrKind::kU32, .name = "IPVS_DEST_ATTR_PERSIST_CONNS"},
    {.type = IPVS_DEST_ATTR_STATS, .kind = AttrKind::kNested, .name = "IPVS_DEST_ATTR_STATS"},
    {.type = IPVS_DEST_ATTR_ADDR_FAMILY, .kind = AttrKind::kU16, .name = "IPVS_DEST_ATTR_ADDR_FAMILY"},
    {.type = IPVS_DEST_ATTR_STATS64, .kind = AttrKind::kNested, .name = "IPVS_DEST_ATTR_STATS64"},
    {.type = IPVS_DEST_ATTR_TUN_TYPE, .kind = AttrKind::kU8, .name = "IPVS_DEST_ATTR_TUN_TYPE"},
    {.type = IPVS_DEST_ATTR_TUN_PORT, .kind = AttrKind::kU16, .name = "IPVS_DEST_ATTR_TUN_PORT"},
    {.type = IPVS_DEST_ATTR_TUN_FLAGS, .kind = AttrKind::kU16, .name = "IPVS_DEST_ATTR_TUN_FLAGS"},
});

// IPVS_*_ATTR_STATS: 32-bit counters and rates, 64-bit byte counts.
const AttrPolicy kStatsPolicy("IPVS stats", {
    {.type = IPVS_STATS_ATTR_CONNS, .kind = AttrKind::kU32, .name = "IPVS_STATS_ATTR_CONNS"},
    {.type = IPVS_STATS_ATTR_INPKTS, .kind = AttrKind::kU32, .name = "IPVS_STATS_ATTR_INPKTS"},
    {.type = IPVS_STATS_ATTR_OUTPKTS, .kind = AttrKind::kU32, .name = "IPVS_STATS_ATTR_OUTPKTS"},
    {.type = IPVS_STATS_ATTR_INBYTES, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_INBYTES"},
    {.type = IPVS_STATS_ATTR_OUTBYTES, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_OUTBYTES"},
});

// IPVS_*_ATTR_STATS64: every counter 64-bit.
const AttrPolicy kStats64Policy("IPVS stats64", {
    {.type = IPVS_STATS_ATTR_CONNS, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_CONNS"},
    {.type = IPVS_STATS_ATTR_INPKTS, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_INPKTS"},
    {.type = IPVS_STATS_ATTR_OUTPKTS, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_OUTPKTS"},
    {.type = IPVS_STATS_ATTR_INBYTES, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_INBYTES"},
    {.type = IPVS_STATS_ATTR_OUTBYTES, .kind = AttrKind::kU64, .name = "IPVS_STATS_ATTR_OUTBYTES"},
});

const AttrPolicy kCtrlPolicy("generic netlink controller reply", {
    {.type = CTRL_ATTR_FAMILY_ID, .kind = AttrKind::kU16, .name = "CTRL_ATTR_FAMILY_ID"},
    {.type = CTRL_ATTR_FAMILY_NAME, .kind = AttrKind::kString, .maxLen = GENL_NAMSIZ, .name = "CTRL_ATTR_FAMILY_NAME"},
    {.type = CTRL_ATTR_VERSION, .kind = AttrKind::kU32, .name = "CTRL_ATTR_VERSION"},
});

// The attributes of a generic netlink reply of command `cmd`.
Result<Attrs> topAttrs(Bytes bytes, uint8_t cmd, const char* what, const AttrPolicy& policy = kCmdPolicy) {
  auto m = netlinkMessage(bytes, GENL_HDRLEN, what);
  if (!m) return fail(m.error());
  genlmsghdr g;
  std::memcpy(&g, netlinkFamilyHeader(*m, GENL_HDRLEN).data(), sizeof g);
  if (g.cmd != cmd)
    return failInvalid(std::string(what) + ": command " + std::to_string(g.cmd) + ", expected " + std::to_string(cmd));
  return parseAttrs(netlinkAttributes(*m, GENL_HDRLEN), policy);
}

Result<void> parseStats(const Attrs& parent, uint16_t stats32, uint16_t stats64, Stats& s) {
  bool is64 = parent.has(stats64);
  if (!is64 && !parent.has(stats32)) return {};
  auto tb = parseAttrs(parent.payload(is64 ? stats64 : stats32), is64 ? kStats64Policy : kStatsPolicy);
  if (!tb) return fail(tb.error());
  auto rd = [&](uint16_t t) -> uint64_t { return is64 ? tb->u64(t) : tb->u32(t); };
  s.conns = rd(IPVS_STATS_ATTR_CONNS);
  s.inPackets = rd(IPVS_STATS_ATTR_INPKTS);
  s.outPackets = rd(IPVS_STATS_ATTR_OUTPKTS);
  s.inBytes = tb->u64(IPVS_STATS_ATTR_INBYTES);
  s.outBytes = tb->u64(IPVS_STATS_ATTR_OUTBYTES);
  return {};
}

// An address attribute: 4 bytes (or more) for IPv4, 16 for IPv6.
Result<Address> readAddress(const Attrs& tb, uint16_t type, uint16_t family, const char* what) {
  Bytes b = tb.payload(type);
  if (family != AF_INET && family != AF_INET6)
    return failInvalid(std::string(what) + ": address family " + std::to_string(family) + " is neither IPv4 nor IPv6");
  size_t need = family == AF_INET ? 4 : 16;
  if (b.size() < need)
    return failInvalid(std::string(what) + ": address of " + std::to_string(b.size()) + " bytes for family " +
                       std::to_string(family));
  Address a;
  a.family = static_cast<uint8_t>(family);
  std::memcpy(a.bytes.data(), b.data(), need);
  return a;
}

}  // namespace

Result<uint16_t> parseFamilyMessage(Bytes bytes, const char* name) {
  auto tb = topAttrs(bytes, CTRL_CMD_NEWFAMILY, "generic netlink family reply", kCtrlPolicy);
  if (!tb) return fail(tb.error());
  if (!tb->has(CTRL_ATTR_FAMILY_ID)) return failInvalid("generic netlink family reply without CTRL_ATTR_FAMILY_ID");
  if (tb->has(CTRL_ATTR_FAMILY_NAME) && tb->str(CTRL_ATTR_FAMILY_NAME) != name)
    return failInvalid("generic netlink family reply for \"" + tb->str(CTRL_ATTR_FAMILY_NAME) + "\", asked for \"" + name + "\"");
  return tb->u16(CTRL_ATTR_FAMILY_ID);
}

Result<ServiceState> parseServiceMessage(Bytes bytes) {
  auto top = topAttrs(bytes, IPVS_CMD_NEW_SERVICE, "IPVS service reply");
  if (!top) return fail(top.error());
  if (!top->has(IPVS_CMD_ATTR_SERVICE)) return failInvalid("IPVS service reply without IPVS_CMD_ATTR_SERVICE");
  auto tb = parseAttrs(top->payload(IPVS_CMD_ATTR_SERVICE), kServicePolicy);
  if (!tb) return fail(tb.error());
  ServiceState st;
  Service& s = st.service;
  if (!tb->has(IPVS_SVC_ATTR_AF)) return failInvalid("IPVS service without address family");
  s.key.family = tb->u16(IPVS_SVC_ATTR_AF);
  s.key.fwmark = tb->u32(IPVS_SVC_ATTR_FWMARK);
  if (s.key.fwmark == 0) {
    if (!tb->has(IPVS_SVC_ATTR_PROTOCOL) || !tb->has(IPVS_SVC_ATTR_PORT) || !tb->has(IPVS_SVC_ATTR_ADDR))
      return failInvalid("IPVS service without protocol, address or port");
    s.key.protocol = static_cast<Protocol>(tb->u16(IPVS_SVC_ATTR_PROTOCOL));
    s.key.port = tb->be16(IPVS_SVC_ATTR_PORT);
    auto a = readAddress(*tb, IPVS_SVC_ATTR_ADDR, s.key.family, "IPVS service");
    if (!a) return fail(a.error());
    s.key.address = *a;
  }
  s.scheduler = tb->str(IPVS_SVC_ATTR_SCHED_NAME);
  if (tb->has(IPVS_SVC_ATTR_FLAGS)) {
    ip_vs_flags flags;
    std::memcpy(&flags, tb->payload(IPVS_SVC_ATTR_FLAGS).data(), sizeof flags);
    s.flags = flags.flags & ~uint32_t(IP_VS_SVC_F_HASHED);
  }
  s.timeout = tb->u32(IPVS_SVC_ATTR_TIMEOUT);
  s.netmask = tb->u32(IPVS_SVC_ATTR_NETMASK);
  if (s.netmask == effectiveNetmask(Service{.key = s.key})) s.netmask = 0;  // the default
  if (auto r = parseStats(*tb, IPVS_SVC_ATTR_STATS, IPVS_SVC_ATTR_STATS64, st.stats); !r) return fail(r.error());
  return st;
}

Result<DestinationState> parseDestMessage(Bytes bytes, uint16_t svcFamily) {
  auto top = topAttrs(bytes, IPVS_CMD_NEW_DEST, "IPVS destination reply");
  if (!top) return fail(top.error());
  if (!top->has(IPVS_CMD_ATTR_DEST)) return failInvalid("IPVS destination reply without IPVS_CMD_ATTR_DEST");
  auto tb = parseAttrs(top->payload(IPVS_CMD_ATTR_DEST), kDestPolicy);
  if (!tb) return fail(tb.error());
  DestinationState st;
  Destination& d = st.dest;
  if (!tb->has(IPVS_DEST_ATTR_ADDR) || !tb->has(IPVS_DEST_ATTR_PORT))
    return failInvalid("IPVS destination without address or port");
  auto a = readAddress(*tb, IPVS_DEST_ATTR_ADDR, tb->u16(IPVS_DEST_ATTR_ADDR_FAMILY, svcFamily), "IPVS destination");
  if (!a) return fail(a.error());
  d.key.address = *a;
  d.key.port = tb->be16(IPVS_DEST_ATTR_PORT);
  d.forward = static_cast<Forward>(tb->u32(IPVS_DEST_ATTR_FWD_METHOD) & IP_VS_CONN_F_FWD_MASK);
  d.weight = tb->u32(IPVS_DEST_ATTR_WEIGHT, d.weight);
  d.upperThreshold = tb->u32(IPVS_DEST_ATTR_U_THRESH);
  d.lowerThreshold = tb->u32(IPVS_DEST_ATTR_L_THRESH);
  st.activeConns = tb->u32(IPVS_DEST_ATTR_ACTIVE_CONNS);
  st.inactiveConns = tb->u32(IPVS_DEST_ATTR_INACT_CONNS);
  st.persistentConns = tb->u32(IPVS_DEST_ATTR_PERSIST_CONNS);
  if (auto r = parseStats(*tb, IPVS_DEST_ATTR_STATS, IPVS_DEST_ATTR_STATS64, st.stats); !r) return fail(r.error());
  return st;
}

Result<Timeouts> parseTimeoutsMessage(Bytes bytes) {
  auto tb = topAttrs(bytes, IPVS_CMD_SET_CONFIG, "IPVS config reply");
  if (!tb) return fail(tb.error());
  Timeouts t;
  t.tcp = tb->u32(IPVS_CMD_ATTR_TIMEOUT_TCP);
  t.tcpFin = tb->u32(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN);
  t.udp = tb->u32(IPVS_CMD_ATTR_TIMEOUT_UDP);
  return t;
}

}  // namespace nodeagent::ipvs
