// The API client and list/watch against a real kube-apiserver and etcd
// (tests/k8s/control-plane.sh), authenticated with the agent's ServiceAccount token from
// TokenRequest. What the server received is read from its audit log.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "kube/client.h"
#include "kube/list_watch.h"
#include "common/files.h"
#include "tests/kube/control_plane.h"
#include "tests/kube/watch_recorder.h"

namespace nodeagent::kube {
namespace {

using namespace std::chrono_literals;
using testing::AuditQuery;
using testing::ControlPlane;
using testing::eventually;
using testing::makeClient;
using testing::WatchRecorder;

// A temp file for a token, written atomically (rename), as kubelet's projected volume does.
struct TokenFile {
  std::string path;
  explicit TokenFile(const std::string& name) : path(ControlPlane::shared().dir() + "/" + name) {}
  void write(const std::string& token) const {
    auto r = writeFileAtomic(path, token + "\n", 0600);
    if (!r) throw std::runtime_error(r.error().message());
  }
};

std::string credentialId(const Json& auditEvent) {
  const auto& ids = auditEvent.get("user").get("extra").get("authentication.kubernetes.io/credential-id").asArray();
  return ids.empty() ? "" : ids.front().asString();
}

TEST(KubeClient, GetsNodeWithTheServiceAccountToken) {
  auto& cp = ControlPlane::shared();
  cp.createNode("client-get");
  size_t mark = cp.auditMark();
  auto c = makeClient(cp.agentCluster());
  auto r = c->get("/api/v1/nodes/client-get");
  ASSERT_TRUE(r) << r.error().message();
  auto j = Json::parse(r->body);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("metadata").get("name").asString(), "client-get");
  // The server authenticated it as kube-system/nodeagent (deploy/rbac.yaml's identity).
  EXPECT_TRUE(eventually([&] {
    return cp.countAudit({.verb = "get", .resource = "nodes", .name = "client-get", .user = cp.agentUser()}, mark) == 1;
  }));
}

TEST(KubeClient, RejectsServerWithUnknownCa) {
  auto& cp = ControlPlane::shared();
  auto cluster = cp.agentCluster();
  cluster.caFile = "/etc/ssl/certs/ca-certificates.crt";
  auto c = makeClient(cluster, {.maxAttempts = 1});
  auto r = c->get("/api/v1/nodes");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 0);
}

TEST(KubeClient, ReportsUnauthorizedClearlyWithoutTheToken) {
  auto& cp = ControlPlane::shared();
  TokenFile f("bogus.token");
  f.write("wrong-secret-token");
  auto c = makeClient(cp.clusterWithTokenFile(f.path));
  auto r = c->get("/api/v1/nodes");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 401);
  EXPECT_NE(r.error().message().find("401 Unauthorized"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(f.path), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("wrong-secret-token"), std::string::npos);
  EXPECT_EQ(c->figures().get("requests").asInt(), 1) << "401 is not retried (the token file did not change)";
}

TEST(KubeClient, PicksUpRotatedTokenFileWithoutRestart) {
  auto& cp = ControlPlane::shared();
  // Tokens bound to Secrets: deleting the Secret revokes the token, as a pod's deletion
  // revokes its projected token.
  for (const char* s : {"token-a", "token-b", "token-c"}) {
    auto r = cp.admin().request("POST", "/api/v1/namespaces/kube-system/secrets",
                                Json::object()
                                    .set("apiVersion", "v1")
                                    .set("kind", "Secret")
                                    .set("metadata", Json::object().set("name", s))
                                    .dump());
    ASSERT_TRUE(r) << r.error().message();
  }
  cp.createNode("client-rotate");
  TokenFile f("rotating.token");
  f.write(cp.createToken("token-a"));
  auto c = makeClient(cp.clusterWithTokenFile(f.path), {.maxAttempts = 1});
  size_t mark = cp.auditMark();
  ASSERT_TRUE(c->get("/api/v1/nodes/client-rotate"));
  // The projected volume rewrites the file: the next request carries the new token.
  f.write(cp.createToken("token-b"));
  auto r = c->get("/api/v1/nodes/client-rotate");
  ASSERT_TRUE(r) << r.error().message();
  // The old token is revoked; the server rejects it, and the client follows the file.
  ASSERT_TRUE(cp.kubectl({"-n", "kube-system", "delete", "secret", "token-b"}).rc == 0);
  ASSERT_TRUE(eventually([&] { return !c->get("/api/v1/nodes/client-rotate"); }, 20s))
      << "a token bound to a deleted Secret must stop working";
  f.write(cp.createToken("token-c"));
  r = c->get("/api/v1/nodes/client-rotate");
  ASSERT_TRUE(r) << r.error().message();

  // The audit log shows the same identity with three different credentials, in order.
  std::vector<std::string> ids;
  ASSERT_TRUE(eventually([&] {
    ids.clear();
    for (const auto& e : cp.audit(mark))
      if (testing::auditMatches(e, {.verb = "get", .resource = "nodes", .name = "client-rotate", .user = cp.agentUser()}))
        if (ids.empty() || ids.back() != credentialId(e)) ids.push_back(credentialId(e));
    return ids.size() == 3;
  })) << ids.size();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u);
}

