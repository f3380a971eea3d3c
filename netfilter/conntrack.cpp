#include "netfilter/conntrack.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "netfilter/conntrack_msg.h"

namespace nodeagent::netfilter {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return failInvalid("not an IPv4 or IPv6 address: \"" + s + "\"");
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

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
  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) return failErrno("open ctnetlink socket");
  int one = 1;
  // Extended ACKs carry the kernel's own words for a rejected request.
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  int rcvbuf = 1 << 20;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return failErrno("bind ctnetlink socket");
  socklen_t len = sizeof sa;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return failErrno("getsockname ctnetlink socket");
  return Conntrack(std::move(fd), sa.nl_pid);
}

Result<void> Conntrack::roundTrip(const std::vector<uint8_t>& request,
                                  const std::function<Result<void>(const nlmsghdr*)>& onMsg) {
  const auto* req = reinterpret_cast<const nlmsghdr*>(request.data());
  uint32_t seq = req->nlmsg_seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = ::sendto(fd_.get(), request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (n >= 0) break;
    if (errno != EINTR) return failErrno("send ctnetlink request");
  }
  std::vector<uint8_t> buf(64 * 1024);
  // A dump ends with NLMSG_DONE, a request with NLM_F_ACK with its ACK (error 0).
  Result<void> firstError;
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("receive ctnetlink reply");
    }
    int left = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_seq != seq || (nlh->nlmsg_pid != 0 && nlh->nlmsg_pid != portId_)) continue;  // stale
      if (nlh->nlmsg_type == NLMSG_DONE) return firstError;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error == 0) return firstError;  // the ACK
        std::string what = "ctnetlink request";
        // Extended ACK: the kernel's message follows the echoed request header.
        if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
          size_t off = sizeof(nlmsgerr);
          if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - sizeof(nlmsghdr);
          const auto* base = static_cast<const uint8_t*>(mnl_nlmsg_get_payload(nlh));
          size_t total = nlh->nlmsg_len - NLMSG_HDRLEN;
          for (size_t p = off; p + sizeof(nlattr) <= total;) {
            const auto* a = reinterpret_cast<const nlattr*>(base + p);
            if (a->nla_len < sizeof(nlattr)) break;
            if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
              what += " (" + std::string(static_cast<const char*>(mnl_attr_get_payload(a))) + ")";
            p += NLA_ALIGN(a->nla_len);
          }
        }
        return failErrno(-err->error, what);
      }
      if (auto r = onMsg(nlh); !r && firstError) firstError = r;
    }
  }
}

Result<ConntrackFill> Conntrack::fill() {
  ConntrackFill out;
  bool got = false;
  auto r = roundTrip(msg::buildGetGlobalStats(nextSeq()), [&](const nlmsghdr* nlh) -> Result<void> {
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
  auto r = roundTrip(msg::buildDumpCpuStats(nextSeq()), [&](const nlmsghdr* nlh) -> Result<void> {
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
  auto r = roundTrip(msg::buildDumpEntries(nextSeq(), family), [&](const nlmsghdr* nlh) -> Result<void> {
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
  size_t deleted = 0;
  for (const auto& e : *entries) {
    if (!pred(e)) continue;
    auto r = roundTrip(msg::buildDeleteEntry(nextSeq(), e), [](const nlmsghdr*) -> Result<void> { return {}; });
    if (r) {
      ++deleted;
      log::get("netfilter")->debug("deleted conntrack entry {}", e.toString());
    } else if (r.error().errnoValue() != ENOENT) {  // ENOENT: it expired meanwhile
      return fail(r.error().wrap("delete conntrack entry " + e.toString()));
    }
  }
  return deleted;
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
