// kube-proxy IPVS-mode semantics, one case per row of ipvs/README.md's table: Service and
// EndpointSlice JSON in, the desired IPVS virtual servers out.
#include <gtest/gtest.h>
#include <linux/ip_vs.h>
#include <sys/socket.h>

#include <string>

#include "ipvs/kube_objects.h"
#include "ipvs/kube_translate.h"

namespace nodeagent::ipvs::k8s {
namespace {

Address ip(const char* s) { return *Address::parse(s); }

// A Service: `spec` and `status` are JSON object bodies, `meta` extra metadata members.
Service service(const std::string& spec, const std::string& status = "", const std::string& meta = "") {
  std::string json = R"({"kind":"Service","metadata":{"namespace":"default","name":"web","uid":"u1")" +
                     (meta.empty() ? "" : "," + meta) + R"(},"spec":{)" + spec + "}" +
                     (status.empty() ? "" : R"(,"status":{)" + status + "}") + "}";
  auto s = decodeService(json);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? *s : Service{};
}

EndpointSlice slice(const std::string& name, const std::string& type, const std::string& ports,
                    const std::string& endpoints, const std::string& meta = "") {
  std::string json = R"({"metadata":{"namespace":"default","name":")" + name +
                     R"(","labels":{"kubernetes.io/service-name":"web"})" + (meta.empty() ? "" : "," + meta) +
                     R"(},"addressType":")" + type + R"(","ports":[)" + ports + R"(],"endpoints":[)" + endpoints +
                     "]}";
  auto s = decodeEndpointSlice(json);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? *s : EndpointSlice{};
}

std::string ep(const char* addr, const char* node = "node-a", const char* conditions = R"({"ready":true})",
               const char* hints = "") {
  return std::string(R"({"addresses":[")") + addr + R"("],"nodeName":")" + node + R"(","conditions":)" + conditions +
         (*hints ? std::string(R"(,"hints":)") + hints : "") + "}";
}

NodeView node() { return NodeView{"node-a", "zone-1", {ip("192.168.1.10"), ip("fd00::10")}}; }

ServiceProgram run(const Service& svc, const std::vector<EndpointSlice>& slices, const NodeView& n = node(),
                   const ProxyOptions& o = {}) {
  std::vector<const EndpointSlice*> ptrs;
  for (const auto& s : slices) ptrs.push_back(&s);
  return translate(svc, ptrs, n, o);
}

// "TCP 10.96.0.10:80 -> 10.244.1.5:8080,10.244.2.5:8080" per virtual server.
std::vector<std::string> table(const ServiceProgram& p) {
  std::vector<std::string> out;
  for (const auto& [k, d] : p.servers) {
    std::string line = k.toString() + " ->";
    for (const auto& dest : d->dests) line += " " + dest.key.toString();
    out.push_back(line);
  }
  return out;
}

const DesiredService& at(const ServiceProgram& p, const char* key) {
  auto k = parseServiceKey(key);
  EXPECT_TRUE(k.has_value()) << key;
  for (const auto& [sk, d] : p.servers)
    if (sk == *k) return *d;
  ADD_FAILURE() << "no virtual server " << key;
  static DesiredService none;
  return none;
}

const char* kTwoPorts = R"({"name":"http","protocol":"TCP","port":8080},{"name":"dns","protocol":"UDP","port":5353})";

TEST(KubeProxySemantics, ClusterIpOnEveryPort) {
  auto svc = service(R"("type":"ClusterIP","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],
    "ports":[{"name":"http","port":80,"targetPort":"web"},{"name":"dns","protocol":"UDP","port":53,"targetPort":5353}])");
  auto p = run(svc, {slice("web-1", "IPv4", kTwoPorts, ep("10.244.1.5") + "," + ep("10.244.2.5", "node-b"))});
  EXPECT_EQ(p.skip, Skip::kNone);
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.10:80 -> 10.244.1.5:8080 10.244.2.5:8080",
                                                "UDP 10.96.0.10:53 -> 10.244.1.5:5353 10.244.2.5:5353"}));
  const auto& http = at(p, "TCP 10.96.0.10:80");
  EXPECT_EQ(http.service.scheduler, "rr");
  EXPECT_EQ(http.service.flags, 0u);
  EXPECT_EQ(http.name, "default/web:http");
  EXPECT_TRUE(http.bindVip);
  EXPECT_FALSE(http.masquerade);  // no cluster CIDR, no masquerade_all: as kube-proxy
  for (const auto& d : http.dests) {
    EXPECT_EQ(d.weight, 1u);
    EXPECT_EQ(d.forward, Forward::kMasq);
  }
  EXPECT_EQ(p.endpoints, 4u);
}

