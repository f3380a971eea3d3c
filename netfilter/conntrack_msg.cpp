#include "netfilter/conntrack_msg.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstring>

#include "common/netlink_attr.h"

namespace nodeagent::netfilter::msg {

namespace {

constexpr uint16_t ctType(uint8_t msg) { return static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg); }

// A message buffer: nlmsghdr + nfgenmsg, attributes appended by the caller.
struct Builder {
  std::vector<uint8_t> buf = std::vector<uint8_t>(MNL_SOCKET_BUFFER_SIZE, 0);
  nlmsghdr* nlh;
  Builder(uint8_t msgType, uint16_t flags, uint32_t seq, int family) {
    nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = ctType(msgType);
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = static_cast<uint8_t>(family);
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
  }
  std::vector<uint8_t> done() {
    buf.resize(nlh->nlmsg_len);
    return std::move(buf);
  }
};

void putTuple(nlmsghdr* nlh, uint16_t type, const ConntrackTuple& t) {
  nlattr* tuple = mnl_attr_nest_start(nlh, type);
  tuple->nla_type |= NLA_F_NESTED;
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  ip->nla_type |= NLA_F_NESTED;
  bool v4 = t.src.family == AF_INET;
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, t.src.size(), t.src.bytes.data());
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, t.dst.size(), t.dst.bytes.data());
  mnl_attr_nest_end(nlh, ip);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  proto->nla_type |= NLA_F_NESTED;
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t.protocol);
  if (t.protocol == IPPROTO_TCP || t.protocol == IPPROTO_UDP || t.protocol == IPPROTO_SCTP ||
      t.protocol == IPPROTO_UDPLITE || t.protocol == IPPROTO_DCCP) {
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.srcPort));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dstPort));
  }
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, tuple);
}

#define U32(t) {.type = t, .kind = AttrKind::kU32, .name = #t}

// Attribute policies of ctnetlink replies, as nf_conntrack_netlink.c fills them.
const AttrPolicy kEntryPolicy("conntrack entry", {
    {.type = CTA_TUPLE_ORIG, .kind = AttrKind::kNested, .name = "CTA_TUPLE_ORIG"},
    {.type = CTA_TUPLE_REPLY, .kind = AttrKind::kNested, .name = "CTA_TUPLE_REPLY"},
    U32(CTA_STATUS), U32(CTA_TIMEOUT), U32(CTA_MARK), U32(CTA_USE), U32(CTA_ID),
    {.type = CTA_ZONE, .kind = AttrKind::kU16, .name = "CTA_ZONE"},
});
const AttrPolicy kTuplePolicy("conntrack tuple", {
    {.type = CTA_TUPLE_IP, .kind = AttrKind::kNested, .name = "CTA_TUPLE_IP"},
    {.type = CTA_TUPLE_PROTO, .kind = AttrKind::kNested, .name = "CTA_TUPLE_PROTO"},
    {.type = CTA_TUPLE_ZONE, .kind = AttrKind::kU16, .name = "CTA_TUPLE_ZONE"},
});
const AttrPolicy kIpPolicy("conntrack tuple address", {
    {.type = CTA_IP_V4_SRC, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 4, .name = "CTA_IP_V4_SRC"},
    {.type = CTA_IP_V4_DST, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 4, .name = "CTA_IP_V4_DST"},
    {.type = CTA_IP_V6_SRC, .kind = AttrKind::kBinary, .minLen = 16, .maxLen = 16, .name = "CTA_IP_V6_SRC"},
    {.type = CTA_IP_V6_DST, .kind = AttrKind::kBinary, .minLen = 16, .maxLen = 16, .name = "CTA_IP_V6_DST"},
});
const AttrPolicy kProtoPolicy("conntrack tuple protocol", {
    {.type = CTA_PROTO_NUM, .kind = AttrKind::kU8, .name = "CTA_PROTO_NUM"},
    {.type = CTA_PROTO_SRC_PORT, .kind = AttrKind::kU16, .name = "CTA_PROTO_SRC_PORT"},
    {.type = CTA_PROTO_DST_PORT, .kind = AttrKind::kU16, .name = "CTA_PROTO_DST_PORT"},
    {.type = CTA_PROTO_ICMP_ID, .kind = AttrKind::kU16, .name = "CTA_PROTO_ICMP_ID"},
    {.type = CTA_PROTO_ICMP_TYPE, .kind = AttrKind::kU8, .name = "CTA_PROTO_ICMP_TYPE"},
    {.type = CTA_PROTO_ICMP_CODE, .kind = AttrKind::kU8, .name = "CTA_PROTO_ICMP_CODE"},
});
const AttrPolicy kGlobalStatsPolicy("conntrack global stats", {
    U32(CTA_STATS_GLOBAL_ENTRIES), U32(CTA_STATS_GLOBAL_MAX_ENTRIES),
});
const AttrPolicy kCpuStatsPolicy("conntrack cpu stats", {
    U32(CTA_STATS_SEARCHED), U32(CTA_STATS_FOUND), U32(CTA_STATS_NEW), U32(CTA_STATS_INVALID),
    U32(CTA_STATS_IGNORE), U32(CTA_STATS_DELETE), U32(CTA_STATS_DELETE_LIST), U32(CTA_STATS_INSERT),
    U32(CTA_STATS_INSERT_FAILED), U32(CTA_STATS_DROP), U32(CTA_STATS_EARLY_DROP), U32(CTA_STATS_ERROR),
    U32(CTA_STATS_SEARCH_RESTART), U32(CTA_STATS_CLASH_RESOLVE), U32(CTA_STATS_CHAIN_TOOLONG),
});
#undef U32

