// ProxyTable: the packet filter and masquerade rules of the IPVS service proxy, as the
// module sees them: a set of services, each with its VIP and whether its traffic is
// SNAT-ed. NftProxyTable (nftables over libmnl) is the real one; tests use a fake.
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <span>
#include <vector>

#include "common/result.h"

namespace nodeagent::netfilter {

// An address prefix (kube-proxy's --cluster-cidr, a loadBalancerSourceRanges entry).
struct NftPrefix {
  int family = 0;
  std::array<uint8_t, 16> addr{};
  int length = 0;
  auto operator<=>(const NftPrefix&) const = default;
};

// An endpoint of a service on this node: a connection from it to its own service that
// IPVS sends back to it is masqueraded (kube-proxy's KUBE-LOOP-BACK), else the endpoint
// would get a packet from its own address and drop it.
struct NftEndpoint {
  std::array<uint8_t, 16> addr{};  // the service's family
  uint16_t port = 0;               // host byte order
  auto operator<=>(const NftEndpoint&) const = default;
};

struct NftService {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};
  uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP
  uint16_t port = 0;     // host byte order
  bool masquerade = false;
  bool masqueradeOutside = false;  // SNAT only from outside the cluster CIDR of its family
  bool vip = true;  // the address is a VIP (in vips4/6: other ports dropped); false: a node address
  // loadBalancerSourceRanges: only sources in `allowedSources` (those of the service's
  // family) reach the service; the others are dropped before IPVS sees them.
  bool firewall = false;
  std::vector<NftPrefix> allowedSources;
  std::vector<NftEndpoint> hairpin;  // node-local endpoints (sorted, unique)
  auto operator<=>(const NftService&) const = default;
};

// One service's entry: `present` false removes whatever entry the service (family,
// address, protocol, port) has; true makes it exactly `service` (masquerade included).
struct NftChange {
  NftService service;
  bool present = true;
};

class ProxyTable {
 public:
  // A cluster CIDR (kube-proxy's --cluster-cidr), at most one per family.
  using Prefix = NftPrefix;
  virtual ~ProxyTable() = default;
  // Makes the table hold exactly `services` (`rebuild`: the whole table anew).
  [[nodiscard]] virtual Result<void> sync(const std::set<NftService>& services, bool rebuild = false) = 0;
  // Applies changes to the last synced set.
  [[nodiscard]] virtual Result<void> update(std::span<const NftChange> changes) = 0;
  // Removes the table (the proxy is switched off).
  [[nodiscard]] virtual Result<void> remove() = 0;
};

}  // namespace nodeagent::netfilter