TEST(KubeProxySemantics, NamedTargetPortResolvedPerSlice) {
  // Two pod templates name port "web" differently: each slice carries its own number.
  auto svc = service(R"("clusterIP":"10.96.0.11","ports":[{"name":"http","port":80,"targetPort":"web"}])");
  auto p = run(svc, {slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.5")),
                     slice("web-2", "IPv4", R"({"name":"http","port":9090})", ep("10.244.1.6")),
                     slice("web-3", "IPv4", R"({"name":"metrics","port":9100})", ep("10.244.1.7"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.11:80 -> 10.244.1.5:8080 10.244.1.6:9090"}));
}

TEST(KubeProxySemantics, DualStackClusterIPs) {
  auto svc = service(R"("clusterIP":"10.96.0.12","clusterIPs":["10.96.0.12","fd00:96::12"],
    "ipFamilies":["IPv4","IPv6"],"ipFamilyPolicy":"RequireDualStack","ports":[{"port":80,"targetPort":8080}])");
  auto p = run(svc, {slice("web-v4", "IPv4", R"({"port":8080})", ep("10.244.1.5")),
                     slice("web-v6", "IPv6", R"({"port":8080})", ep("fd00:244::5"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.12:80 -> 10.244.1.5:8080",
                                                "TCP [fd00:96::12]:80 -> [fd00:244::5]:8080"}));
  EXPECT_EQ(at(p, "TCP 10.96.0.12:80").name, "default/web:80");
}

TEST(KubeProxySemantics, TcpUdpSctp) {
  auto svc = service(R"("clusterIP":"10.96.0.13","ports":[{"name":"t","port":7,"protocol":"TCP"},
    {"name":"u","port":7,"protocol":"UDP"},{"name":"s","port":7,"protocol":"SCTP"}])");
  auto p = run(svc, {slice("web-1", "IPv4",
                           R"({"name":"t","port":70,"protocol":"TCP"},{"name":"u","port":71,"protocol":"UDP"},
                              {"name":"s","port":72,"protocol":"SCTP"})",
                           ep("10.244.1.5"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.13:7 -> 10.244.1.5:70", "UDP 10.96.0.13:7 -> 10.244.1.5:71",
                                                "SCTP 10.96.0.13:7 -> 10.244.1.5:72"}));
}

TEST(KubeProxySemantics, NodePortOnNodeAddresses) {
  auto svc = service(R"("type":"NodePort","clusterIP":"10.96.0.14",
    "ports":[{"name":"http","port":80,"nodePort":30080}])");
  auto p = run(svc, {slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.5"))});
  // The IPv6 node address gets nothing: the service is IPv4 only.
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.14:80 -> 10.244.1.5:8080",
                                                "TCP 192.168.1.10:30080 -> 10.244.1.5:8080"}));
  const auto& np = at(p, "TCP 192.168.1.10:30080");
  EXPECT_FALSE(np.bindVip);  // the node's own address: not on the VIP interface
  EXPECT_TRUE(np.masquerade);
  // A ClusterIP service with a stale nodePort field gets no NodePort.
  auto plain = service(R"("type":"ClusterIP","clusterIP":"10.96.0.14","ports":[{"name":"http","port":80,"nodePort":30080}])");
  EXPECT_EQ(run(plain, {}).servers.size(), 1u);
}

TEST(KubeProxySemantics, ExternalIPs) {
  auto svc = service(R"("clusterIP":"10.96.0.15","externalIPs":["203.0.113.7","2001:db8::7"],
    "ports":[{"name":"http","port":80}])");
  auto p = run(svc, {slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.5"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.15:80 -> 10.244.1.5:8080",
                                                "TCP 203.0.113.7:80 -> 10.244.1.5:8080"}));
  EXPECT_TRUE(at(p, "TCP 203.0.113.7:80").bindVip);
  EXPECT_TRUE(at(p, "TCP 203.0.113.7:80").masquerade);
}

TEST(KubeProxySemantics, LoadBalancerIngressSkipsProxyMode) {
  auto svc = service(R"("type":"LoadBalancer","clusterIP":"10.96.0.16","ports":[{"name":"http","port":80,"nodePort":30081}],
    "loadBalancerSourceRanges":["198.51.100.0/24", " 192.0.2.0/28 "])",
                     R"("loadBalancer":{"ingress":[{"ip":"203.0.113.20","ipMode":"VIP"},{"ip":"203.0.113.21","ipMode":"Proxy"},
                       {"hostname":"lb.example"}]})");
  auto p = run(svc, {slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.5"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.16:80 -> 10.244.1.5:8080",
                                                "TCP 192.168.1.10:30081 -> 10.244.1.5:8080",
                                                "TCP 203.0.113.20:80 -> 10.244.1.5:8080"}));
  const auto& lb = at(p, "TCP 203.0.113.20:80");
  ASSERT_EQ(lb.sourceRanges.size(), 2u);
  EXPECT_EQ(lb.sourceRanges[0].toString(), "198.51.100.0/24");
  EXPECT_EQ(lb.sourceRanges[1].toString(), "192.0.2.0/28");
  // Source ranges filter the load balancer address only.
  EXPECT_TRUE(at(p, "TCP 10.96.0.16:80").sourceRanges.empty());
  EXPECT_TRUE(at(p, "TCP 192.168.1.10:30081").sourceRanges.empty());
}

