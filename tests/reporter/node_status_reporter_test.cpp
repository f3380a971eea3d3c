// The status reporter, /metrics and the status file against the kube API test server.
#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <regex>
#include <set>
#include <thread>

#include "reporter/metrics_server.h"
#include "reporter/node_status_reporter.h"
#include "reporter/outputs.h"
#include "common/files.h"
#include "tests/kube/test_server.h"

namespace nodeagent::reporter {
namespace {

using namespace std::chrono_literals;
using kube::testing::TestServer;
using kube::testing::eventually;

// A fake module: publishes one condition (and a metric) like the real ones do.
void publish(core::StateStore& store, const std::string& module, const std::string& type, bool status,
             const std::string& reason, const std::string& message = "", core::Health h = core::Health::kHealthy) {
  core::ModuleState s;
  s.name = module;
  s.health = h;
  s.summary = reason;
  s.conditions = {{type, status, reason, message}};
  s.metrics = {{module + "_things", "things", core::Metric::Type::kGauge, {{"kind", "a\"b\\c"}}, 1.5}};
  store.publish(s);
  store.recordReconcile(module, true, "", 3ms);
}

std::unique_ptr<kube::Client> client(TestServer& s, const std::string& token = "agent-token") {
  auto c = kube::Client::create(s.agentCluster(token), {.qps = 50, .burst = 100, .maxAttempts = 1});
  EXPECT_TRUE(c) << c.error().message();
  return std::move(*c);
}

NodeStatusReporterOptions options(std::chrono::milliseconds window = 1s, std::chrono::milliseconds resync = 300s) {
  NodeStatusReporterOptions o;
  o.nodeName = "node-1";
  o.status.coalesceWindow = window;
  o.status.resyncInterval = resync;
  o.status.resyncJitter = 0.1;
  o.retryBase = 200ms;
  o.retryMax = 2s;
  return o;
}

const std::string kStatus = "/api/v1/nodes/node-1/status";

Json condition(const Json& node, const std::string& type) {
  for (const auto& c : node.get("status").get("conditions").asArray())
    if (c.get("type").asString() == type) return c;
  return Json();
}

int writes(TestServer& s) {
  int n = 0;
  for (const auto& e : s.requests())
    if (e.get("method").asString() != "GET" && e.get("method").asString() != "WATCH") ++n;
  return n;
}

void otherWriter(TestServer& s, const std::string& type, const std::string& reason) {
  std::string body = R"({"status":{"conditions":[{"type":")" + type + R"(","status":"True","reason":")" + reason +
                     R"(","message":"from another agent"}]}})";
  ASSERT_TRUE(s.admin().request("PATCH", kStatus, body, "application/strategic-merge-patch+json"));
}

TEST(Reporter, ThousandChangesInTwoSecondsGiveAtMostThreePatches) {
  TestServer s;
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "Start");
  NodeStatusReporter r(store, *c, options());
  r.start();
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  s.clearRequests();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 1000; ++i) {  // spread evenly over 1.9 s (no catch-up sleeps when late)
    publish(store, "sysctl", "SysctlTuned", i % 2 == 0, "Step" + std::to_string(i), "change " + std::to_string(i));
    std::this_thread::sleep_until(t0 + i * 1900us);
  }
  ASSERT_LT(std::chrono::steady_clock::now() - t0, 2s);
  std::this_thread::sleep_for(2500ms);
  EXPECT_LE(s.count("PATCH", kStatus), 3);
  EXPECT_GE(s.count("PATCH", kStatus), 2);
  auto last = condition(s.node("node-1"), "NodeAgentSysctlTuned");
  EXPECT_EQ(last.get("reason").asString(), "Step1000");
  EXPECT_EQ(last.get("status").asString(), "True");
  EXPECT_EQ(last.get("message").asString(), "change 1000");
  // Publishes between two wake-ups merge in the store, so the reporter sees most, not all.
  auto f = r.figures();
  EXPECT_GT(f.get("changes").asInt(), 500);
  EXPECT_GE(f.get("changes_coalesced").asInt(), f.get("changes").asInt() - 3);
  r.stop();
}

TEST(Reporter, IdleNodeSendsExactlyOneResyncPerPeriodAndNothingElse) {
  TestServer s;
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  publish(store, "ipvs", "IpvsSynced", true, "InSync");
  NodeStatusReporter r(store, *c, options(200ms, 1s));
  r.start();
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  auto firstAt = std::chrono::steady_clock::now();
  // N = 3 periods (jitter +-5%), then half a period.
  std::this_thread::sleep_until(firstAt + 3500ms);
  EXPECT_EQ(s.count("PATCH", kStatus), 1 + 3);
  EXPECT_EQ(writes(s), 1 + 3) << "no events, no other writes";
  EXPECT_EQ(r.figures().get("resync_patches").asInt(), 3);
  r.stop();
}