TEST(KubeClient, DecodesNotFoundStatus) {
  auto& cp = ControlPlane::shared();
  auto c = makeClient(cp.agentCluster());
  auto r = c->get("/api/v1/nodes/nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 404);
  EXPECT_EQ(r.error().message(), "GET /api/v1/nodes/nope: 404 NotFound: nodes \"nope\" not found: HTTP 404");
}

TEST(KubeClient, ForbiddenNamesTheRbacRules) {
  auto& cp = ControlPlane::shared();
  auto c = makeClient(cp.agentCluster());
  auto r = c->get("/api/v1/namespaces/kube-system/secrets");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 403);
  // The agent names the refused verb and resource itself, then the server's reason.
  EXPECT_NE(r.error().message().find("403 Forbidden: cannot list secrets in namespace kube-system "
                                     "(check the RBAC rules of deploy/rbac.yaml)"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("cannot list resource \"secrets\""), std::string::npos) << r.error().message();
}

TEST(KubeClient, TokenBucketLimitsRequestRate) {
  auto& cp = ControlPlane::shared();
  cp.createNode("client-rate");
  auto c = makeClient(cp.agentCluster(), {.qps = 5, .burst = 2});
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(c->get("/api/v1/nodes/client-rate"));
  // 2 at once, then 5 more at 5/s: at least 1 s.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 950ms);
}

// Another writer (kubectl, admin) sets a condition on the node.
void patchProbe(ControlPlane& cp, const std::string& node, const std::string& reason) {
  auto r = cp.kubectl({"patch", "node", node, "--subresource=status", "--type=strategic", "-p",
                       R"({"status":{"conditions":[{"type":"Probe","status":"True","reason":")" + reason + R"("}]}})"});
  ASSERT_EQ(r.rc, 0) << r.out;
}

std::string queryValue(const std::string& uri, const std::string& key) {
  auto p = uri.find(key + "=");
  if (p == std::string::npos) return "";
  auto e = uri.find('&', p);
  return uri.substr(p + key.size() + 1, e == std::string::npos ? std::string::npos : e - p - key.size() - 1);
}

// The real server ends each watch at timeoutSeconds and sends a bookmark 2 s before; the
// watch resumes from the bookmark's version (newer than anything of this node), never relists.
TEST(KubeListWatch, ServerTimeoutResumesFromBookmarkWithoutRelist) {
  auto& cp = ControlPlane::shared();
  cp.createNode("lw-bookmark");
  cp.createNode("lw-bookmark-other");
  size_t mark = cp.auditMark();
  auto c = makeClient(cp.agentCluster(), {.qps = 100, .burst = 100});
  WatchRecorder rec;
  ListWatch lw(*c, {.path = "/api/v1/nodes", .fieldSelector = "metadata.name=lw-bookmark", .watchTimeout = 4s,
                    .backoffBase = 50ms},
               rec.handler());
  std::thread t([&] { lw.run(); });
  // Stopped and joined however the test ends (a failed ASSERT returns early).
  struct Join {
    ListWatch& lw;
    kube::Client& c;
    std::thread& t;
    ~Join() {
      lw.stop();
      c.interrupt();
      if (t.joinable()) t.join();
    }
  } join{lw, *c, t};
  ASSERT_TRUE(eventually([&] { return lw.stats().watches == 1; })) << lw.stats().lastError;
  patchProbe(cp, "lw-bookmark", "One");
  ASSERT_TRUE(eventually([&] { return rec.reason() == "One"; }));
  std::string rvAfterEvent = lw.stats().resourceVersion;
  // Only other objects change now: the node's own version stays, the bookmarks move on.
  patchProbe(cp, "lw-bookmark-other", "Elsewhere");
  // The server sends a bookmark shortly before each 4 s timeout, but on a busy machine
  // it may miss some: wait for one that carries the version past the node's last event.
  auto pastEvent = [&] {
    auto st = lw.stats();
    return st.watches >= 3 && !st.resourceVersion.empty() && std::stoll(st.resourceVersion) > std::stoll(rvAfterEvent);
  };
  ASSERT_TRUE(eventually(pastEvent, 60s)) << lw.stats().watches << " watches, " << lw.stats().bookmarks
                                          << " bookmarks, version " << lw.stats().resourceVersion;
  EXPECT_GE(lw.stats().bookmarks, 1u);
  patchProbe(cp, "lw-bookmark", "Two");
  ASSERT_TRUE(eventually([&] { return rec.reason() == "Two"; }));
  EXPECT_EQ(lw.stats().lists, 1u);
  EXPECT_EQ(lw.stats().relists, 0u);

  std::vector<std::string> watchVersions;
  int lists = 0;
  for (const auto& e : cp.audit(mark)) {
    if (e.get("user").get("username").asString() != cp.agentUser()) continue;
    const std::string& uri = e.get("requestURI").asString();
    if (testing::auditMatches(e, {.verb = "list", .resource = "nodes"})) ++lists;
    if (testing::auditMatches(e, {.verb = "watch", .resource = "nodes", .stage = "ResponseStarted"})) {
      EXPECT_EQ(queryValue(uri, "allowWatchBookmarks"), "true") << uri;
      EXPECT_EQ(queryValue(uri, "timeoutSeconds"), "4") << uri;
      watchVersions.push_back(queryValue(uri, "resourceVersion"));
    }
  }
  EXPECT_EQ(lists, 1) << "the server saw one list";
  ASSERT_GE(watchVersions.size(), 3u);
  // A later watch starts past the node's last event: a bookmark carried it forward.
  bool resumedPast = false;
  for (size_t i = 1; i < watchVersions.size(); ++i)
    resumedPast = resumedPast || std::stoll(watchVersions[i]) > std::stoll(rvAfterEvent);
  EXPECT_TRUE(resumedPast) << "no watch resumed past " << rvAfterEvent;
}

// etcd compaction (etcdctl compact) removes the version a watch would resume from: the
// resume gets 410 Gone and the watch relists exactly once. The watch cache is off for this
// control plane, so watches are served from etcd as they are for the compacted history.
TEST(KubeListWatch, EtcdCompactionGivesGoneAndExactlyOneRelist) {
  ControlPlane cp({.apiserverArgs = "--watch-cache=false"});
  cp.createNode("lw-compact");
  cp.createNode("lw-compact-other");
  size_t mark = cp.auditMark();
  auto c = makeClient(cp.agentCluster(), {.qps = 100, .burst = 100});
  WatchRecorder rec;
  ListWatch lw(*c, {.path = "/api/v1/nodes", .fieldSelector = "metadata.name=lw-compact", .watchTimeout = 3s,
                    .backoffBase = 50ms},
               rec.handler());
  std::thread t([&] { lw.run(); });
  ASSERT_TRUE(eventually([&] { return lw.stats().watches == 1; })) << lw.stats().lastError;
  patchProbe(cp, "lw-compact", "One");
  ASSERT_TRUE(eventually([&] { return rec.reason() == "One"; }));
  // Newer revisions elsewhere, then compact everything up to now.
  for (const char* r : {"a", "b", "c"}) patchProbe(cp, "lw-compact-other", r);
  cp.compactEtcd(cp.etcdRevision());
  ASSERT_TRUE(eventually([&] { return lw.stats().relists == 1; }, 20s)) << lw.stats().lastError;
  patchProbe(cp, "lw-compact", "Two");
  ASSERT_TRUE(eventually([&] { return rec.reason() == "Two"; }));
  // Two more server timeouts later: still exactly one relist.
  uint64_t watches = lw.stats().watches;
  ASSERT_TRUE(eventually([&] { return lw.stats().watches >= watches + 2; }, 15s));
  EXPECT_EQ(lw.stats().relists, 1u);
  EXPECT_EQ(lw.stats().lists, 2u);
  {
    std::lock_guard l(rec.mu);
    EXPECT_EQ(rec.lists, 2);
  }
  EXPECT_EQ(cp.countAudit({.verb = "list", .resource = "nodes", .user = cp.agentUser()}, mark), 2)
      << "the server saw the first list and one relist";
  lw.stop();
  c->interrupt();
  t.join();
}

}  // namespace
}  // namespace nodeagent::kube