TEST(KubeProxySemantics, LoadBalancerSourceRangesAllowTheNode) {
  auto svc = service(R"("type":"LoadBalancer","clusterIP":"10.96.0.16","ports":[{"name":"http","port":80,"nodePort":30081}],
    "loadBalancerSourceRanges":["192.168.0.0/16"])",
                     R"("loadBalancer":{"ingress":[{"ip":"203.0.113.20"}]})");
  NodeView n = node();
  // A range holds a node address: kube-proxy's KUBE-LOAD-BALANCER-SOURCE-IP entry lets
  // the node's own packets (sent from the load balancer address itself) through.
  n.addresses = {ip("192.168.1.10")};
  auto p = run(svc, {}, n);
  const auto& lb = at(p, "TCP 203.0.113.20:80");
  ASSERT_EQ(lb.sourceRanges.size(), 2u);
  EXPECT_EQ(lb.sourceRanges[0].toString(), "192.168.0.0/16");
  EXPECT_EQ(lb.sourceRanges[1].toString(), "203.0.113.20/32");
  // No range holds a node address: the ranges alone.
  n.addresses = {ip("172.16.0.10")};
  EXPECT_EQ(at(run(svc, {}, n), "TCP 203.0.113.20:80").sourceRanges.size(), 1u);
}

TEST(KubeProxySemantics, HairpinLocalEndpoints) {
  auto svc = service(R"("type":"NodePort","clusterIP":"10.96.0.21","ports":[{"name":"http","port":80,"nodePort":30085}])");
  auto eps = slice("web-1", "IPv4", R"({"name":"http","port":8080})",
                   ep("10.244.1.5", "node-a") + "," + ep("10.244.2.5", "node-b") + "," +
                       ep("10.244.1.6", "node-a", R"({"ready":false})"));
  auto p = run(svc, {eps});
  // Every frontend lists its endpoints on this node (not the other node's, not the
  // unready one it does not serve with): kube-proxy's KUBE-LOOP-BACK entries.
  for (const char* fe : {"TCP 10.96.0.21:80", "TCP 192.168.1.10:30085"}) {
    const auto& d = at(p, fe);
    ASSERT_EQ(d.hairpin.size(), 1u) << fe;
    EXPECT_EQ(d.hairpin[0].toString(), "10.244.1.5:8080") << fe;
  }
}

TEST(KubeProxySemantics, SessionAffinityClientIpIsPersistence) {
  auto svc = service(R"("type":"NodePort","clusterIP":"10.96.0.17","ports":[{"name":"http","port":80,"nodePort":30082}],
    "sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":600}})");
  auto p = run(svc, {});
  for (const auto& [k, d] : p.servers) {
    EXPECT_EQ(d->service.flags, uint32_t(IP_VS_SVC_F_PERSISTENT)) << k.toString();
    EXPECT_EQ(d->service.timeout, 600u);
    EXPECT_EQ(effectiveNetmask(d->service), 0xffffffffu);
  }
  auto dflt = service(R"("clusterIP":"10.96.0.17","ports":[{"port":80}],"sessionAffinity":"ClientIP")");
  EXPECT_EQ(run(dflt, {}).servers.front().second->service.timeout, 10800u);  // the API's default, 3 h
}

