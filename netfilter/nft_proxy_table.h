// NftProxyTable: the one nftables table the IPVS proxy owns (default `inet nodeagent-ipvs`),
// written with libnftnl in atomic batches over libmnl. Sets hold the VIPs and the service
// ports, so service changes are element changes, never rule rewrites:
//
//   table inet nodeagent-ipvs {
//     set vips4 { type ipv4_addr }            set vips6 { type ipv6_addr }
//     set svc4  { type ipv4_addr . inet_proto . inet_service }   (svc6 likewise)
//     set masq4 { same type: services whose traffic is SNAT-ed }  (masq6 likewise)
//     set masqx4 { same type: SNAT-ed only from outside the cluster CIDR } (masqx6 likewise)
//     chain input  { type filter hook input priority filter;
//       meta l4proto tcp|udp|sctp ip daddr @vips4 ip daddr . meta l4proto . th dport != @svc4 drop }
//     chain mark-pre / mark-out { type filter hook prerouting|output priority mangle;
//       ip daddr . meta l4proto . th dport @masq4 meta mark set meta mark | MARK
//       ip saddr != CLUSTER_CIDR4 ip daddr . meta l4proto . th dport @masqx4 meta mark set ... }
//     set fw4 { same type: load balancer frontends with loadBalancerSourceRanges }  (fw6 likewise)
//     set fwallow4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval:
//                    frontend . allowed source range }                              (fwallow6 likewise)
//     set loop4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr: a node-local
//                 endpoint . its port . itself (hairpin) }                          (loop6 likewise)
//     chain mark-pre / mark-out (first):
//       ip daddr . meta l4proto . th dport @fw4 ip daddr . meta l4proto . th dport . ip saddr != @fwallow4 drop
//     chain masq { type nat hook postrouting priority srcnat; meta mark & MARK == MARK masquerade
//       ip daddr . meta l4proto . th dport . ip saddr @loop4 masquerade }
//   }
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "netfilter/proxy_table.h"

namespace nodeagent::netfilter {

// The element key bytes of a service in svc4/svc6 (addr . proto . port, each field padded
// to 4 bytes as nft's concatenations are).
std::vector<uint8_t> nftServiceKey(const NftService& s);

// nft add element inet TABLE SET { KEY, ... } (add), nft delete element ... (!add): one
// NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM message with sequence number `seq`, as the table
// sends them inside its batches (a service change is made of these).
std::vector<uint8_t> buildSetElemsMessage(const std::string& table, const std::string& set,
                                          std::span<const std::vector<uint8_t>> keys, bool add, uint32_t seq);

class NftProxyTable final : public ProxyTable {
 public:
  // `clusterCidrs`: at most one per family (kube-proxy's --cluster-cidr), for masqx4/6.
  NftProxyTable(std::string table, uint32_t mark, std::vector<Prefix> clusterCidrs = {})
      : table_(std::move(table)), mark_(mark), clusterCidrs_(std::move(clusterCidrs)) {}
  // The first call of a process (and `rebuild`) replaces the whole table in one atomic
  // batch (delete + create: never a moment without it); later calls send only element
  // additions and deletions.
  [[nodiscard]] Result<void> sync(const std::set<NftService>& services, bool rebuild = false) override;
  // Element changes for those services only (and their VIPs), so one changed service costs
  // the same whatever the table size. Before the table is built (or after a failed batch),
  // rebuilds it whole with the changes applied.
  [[nodiscard]] Result<void> update(std::span<const NftChange> changes) override;
  // nft delete table inet NAME
  [[nodiscard]] Result<void> remove() override;

 private:
  std::string table_;
  uint32_t mark_;
  std::vector<Prefix> clusterCidrs_;
  bool built_ = false;
  std::set<NftService> current_;
  // loop4/6 elements are shared by the services of one endpoint: how many services hold
  // each (key bytes; the set is the key's size).
  std::map<std::vector<uint8_t>, uint32_t> loopRefs_;
};

}  // namespace nodeagent::netfilter
