// The API client and list/watch against the project's Kubernetes API test server (TLS,
// bearer tokens, injected faults).
#include <gtest/gtest.h>

#include <thread>

#include "kube/client.h"
#include "kube/list_watch.h"
#include "tests/kube/test_server.h"

namespace nodeagent::kube {
namespace {

using namespace std::chrono_literals;
using testing::TestServer;
using testing::eventually;

std::unique_ptr<Client> makeClient(ClusterConfig c, ClientOptions o = {}) {
  o.backoffBase = 50ms;
  auto r = Client::create(std::move(c), o);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return std::move(*r);
}

TEST(KubeClient, GetsNodeOverTlsWithBearerToken) {
  TestServer s;
  auto c = makeClient(s.agentCluster());
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_TRUE(r) << r.error().message();
  auto j = Json::parse(r->body);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("metadata").get("name").asString(), "node-1");
}

TEST(KubeClient, RejectsServerWithUnknownCa) {
  TestServer s;
  auto cluster = s.agentCluster();
  cluster.caFile = "/etc/ssl/certs/ca-certificates.crt";
  auto c = makeClient(cluster, {.maxAttempts = 1});
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 0);
}

TEST(KubeClient, ReportsUnauthorizedClearlyWithoutTheToken) {
  TestServer s;
  auto c = makeClient(s.agentCluster("wrong-secret-token"));
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 401);
  EXPECT_NE(r.error().message().find("401 Unauthorized"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(s.tokenFile()), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("wrong-secret-token"), std::string::npos);
  EXPECT_EQ(s.count("GET", "/api/v1/nodes/node-1"), 1) << "401 is not retried (the token file did not change)";
}

TEST(KubeClient, PicksUpRotatedTokenFileWithoutRestart) {
  TestServer s;
  auto c = makeClient(s.agentCluster("token-v1"));
  s.setTokens({"token-v1", "admin-token"});
  ASSERT_TRUE(c->get("/api/v1/nodes/node-1"));
  // The server moves to a new token; the projected volume rewrites the file.
  s.setTokens({"token-v2", "admin-token"});
  s.writeToken("token-v2");
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_TRUE(r) << r.error().message();
  // Even when the server rotates first and the file follows after a 401.
  s.setTokens({"token-v3", "admin-token"});
  EXPECT_FALSE(c->get("/api/v1/nodes/node-1"));
  s.writeToken("token-v3");
  EXPECT_TRUE(c->get("/api/v1/nodes/node-1"));
}

TEST(KubeClient, HonoursRetryAfterOn429) {
  TestServer s;
  auto c = makeClient(s.agentCluster());
  s.setFaults(Json::array().push(Json::object().set("method", "GET").set("path", "/api/v1/nodes/node-1")
                                     .set("status", 429).set("retry_after", 2).set("count", 1)));
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->get("/api/v1/nodes/node-1");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(took, 1950ms);
  EXPECT_LT(took, 5s);
  auto log = s.requests();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].get("status").asInt(), 429);
  EXPECT_EQ(log[1].get("status").asInt(), 200);
  EXPECT_GE(log[1].get("t").asDouble() - log[0].get("t").asDouble(), 1.95);
}

TEST(KubeClient, Retries5xxWithBackoffThenGivesUpWithDecodedStatus) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.maxAttempts = 3});
  s.setFaults(Json::array().push(Json::object().set("path", "/api/v1/nodes/node-1").set("status", 500).set("count", 2)));
  ASSERT_TRUE(c->get("/api/v1/nodes/node-1"));
  EXPECT_EQ(s.count("GET", "/api/v1/nodes/node-1"), 3);
  s.setFaults(Json::array().push(Json::object().set("path", "/api/v1/nodes/node-1").set("status", 500).set("count", -1)));
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 500);
  EXPECT_NE(r.error().message().find("InternalError: injected fault"), std::string::npos) << r.error().message();
}

TEST(KubeClient, DecodesNotFoundStatus) {
  TestServer s;
  auto c = makeClient(s.agentCluster());
  auto r = c->get("/api/v1/nodes/nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(httpStatus(r.error()), 404);
  EXPECT_EQ(r.error().message(), "GET /api/v1/nodes/nope: 404 NotFound: nodes \"nope\" not found: HTTP 404");
}

TEST(KubeClient, SlowAnswerHitsRequestTimeoutThenRetrySucceeds) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.requestTimeout = 700ms, .maxAttempts = 2});
  s.setFaults(Json::array().push(Json::object().set("path", "/api/v1/nodes/node-1").set("delay_ms", 2000).set("count", 1)));
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 700ms);
}