TEST(KubeProxySemantics, ExternalTrafficPolicyLocal) {
  auto svc = service(R"("type":"LoadBalancer","clusterIP":"10.96.0.18","externalTrafficPolicy":"Local",
    "healthCheckNodePort":32000,"externalIPs":["203.0.113.8"],"ports":[{"name":"http","port":80,"nodePort":30083}])",
                     R"("loadBalancer":{"ingress":[{"ip":"203.0.113.22"}]})");
  auto eps = slice("web-1", "IPv4", R"({"name":"http","port":8080})",
                   ep("10.244.1.5", "node-a") + "," + ep("10.244.2.5", "node-b"));
  auto p = run(svc, {eps});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.18:80 -> 10.244.1.5:8080 10.244.2.5:8080",
                                                "TCP 192.168.1.10:30083 -> 10.244.1.5:8080",
                                                "TCP 203.0.113.8:80 -> 10.244.1.5:8080",
                                                "TCP 203.0.113.22:80 -> 10.244.1.5:8080"}));
  EXPECT_FALSE(at(p, "TCP 192.168.1.10:30083").masquerade);  // the client's address is kept
  EXPECT_FALSE(at(p, "TCP 203.0.113.22:80").masquerade);
  ASSERT_TRUE(p.health.has_value());
  EXPECT_EQ(p.health->port, 32000);
  EXPECT_EQ(p.health->localEndpoints, 1u);
  // No local endpoint: the external frontends have none (IPVS answers ICMP unreachable),
  // the health check says 0 (503).
  auto remote = slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.2.5", "node-b"));
  auto q = run(svc, {remote});
  EXPECT_TRUE(at(q, "TCP 192.168.1.10:30083").dests.empty());
  EXPECT_EQ(at(q, "TCP 10.96.0.18:80").dests.size(), 1u);
  EXPECT_EQ(q.health->localEndpoints, 0u);
}

TEST(KubeProxySemantics, InternalTrafficPolicyLocal) {
  auto svc = service(R"("clusterIP":"10.96.0.19","internalTrafficPolicy":"Local","ports":[{"name":"http","port":80}])");
  auto eps = slice("web-1", "IPv4", R"({"name":"http","port":8080})",
                   ep("10.244.1.5", "node-a") + "," + ep("10.244.2.5", "node-b"));
  EXPECT_EQ(table(run(svc, {eps})), (std::vector<std::string>{"TCP 10.96.0.19:80 -> 10.244.1.5:8080"}));
  auto remote = slice("web-1", "IPv4", R"({"name":"http","port":8080})", ep("10.244.2.5", "node-b"));
  EXPECT_EQ(table(run(svc, {remote})), (std::vector<std::string>{"TCP 10.96.0.19:80 ->"}));
}

TEST(KubeProxySemantics, EndpointConditions) {
  auto svc = service(R"("clusterIP":"10.96.0.20","ports":[{"name":"http","port":80}])");
  const char* ready = R"({"ready":true,"serving":true,"terminating":false})";
  const char* notReady = R"({"ready":false,"serving":false,"terminating":false})";
  const char* terminatingServing = R"({"ready":false,"serving":true,"terminating":true})";
  const char* terminatingGone = R"({"ready":false,"serving":false,"terminating":true})";
  const char* port = R"({"name":"http","port":8080})";
  // Ready ones serve; a terminating one does not while a ready one remains.
  auto p = run(svc, {slice("s", "IPv4", port,
                           ep("10.244.1.1", "n", ready) + "," + ep("10.244.1.2", "n", notReady) + "," +
                               ep("10.244.1.3", "n", terminatingServing) + "," + ep("10.244.1.4", "n", "{}"))});
  EXPECT_EQ(table(p), (std::vector<std::string>{"TCP 10.96.0.20:80 -> 10.244.1.1:8080 10.244.1.4:8080"}));
  // No ready endpoint left: the serving-and-terminating ones carry on.
  auto q = run(svc, {slice("s", "IPv4", port,
                           ep("10.244.1.2", "n", notReady) + "," + ep("10.244.1.3", "n", terminatingServing) + "," +
                               ep("10.244.1.5", "n", terminatingGone))});
  EXPECT_EQ(table(q), (std::vector<std::string>{"TCP 10.96.0.20:80 -> 10.244.1.3:8080"}));
}