TEST(Reporter, ConditionsOfOtherWritersSurviveBeforeAndAfter) {
  TestServer s;
  otherWriter(s, "NPDKernelDeadlock", "Before");
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  NodeStatusReporter r(store, *c, options(100ms));
  r.start();
  ASSERT_TRUE(eventually([&] { return !condition(s.node("node-1"), "NodeAgentSysctlTuned").isNull(); }));
  otherWriter(s, "NPDFrequentRestarts", "After");
  publish(store, "sysctl", "SysctlTuned", false, "Drift");
  publish(store, "ipvs", "IpvsSynced", true, "InSync");
  ASSERT_TRUE(eventually([&] { return !condition(s.node("node-1"), "NodeAgentIpvsSynced").isNull(); }));
  auto node = s.node("node-1");
  EXPECT_EQ(condition(node, "Ready").get("reason").asString(), "KubeletReady");
  EXPECT_EQ(condition(node, "NPDKernelDeadlock").get("reason").asString(), "Before");
  EXPECT_EQ(condition(node, "NPDFrequentRestarts").get("reason").asString(), "After");
  EXPECT_EQ(condition(node, "NodeAgentSysctlTuned").get("reason").asString(), "Drift");
  for (const auto& e : s.requests())
    if (e.get("method").asString() == "PATCH" && e.get("path").asString() == kStatus && e.get("auth").asBool() &&
        e.get("body").asString().find("NodeAgent") != std::string::npos) {
      EXPECT_EQ(e.get("content_type").asString(), "application/strategic-merge-patch+json");
    }
  r.stop();
}

TEST(Reporter, RepatchesWhenAnotherWriterRemovesItsCondition) {
  TestServer s;
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  NodeStatusReporter r(store, *c, options(100ms));
  r.start();
  ASSERT_TRUE(eventually([&] { return !condition(s.node("node-1"), "NodeAgentSysctlTuned").isNull(); }));
  // Someone replaces the whole list with a JSON merge patch (the seed's failure mode).
  ASSERT_TRUE(s.admin().request("PATCH", kStatus, R"({"status":{"conditions":[{"type":"Ready","status":"True"}]}})",
                                "application/merge-patch+json"));
  ASSERT_TRUE(condition(s.node("node-1"), "NodeAgentSysctlTuned").isNull());
  ASSERT_TRUE(eventually([&] { return !condition(s.node("node-1"), "NodeAgentSysctlTuned").isNull(); }));
  EXPECT_EQ(r.figures().get("repatches_after_removal").asInt(), 1);
  r.stop();
}

TEST(Reporter, RestartWithUnchangedConditionsSendsNothingAndKeepsTransitionTime) {
  TestServer s;
  std::string transition;
  {
    auto c = client(s);
    core::StateStore store;
    publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
    NodeStatusReporter r(store, *c, options(100ms));
    r.start();
    ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
    transition = condition(s.node("node-1"), "NodeAgentSysctlTuned").get("lastTransitionTime").asString();
    r.stop();
  }
  s.clearRequests();
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  NodeStatusReporter r(store, *c, options(100ms));
  r.start();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(s.count("PATCH", kStatus), 0);
  // A reason change keeps the transition time (status unchanged).
  publish(store, "sysctl", "SysctlTuned", true, "AllAppliedAgain");
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  EXPECT_EQ(condition(s.node("node-1"), "NodeAgentSysctlTuned").get("lastTransitionTime").asString(), transition);
  r.stop();
}

TEST(Reporter, HonoursRetryAfterAndRetriesWithNewestState) {
  TestServer s;
  auto c = client(s);
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "First");
  s.setFaults(Json::array().push(
      Json::object().set("method", "PATCH").set("path", kStatus).set("status", 429).set("retry_after", 2).set("count", 1)));
  NodeStatusReporter r(store, *c, options(100ms));
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

TEST(Reporter, ReportsUnauthorizedClearly) {
  TestServer s;
  auto c = client(s, "revoked-token");
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  auto o = options(100ms);
  o.firstObservationTimeout = 500ms;
  NodeStatusReporter r(store, *c, o);
  r.start();
  ASSERT_TRUE(eventually([&] { return store.agentInfo().get("reporter").get("patches_failed").asInt() >= 1; }));
  std::string err = store.agentInfo().get("reporter").get("last_error").asString();
  EXPECT_NE(err.find("401 Unauthorized"), std::string::npos) << err;
  EXPECT_EQ(err.find("revoked-token"), std::string::npos);
  r.stop();
}

