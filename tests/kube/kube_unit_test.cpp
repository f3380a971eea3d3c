// Pure pieces of agent/kube: rate limiting, backoff, patch building, config and kubeconfig.
#include <gtest/gtest.h>
#include <unistd.h>

#include "agent/kube/client.h"
#include "agent/kube/cluster.h"
#include "agent/kube/config.h"
#include "agent/kube/node_status.h"
#include "agent/kube/rate.h"
#include "common/files.h"

namespace nodeagent::kube {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, BurstThenSteadyRate) {
  TokenBucket b(5, 10);
  auto t = std::chrono::steady_clock::time_point(1h);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.reserve(t), std::chrono::steady_clock::duration::zero());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(b.reserve(t)), 200ms);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(b.reserve(t)), 400ms);
  // After 2 s the debt (2 tokens) is paid and 8 more accrued.
  EXPECT_NEAR(b.tokens(t + 2s), 8, 1e-9);
  EXPECT_TRUE(b.tryTake(t + 2s));
  EXPECT_NEAR(b.tokens(t + 100s), 10, 1e-9);
}

TEST(RequestInfo, VerbAndResourceAsRbacNamesThem) {
  auto r = requestInfo("PATCH", "/api/v1/nodes/n1/status");
  EXPECT_EQ(r.verb, "patch");
  EXPECT_EQ(r.resource, "nodes/status");
  EXPECT_EQ(r.name, "n1");
  EXPECT_EQ(r.ns, "");
  r = requestInfo("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dn1&watch=true&resourceVersion=5");
  EXPECT_EQ(r.verb, "watch");
  EXPECT_EQ(r.resource, "nodes");
  EXPECT_EQ(r.name, "");
  EXPECT_EQ(requestInfo("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dn1").verb, "list");
  EXPECT_EQ(requestInfo("GET", "/api/v1/nodes/n1").verb, "get");
  r = requestInfo("POST", "/api/v1/namespaces/default/events");
  EXPECT_EQ(r.verb, "create");
  EXPECT_EQ(r.resource, "events");
  EXPECT_EQ(r.ns, "default");
  r = requestInfo("GET", "/apis/discovery.k8s.io/v1/namespaces/ns1/endpointslices/s1");
  EXPECT_EQ(r.resource, "endpointslices.discovery.k8s.io");
  EXPECT_EQ(r.name, "s1");
  EXPECT_EQ(r.ns, "ns1");
  EXPECT_EQ(requestInfo("DELETE", "/api/v1/namespaces/x/pods").verb, "deletecollection");
  EXPECT_EQ(requestInfo("PUT", "/api/v1/namespaces/x").resource, "namespaces");
  EXPECT_EQ(requestInfo("PUT", "/api/v1/namespaces/x").name, "x");
}

TEST(RequestInfo, ForbiddenMessageNamesVerbAndResource) {
  EXPECT_EQ(forbiddenMessage("PATCH", "/api/v1/nodes/n1/status", "Forbidden: denied"),
            "PATCH /api/v1/nodes/n1/status: 403 Forbidden: cannot patch nodes/status \"n1\" "
            "(check the RBAC rules of deploy/rbac.yaml): Forbidden: denied");
  EXPECT_EQ(forbiddenMessage("POST", "/api/v1/namespaces/default/events", "Forbidden"),
            "POST /api/v1/namespaces/default/events: 403 Forbidden: cannot create events in namespace default "
            "(check the RBAC rules of deploy/rbac.yaml): Forbidden");
}

TEST(Backoff, GrowsAndIsCapped) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    auto d1 = backoffDelay(1, 100ms, 10s, rng);
    EXPECT_GE(d1, 50ms);
    EXPECT_LE(d1, 100ms);
    auto d4 = backoffDelay(4, 100ms, 10s, rng);
    EXPECT_GE(d4, 400ms);
    EXPECT_LE(d4, 800ms);
    auto d20 = backoffDelay(20, 100ms, 10s, rng);
    EXPECT_GE(d20, 5s);
    EXPECT_LE(d20, 10s);
  }
}

TEST(NodeStatus, StrategicPatchSetsAndDeletesOnlyOwnConditions) {
  ConditionMap set;
  set["NodeAgentSysctlTuned"] = {"NodeAgentSysctlTuned", "True", "AllKeysApplied", "42/42", "2026-11-21T10:00:00Z",
                                 "2026-11-21T10:05:00Z"};
  EXPECT_EQ(buildStatusPatch(set, {"NodeAgentOld"}),
            R"({"status":{"conditions":[{"type":"NodeAgentSysctlTuned","status":"True","reason":"AllKeysApplied",)"
            R"("message":"42/42","lastTransitionTime":"2026-11-21T10:00:00Z","lastHeartbeatTime":"2026-11-21T10:05:00Z"},)"
            R"({"$patch":"delete","type":"NodeAgentOld"}]}})");
}