TEST(KubeProxySemantics, EndpointGoneDrainsTcpDeletesUdp) {
  // The translation drops the endpoint; the planner turns that into a weight-0 drain for
  // TCP and a delete plus a conntrack flush for UDP (kube-proxy's graceful termination).
  auto svc = service(R"("clusterIP":"10.96.0.21","ports":[{"name":"t","port":80},{"name":"u","port":53,"protocol":"UDP"}])");
  const char* ports = R"({"name":"t","port":8080},{"name":"u","port":5353,"protocol":"UDP"})";
  auto before = run(svc, {slice("s", "IPv4", ports, ep("10.244.1.1") + "," + ep("10.244.1.2"))});
  auto after = run(svc, {slice("s", "IPv4", ports,
                               ep("10.244.1.1") + "," +
                                   ep("10.244.1.2", "node-a", R"({"ready":false,"serving":false,"terminating":true})"))});
  Plan plan;
  auto notDraining = [](const DestRef&) { return false; };
  for (size_t i = 0; i < after.servers.size(); ++i)
    planService(after.servers[i].first, after.servers[i].second.get(), before.servers[i].second.get(), notDraining, plan);
  ASSERT_EQ(plan.startDrain.size(), 1u);
  EXPECT_EQ(plan.startDrain[0].first.toString(), "TCP 10.96.0.21:80");
  EXPECT_EQ(plan.startDrain[0].second.toString(), "10.244.1.2:8080");
  ASSERT_EQ(plan.flushBackend.size(), 1u);
  EXPECT_EQ(plan.flushBackend[0].second.toString(), "10.244.1.2:5353");
}

TEST(KubeProxySemantics, SkippedServices) {
  ProxyOptions ours;
  ours.proxyName = "nodeagent";
  EXPECT_EQ(run(service(R"("clusterIP":"None","ports":[{"port":80}])"), {}).skip, Skip::kHeadless);
  EXPECT_EQ(run(service(R"("type":"ExternalName","externalName":"db.example")"), {}).skip, Skip::kExternalName);
  EXPECT_EQ(run(service(R"("clusterIP":"10.96.0.22","ports":[{"port":80}])", "",
                        R"("labels":{"service.kubernetes.io/headless":""})"),
                {})
                .skip,
            Skip::kHeadless);
  auto other = service(R"("clusterIP":"10.96.0.22","ports":[{"port":80}])", "",
                       R"("labels":{"service.kubernetes.io/service-proxy-name":"cilium"})");
  EXPECT_EQ(run(other, {}).skip, Skip::kOtherProxy);
  EXPECT_EQ(run(other, {}, node(), ours).skip, Skip::kOtherProxy);
  auto mine = service(R"("clusterIP":"10.96.0.22","ports":[{"port":80}])", "",
                      R"("labels":{"service.kubernetes.io/service-proxy-name":"nodeagent"})");
  EXPECT_EQ(run(mine, {}).skip, Skip::kOtherProxy);  // labelled, and no proxy name configured
  EXPECT_EQ(run(mine, {}, node(), ours).skip, Skip::kNone);
  EXPECT_TRUE(run(service(R"("clusterIP":"None","ports":[{"port":80}])"), {}).servers.empty());
}

