// Conntrack over ctnetlink: fill level, per-CPU statistics and deletion of entries by
// original destination or by NAT destination (the real server a flow was DNAT-ed to).
//
// Everything works on the network namespace of the calling thread, so tests run it in a
// fresh namespace and the IPVS module in the host's.
//
// Typical use by the IPVS module when a UDP endpoint goes away (stale flows would keep
// sending to the dead backend until they time out):
//
//   auto ct = netfilter::Conntrack::open();
//   if (!ct) ...;
//   // flows that still point at the removed real server 10.0.1.5:5353
//   auto n = ct->deleteByNatDst({IPPROTO_UDP, "10.0.1.5", 5353});
//   // all flows to a removed service VIP 10.96.0.10:53 (any backend)
//   auto m = ct->deleteByOrigDst({IPPROTO_UDP, "10.96.0.10", 53});
//
// Both return the number of entries the kernel deleted. IPv4 and IPv6 literals work.
#pragma once

#include <linux/netlink.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/netlink_socket.h"
#include "common/result.h"

namespace nodeagent::netfilter {

// An IPv4 or IPv6 address in network byte order.
struct IpAddress {
  int family = AF_INET;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  [[nodiscard]] static Result<IpAddress> parse(std::string_view text);
  std::string toString() const;
  size_t size() const { return family == AF_INET ? 4 : 16; }
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// What one side of a flow must match. port 0 matches any port.
struct FlowMatch {
  uint8_t protocol = IPPROTO_UDP;  // IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP
  std::string ip;                  // IPv4 or IPv6 literal
  uint16_t port = 0;
};

// One direction of a connection (addresses and ports as the kernel tracks them).
struct ConntrackTuple {
  IpAddress src, dst;
  uint8_t protocol = 0;
  uint16_t srcPort = 0, dstPort = 0;  // host byte order; 0 for protocols without ports
};

// One conntrack entry. `reply.src` is where the flow really goes after DNAT.
struct ConntrackEntry {
  ConntrackTuple orig, reply;
  uint16_t zone = 0;
  uint32_t status = 0;  // IPS_* bits
  uint32_t id = 0;
  // "udp src=... dst=... sport=... dport=... | src=... dst=..." for logs and tests.
  std::string toString() const;
};

// One CPU's counters (IPCTNL_MSG_CT_GET_STATS_CPU), as `conntrack -S` shows them.
struct ConntrackCpuStats {
  unsigned cpu = 0;
  uint64_t found = 0, invalid = 0, insert = 0, insertFailed = 0, drop = 0, earlyDrop = 0, error = 0,
           searchRestart = 0, clashResolve = 0, chainTooLong = 0;
  ConntrackCpuStats& operator+=(const ConntrackCpuStats& o);
};

// Table fill: entries in this namespace against the (global) nf_conntrack_max.
struct ConntrackFill {
  uint64_t count = 0;
  uint64_t max = 0;
  double percent() const { return max == 0 ? 0.0 : 100.0 * double(count) / double(max); }
};

struct ConntrackStats {
  ConntrackFill fill;
  std::vector<ConntrackCpuStats> cpus;
  ConntrackCpuStats total;  // sum over cpus (cpu field unused)
};

// A ctnetlink client. Not thread-safe: use one per thread (they are cheap to open).
class Conntrack {
 public:
  // Opens a NETLINK_NETFILTER socket in the calling thread's network namespace.
  [[nodiscard]] static Result<Conntrack> open();

  [[nodiscard]] Result<ConntrackFill> fill();
  [[nodiscard]] Result<std::vector<ConntrackCpuStats>> cpuStats();
  [[nodiscard]] Result<ConntrackStats> stats();

  // All entries of a family (AF_INET, AF_INET6, or AF_UNSPEC for both).
  [[nodiscard]] Result<std::vector<ConntrackEntry>> list(int family = AF_UNSPEC);

  // conntrack -D -p udp --orig-dst IP [--orig-port-dst PORT]
  // Entries whose original destination (the address the client sent to: a VIP) matches.
  [[nodiscard]] Result<size_t> deleteByOrigDst(const FlowMatch& match);
  // conntrack -D -p udp --reply-src IP [--reply-port-src PORT]
  // Entries whose reply source matches: after DNAT (iptables, nft or IPVS with
  // net.ipv4.vs.conntrack=1) that is the real server the flow was sent to.
  [[nodiscard]] Result<size_t> deleteByNatDst(const FlowMatch& match);
  // Both of the above for many matches at once, from one dump of the table: entries whose
  // reply source matches any of `natDst` or whose original destination matches any of
  // `origDst`. What a pass of the IPVS module uses, however many backends it removed.
  [[nodiscard]] Result<size_t> deleteMatching(std::span<const FlowMatch> natDst, std::span<const FlowMatch> origDst);
  // Deletes every entry (of both families) for which `pred` is true; returns how many the
  // kernel deleted (entries that vanished meanwhile are not counted).
  [[nodiscard]] Result<size_t> deleteIf(const std::function<bool(const ConntrackEntry&)>& pred);

 private:
  explicit Conntrack(NetlinkSocket sock) : sock_(std::move(sock)) {}
  NetlinkSocket sock_;  // stamps sequence numbers, batches ACKs, decodes extended ACKs
};

// Whether `tuple`'s destination (orig) or source (reply) matches `m`; `useSource` picks.
bool tupleMatches(const ConntrackTuple& tuple, const FlowMatch& m, const IpAddress& ip, bool useSource);

}  // namespace nodeagent::netfilter