TEST(Reporter, EventsOnTransitionsAreDeduplicatedAndRateLimited) {
  TestServer s;
  auto c = client(s);
  core::StateStore store;
  publish(store, "ipvs", "IpvsSynced", true, "InSync");
  auto o = options(100ms);
  o.events.burst = 3;
  o.events.refillInterval = 1h;
  NodeStatusReporter r(store, *c, o);
  r.start();
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  EXPECT_EQ(s.count("POST", "/api/v1/namespaces/default/events"), 0) << "first report is not a transition";
  // A module flapping 10 times: 20 transitions, each its own patch (window 100 ms).
  for (int i = 0; i < 10; ++i) {
    publish(store, "ipvs", "IpvsSynced", false, "SyncFailed", "netlink error", core::Health::kDegraded);
    std::this_thread::sleep_for(250ms);
    publish(store, "ipvs", "IpvsSynced", true, "InSync");
    std::this_thread::sleep_for(250ms);
  }
  std::this_thread::sleep_for(300ms);
  auto ev = s.admin().get("/api/v1/namespaces/default/events");
  ASSERT_TRUE(ev);
  auto items = Json::parse(ev->body)->get("items").asArray();
  // 3 tokens: SyncFailed created, InSync created, SyncFailed again = count 2 on the first.
  ASSERT_EQ(items.size(), 2u);
  int total = 0;
  for (const auto& e : items) {
    EXPECT_EQ(e.get("involvedObject").get("kind").asString(), "Node");
    EXPECT_EQ(e.get("involvedObject").get("uid").asString(), "uid-node-1");
    total += static_cast<int>(e.get("count").asInt());
    if (e.get("reason").asString() == "SyncFailed") {
      EXPECT_EQ(e.get("type").asString(), "Warning");
    }
  }
  EXPECT_EQ(total, 3);
  auto f = r.figures().get("events");
  EXPECT_EQ(f.get("created").asInt(), 2);
  EXPECT_EQ(f.get("updated").asInt(), 1);
  EXPECT_EQ(f.get("dropped").asInt(), 20 - 3);
  r.stop();
}

// --- /metrics ------------------------------------------------------------------------

std::string httpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// A strict parser of the Prometheus text format 0.0.4: every line is a HELP, a TYPE or a
// sample; HELP and TYPE at most once per family and before its samples; samples of a
// family contiguous; names and labels valid; values parse; no duplicate series; counters
// end in _total. Returns the samples as "name{labels}" -> value, or fails the test.
std::map<std::string, double> parsePrometheus(const std::string& text) {
  std::map<std::string, double> out;
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*))");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? ([^ ]+)( -?[0-9]+)?)");
  std::set<std::string> helped, typed, closed;
  std::map<std::string, std::string> types;
  std::string current;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  size_t start = 0;
  int lineNo = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    ++lineNo;
    std::smatch m;
    auto family = [&](const std::string& name) {
      if (name != current) {
        EXPECT_FALSE(closed.count(name)) << "line " << lineNo << ": family " << name << " is not contiguous";
        if (!current.empty()) closed.insert(current);
        current = name;
      }
    };
    if (std::regex_match(line, m, help)) {
      family(m[1]);
      EXPECT_TRUE(helped.insert(m[1]).second) << "line " << lineNo << ": second HELP";
      EXPECT_FALSE(typed.count(m[1])) << "line " << lineNo << ": HELP after TYPE";
    } else if (std::regex_match(line, m, type)) {
      family(m[1]);
      EXPECT_TRUE(typed.insert(m[1]).second) << "line " << lineNo << ": second TYPE";
      types[m[1]] = m[2];
      if (m[2] == "counter") {
        EXPECT_TRUE(std::string(m[1]).ends_with("_total")) << m[1];
      }
    } else if (std::regex_match(line, m, sample)) {
      family(m[1]);
      EXPECT_TRUE(types.count(m[1])) << "line " << lineNo << ": sample before TYPE";
      std::string v = m[4];
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      bool special = v == "NaN" || v == "+Inf" || v == "-Inf";
      EXPECT_TRUE(special || (end && *end == '\0')) << "line " << lineNo << ": bad value " << v;
      std::string key = std::string(m[1]) + "{" + std::string(m[3]) + "}";
      EXPECT_TRUE(out.emplace(key, d).second) << "line " << lineNo << ": duplicate series " << key;
      if (m[3].matched) {  // label names unique within a series
        std::set<std::string> names;
        static const std::regex label(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
        std::string ls = m[3];
        for (std::sregex_iterator it(ls.begin(), ls.end(), label), e; it != e; ++it)
          if (it->position() == 0 || ls[it->position() - 1] == ',') {
            EXPECT_TRUE(names.insert((*it)[1]).second) << "line " << lineNo << ": repeated label";
          }
      }
    } else {
      ADD_FAILURE() << "line " << lineNo << " is not valid exposition format: [" << line << "]";
    }
  }
  return out;
}