TEST(KubeProxySemantics, TopologyHintsForThisZone) {
  const char* port = R"({"name":"http","port":8080})";
  std::string eps = ep("10.244.1.1", "node-a", R"({"ready":true})", R"({"forZones":[{"name":"zone-1"}]})") + "," +
                    ep("10.244.2.1", "node-b", R"({"ready":true})", R"({"forZones":[{"name":"zone-2"}]})");
  auto close = service(R"("clusterIP":"10.96.0.23","trafficDistribution":"PreferClose","ports":[{"name":"http","port":80}])");
  EXPECT_EQ(table(run(close, {slice("s", "IPv4", port, eps)})),
            (std::vector<std::string>{"TCP 10.96.0.23:80 -> 10.244.1.1:8080"}));
  auto annotated = service(R"("clusterIP":"10.96.0.23","ports":[{"name":"http","port":80}])", "",
                           R"("annotations":{"service.kubernetes.io/topology-mode":"Auto"})");
  EXPECT_EQ(run(annotated, {slice("s", "IPv4", port, eps)}).endpoints, 1u);
  // The service does not ask: hints are ignored.
  auto plain = service(R"("clusterIP":"10.96.0.23","ports":[{"name":"http","port":80}])");
  EXPECT_EQ(run(plain, {slice("s", "IPv4", port, eps)}).endpoints, 2u);
  // One ready endpoint without hints: all serve (kube-proxy's fallback).
  std::string partial = eps + "," + ep("10.244.3.1", "node-c");
  EXPECT_EQ(run(close, {slice("s", "IPv4", port, partial)}).endpoints, 3u);
  // No hint for this node's zone: all serve.
  NodeView elsewhere = node();
  elsewhere.zone = "zone-9";
  EXPECT_EQ(run(close, {slice("s", "IPv4", port, eps)}, elsewhere).endpoints, 2u);
}

TEST(KubeProxySemantics, MasqueradeClusterCidrAndAll) {
  auto svc = service(R"("type":"NodePort","clusterIP":"10.96.0.24","ports":[{"name":"http","port":80,"nodePort":30084}])");
  ProxyOptions cidr;
  cidr.clusterCidrs = {*Cidr::parse("10.244.0.0/16")};
  auto p = run(svc, {}, node(), cidr);
  EXPECT_TRUE(at(p, "TCP 10.96.0.24:80").masqueradeOutside);
  EXPECT_FALSE(at(p, "TCP 10.96.0.24:80").masquerade);
  EXPECT_TRUE(at(p, "TCP 192.168.1.10:30084").masquerade);  // NodePort traffic: always
  ProxyOptions all;
  all.masqueradeAll = true;
  auto q = run(svc, {}, node(), all);
  EXPECT_TRUE(at(q, "TCP 10.96.0.24:80").masquerade);
  EXPECT_FALSE(at(q, "TCP 10.96.0.24:80").masqueradeOutside);
}

TEST(KubeProxySemantics, NoEndpointsKeepsTheVirtualServer) {
  // kube-proxy keeps the IPVS service with no real server: the kernel answers ICMP port
  // unreachable (a refused connection) instead of a silent drop.
  auto svc = service(R"("clusterIP":"10.96.0.25","ports":[{"name":"http","port":80}])");
  EXPECT_EQ(table(run(svc, {})), (std::vector<std::string>{"TCP 10.96.0.25:80 ->"}));
}

