// Pure ctnetlink message builders and parsers (no I/O), unit-tested byte for byte.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <vector>

#include "common/netlink_attr.h"
#include "common/result.h"
#include "netfilter/conntrack.h"

namespace nodeagent::netfilter::msg {

// conntrack -C   (IPCTNL_MSG_CT_GET_STATS: entries in this netns and the max)
std::vector<uint8_t> buildGetGlobalStats(uint32_t seq);
// conntrack -S   (IPCTNL_MSG_CT_GET_STATS_CPU dump: one message per CPU)
std::vector<uint8_t> buildDumpCpuStats(uint32_t seq);
// conntrack -L -f ipv4|ipv6   (IPCTNL_MSG_CT_GET dump; family AF_UNSPEC dumps both)
std::vector<uint8_t> buildDumpEntries(uint32_t seq, int family);
// conntrack -D -p PROTO -s SRC -d DST --sport SP --dport DP [-w ZONE]
// Deletes exactly one entry, named by its original tuple (and zone), with an ACK.
std::vector<uint8_t> buildDeleteEntry(uint32_t seq, const ConntrackEntry& entry);

// Decoders for the replies, each over the bytes of one message. Each checks the message
// length and type, then every attribute against its policy (type and length): a short or
// malformed attribute is an error naming it, never a read past it.
[[nodiscard]] Result<ConntrackFill> parseGlobalStats(Bytes message);
[[nodiscard]] Result<ConntrackCpuStats> parseCpuStats(Bytes message);
[[nodiscard]] Result<ConntrackEntry> parseEntry(Bytes message);

}  // namespace nodeagent::netfilter::msg