TEST(Metrics, ParserRejectsBrokenExposition) {
  EXPECT_NONFATAL_FAILURE(parsePrometheus("# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n"), "duplicate series");
  EXPECT_NONFATAL_FAILURE(parsePrometheus("a 1\n"), "sample before TYPE");
  EXPECT_NONFATAL_FAILURE(parsePrometheus("# TYPE a gauge\na{x=\"un\"escaped\"} 1\n"), "not valid");
  EXPECT_NONFATAL_FAILURE(parsePrometheus("# TYPE a counter\na 1\n"), "a");
}

TEST(Metrics, EndpointServesStrictPrometheusText) {
  TestServer s;
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  publish(store, "ipvs", "IpvsSynced", false, "SyncFailed", "line1\nline2", core::Health::kDegraded);
  std::string dir = s.dir();
  s.writeToken("agent-token");
  OutputsOptions o;
  o.nodeName = "node-1";
  o.kube.mode = "kubeconfig";
  o.kube.kubeconfig = dir + "/kubeconfig";
  ASSERT_TRUE(writeFileAtomic(o.kube.kubeconfig,
                              "apiVersion: v1\nkind: Config\ncurrent-context: t\ncontexts:\n- name: t\n  context: {cluster: c, user: u}\n"
                              "clusters:\n- name: c\n  cluster: {server: '" + s.url() + "', certificate-authority: ca.crt}\n"
                              "users:\n- name: u\n  user: {tokenFile: token}\n"));
  o.kube.status.coalesceWindow = 100ms;
  o.outputs.metricsAddress = "127.0.0.1:0";
  o.outputs.statusFile = dir + "/run/status.json";
  Outputs rep(store, o);
  ASSERT_TRUE(rep.start());
  ASSERT_TRUE(eventually([&] { return s.count("PATCH", kStatus) == 1; }));
  ASSERT_TRUE(eventually([&] { return store.agentInfo().get("reporter").get("patches_sent").asInt() == 1; }));
  std::string resp = httpGet(rep.metricsPort(), "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  EXPECT_NE(resp.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  auto samples = parsePrometheus(resp.substr(resp.find("\r\n\r\n") + 4));
  EXPECT_EQ(samples["nodeagent_status_patches_total{result=\"sent\"}"], 1);
  EXPECT_EQ(samples["nodeagent_module_health{module=\"ipvs\",state=\"degraded\"}"], 1);
  EXPECT_EQ(samples["nodeagent_condition{module=\"sysctl\",condition=\"SysctlTuned\"}"], 1);
  EXPECT_EQ(samples["sysctl_things{kind=\"a\\\"b\\\\c\"}"], 1.5);
  EXPECT_TRUE(samples.count("nodeagent_kube_requests_total{verb=\"PATCH\",code=\"200\"}"));
  EXPECT_EQ(httpGet(rep.metricsPort(), "/nope").rfind("HTTP/1.1 404", 0), 0u);
  // The status file follows the store.
  ASSERT_TRUE(eventually([&] {
    auto f = readFile(o.outputs.statusFile);
    return f && f->find("\"patches_sent\": 1") != std::string::npos;
  }));
  auto j = Json::parse(*readFile(o.outputs.statusFile));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("health").asString(), "degraded");
  EXPECT_EQ(j->get("modules").size(), 2u);
  rep.stop();
}

TEST(Reporting, StandaloneNodeStaysIdleAndServesMetrics) {
  core::StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  OutputsOptions o;
  o.nodeName = "standalone";
  o.serviceAccountDir = "/nonexistent";
  o.outputs.metricsAddress = "127.0.0.1:0";
  o.outputs.statusFile = "";
  Outputs rep(store, o);
  ASSERT_TRUE(rep.start());
  EXPECT_EQ(store.agentInfo().get("reporter").get("state").asString(), "off");
  EXPECT_EQ(core::overallHealth(store.snapshot()), core::Health::kHealthy);
  std::string resp = httpGet(rep.metricsPort(), "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  auto samples = parsePrometheus(resp.substr(resp.find("\r\n\r\n") + 4));
  EXPECT_FALSE(samples.count("nodeagent_status_patches_total{result=\"sent\"}"));
  rep.stop();
}

}  // namespace
}  // namespace nodeagent::reporter