TEST(KubeProxySemantics, InvalidObjectsAreSkippedWithTheField) {
  auto bad = service(R"("clusterIP":"10.96.0.300","ports":[{"port":80}])");
  auto p = run(bad, {});
  EXPECT_EQ(p.skip, Skip::kInvalid);
  EXPECT_EQ(p.error, "spec.clusterIPs[0]: \"10.96.0.300\" is not an IP address");
  EXPECT_EQ(run(service(R"("clusterIP":"10.96.0.26","ports":[{"port":70000}])"), {}).error,
            "spec.ports[0].port: 70000 is not a port (1 to 65535)");
  EXPECT_EQ(run(service(R"("clusterIP":"10.96.0.26","ports":[{"port":80,"protocol":"ICMP"}])"), {}).error,
            "spec.ports[0].protocol: \"ICMP\" is not TCP, UDP or SCTP");
  EXPECT_EQ(run(service(R"("clusterIP":"10.96.0.26","ports":[{"port":"http"}])"), {}).error,
            "spec.ports[0].port: must be an integer");
  EXPECT_EQ(run(service(R"("clusterIP":"10.96.0.26","sessionAffinity":"ClientIP",
    "sessionAffinityConfig":{"clientIP":{"timeoutSeconds":0}},"ports":[{"port":80}])"),
                {})
                .error,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not 1 to 86400");
  // A bad slice is left out with a warning; the good one still serves.
  auto svc = service(R"("clusterIP":"10.96.0.27","ports":[{"name":"http","port":80}])");
  auto q = run(svc, {slice("bad", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.999")),
                     slice("good", "IPv4", R"({"name":"http","port":8080})", ep("10.244.1.9"))});
  EXPECT_EQ(table(q), (std::vector<std::string>{"TCP 10.96.0.27:80 -> 10.244.1.9:8080"}));
  ASSERT_EQ(q.warnings.size(), 1u);
  EXPECT_EQ(q.warnings[0], "EndpointSlice default/bad skipped: endpoints[0].addresses[0]: \"10.244.1.999\" is not an IP address");
  // Not JSON, or no name: the object cannot even be named.
  EXPECT_FALSE(decodeService("{").has_value());
  EXPECT_FALSE(decodeService(R"({"metadata":{},"spec":{}})").has_value());
}

TEST(KubeProxySemantics, UnchangedServiceReusesItsObjects) {
  auto svc = service(R"("clusterIP":"10.96.0.28","ports":[{"name":"http","port":80},{"name":"x","port":81}])");
  auto s1 = slice("s", "IPv4", R"({"name":"http","port":8080},{"name":"x","port":8081})", ep("10.244.1.1"));
  auto first = run(svc, {s1});
  std::vector<const EndpointSlice*> ptrs{&s1};
  auto again = translate(svc, ptrs, node(), {}, &first);
  ASSERT_EQ(again.servers.size(), 2u);
  EXPECT_EQ(again.servers[0].second, first.servers[0].second);
  EXPECT_EQ(again.servers[1].second, first.servers[1].second);
}

TEST(KubeObjects, ListsAndWatchEvents) {
  std::vector<Service> out;
  auto meta = decodeList(
      R"({"kind":"ServiceList","metadata":{"resourceVersion":"42","continue":"abc"},"items":[
        {"metadata":{"namespace":"a","name":"x"},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":443}]}},
        {"metadata":{"namespace":"a","name":"y"},"spec":{"clusterIP":"bad","ports":[{"port":443}]}}]})",
      out);
  ASSERT_TRUE(meta.has_value()) << meta.error().message();
  EXPECT_EQ(meta->resourceVersion, "42");
  EXPECT_EQ(meta->continueToken, "abc");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].error.empty());
  EXPECT_FALSE(out[1].error.empty());  // one bad item does not fail the page
  auto ev = decodeSliceEvent(R"({"type":"MODIFIED","object":{"metadata":{"namespace":"a","name":"x-1",
    "resourceVersion":"43","labels":{"kubernetes.io/service-name":"x"},
    "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-12-02T03:04:05Z"}},
    "addressType":"IPv4","ports":[{"port":443}],"endpoints":[{"addresses":["10.244.0.1"]}]}})");
  ASSERT_TRUE(ev.has_value()) << ev.error().message();
  EXPECT_EQ(ev->type, "MODIFIED");
  EXPECT_EQ(ev->resourceVersion, "43");
  ASSERT_TRUE(ev->object.has_value());
  EXPECT_EQ(ev->object->serviceName, "x");
  ASSERT_TRUE(ev->object->triggerTime.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*ev->object->triggerTime), 1796180645);
  auto gone = decodeServiceEvent(R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}})");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->errorCode, 410);
  auto bm = decodeNodeEvent(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"99"}}})");
  ASSERT_TRUE(bm.has_value());
  EXPECT_EQ(bm->resourceVersion, "99");
  auto n = decodeNode(R"({"metadata":{"name":"node-a","labels":{"topology.kubernetes.io/zone":"z1"}},
    "status":{"addresses":[{"type":"Hostname","address":"node-a"},{"type":"InternalIP","address":"192.168.1.10"}]}})");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->zone, "z1");
  ASSERT_EQ(n->addresses.size(), 1u);
}

