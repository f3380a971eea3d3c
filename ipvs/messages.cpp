#include "ipvs/messages.h"

#include <arpa/inet.h>
#include <linux/ip_vs.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace nodeagent::ipvs {

namespace {

struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

MsgPtr start(uint16_t familyId, uint8_t cmd, int flags = 0) {
  MsgPtr m(nlmsg_alloc_size(512));
  if (!m) std::abort();  // out of memory: not an environment error we can report
  if (!genlmsg_put(m.get(), 0, 0, familyId, 0, flags | NLM_F_REQUEST | NLM_F_ACK, cmd, IPVS_GENL_VERSION))
    std::abort();
  return m;
}

Message finish(const MsgPtr& m) {
  const nlmsghdr* h = nlmsg_hdr(m.get());
  const auto* p = reinterpret_cast<const uint8_t*>(h);
  return Message(p, p + h->nlmsg_len);
}

// Every put fits in the 512-byte buffer by construction; a failure is a programming error.
void check(int rc) {
  if (rc < 0) std::abort();
}

void putServiceKey(nl_msg* m, const ServiceKey& k) {
  check(nla_put_u16(m, IPVS_SVC_ATTR_AF, k.family));
  if (k.fwmark != 0) {
    check(nla_put_u32(m, IPVS_SVC_ATTR_FWMARK, k.fwmark));
    return;
  }
  check(nla_put_u16(m, IPVS_SVC_ATTR_PROTOCOL, static_cast<uint16_t>(k.protocol)));
  check(nla_put(m, IPVS_SVC_ATTR_ADDR, 16, k.address.bytes.data()));
  check(nla_put_u16(m, IPVS_SVC_ATTR_PORT, htons(k.port)));
}

void putService(nl_msg* m, const Service& s) {
  nlattr* nest = nla_nest_start(m, IPVS_CMD_ATTR_SERVICE);
  if (!nest) std::abort();
  putServiceKey(m, s.key);
  check(nla_put_string(m, IPVS_SVC_ATTR_SCHED_NAME, s.scheduler.c_str()));
  ip_vs_flags flags{s.flags & ~uint32_t(IP_VS_SVC_F_HASHED), ~0u};
  check(nla_put(m, IPVS_SVC_ATTR_FLAGS, sizeof flags, &flags));
  check(nla_put_u32(m, IPVS_SVC_ATTR_TIMEOUT, s.timeout));
  check(nla_put_u32(m, IPVS_SVC_ATTR_NETMASK, effectiveNetmask(s)));
  nla_nest_end(m, nest);
}

void putServiceKeyNest(nl_msg* m, const ServiceKey& k) {
  nlattr* nest = nla_nest_start(m, IPVS_CMD_ATTR_SERVICE);
  if (!nest) std::abort();
  putServiceKey(m, k);
  nla_nest_end(m, nest);
}

void putDestKey(nl_msg* m, const DestKey& d) {
  check(nla_put(m, IPVS_DEST_ATTR_ADDR, 16, d.address.bytes.data()));
  check(nla_put_u16(m, IPVS_DEST_ATTR_PORT, htons(d.port)));
  check(nla_put_u16(m, IPVS_DEST_ATTR_ADDR_FAMILY, d.address.family));
}

void putDest(nl_msg* m, const Destination& d) {
  nlattr* nest = nla_nest_start(m, IPVS_CMD_ATTR_DEST);
  if (!nest) std::abort();
  putDestKey(m, d.key);
  check(nla_put_u32(m, IPVS_DEST_ATTR_FWD_METHOD, static_cast<uint32_t>(d.forward)));
  check(nla_put_u32(m, IPVS_DEST_ATTR_WEIGHT, d.weight));
  check(nla_put_u32(m, IPVS_DEST_ATTR_U_THRESH, d.upperThreshold));
  check(nla_put_u32(m, IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold));
  nla_nest_end(m, nest);
}

// Length-checked getters: a short attribute is a protocol violation, not a crash.
template <class T>
bool get(nlattr* a, T& out) {
  if (!a || nla_len(a) < static_cast<int>(sizeof(T))) return false;
  std::memcpy(&out, nla_data(a), sizeof(T));
  return true;
}

Result<nlattr*> topAttr(const nlmsghdr* h, int type, int max, std::vector<nlattr*>& tb) {
  tb.assign(max + 1, nullptr);
  auto* hh = const_cast<nlmsghdr*>(h);
  if (genlmsg_parse(hh, 0, tb.data(), max, nullptr) < 0) return failInvalid("malformed IPVS netlink reply");
  if (!tb[type]) return failInvalid("IPVS reply without attribute " + std::to_string(type));
  return tb[type];
}

void parseStats(nlattr* nest, bool is64, Stats& s) {
  nlattr* tb[IPVS_STATS_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_STATS_ATTR_MAX, nest, nullptr) < 0) return;
  auto rd = [&](int t, uint64_t& out) {
    if (is64) {
      get(tb[t], out);
    } else {
      uint32_t v = 0;
      if (get(tb[t], v)) out = v;
    }
  };
  rd(IPVS_STATS_ATTR_CONNS, s.conns);
  rd(IPVS_STATS_ATTR_INPKTS, s.inPackets);
  rd(IPVS_STATS_ATTR_OUTPKTS, s.outPackets);
  rd(IPVS_STATS_ATTR_INBYTES, s.inBytes);
  rd(IPVS_STATS_ATTR_OUTBYTES, s.outBytes);
}

}  // namespace

