// JSON (simdjson On-Demand, the agent's decoder) against the API's protobuf encoding for the
// same Service and EndpointSlice lists, fetched from the real kube-apiserver by run.sh:
//   proxy_kube_decode_bench --json-services F --pb-services F --json-slices F --pb-slices F
// Both paths end in the same structs (ipvs/kube_objects.h) with the same checks (addresses
// parsed, ports and enums validated), so the figure is what the agent would pay either way.
// The protobuf side uses Debian's libprotobuf with k8s_subset.proto: only the needed fields
// are declared, the rest are parsed as unknown fields. Prints sizes, the best and median of
// the rounds, and the ratio protobuf / JSON.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ipvs/kube_objects.h"
#include "k8s_subset.pb.h"

using namespace nodeagent;
using namespace nodeagent::ipvs;
namespace pb = nodeagent::k8sbench;
using Clock = std::chrono::steady_clock;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The protobuf response: "k8s\0", then runtime.Unknown whose raw bytes are the list.
bool unwrap(const std::string& body, pb::Unknown& envelope) {
  if (body.size() < 4 || body.compare(0, 4, std::string("k8s\0", 4)) != 0) return false;
  return envelope.ParseFromArray(body.data() + 4, static_cast<int>(body.size() - 4));
}

std::optional<Protocol> protocol(const std::string& s) {
  if (s.empty() || s == "TCP") return Protocol::kTcp;
  if (s == "UDP") return Protocol::kUdp;
  if (s == "SCTP") return Protocol::kSctp;
  return std::nullopt;
}

void setProblem(std::string& error, const std::string& what) {
  if (error.empty()) error = what;
}

k8s::Service fromPb(const pb::Service& in) {
  k8s::Service s;
  const auto& m = in.metadata();
  s.ns = Symbol(m.namespace_());
  s.name = m.name();
  s.uid = m.uid();
  if (auto it = m.labels().find("service.kubernetes.io/service-proxy-name"); it != m.labels().end())
    s.proxyName = Symbol(it->second);
  s.headlessLabel = m.labels().contains("service.kubernetes.io/headless");
  auto mode = m.annotations().find("service.kubernetes.io/topology-mode");
  if (mode == m.annotations().end()) mode = m.annotations().find("service.kubernetes.io/topology-aware-hints");
  if (mode != m.annotations().end() && !mode->second.empty() && mode->second != "Disabled" &&
      mode->second != "disabled")
    s.topologyAware = true;
  const auto& spec = in.spec();
  const std::string& type = spec.type();
  if (type.empty() || type == "ClusterIP") s.type = k8s::ServiceType::kClusterIP;
  else if (type == "NodePort") s.type = k8s::ServiceType::kNodePort;
  else if (type == "LoadBalancer") s.type = k8s::ServiceType::kLoadBalancer;
  else if (type == "ExternalName") s.type = k8s::ServiceType::kExternalName;
  else setProblem(s.error, "spec.type: \"" + type + "\" is not ClusterIP, NodePort, LoadBalancer or ExternalName");
  std::vector<std::string> ips(spec.clusterips().begin(), spec.clusterips().end());
  if (ips.empty() && !spec.clusterip().empty()) ips.push_back(spec.clusterip());
  for (const auto& ip : ips) {
    if (ip == "None") s.headless = true;
    else if (auto a = Address::parse(ip)) s.clusterIPs.push_back(*a);
    else setProblem(s.error, "spec.clusterIPs: \"" + ip + "\" is not an IP address");
  }
  for (const auto& ip : spec.externalips()) {
    if (auto a = Address::parse(ip)) s.externalIPs.push_back(*a);
    else setProblem(s.error, "spec.externalIPs: \"" + ip + "\" is not an IP address");
  }
  for (const auto& r : spec.loadbalancersourceranges()) {
    if (auto c = Cidr::parse(r)) s.sourceRanges.push_back(*c);
    else setProblem(s.error, "spec.loadBalancerSourceRanges: " + c.error().message());
  }
  for (const auto& p : spec.ports()) {
    auto proto = protocol(p.protocol());
    if (!proto) setProblem(s.error, "spec.ports.protocol: \"" + p.protocol() + "\" is not TCP, UDP or SCTP");
    if (p.port() < 1 || p.port() > 65535) setProblem(s.error, "spec.ports.port: not a port");
    if (!proto || p.port() < 1 || p.port() > 65535) continue;
    s.ports.push_back(k8s::ServicePort{Symbol(p.name()), *proto, static_cast<uint16_t>(p.port()),
                                       static_cast<uint16_t>(p.nodeport())});
  }
  if (spec.sessionaffinity() == "ClientIP") {
    s.affinityClientIP = true;
    if (spec.sessionaffinityconfig().clientip().has_timeoutseconds())
      s.affinityTimeout = static_cast<uint32_t>(spec.sessionaffinityconfig().clientip().timeoutseconds());
  }
  s.externalLocal = spec.externaltrafficpolicy() == "Local";
  s.internalLocal = spec.internaltrafficpolicy() == "Local";
  s.healthCheckNodePort = static_cast<uint16_t>(spec.healthchecknodeport());
  if (!spec.trafficdistribution().empty()) s.topologyAware = true;
  for (const auto& ing : in.status().loadbalancer().ingress()) {
    if (ing.ip().empty() || ing.ipmode() == "Proxy") continue;
    if (auto a = Address::parse(ing.ip())) s.loadBalancerIPs.push_back(*a);
    else setProblem(s.error, "status.loadBalancer.ingress.ip: not an IP address");
  }
  return s;
}

