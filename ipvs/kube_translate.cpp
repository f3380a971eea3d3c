#include "ipvs/kube_translate.h"

#include <linux/ip_vs.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>

namespace nodeagent::ipvs::k8s {

namespace {

// One endpoint of one service port, as kube-proxy's CategorizeEndpoints sees it.
struct Candidate {
  DestKey key;
  bool ready = false, serving = false, terminating = false, local = false;
  const EndpointSlice* slice = nullptr;
  size_t index = 0;  // of the endpoint in its slice (for its hints)
  bool hinted(EndpointHint::Kind kind, std::string_view name, bool* any = nullptr) const {
    return slice->hinted(index, kind, name, any);
  }
};

// The endpoints of service port `sp` of family `family` over all slices. A slice's port
// of the same name and protocol gives the target port for that slice's endpoints: a named
// targetPort may resolve to different numbers in different slices. The same address:port
// twice keeps the ready one (else the first).
std::vector<Candidate> candidates(const ServicePort& sp, uint8_t family, std::span<const EndpointSlice* const> slices,
                                  const std::string& nodeName) {
  std::vector<Candidate> out;
  std::map<DestKey, size_t> seen;
  for (const EndpointSlice* es : slices) {
    if (es->family != family || !es->error.empty()) continue;
    const SlicePort* port = nullptr;
    for (const auto& p : es->ports)
      if (p.name == sp.name && p.protocol == sp.protocol && p.port != 0) port = &p;
    if (!port) continue;
    for (size_t i = 0; i < es->endpoints.size(); ++i) {
      const Endpoint& ep = es->endpoints[i];
      Candidate c{DestKey{ep.address, port->port}, ep.ready, ep.serving, ep.terminating,
                  !nodeName.empty() && ep.nodeName == nodeName, es, i};
      auto [it, fresh] = seen.emplace(c.key, out.size());
      if (fresh) out.push_back(c);
      else if (c.ready && !out[it->second].ready) out[it->second] = c;
    }
  }
  return out;
}

enum class Topology { kNone, kNode, kZone };

// Hints are used only when the service asks for them and every ready endpoint carries
// them, and only if some endpoint is meant for this node (or its zone); otherwise all
// endpoints serve, as kube-proxy falls back.
Topology topologyMode(const Service& svc, const std::vector<Candidate>& eps, const NodeView& node) {
  if (!svc.topologyAware) return Topology::kNone;
  bool allNode = true, forNode = false, allZone = true, forZone = false, any = false;
  for (const auto& c : eps) {
    if (!c.ready) continue;
    any = true;
    bool nodeHints, zoneHints;
    bool toNode = c.hinted(EndpointHint::kNode, node.name, &nodeHints);
    bool toZone = c.hinted(EndpointHint::kZone, node.zone, &zoneHints);
    if (!nodeHints) allNode = false;
    else if (toNode) forNode = true;
    if (!zoneHints) allZone = false;
    else if (!node.zone.empty() && toZone) forZone = true;
  }
  if (!any) return Topology::kNone;
  if (allNode && forNode) return Topology::kNode;
  if (allZone && forZone) return Topology::kZone;
  return Topology::kNone;
}

bool externallyAccessible(const Service& svc) {
  return !svc.externalIPs.empty() || !svc.loadBalancerIPs.empty() ||
         (svc.type != ServiceType::kClusterIP && std::any_of(svc.ports.begin(), svc.ports.end(),
                                                             [](const ServicePort& p) { return p.nodePort != 0; }));
}

struct Chosen {
  std::vector<DestKey> cluster, local;
  size_t localReady = 0;
};

// kube-proxy's CategorizeEndpoints: the endpoints for cluster-wide and node-local traffic.
// Ready endpoints serve; serving-and-terminating ones only when no ready one is left (for
// local traffic: no local ready one).
Chosen categorize(const Service& svc, const std::vector<Candidate>& eps, const NodeView& node) {
  Chosen out;
  bool ext = externallyAccessible(svc);
  bool usesCluster = !svc.internalLocal || (ext && !svc.externalLocal);
  bool usesLocal = svc.internalLocal || (ext && svc.externalLocal);
  if (usesCluster) {
    Topology mode = topologyMode(svc, eps, node);
    for (const auto& c : eps) {
      if (!c.ready) continue;
      if (mode == Topology::kNode && !c.hinted(EndpointHint::kNode, node.name)) continue;
      if (mode == Topology::kZone && !c.hinted(EndpointHint::kZone, node.zone)) continue;
      out.cluster.push_back(c.key);
    }
    if (out.cluster.empty())
      for (const auto& c : eps)
        if (c.serving && c.terminating) out.cluster.push_back(c.key);
  }
  bool localReady = false, localServingTerminating = false;
  for (const auto& c : eps) {
    if (!c.local) continue;
    if (c.ready) localReady = true, ++out.localReady;
    else if (c.serving && c.terminating) localServingTerminating = true;
  }
  if (usesLocal) {
    for (const auto& c : eps) {
      if (!c.local) continue;
      if (localReady ? c.ready : (localServingTerminating && c.serving && c.terminating)) out.local.push_back(c.key);
    }
  }
  return out;
}

}  // namespace

std::string_view skipName(Skip s) {
  switch (s) {
    case Skip::kNone: return "";
    case Skip::kHeadless: return "headless";
    case Skip::kExternalName: return "ExternalName";
    case Skip::kOtherProxy: return "served by another proxy (service-proxy-name)";
    case Skip::kNoClusterIP: return "no cluster IP";
    case Skip::kInvalid: return "invalid";
  }
  return "?";
}

std::string servicePortName(const Service& svc, const ServicePort& port) {
  std::string out = svc.id() + ":";
  return port.name.empty() ? out + std::to_string(port.port) : out.append(port.name.view());
}

ServiceProgram translate(const Service& svc, std::span<const EndpointSlice* const> slices, const NodeView& node,
                         const ProxyOptions& options, const ServiceProgram* reuse) {
  ServiceProgram prog;
  if (!svc.error.empty()) {
    prog.skip = Skip::kInvalid;
    prog.error = svc.error;
    return prog;
  }
  if (svc.type == ServiceType::kExternalName) prog.skip = Skip::kExternalName;
  else if (svc.headless || svc.headlessLabel) prog.skip = Skip::kHeadless;
  else if (!svc.proxyName.empty() && !(svc.proxyName == options.proxyName)) prog.skip = Skip::kOtherProxy;
  else if (svc.clusterIPs.empty()) prog.skip = Skip::kNoClusterIP;
  if (prog.skip != Skip::kNone) return prog;
  for (const EndpointSlice* es : slices)
    if (!es->error.empty()) prog.warnings.push_back("EndpointSlice " + es->id() + " skipped: " + es->error);

  std::map<ServiceKey, DesiredService> out;
  // kube-proxy lets the node itself reach a load balancer address whose source ranges
  // contain a node address: the node's own packets to it leave from that address.
  bool allowFromNode = std::any_of(svc.sourceRanges.begin(), svc.sourceRanges.end(), [&](const Cidr& c) {
    return std::any_of(node.addresses.begin(), node.addresses.end(), [&](const Address& a) { return c.contains(a); });
  });
  std::vector<DestKey> local;  // this node's endpoints of the port being translated
  auto add = [&](const ServiceKey& key, const ServicePort& sp, const std::vector<DestKey>& dests, bool masq,
                 bool masqOutside, bool bindVip, bool sourceRanges) {
    DesiredService d;
    d.service.key = key;
    d.service.scheduler = options.scheduler;
    if (svc.affinityClientIP) {
      d.service.flags = IP_VS_SVC_F_PERSISTENT;
      d.service.timeout = svc.affinityTimeout;
    }
    std::vector<Destination> v;
    v.reserve(dests.size());
    for (const auto& k : dests) v.push_back(Destination{k, Forward::kMasq, 1, 0, 0});
    d.dests = Dests(std::move(v));
    d.masquerade = masq;
    d.masqueradeOutside = masqOutside && !masq;
    d.bindVip = bindVip;
    if (sourceRanges && !svc.sourceRanges.empty()) {
      d.sourceRanges = svc.sourceRanges;
      if (allowFromNode) d.sourceRanges.push_back(Cidr{key.address, key.address.isV6() ? 128 : 32});
    }
    for (const auto& k : dests)
      if (std::binary_search(local.begin(), local.end(), k)) d.hairpin.push_back(k);
    std::sort(d.hairpin.begin(), d.hairpin.end());
    d.name = servicePortName(svc, sp);
    // Two frontends of one service on the same address and port (an externalIP that is
    // also a node address): the first wins, as a second IPVS service could not exist.
    out.emplace(key, std::move(d));
  };

  size_t localReady = 0;
  for (const Address& clusterIP : svc.clusterIPs) {
    uint8_t family = clusterIP.family;
    for (const auto& sp : svc.ports) {
      auto eps = candidates(sp, family, slices, node.name);
      local.clear();
      for (const auto& c : eps)
        if (c.local) local.push_back(c.key);
      std::sort(local.begin(), local.end());
      Chosen chosen = categorize(svc, eps, node);
      if (family == svc.clusterIPs.front().family) localReady += chosen.localReady;
      const auto& internal = svc.internalLocal ? chosen.local : chosen.cluster;
      const auto& external = svc.externalLocal ? chosen.local : chosen.cluster;
      auto key = [&](const Address& a, uint16_t port) {
        return ServiceKey{family, sp.protocol, a, port, 0};
      };
      bool clusterMasq = options.masqueradeAll;
      bool clusterMasqOutside = !options.clusterCidrs.empty();
      add(key(clusterIP, sp.port), sp, internal, clusterMasq, clusterMasqOutside, true, false);
      // Traffic that arrives from outside: SNAT unless externalTrafficPolicy Local keeps
      // the client's address (and then only local endpoints serve).
      bool extMasq = !svc.externalLocal || options.masqueradeAll;
      if (sp.nodePort != 0 && svc.type != ServiceType::kClusterIP)
        for (const Address& a : node.nodePortAddresses)
          if (a.family == family) add(key(a, sp.nodePort), sp, external, extMasq, false, false, false);
      for (const Address& a : svc.externalIPs)
        if (a.family == family) add(key(a, sp.port), sp, external, extMasq, false, true, false);
      if (svc.type == ServiceType::kLoadBalancer)
        for (const Address& a : svc.loadBalancerIPs)
          if (a.family == family) add(key(a, sp.port), sp, external, extMasq, false, true, true);
    }
  }
  if (svc.type == ServiceType::kLoadBalancer && svc.externalLocal && svc.healthCheckNodePort != 0)
    prog.health = HealthCheck{svc.healthCheckNodePort, svc.ns.str(), svc.name, localReady};

  // Unchanged virtual servers keep the objects built before.
  std::map<ServiceKey, const ServicePtr*> before;
  if (reuse)
    for (const auto& [k, p] : reuse->servers) before.emplace(k, &p);
  prog.servers.reserve(out.size());
  for (auto& [k, d] : out) {
    prog.endpoints += d.dests.size();
    auto it = before.find(k);
    if (it != before.end() && **it->second == d) prog.servers.emplace_back(k, *it->second);
    else prog.servers.emplace_back(k, std::make_shared<const DesiredService>(std::move(d)));
  }
  return prog;
}

}  // namespace nodeagent::ipvs::k8s