Message buildAddService(uint16_t familyId, const Service& s) {
  auto m = start(familyId, IPVS_CMD_NEW_SERVICE);
  putService(m.get(), s);
  return finish(m);
}

Message buildEditService(uint16_t familyId, const Service& s) {
  auto m = start(familyId, IPVS_CMD_SET_SERVICE);
  putService(m.get(), s);
  return finish(m);
}

Message buildDelService(uint16_t familyId, const ServiceKey& k) {
  auto m = start(familyId, IPVS_CMD_DEL_SERVICE);
  putServiceKeyNest(m.get(), k);
  return finish(m);
}

Message buildAddDest(uint16_t familyId, const ServiceKey& k, const Destination& d) {
  auto m = start(familyId, IPVS_CMD_NEW_DEST);
  putServiceKeyNest(m.get(), k);
  putDest(m.get(), d);
  return finish(m);
}

Message buildEditDest(uint16_t familyId, const ServiceKey& k, const Destination& d) {
  auto m = start(familyId, IPVS_CMD_SET_DEST);
  putServiceKeyNest(m.get(), k);
  putDest(m.get(), d);
  return finish(m);
}

Message buildDelDest(uint16_t familyId, const ServiceKey& k, const DestKey& d) {
  auto m = start(familyId, IPVS_CMD_DEL_DEST);
  putServiceKeyNest(m.get(), k);
  nlattr* nest = nla_nest_start(m.get(), IPVS_CMD_ATTR_DEST);
  if (!nest) std::abort();
  putDestKey(m.get(), d);
  nla_nest_end(m.get(), nest);
  return finish(m);
}

Message buildGetServices(uint16_t familyId) {
  return finish(start(familyId, IPVS_CMD_GET_SERVICE, NLM_F_DUMP));
}

Message buildGetDests(uint16_t familyId, const ServiceKey& k) {
  auto m = start(familyId, IPVS_CMD_GET_DEST, NLM_F_DUMP);
  putServiceKeyNest(m.get(), k);
  return finish(m);
}

Message buildSetTimeouts(uint16_t familyId, const Timeouts& t) {
  auto m = start(familyId, IPVS_CMD_SET_CONFIG);
  if (t.tcp) check(nla_put_u32(m.get(), IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcp));
  if (t.tcpFin) check(nla_put_u32(m.get(), IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcpFin));
  if (t.udp) check(nla_put_u32(m.get(), IPVS_CMD_ATTR_TIMEOUT_UDP, t.udp));
  return finish(m);
}

Message buildGetTimeouts(uint16_t familyId) { return finish(start(familyId, IPVS_CMD_GET_CONFIG)); }

