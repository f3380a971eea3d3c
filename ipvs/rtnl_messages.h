// Pure builders and parsers for the rtnetlink messages behind VipManager (links and
// addresses of the dummy interface that holds the service VIPs). Builders return one
// complete message with seq and pid 0 (the socket stamps them); parsers take the bytes of
// one reply and check every attribute against a policy before reading it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/netlink_attr.h"
#include "common/result.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs::rtnl {

using Message = std::vector<uint8_t>;

// ip link show NAME
Message buildGetLink(const std::string& name);
// ip link add NAME type dummy && ip link set NAME up   (NLM_F_CREATE | NLM_F_EXCL)
Message buildNewDummy(const std::string& name);
// ip link del dev IFINDEX
Message buildDelLink(int ifindex);
// ip addr add ADDR/32 dev IFINDEX [nodad] (/128 for IPv6) ; ip addr del ADDR/32 dev IFINDEX
Message buildAddress(bool add, int ifindex, const Address& a);
// ip addr show   (dump of every address; the caller keeps those of its interface)
Message buildDumpAddresses();

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND ("dummy", "veth", ...); empty when the kernel gave none
};
// An RTM_NEWLINK reply.
[[nodiscard]] Result<LinkInfo> parseLinkMessage(Bytes message);

struct AddressInfo {
  int ifindex = 0;
  Address address;  // IFA_LOCAL, or IFA_ADDRESS when there is no local address (IPv6)
};
// An RTM_NEWADDR reply.
[[nodiscard]] Result<AddressInfo> parseAddressMessage(Bytes message);

}  // namespace nodeagent::ipvs::rtnl
