#include "ipvs/config.h"

#include "ipvs/types.h"

namespace nodeagent::ipvs {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

void parseConfig(nodeagent::ConfigMap m, Config& c) {
  c.enabled = m.boolean("enabled", c.enabled);
  c.source = m.choice("source", c.source, {"file", "kubernetes"});
  auto k = m.map("kubernetes");
  auto cidrs = [&](const char* key) {
    auto v = k.stringList(key);
    for (const auto& s : v)
      if (auto r = Cidr::parse(s); !r) k.error(key, r.error().message());
    return v;
  };
  c.kubernetes.clusterCidrs = cidrs("cluster_cidr");
  {
    int v4 = 0, v6 = 0;
    for (const auto& text : c.kubernetes.clusterCidrs)
      if (auto r = Cidr::parse(text)) (r->base.isV6() ? v6 : v4)++;
    if (v4 > 1 || v6 > 1) k.error("cluster_cidr", "at most one IPv4 and one IPv6 CIDR (as kube-proxy's --cluster-cidr)");
  }
  c.kubernetes.nodePortAddresses = cidrs("nodeport_addresses");
  c.kubernetes.masqueradeAll = k.boolean("masquerade_all", c.kubernetes.masqueradeAll);
  c.kubernetes.strictArp = k.boolean("strict_arp", c.kubernetes.strictArp);
  c.kubernetes.scheduler = k.choice("scheduler", c.kubernetes.scheduler,
                                    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"});
  c.kubernetes.serviceProxyName = k.string("service_proxy_name", c.kubernetes.serviceProxyName);
  c.kubernetes.listPageSize = static_cast<int>(k.integer("list_page_size", c.kubernetes.listPageSize, 0, 100000));
  c.kubernetes.healthCheckBindAddress = k.string("healthcheck_bind_address", c.kubernetes.healthCheckBindAddress);
  if (!c.kubernetes.healthCheckBindAddress.empty() && !Address::parse(c.kubernetes.healthCheckBindAddress))
    k.error("healthcheck_bind_address", "must be an IP address or empty");
  k.finish();
  c.servicesFile = m.string("services_file", c.servicesFile);
  if (c.servicesFile.empty() || c.servicesFile.front() != '/') m.error("services_file", "must be an absolute path");
  c.interface = m.string("interface", c.interface);
  if (c.interface.empty() || c.interface.size() > 15) m.error("interface", "must be 1 to 15 characters");
  c.bindVips = m.boolean("bind_vips", c.bindVips);
  c.ownedCidrs = m.stringList("owned_cidrs");
  for (const auto& s : c.ownedCidrs)
    if (auto r = Cidr::parse(s); !r) m.error("owned_cidrs", r.error().message());
  c.resyncInterval = m.duration("resync_interval", c.resyncInterval, seconds(1), hours(24));
  c.drainTimeout = m.duration("drain_timeout", c.drainTimeout, seconds(0), hours(24));
  auto t = m.map("timeouts");
  c.tcpTimeout = t.duration("tcp", c.tcpTimeout, seconds(0), hours(24 * 30));
  c.tcpFinTimeout = t.duration("tcp_fin", c.tcpFinTimeout, seconds(0), hours(24));
  c.udpTimeout = t.duration("udp", c.udpTimeout, seconds(0), hours(24));
  t.finish();
  auto n = m.map("nftables");
  c.nftables = n.boolean("enabled", c.nftables);
  c.nftTable = n.string("table", c.nftTable);
  if (c.nftTable.empty() || c.nftTable.size() > 64) n.error("table", "must be 1 to 64 characters");
  c.masqueradeMark = static_cast<uint32_t>(n.integer("masquerade_mark", c.masqueradeMark, 1, 0xffffffffLL));
  n.finish();
  c.sysctls = m.boolean("sysctls", c.sysctls);
  m.finish();
}

namespace {
Json list(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(s);
  return a;
}
}  // namespace

Json toJson(const Config& c) {
  Json cidrs = list(c.ownedCidrs);
  return Json::object()
      .set("enabled", c.enabled)
      .set("source", c.source)
      .set("kubernetes", Json::object()
                             .set("cluster_cidr", list(c.kubernetes.clusterCidrs))
                             .set("nodeport_addresses", list(c.kubernetes.nodePortAddresses))
                             .set("masquerade_all", c.kubernetes.masqueradeAll)
                             .set("strict_arp", c.kubernetes.strictArp)
                             .set("scheduler", c.kubernetes.scheduler)
                             .set("service_proxy_name", c.kubernetes.serviceProxyName)
                             .set("list_page_size", c.kubernetes.listPageSize)
                             .set("healthcheck_bind_address", c.kubernetes.healthCheckBindAddress))
      .set("services_file", c.servicesFile)
      .set("interface", c.interface)
      .set("bind_vips", c.bindVips)
      .set("owned_cidrs", cidrs)
      .set("resync_interval", formatDuration(c.resyncInterval))
      .set("drain_timeout", formatDuration(c.drainTimeout))
      .set("timeouts", Json::object()
                           .set("tcp", formatDuration(c.tcpTimeout))
                           .set("tcp_fin", formatDuration(c.tcpFinTimeout))
                           .set("udp", formatDuration(c.udpTimeout)))
      .set("nftables", Json::object()
                           .set("enabled", c.nftables)
                           .set("table", c.nftTable)
                           .set("masquerade_mark", static_cast<int64_t>(c.masqueradeMark)))
      .set("sysctls", c.sysctls);
}

}  // namespace nodeagent::ipvs
