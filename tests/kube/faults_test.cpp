// What a real kube-apiserver cannot be made to do on demand, against the project's Python
// test server (tests/kube/kube_api_server.py): 429 with Retry-After, 5xx, slow answers and
// dropped connections. Everything else of the kube tier runs against the real apiserver.
#include <gtest/gtest.h>

#include <thread>

#include "agent/kube/client.h"
#include "agent/kube/list_watch.h"
#include "agent/reporter.h"
#include "tests/kube/test_server.h"
#include "tests/kube/watch_recorder.h"

namespace nodeagent::kube {
namespace {

using namespace std::chrono_literals;
using testing::TestServer;
using testing::eventually;
using testing::makeClient;
using testing::WatchRecorder;

const std::string kStatus = "/api/v1/nodes/node-1/status";

Json condition(const Json& node, const std::string& type) {
  for (const auto& c : node.get("status").get("conditions").asArray())
    if (c.get("type").asString() == type) return c;
  return Json();
}

void publish(agent::StateStore& store, const std::string& module, const std::string& type, bool status,
             const std::string& reason) {
  agent::ModuleState s;
  s.name = module;
  s.health = agent::Health::kHealthy;
  s.summary = reason;
  s.conditions = {{type, status, reason, ""}};
  store.publish(s);
  store.recordReconcile(module, true, "", 3ms);
}

TEST(KubeClientFaults, HonoursRetryAfterOn429) {
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

TEST(KubeClientFaults, Retries5xxWithBackoffThenGivesUpWithDecodedStatus) {
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

TEST(KubeClientFaults, SlowAnswerHitsRequestTimeoutThenRetrySucceeds) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.requestTimeout = 700ms, .maxAttempts = 2});
  s.setFaults(Json::array().push(Json::object().set("path", "/api/v1/nodes/node-1").set("delay_ms", 2000).set("count", 1)));
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->get("/api/v1/nodes/node-1");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 700ms);
}

void patchProbe(TestServer& s, const std::string& reason) {
  std::string body = R"({"status":{"conditions":[{"type":"Probe","status":"True","reason":")" + reason + R"("}]}})";
  auto r = s.admin().request("PATCH", "/api/v1/nodes/node-1/status", body, "application/strategic-merge-patch+json");
  ASSERT_TRUE(r) << r.error().message();
}

TEST(KubeListWatchFaults, DroppedConnectionResumesWithoutRelist) {
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

  lw.stop();
  c->interrupt();
  t.join();
}

TEST(ReporterFaults, HonoursRetryAfterAndRetriesWithNewestState) {
  TestServer s;
  auto c = makeClient(s.agentCluster(), {.qps = 50, .burst = 100, .maxAttempts = 1});
  agent::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "First");
  s.setFaults(Json::array().push(
      Json::object().set("method", "PATCH").set("path", kStatus).set("status", 429).set("retry_after", 2).set("count", 1)));
  agent::ReporterOptions o;
  o.nodeName = "node-1";
  o.status.coalesceWindow = 100ms;
  o.retryBase = 200ms;
  o.retryMax = 2s;
  agent::Reporter r(store, *c, o);
  r.start();
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  publish(store, "sysctl", "SysctlTuned", true, "Second");  // changes while waiting
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 2; }, 6s));
  std::vector<Json> patches;
  for (const auto& e : s.requests())
    if (e.get("method").asString() == "PATCH") patches.push_back(e);
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(patches[0].get("status").asInt(), 429);
  EXPECT_EQ(patches[1].get("status").asInt(), 200);
  EXPECT_GE(patches[1].get("t").asDouble() - patches[0].get("t").asDouble(), 1.95);
  EXPECT_NE(patches[1].get("body").asString().find("Second"), std::string::npos);
  EXPECT_EQ(condition(s.node("node-1"), "NodeAgentSysctlTuned").get("reason").asString(), "Second");
  EXPECT_EQ(r.figures().get("patches_failed").asInt(), 1);
  r.stop();
}

}  // namespace
}  // namespace nodeagent::kube
