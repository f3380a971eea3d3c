#include "ipvs/config.h"

#include "ipvs/types.h"

namespace nodeagent::ipvs {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

void parseConfig(nodeagent::ConfigMap m, Config& c) {
  c.enabled = m.boolean("enabled", c.enabled);
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

Json toJson(const Config& c) {
  Json cidrs = Json::array();
  for (const auto& s : c.ownedCidrs) cidrs.push(s);
  return Json::object()
      .set("enabled", c.enabled)
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