// A checked ctnetlink message of type `msgType` (or `alt`): its nfgenmsg and attributes.
struct CtMessage {
  nfgenmsg nfg;
  Attrs attrs;
};
Result<CtMessage> ctMessage(Bytes bytes, std::initializer_list<uint8_t> msgTypes, const AttrPolicy& policy) {
  auto m = netlinkMessage(bytes, sizeof(nfgenmsg), policy.space());
  if (!m) return fail(m.error());
  nlmsghdr h = netlinkHeader(*m);
  bool ok = (h.nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK;
  if (ok) {
    ok = false;
    for (uint8_t t : msgTypes) ok = ok || (h.nlmsg_type & 0xff) == t;
  }
  if (!ok) return failInvalid(std::string(policy.space()) + ": unexpected message type " + std::to_string(h.nlmsg_type));
  CtMessage out;
  std::memcpy(&out.nfg, netlinkFamilyHeader(*m, sizeof(nfgenmsg)).data(), sizeof(nfgenmsg));
  auto a = parseAttrs(netlinkAttributes(*m, sizeof(nfgenmsg)), policy);
  if (!a) return fail(a.error());
  out.attrs = std::move(*a);
  return out;
}

Result<ConntrackTuple> parseTuple(const Attrs& entry, uint16_t type, const char* which) {
  if (!entry.has(type)) return failInvalid(std::string("conntrack entry without ") + which + " tuple");
  auto t = parseAttrs(entry.payload(type), kTuplePolicy);
  if (!t) return fail(t.error());
  if (!t->has(CTA_TUPLE_IP) || !t->has(CTA_TUPLE_PROTO))
    return failInvalid(std::string("conntrack ") + which + " tuple without addresses or protocol");
  auto ip = parseAttrs(t->payload(CTA_TUPLE_IP), kIpPolicy);
  if (!ip) return fail(ip.error());
  auto proto = parseAttrs(t->payload(CTA_TUPLE_PROTO), kProtoPolicy);
  if (!proto) return fail(proto.error());
  ConntrackTuple out;
  auto readIp = [&](uint16_t type, int family, IpAddress& dst) {
    if (!ip->has(type)) return false;
    dst.family = family;
    Bytes b = ip->payload(type);  // exactly 4 or 16 bytes: the policy says so
    std::memcpy(dst.bytes.data(), b.data(), b.size());
    return true;
  };
  bool ok = ip->has(CTA_IP_V4_SRC) ? readIp(CTA_IP_V4_SRC, AF_INET, out.src) && readIp(CTA_IP_V4_DST, AF_INET, out.dst)
                                   : readIp(CTA_IP_V6_SRC, AF_INET6, out.src) && readIp(CTA_IP_V6_DST, AF_INET6, out.dst);
  if (!ok) return failInvalid(std::string("conntrack ") + which + " tuple without addresses");
  if (!proto->has(CTA_PROTO_NUM)) return failInvalid(std::string("conntrack ") + which + " tuple without protocol");
  out.protocol = proto->u8(CTA_PROTO_NUM);
  out.srcPort = proto->be16(CTA_PROTO_SRC_PORT);
  out.dstPort = proto->be16(CTA_PROTO_DST_PORT);
  return out;
}

}  // namespace

