#include "netfilter/conntrack.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cerrno>
#include <cstring>

#include "common/ip_address.h"
#include "common/log.h"
#include "netfilter/conntrack_msg.h"

namespace nodeagent::netfilter {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  IpAddress a;
  int family = parseIpLiteral(text, a.bytes);
  if (family == 0) return failInvalid("not an IPv4 or IPv6 address: \"" + std::string(text) + "\"");
  a.family = family;
  return a;
}

std::string IpAddress::toString() const { return formatIpLiteral(family, bytes); }

namespace {

const char* protoName(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    default: return "proto";
  }
}

std::string tupleText(const ConntrackTuple& t) {
  return "src=" + t.src.toString() + " dst=" + t.dst.toString() + " sport=" + std::to_string(t.srcPort) +
         " dport=" + std::to_string(t.dstPort);
}

}  // namespace

std::string ConntrackEntry::toString() const {
  return std::string(protoName(orig.protocol)) + " " + tupleText(orig) + " | " + tupleText(reply) +
         (zone ? " zone=" + std::to_string(zone) : "");
}

ConntrackCpuStats& ConntrackCpuStats::operator+=(const ConntrackCpuStats& o) {
  found += o.found;
  invalid += o.invalid;
  insert += o.insert;
  insertFailed += o.insertFailed;
  drop += o.drop;
  earlyDrop += o.earlyDrop;
  error += o.error;
  searchRestart += o.searchRestart;
  clashResolve += o.clashResolve;
  chainTooLong += o.chainTooLong;
  return *this;
}

bool tupleMatches(const ConntrackTuple& t, const FlowMatch& m, const IpAddress& ip, bool useSource) {
  if (t.protocol != m.protocol) return false;
  const IpAddress& addr = useSource ? t.src : t.dst;
  if (!(addr == ip)) return false;
  uint16_t port = useSource ? t.srcPort : t.dstPort;
  return m.port == 0 || port == m.port;
}

Result<Conntrack> Conntrack::open() {
  auto sock = NetlinkSocket::open(NETLINK_NETFILTER);
  if (!sock) return fail(sock.error().wrap("open ctnetlink socket"));
  return Conntrack(std::move(*sock));
}

Result<ConntrackFill> Conntrack::fill() {
  ConntrackFill out;
  bool got = false;
  auto r = sock_.query(msg::buildGetGlobalStats(0), [&](Bytes nlh) -> Result<void> {
    auto f = msg::parseGlobalStats(nlh);
    if (!f) return fail(f.error());
    out = *f;
    got = true;
    return {};
  });
  if (!r) return fail(r.error().wrap("conntrack fill level"));
  if (!got) return failInvalid("conntrack fill level: the kernel sent no statistics");
  return out;
}

Result<std::vector<ConntrackCpuStats>> Conntrack::cpuStats() {
  std::vector<ConntrackCpuStats> out;
  auto r = sock_.dump(msg::buildDumpCpuStats(0), [&](Bytes nlh) -> Result<void> {
    auto s = msg::parseCpuStats(nlh);
    if (!s) return fail(s.error());
    out.push_back(*s);
    return {};
  });
  if (!r) return fail(r.error().wrap("conntrack per-CPU stats"));
  return out;
}

Result<ConntrackStats> Conntrack::stats() {
  ConntrackStats s;
  auto f = fill();
  if (!f) return fail(f.error());
  s.fill = *f;
  auto c = cpuStats();
  if (!c) return fail(c.error());
  s.cpus = std::move(*c);
  for (const auto& cpu : s.cpus) s.total += cpu;
  return s;
}

Result<std::vector<ConntrackEntry>> Conntrack::list(int family) {
  std::vector<ConntrackEntry> out;
  auto r = sock_.dump(msg::buildDumpEntries(0, family), [&](Bytes nlh) -> Result<void> {
    auto e = msg::parseEntry(nlh);
    if (!e) return fail(e.error());
    out.push_back(std::move(*e));
    return {};
  });
  if (!r) return fail(r.error().wrap("list conntrack entries"));
  return out;
}

Result<size_t> Conntrack::deleteIf(const std::function<bool(const ConntrackEntry&)>& pred) {
  auto entries = list(AF_UNSPEC);
  if (!entries) return fail(entries.error());
  std::vector<const ConntrackEntry*> matched;
  std::vector<std::vector<uint8_t>> msgs;
  for (const auto& e : *entries)
    if (pred(e)) {
      matched.push_back(&e);
      msgs.push_back(msg::buildDeleteEntry(0, e));  // the socket stamps sequence numbers
    }
  if (msgs.empty()) return size_t{0};
  auto acks = sock_.transact(msgs);
  if (!acks) return fail(acks.error().wrap("delete conntrack entries"));
  size_t deleted = 0;
  for (size_t i = 0; i < acks->size(); ++i) {
    const auto& ack = (*acks)[i];
    if (ack.error == 0) {
      ++deleted;
      log::get("netfilter")->debug("deleted conntrack entry {}", matched[i]->toString());
    } else if (ack.error != ENOENT) {  // ENOENT: it expired meanwhile
      return failErrno(ack.error, "delete conntrack entry " + matched[i]->toString() +
                                      (ack.message.empty() ? "" : " (" + ack.message + ")"));
    }
  }
  return deleted;
}

Result<size_t> Conntrack::deleteMatching(std::span<const FlowMatch> natDst, std::span<const FlowMatch> origDst) {
  std::vector<std::pair<const FlowMatch*, IpAddress>> nat, orig;
  for (const auto& m : natDst) {
    auto ip = IpAddress::parse(m.ip);
    if (!ip) return fail(ip.error());
    nat.emplace_back(&m, *ip);
  }
  for (const auto& m : origDst) {
    auto ip = IpAddress::parse(m.ip);
    if (!ip) return fail(ip.error());
    orig.emplace_back(&m, *ip);
  }
  if (nat.empty() && orig.empty()) return size_t{0};
  return deleteIf([&](const ConntrackEntry& e) {
    for (const auto& [m, ip] : nat)
      if (tupleMatches(e.reply, *m, ip, true)) return true;
    for (const auto& [m, ip] : orig)
      if (tupleMatches(e.orig, *m, ip, false)) return true;
    return false;
  });
}

Result<size_t> Conntrack::deleteByOrigDst(const FlowMatch& m) {
  auto ip = IpAddress::parse(m.ip);
  if (!ip) return fail(ip.error());
  return deleteIf([&](const ConntrackEntry& e) { return tupleMatches(e.orig, m, *ip, false); });
}

Result<size_t> Conntrack::deleteByNatDst(const FlowMatch& m) {
  auto ip = IpAddress::parse(m.ip);
  if (!ip) return fail(ip.error());
  return deleteIf([&](const ConntrackEntry& e) { return tupleMatches(e.reply, m, *ip, true); });
}

}  // namespace nodeagent::netfilter