TEST(KubeObjects, MembersInAnyOrder) {
  // The API server writes addressType before endpoints and type before object; a decoder
  // that reads front to back must still take them the other way round.
  const char* ports = R"("ports":[{"name":"http","port":8080}])";
  const char* eps = R"("endpoints":[{"addresses":["10.244.0.1"],"nodeName":"n1","conditions":{"ready":false,"serving":true,"terminating":true},
    "hints":{"forZones":[{"name":"z1"}]}},{"addresses":["10.244.0.2"],"nodeName":"n2"}])";
  const char* meta = R"("metadata":{"namespace":"a","name":"x-1","labels":{"kubernetes.io/service-name":"x"}})";
  auto usual = decodeEndpointSlice(std::string("{") + meta + R"(,"addressType":"IPv4",)" + eps + "," + ports + "}");
  auto backwards = decodeEndpointSlice(std::string("{") + eps + "," + ports + R"(,"addressType":"IPv4",)" + meta + "}");
  ASSERT_TRUE(usual.has_value()) << usual.error().message();
  ASSERT_TRUE(backwards.has_value()) << backwards.error().message();
  EXPECT_EQ(*usual, *backwards);
  ASSERT_EQ(usual->endpoints.size(), 2u);
  EXPECT_FALSE(usual->endpoints[0].ready);
  EXPECT_TRUE(usual->endpoints[0].serving && usual->endpoints[0].terminating);
  EXPECT_TRUE(usual->endpoints[1].ready);
  EXPECT_EQ(usual->endpoints[1].nodeName.view(), "n2");
  EXPECT_TRUE(usual->hinted(0, EndpointHint::kZone, "z1"));
  bool any = true;
  EXPECT_FALSE(usual->hinted(1, EndpointHint::kZone, "z1", &any));
  EXPECT_FALSE(any);
  auto ev = decodeSliceEvent(std::string(R"({"object":{)") + meta + R"(,"addressType":"IPv4",)" + eps + "," + ports +
                             R"(},"type":"ADDED"})");
  ASSERT_TRUE(ev.has_value()) << ev.error().message();
  EXPECT_EQ(ev->type, "ADDED");
  ASSERT_TRUE(ev->object.has_value());
  EXPECT_EQ(*ev->object, *usual);
  // An FQDN slice keeps no endpoints, whatever the order.
  auto fqdn = decodeEndpointSlice(std::string("{") + eps + R"(,"addressType":"FQDN",)" + meta + "}");
  ASSERT_TRUE(fqdn.has_value());
  EXPECT_TRUE(fqdn->endpoints.empty());
  EXPECT_TRUE(fqdn->error.empty());
}

TEST(KubeObjects, SkipsWhatItDoesNotUseAndGoesOnAfterABadField) {
  // managedFields and other members are skipped unread; a field of the wrong type marks
  // the object, and the members after it are still read.
  auto s = decodeService(R"({"metadata":{"namespace":"default","name":"web","managedFields":[{"fieldsV1":{"f:spec":{}}}],
    "labels":{"service.kubernetes.io/service-proxy-name":"other"}},
    "spec":{"ports":[{"name":"http","port":80.5},{"name":"dns","port":53,"protocol":"UDP"}],"clusterIP":"10.96.0.30",
    "sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},"sessionAffinity":"ClientIP"}})");
  ASSERT_TRUE(s.has_value()) << s.error().message();
  EXPECT_EQ(s->error, "spec.ports[0].port: must be an integer");
  ASSERT_EQ(s->ports.size(), 1u);
  EXPECT_EQ(s->ports[0].name.view(), "dns");
  EXPECT_EQ(s->proxyName.view(), "other");
  ASSERT_EQ(s->clusterIPs.size(), 1u);
  EXPECT_TRUE(s->affinityClientIP);
  EXPECT_EQ(s->affinityTimeout, 60u);  // the config came before sessionAffinity
  // The timeout only counts with ClientIP affinity.
  auto none = decodeService(R"({"metadata":{"name":"x"},"spec":{"clusterIP":"10.96.0.31",
    "sessionAffinityConfig":{"clientIP":{"timeoutSeconds":0}}}})");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->error, "");
  EXPECT_FALSE(decodeService(R"({"metadata":{"name":"x"},"spec":{"ports":[{"port":80}]})").has_value());  // cut short
  EXPECT_FALSE(decodeServiceEvent(R"({"type":"ADDED"})").has_value());
}

TEST(KubeObjects, Rfc3339) {
  auto t = parseRfc3339("2026-12-02T03:04:05.5+01:00");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count(),
            (1796180645LL - 3600) * 1000 + 500);
  EXPECT_FALSE(parseRfc3339("yesterday").has_value());
  // Beyond what system_clock's nanoseconds hold (fuzz_kube_endpoint_slice: an overflow).
  EXPECT_FALSE(parseRfc3339("4052-12-02T03:04:05.123456+01:00").has_value());
  EXPECT_FALSE(parseRfc3339("1000-01-01T00:00:00Z").has_value());
  EXPECT_TRUE(parseRfc3339("2261-12-31T23:59:59.999999999Z").has_value());
  EXPECT_TRUE(parseRfc3339("1700-01-01T00:00:00Z").has_value());
}

}  // namespace
}  // namespace nodeagent::ipvs::k8s