std::vector<uint8_t> buildGetGlobalStats(uint32_t seq) {
  return Builder(IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST | NLM_F_ACK, seq, AF_UNSPEC).done();
}

std::vector<uint8_t> buildDumpCpuStats(uint32_t seq) {
  return Builder(IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP, seq, AF_UNSPEC).done();
}

std::vector<uint8_t> buildDumpEntries(uint32_t seq, int family) {
  return Builder(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family).done();
}

std::vector<uint8_t> buildDeleteEntry(uint32_t seq, const ConntrackEntry& entry) {
  Builder b(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, entry.orig.src.family);
  putTuple(b.nlh, CTA_TUPLE_ORIG, entry.orig);
  if (entry.zone != 0) mnl_attr_put_u16(b.nlh, CTA_ZONE, htons(entry.zone));
  return b.done();
}

Result<ConntrackFill> parseGlobalStats(Bytes message) {
  auto m = ctMessage(message, {IPCTNL_MSG_CT_GET_STATS}, kGlobalStatsPolicy);
  if (!m) return fail(m.error());
  if (!m->attrs.has(CTA_STATS_GLOBAL_ENTRIES)) return failInvalid("conntrack global stats without an entry count");
  return ConntrackFill{m->attrs.be32(CTA_STATS_GLOBAL_ENTRIES), m->attrs.be32(CTA_STATS_GLOBAL_MAX_ENTRIES)};
}

Result<ConntrackCpuStats> parseCpuStats(Bytes message) {
  auto m = ctMessage(message, {IPCTNL_MSG_CT_GET_STATS_CPU}, kCpuStatsPolicy);
  if (!m) return fail(m.error());
  const Attrs& a = m->attrs;
  ConntrackCpuStats s;
  s.cpu = ntohs(m->nfg.res_id);
  s.found = a.be32(CTA_STATS_FOUND);
  s.invalid = a.be32(CTA_STATS_INVALID);
  s.insert = a.be32(CTA_STATS_INSERT);
  s.insertFailed = a.be32(CTA_STATS_INSERT_FAILED);
  s.drop = a.be32(CTA_STATS_DROP);
  s.earlyDrop = a.be32(CTA_STATS_EARLY_DROP);
  s.error = a.be32(CTA_STATS_ERROR);
  s.searchRestart = a.be32(CTA_STATS_SEARCH_RESTART);
  s.clashResolve = a.be32(CTA_STATS_CLASH_RESOLVE);
  s.chainTooLong = a.be32(CTA_STATS_CHAIN_TOOLONG);
  return s;
}

Result<ConntrackEntry> parseEntry(Bytes message) {
  // Dumps answer with the request's type (CT_GET) on current kernels, CT_NEW on older ones.
  auto m = ctMessage(message, {IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW}, kEntryPolicy);
  if (!m) return fail(m.error());
  const Attrs& a = m->attrs;
  ConntrackEntry e;
  auto orig = parseTuple(a, CTA_TUPLE_ORIG, "original");
  if (!orig) return fail(orig.error());
  auto reply = parseTuple(a, CTA_TUPLE_REPLY, "reply");
  if (!reply) return fail(reply.error());
  e.orig = *orig;
  e.reply = *reply;
  e.zone = a.be16(CTA_ZONE);
  e.status = a.be32(CTA_STATUS);
  e.id = a.be32(CTA_ID);
  return e;
}

}  // namespace nodeagent::netfilter::msg
