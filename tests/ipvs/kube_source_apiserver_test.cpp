// The Kubernetes service source against a real kube-apiserver and etcd
// (tests/k8s/control-plane.sh) with the agent's ServiceAccount token and deploy/rbac.yaml:
// objects written with kubectl become desired IPVS services; an etcd compaction forces a
// 410 relist that re-programs nothing; one endpoint change changes one service.
#include <gtest/gtest.h>

#include <thread>

#include "ipvs/kube_source.h"
#include "tests/kube/control_plane.h"
#include "tests/kube/watch_recorder.h"

namespace nodeagent::ipvs {
namespace {

using namespace std::chrono_literals;
using kube::testing::ControlPlane;
using kube::testing::eventually;

const DesiredService* find(const DesiredState& d, const std::string& name) {
  for (const auto& [k, p] : d)
    if (p->name == name) return p.get();
  return nullptr;
}

TEST(KubeServiceSourceLive, ProgramsFromTheApiAndRelistsWithoutReprogramming) {
  ControlPlane cp({.apiserverArgs = "--watch-cache=false"});
  cp.createNode("proxy-node");
  std::string objects = R"(apiVersion: v1
kind: Service
metadata: {name: live-web, namespace: default}
spec:
  clusterIP: 10.96.7.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: live-web-1, namespace: default, labels: {kubernetes.io/service-name: live-web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - {addresses: [10.244.7.1], nodeName: proxy-node, conditions: {ready: true}}
  - {addresses: [10.244.7.2], nodeName: other, conditions: {ready: true}}
---
apiVersion: v1
kind: Service
metadata: {name: live-other, namespace: default}
spec:
  clusterIP: 10.96.7.11
  ports: [{name: http, port: 80}]
)";
  std::string file = cp.dir() + "/proxy-objects.yaml";
  {
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(objects.c_str(), f);
    std::fclose(f);
  }
  auto applied = cp.kubectl({"apply", "-f", file});
  ASSERT_EQ(applied.rc, 0) << applied.out;

  auto client = kube::testing::makeClient(cp.agentCluster(), {.qps = 100, .burst = 100});
  KubeSourceOptions o;
  o.nodeName = "proxy-node";
  o.watchTimeout = 3s;
  o.localAddresses = [] { return std::vector<Address>{}; };
  KubeServiceSource src(*client, o);
  src.watch([] {});
  DesiredState state;
  auto loaded = [&](auto pred) {
    return eventually(
        [&] {
          if (!src.ready()) return false;
          auto d = src.load(&state);
          if (!d) return false;
          state = std::move(*d);
          return pred();
        },
        30s);
  };
  ASSERT_TRUE(loaded([&] { return find(state, "default/live-web:http") && find(state, "default/live-other:http"); }))
      << src.status().serviceWatch.lastError << " / " << src.status().sliceWatch.lastError;
  const auto* web = find(state, "default/live-web:http");
  ASSERT_EQ(web->dests.size(), 2u);
  EXPECT_EQ(web->dests.begin()->key.toString(), "10.244.7.1:8080");
  EXPECT_TRUE(find(state, "default/live-other:http")->dests.empty());
  ServicePtr webBefore;
  for (const auto& [k, p] : state)
    if (p->name == "default/live-web:http") webBefore = p;

  // Compaction: the next watch resumes from a version etcd no longer has (410), and the
  // source relists. Nothing in the objects changed: the service keeps its object.
  // (The services watch saw the annotations last, so it resumes from the compacted
  // revision itself and keeps going; the EndpointSlice watch is behind it and relists.)
  uint64_t relists = src.status().sliceWatch.relists;
  for (const char* v : {"a", "b", "c"}) {
    auto p = cp.kubectl({"annotate", "--overwrite", "service", "live-other", std::string("probe=") + v});
    ASSERT_EQ(p.rc, 0) << p.out;
  }
  cp.compactEtcd(cp.etcdRevision());
  ASSERT_TRUE(eventually(
      [&] { return src.status().sliceWatch.relists >= relists + 1; }, 30s))
      << src.status().sliceWatch.lastError;
  auto after = src.load(&state);
  ASSERT_TRUE(after.has_value());
  for (const auto& [k, p] : *after) {
    if (p->name == "default/live-web:http") {
      EXPECT_EQ(p, webBefore) << "re-translated although unchanged";
    }
  }
  state = std::move(*after);

  // One endpoint becomes not ready: that service, and only it, changes.
  auto patched = cp.kubectl({"patch", "endpointslice", "live-web-1", "--type=json", "-p",
                             R"([{"op":"replace","path":"/endpoints/1/conditions/ready","value":false}])"});
  ASSERT_EQ(patched.rc, 0) << patched.out;
  ASSERT_TRUE(loaded([&] {
    const auto* w = find(state, "default/live-web:http");
    return w && w->dests.size() == 1;
  }));
  EXPECT_EQ(src.status().programmed >= 2, true);
  src.stop();
  client->interrupt();
}

}  // namespace
}  // namespace nodeagent::ipvs