TEST(KubeClient, TokenBucketLimitsRequestRate) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.qps = 5, .burst = 2});
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(c->get("/api/v1/nodes/node-1"));
  // 2 at once, then 5 more at 5/s: at least 1 s.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 950ms);
}

struct WatchRecorder {
  std::mutex mu;
  int lists = 0;
  std::vector<std::string> events;
  std::string lastReason;
  ListWatchHandler handler() {
    return {[this](const std::vector<Json>&, const std::string&) {
              std::lock_guard l(mu);
              lists++;
            },
            [this](const std::string& type, const Json& obj) {
              std::lock_guard l(mu);
              events.push_back(type);
              for (const auto& c : obj.get("status").get("conditions").asArray())
                if (c.get("type").asString() == "Probe") lastReason = c.get("reason").asString();
            }};
  }
};

void patchProbe(TestServer& s, const std::string& reason) {
  std::string body = R"({"status":{"conditions":[{"type":"Probe","status":"True","reason":")" + reason + R"("}]}})";
  auto r = s.admin().request("PATCH", "/api/v1/nodes/node-1/status", body, "application/strategic-merge-patch+json");
  ASSERT_TRUE(r) << r.error().message();
}

TEST(KubeListWatch, DroppedWatchResumesWithoutRelistAnd410RelistsOnce) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.qps = 100, .burst = 100});
  WatchRecorder rec;
  ListWatch lw(*c, {.path = "/api/v1/nodes", .fieldSelector = "metadata.name=node-1", .watchTimeout = 60s,
                    .backoffBase = 50ms},
               rec.handler());
  std::thread t([&] { lw.run(); });
  ASSERT_TRUE(eventually([&] { return lw.stats().watches == 1 && s.stats().get("watches").asInt() == 1; }))
      << lw.stats().watches << " " << lw.stats().lastError << " " << s.stats().dump();
  patchProbe(s, "One");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(rec.mu); return rec.lastReason == "One"; }));
  ASSERT_TRUE(eventually([&] { return lw.stats().bookmarks >= 1; }));

  // Drop the connection; a change happens while no watch is open.
  s.control("POST", "/_test/drop_watches");
  patchProbe(s, "Two");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(rec.mu); return rec.lastReason == "Two"; }));
  EXPECT_EQ(lw.stats().lists, 1u) << "a dropped watch resumes from the last version, no relist";
  EXPECT_GE(lw.stats().resumes, 1u);
  int listsAtServer = 0;
  for (const auto& e : s.requests())
    if (e.get("method").asString() == "GET" && e.get("path").asString() == "/api/v1/nodes") ++listsAtServer;
  EXPECT_EQ(listsAtServer, 1);

  // Compact the history and drop the watch: the resume gets 410 Gone and relists once.
  ASSERT_TRUE(eventually([&] { return s.stats().get("watches").asInt() == 1; }));
  s.control("POST", "/_test/compact", Json::object().set("drop_watches", true));
  ASSERT_TRUE(eventually([&] { return lw.stats().relists == 1 && lw.stats().lists == 2; }));
  patchProbe(s, "Three");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(rec.mu); return rec.lastReason == "Three"; }));
  std::this_thread::sleep_for(1500ms);  // a few bookmarks later: still exactly one relist
  EXPECT_EQ(lw.stats().relists, 1u);
  EXPECT_EQ(lw.stats().lists, 2u);
  {
    std::lock_guard l(rec.mu);
    EXPECT_EQ(rec.lists, 2);
  }
  lw.stop();
  c->interrupt();
  t.join();
}

TEST(KubeListWatch, ServerSideTimeoutRewatchesFromLastVersion) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.qps = 100, .burst = 100});
  WatchRecorder rec;
  ListWatch lw(*c, {.path = "/api/v1/nodes", .fieldSelector = "metadata.name=node-1", .watchTimeout = 1s,
                    .backoffBase = 50ms},
               rec.handler());
  std::thread t([&] { lw.run(); });
  ASSERT_TRUE(eventually([&] { return lw.stats().watches >= 3; }, 15s));
  EXPECT_EQ(lw.stats().lists, 1u);
  for (const auto& e : s.requests())
    if (e.get("method").asString() == "WATCH") {
      EXPECT_EQ(e.get("query").get("allowWatchBookmarks").asString(), "true");
      EXPECT_EQ(e.get("query").get("timeoutSeconds").asString(), "1");
      EXPECT_FALSE(e.get("query").get("resourceVersion").asString().empty());
    }
  lw.stop();
  c->interrupt();
  t.join();
}

}  // namespace
}  // namespace nodeagent::kube