Result<ServiceState> parseServiceMessage(const nlmsghdr* h) {
  std::vector<nlattr*> top;
  auto nest = topAttr(h, IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_MAX, top);
  if (!nest) return fail(nest.error());
  nlattr* tb[IPVS_SVC_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_SVC_ATTR_MAX, *nest, nullptr) < 0) return failInvalid("malformed IPVS service");
  ServiceState st;
  Service& s = st.service;
  if (!get(tb[IPVS_SVC_ATTR_AF], s.key.family)) return failInvalid("IPVS service without address family");
  if (tb[IPVS_SVC_ATTR_FWMARK]) get(tb[IPVS_SVC_ATTR_FWMARK], s.key.fwmark);
  if (s.key.fwmark == 0) {
    uint16_t proto = 0, port = 0;
    if (!get(tb[IPVS_SVC_ATTR_PROTOCOL], proto) || !get(tb[IPVS_SVC_ATTR_PORT], port) ||
        !tb[IPVS_SVC_ATTR_ADDR])
      return failInvalid("IPVS service without protocol, address or port");
    s.key.protocol = static_cast<Protocol>(proto);
    s.key.port = ntohs(port);
    s.key.address.family = static_cast<uint8_t>(s.key.family);
    std::memcpy(s.key.address.bytes.data(), nla_data(tb[IPVS_SVC_ATTR_ADDR]),
                std::min<int>(16, nla_len(tb[IPVS_SVC_ATTR_ADDR])));
    if (s.key.family == AF_INET) std::fill(s.key.address.bytes.begin() + 4, s.key.address.bytes.end(), 0);
  }
  if (tb[IPVS_SVC_ATTR_SCHED_NAME]) s.scheduler = nla_get_string(tb[IPVS_SVC_ATTR_SCHED_NAME]);
  ip_vs_flags flags{};
  if (get(tb[IPVS_SVC_ATTR_FLAGS], flags)) s.flags = flags.flags & ~uint32_t(IP_VS_SVC_F_HASHED);
  get(tb[IPVS_SVC_ATTR_TIMEOUT], s.timeout);
  get(tb[IPVS_SVC_ATTR_NETMASK], s.netmask);
  if (s.netmask == effectiveNetmask(Service{.key = s.key})) s.netmask = 0;  // the default
  if (tb[IPVS_SVC_ATTR_STATS64])
    parseStats(tb[IPVS_SVC_ATTR_STATS64], true, st.stats);
  else if (tb[IPVS_SVC_ATTR_STATS])
    parseStats(tb[IPVS_SVC_ATTR_STATS], false, st.stats);
  return st;
}

Result<DestinationState> parseDestMessage(const nlmsghdr* h, uint16_t svcFamily) {
  std::vector<nlattr*> top;
  auto nest = topAttr(h, IPVS_CMD_ATTR_DEST, IPVS_CMD_ATTR_MAX, top);
  if (!nest) return fail(nest.error());
  nlattr* tb[IPVS_DEST_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_DEST_ATTR_MAX, *nest, nullptr) < 0) return failInvalid("malformed IPVS destination");
  DestinationState st;
  Destination& d = st.dest;
  uint16_t family = svcFamily, port = 0;
  get(tb[IPVS_DEST_ATTR_ADDR_FAMILY], family);
  if (!tb[IPVS_DEST_ATTR_ADDR] || !get(tb[IPVS_DEST_ATTR_PORT], port))
    return failInvalid("IPVS destination without address or port");
  d.key.address.family = static_cast<uint8_t>(family);
  std::memcpy(d.key.address.bytes.data(), nla_data(tb[IPVS_DEST_ATTR_ADDR]),
              std::min<int>(16, nla_len(tb[IPVS_DEST_ATTR_ADDR])));
  if (family == AF_INET) std::fill(d.key.address.bytes.begin() + 4, d.key.address.bytes.end(), 0);
  d.key.port = ntohs(port);
  uint32_t fwd = 0;
  get(tb[IPVS_DEST_ATTR_FWD_METHOD], fwd);
  d.forward = static_cast<Forward>(fwd & IP_VS_CONN_F_FWD_MASK);
  get(tb[IPVS_DEST_ATTR_WEIGHT], d.weight);
  get(tb[IPVS_DEST_ATTR_U_THRESH], d.upperThreshold);
  get(tb[IPVS_DEST_ATTR_L_THRESH], d.lowerThreshold);
  get(tb[IPVS_DEST_ATTR_ACTIVE_CONNS], st.activeConns);
  get(tb[IPVS_DEST_ATTR_INACT_CONNS], st.inactiveConns);
  get(tb[IPVS_DEST_ATTR_PERSIST_CONNS], st.persistentConns);
  if (tb[IPVS_DEST_ATTR_STATS64])
    parseStats(tb[IPVS_DEST_ATTR_STATS64], true, st.stats);
  else if (tb[IPVS_DEST_ATTR_STATS])
    parseStats(tb[IPVS_DEST_ATTR_STATS], false, st.stats);
  return st;
}

Result<Timeouts> parseTimeoutsMessage(const nlmsghdr* h) {
  nlattr* tb[IPVS_CMD_ATTR_MAX + 1] = {};
  if (genlmsg_parse(const_cast<nlmsghdr*>(h), 0, tb, IPVS_CMD_ATTR_MAX, nullptr) < 0)
    return failInvalid("malformed IPVS config reply");
  Timeouts t;
  get(tb[IPVS_CMD_ATTR_TIMEOUT_TCP], t.tcp);
  get(tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN], t.tcpFin);
  get(tb[IPVS_CMD_ATTR_TIMEOUT_UDP], t.udp);
  return t;
}

}  // namespace nodeagent::ipvs
