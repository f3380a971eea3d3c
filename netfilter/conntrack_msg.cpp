#include "netfilter/conntrack_msg.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstring>

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

// Attribute tables: index = attribute type, value = the attribute (or null).
template <size_t N>
struct Attrs {
  std::array<const nlattr*, N> a{};
  const nlattr* operator[](size_t i) const { return i < N ? a[i] : nullptr; }
};

template <size_t N>
int collect(const nlattr* attr, void* data) {
  auto* t = static_cast<Attrs<N>*>(data);
  uint16_t type = mnl_attr_get_type(attr);
  if (type < N) t->a[type] = attr;
  return MNL_CB_OK;
}

template <size_t N>
Attrs<N> parseTop(const nlmsghdr* nlh) {
  Attrs<N> t;
  mnl_attr_parse(nlh, sizeof(nfgenmsg), collect<N>, &t);
  return t;
}

template <size_t N>
Attrs<N> parseNested(const nlattr* nest) {
  Attrs<N> t;
  if (nest) mnl_attr_parse_nested(nest, collect<N>, &t);
  return t;
}

Result<void> expectType(const nlmsghdr* nlh, uint8_t msgType, const char* what) {
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return failInvalid(std::string(what) + ": short message");
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK || (nlh->nlmsg_type & 0xff) != msgType)
    return failInvalid(std::string(what) + ": unexpected message type " + std::to_string(nlh->nlmsg_type));
  return {};
}

uint64_t u32Or0(const nlattr* a) {
  if (!a || mnl_attr_get_payload_len(a) < 4) return 0;
  return ntohl(mnl_attr_get_u32(a));
}

Result<ConntrackTuple> parseTuple(const nlattr* nest, const char* which) {
  if (!nest) return failInvalid(std::string("conntrack entry without ") + which + " tuple");
  auto t = parseNested<CTA_TUPLE_MAX + 1>(nest);
  auto ip = parseNested<CTA_IP_MAX + 1>(t[CTA_TUPLE_IP]);
  auto proto = parseNested<CTA_PROTO_MAX + 1>(t[CTA_TUPLE_PROTO]);
  ConntrackTuple out;
  auto readIp = [](const nlattr* a, int family, IpAddress& dst) -> bool {
    size_t len = family == AF_INET ? 4 : 16;
    if (!a || mnl_attr_get_payload_len(a) < len) return false;
    dst.family = family;
    std::memcpy(dst.bytes.data(), mnl_attr_get_payload(a), len);
    return true;
  };
  bool ok = ip[CTA_IP_V4_SRC] ? readIp(ip[CTA_IP_V4_SRC], AF_INET, out.src) && readIp(ip[CTA_IP_V4_DST], AF_INET, out.dst)
                              : readIp(ip[CTA_IP_V6_SRC], AF_INET6, out.src) && readIp(ip[CTA_IP_V6_DST], AF_INET6, out.dst);
  if (!ok) return failInvalid(std::string("conntrack ") + which + " tuple without addresses");
  if (!proto[CTA_PROTO_NUM]) return failInvalid(std::string("conntrack ") + which + " tuple without protocol");
  out.protocol = mnl_attr_get_u8(proto[CTA_PROTO_NUM]);
  if (proto[CTA_PROTO_SRC_PORT]) out.srcPort = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_SRC_PORT]));
  if (proto[CTA_PROTO_DST_PORT]) out.dstPort = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_DST_PORT]));
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

Result<ConntrackFill> parseGlobalStats(const nlmsghdr* nlh) {
  if (auto r = expectType(nlh, IPCTNL_MSG_CT_GET_STATS, "conntrack global stats"); !r) return fail(r.error());
  auto a = parseTop<CTA_STATS_GLOBAL_MAX + 1>(nlh);
  if (!a[CTA_STATS_GLOBAL_ENTRIES]) return failInvalid("conntrack global stats without an entry count");
  return ConntrackFill{u32Or0(a[CTA_STATS_GLOBAL_ENTRIES]), u32Or0(a[CTA_STATS_GLOBAL_MAX_ENTRIES])};
}

Result<ConntrackCpuStats> parseCpuStats(const nlmsghdr* nlh) {
  if (auto r = expectType(nlh, IPCTNL_MSG_CT_GET_STATS_CPU, "conntrack cpu stats"); !r) return fail(r.error());
  auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  auto a = parseTop<CTA_STATS_MAX + 1>(nlh);
  ConntrackCpuStats s;
  s.cpu = ntohs(nfg->res_id);
  s.found = u32Or0(a[CTA_STATS_FOUND]);
  s.invalid = u32Or0(a[CTA_STATS_INVALID]);
  s.insert = u32Or0(a[CTA_STATS_INSERT]);
  s.insertFailed = u32Or0(a[CTA_STATS_INSERT_FAILED]);
  s.drop = u32Or0(a[CTA_STATS_DROP]);
  s.earlyDrop = u32Or0(a[CTA_STATS_EARLY_DROP]);
  s.error = u32Or0(a[CTA_STATS_ERROR]);
  s.searchRestart = u32Or0(a[CTA_STATS_SEARCH_RESTART]);
  s.clashResolve = u32Or0(a[CTA_STATS_CLASH_RESOLVE]);
  s.chainTooLong = u32Or0(a[CTA_STATS_CHAIN_TOOLONG]);
  return s;
}

Result<ConntrackEntry> parseEntry(const nlmsghdr* nlh) {
  // Dumps answer with the request's type (CT_GET) on current kernels, CT_NEW on older ones.
  if (auto r = expectType(nlh, IPCTNL_MSG_CT_GET, "conntrack entry"); !r)
    if (auto r2 = expectType(nlh, IPCTNL_MSG_CT_NEW, "conntrack entry"); !r2) return fail(r.error());
  auto a = parseTop<CTA_MAX + 1>(nlh);
  ConntrackEntry e;
  auto orig = parseTuple(a[CTA_TUPLE_ORIG], "original");
  if (!orig) return fail(orig.error());
  auto reply = parseTuple(a[CTA_TUPLE_REPLY], "reply");
  if (!reply) return fail(reply.error());
  e.orig = *orig;
  e.reply = *reply;
  if (a[CTA_ZONE]) e.zone = ntohs(mnl_attr_get_u16(a[CTA_ZONE]));
  e.status = static_cast<uint32_t>(u32Or0(a[CTA_STATUS]));
  e.id = static_cast<uint32_t>(u32Or0(a[CTA_ID]));
  return e;
}

}  // namespace nodeagent::netfilter::msg