k8s::EndpointSlice fromPb(const pb::EndpointSlice& in) {
  k8s::EndpointSlice es;
  const auto& m = in.metadata();
  es.ns = Symbol(m.namespace_());
  es.name = m.name();
  if (auto it = m.labels().find("kubernetes.io/service-name"); it != m.labels().end()) es.serviceName = it->second;
  if (auto it = m.annotations().find("endpoints.kubernetes.io/last-change-trigger-time"); it != m.annotations().end())
    es.triggerTime = k8s::parseRfc3339(it->second);
  es.family = in.addresstype() == "IPv4" ? AF_INET : in.addresstype() == "IPv6" ? AF_INET6 : 0;
  for (const auto& p : in.ports()) {
    auto proto = protocol(p.protocol());
    if (!proto) setProblem(es.error, "ports.protocol: not TCP, UDP or SCTP");
    else es.ports.push_back(k8s::SlicePort{Symbol(p.name()), *proto, static_cast<uint16_t>(p.port())});
  }
  if (es.family == 0) return es;
  es.endpoints.reserve(in.endpoints_size());
  for (const auto& e : in.endpoints()) {
    if (e.addresses().empty()) continue;
    auto a = Address::parse(e.addresses(0));
    if (!a || a->family != es.family) {
      setProblem(es.error, "endpoints.addresses: not an address of the slice's type");
      continue;
    }
    k8s::Endpoint ep;
    ep.address = *a;
    const auto& c = e.conditions();
    ep.ready = c.has_ready() ? c.ready() : true;
    ep.serving = c.has_serving() ? c.serving() : ep.ready;
    ep.terminating = c.has_terminating() && c.terminating();
    ep.nodeName = Symbol(e.nodename());
    auto index = static_cast<uint16_t>(es.endpoints.size());
    for (const auto& z : e.hints().forzones())
      es.hints.push_back(k8s::EndpointHint{index, k8s::EndpointHint::kZone, Symbol(z.name())});
    for (const auto& n : e.hints().fornodes())
      es.hints.push_back(k8s::EndpointHint{index, k8s::EndpointHint::kNode, Symbol(n.name())});
    es.endpoints.push_back(ep);
  }
  return es;
}

template <class T, class PbList>
size_t decodePb(const std::string& body, std::vector<T>& out) {
  pb::Unknown envelope;
  PbList list;
  if (!unwrap(body, envelope) || !list.ParseFromString(envelope.raw())) return 0;
  out.reserve(list.items_size());
  for (const auto& item : list.items()) out.push_back(fromPb(item));
  return out.size();
}

struct Timing {
  double best = 0, median = 0;
};
template <class F>
Timing time(int rounds, F f) {
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

template <class T, class PbList>
int compare(const char* what, const std::string& jsonFile, const std::string& pbFile, int rounds) {
  std::string json = slurp(jsonFile), proto = slurp(pbFile);
  size_t nJson = 0, nPb = 0;
  bool same = true;
  auto tj = time(rounds, [&] {
    std::vector<T> out;
    auto m = k8s::decodeList(json, out);
    nJson = m ? out.size() : 0;
  });
  auto tp = time(rounds, [&] {
    std::vector<T> out;
    nPb = decodePb<T, PbList>(proto, out);
  });
  {  // Both paths must agree, object for object.
    std::vector<T> a, b;
    (void)k8s::decodeList(json, a);
    decodePb<T, PbList>(proto, b);
    same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i) same = a[i] == b[i];
  }
  std::printf("BENCH decode %s: %zu objects; JSON %.1f MB in %.1f ms (median %.1f); protobuf %.1f MB in %.1f ms "
              "(median %.1f); ratio protobuf/JSON time %.2f, size %.2f; same objects: %s\n",
              what, nJson, json.size() / 1048576.0, tj.best, tj.median, proto.size() / 1048576.0, tp.best, tp.median,
              tp.median / tj.median, double(proto.size()) / double(json.size()), same ? "yes" : "NO");
  return nJson > 0 && nJson == nPb && same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"JSON against protobuf decode of the same API lists"};
  std::string js, ps, je, pe;
  int rounds = 7;
  app.add_option("--json-services", js)->required();
  app.add_option("--pb-services", ps)->required();
  app.add_option("--json-slices", je)->required();
  app.add_option("--pb-slices", pe)->required();
  app.add_option("--rounds", rounds);
  CLI11_PARSE(app, argc, argv);
  int rc = compare<k8s::Service, pb::ServiceList>("Services", js, ps, rounds);
  rc |= compare<k8s::EndpointSlice, pb::EndpointSliceList>("EndpointSlices", je, pe, rounds);
  return rc;
}