TEST(NodeStatus, OwnedConditionsIgnoreOtherWriters) {
  auto node = Json::parse(R"({"status":{"conditions":[{"type":"Ready","status":"True"},
      {"type":"NodeAgentIpvsSynced","status":"False","reason":"SyncFailed","message":"m","lastTransitionTime":"t"},
      {"type":"NodeAgent","status":"True"}]}})");
  ASSERT_TRUE(node);
  auto owned = ownedConditions(*node, "NodeAgent");
  ASSERT_EQ(owned.size(), 1u);
  EXPECT_EQ(owned["NodeAgentIpvsSynced"].reason, "SyncFailed");
  auto other = owned;
  other["NodeAgentIpvsSynced"].lastHeartbeatTime = "later";
  EXPECT_TRUE(sameConditions(owned, other)) << "heartbeats are not content";
  other["NodeAgentIpvsSynced"].message = "changed";
  EXPECT_FALSE(sameConditions(owned, other));
}

TEST(NodeStatus, EventNamesTheNode) {
  auto j = Json::parse(buildEvent({.name = "n1.abc", .namespace_ = "default", .nodeName = "n1", .nodeUid = "u1",
                                   .type = "Warning", .reason = "SyncFailed", .message = "m", .host = "n1",
                                   .timestamp = "2026-11-21T10:00:00Z"}));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("involvedObject").get("kind").asString(), "Node");
  EXPECT_EQ(j->get("involvedObject").get("uid").asString(), "u1");
  EXPECT_EQ(j->get("count").asInt(), 1);
}

Result<Config> parse(const std::string& yaml) {
  auto doc = loadYaml(yaml, "test.yaml");
  if (!doc) return fail(doc.error());
  ConfigErrors errors("test.yaml");
  Config c;
  parseConfig(ConfigMap(*doc, "kube", errors), c);
  if (auto r = errors.toResult(); !r) return fail(r.error());
  return c;
}

TEST(KubeConfigSection, DefaultsAndStrictErrors) {
  auto d = parse("");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mode, "auto");
  EXPECT_EQ(d->qps, 5);
  EXPECT_EQ(d->burst, 10);
  EXPECT_EQ(d->status.coalesceWindow, 1s);
  EXPECT_EQ(d->status.resyncInterval, 5min);
  auto bad = parse("mode: sometimes\nqps: 0\nstatus:\n  coalesce_window: 2x\n  extra: 1\n");
  ASSERT_FALSE(bad);
  const auto& m = bad.error().message();
  EXPECT_NE(m.find("test.yaml:1:7: kube.mode: must be one of auto, in-cluster, kubeconfig, off"), std::string::npos) << m;
  EXPECT_NE(m.find("test.yaml:2:6: kube.qps"), std::string::npos) << m;
  EXPECT_NE(m.find("kube.status.coalesce_window"), std::string::npos) << m;
  EXPECT_NE(m.find("kube.status.extra"), std::string::npos) << m;
  EXPECT_FALSE(parse("mode: kubeconfig\n"));
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nodeagent-kubeunit-XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { (void)std::system(("rm -rf " + path).c_str()); }
};

TEST(Cluster, AutoModeIsOffWithoutAnyEnvironment) {
  TempDir d;
  Config c;
  auto none = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto r = resolveCluster(c, d.path, none);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  c.mode = "in-cluster";
  EXPECT_FALSE(resolveCluster(c, d.path, none));
}

TEST(Cluster, AutoModeFindsInClusterEnvironment) {
  TempDir d;
  ASSERT_TRUE(writeFileAtomic(d.path + "/token", "tok"));
  ASSERT_TRUE(writeFileAtomic(d.path + "/ca.crt", "pem"));
  auto env = [](const std::string& k) -> std::optional<std::string> {
    if (k == "KUBERNETES_SERVICE_HOST") return "fd00::1";
    if (k == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  auto r = resolveCluster(Config{}, d.path, env);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->server, "https://[fd00::1]:443");
  EXPECT_EQ((*r)->tokenFile, d.path + "/token");
}

TEST(Cluster, KubeconfigCurrentContextWithInlineData) {
  TempDir d;
  std::string kc = d.path + "/kubeconfig";
  ASSERT_TRUE(writeFileAtomic(kc, R"(apiVersion: v1
kind: Config
current-context: b
contexts:
- name: a
  context: {cluster: c1, user: u1}
- name: b
  context: {cluster: c2, user: u2}
clusters:
- name: c1
  cluster: {server: "https://one:6443"}
- name: c2
  cluster:
    server: https://two:6443
    certificate-authority-data: aGVsbG8gY2E=
users:
- name: u1
  user: {token: t1}
- name: u2
  user:
    client-certificate: certs/client.crt
    client-key-data: a2V5
)"));
  auto r = loadKubeconfig(kc);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->server, "https://two:6443");
  EXPECT_EQ(r->caData, "hello ca");
  EXPECT_EQ(r->certFile, d.path + "/certs/client.crt");
  EXPECT_EQ(r->keyData, "key");
  EXPECT_TRUE(r->token.empty());
  EXPECT_NE(r->source.find("context b"), std::string::npos);
}

}  // namespace
}  // namespace nodeagent::kube
