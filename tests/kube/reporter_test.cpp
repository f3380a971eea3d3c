// The status reporter, /metrics and the status file against a real kube-apiserver and etcd
// (tests/k8s/control-plane.sh) with the agent's ServiceAccount token. What the reporter
// wrote is counted from the apiserver's audit log, not from the reporter's own figures.
#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <regex>
#include <set>
#include <thread>

#include "agent/metrics_server.h"
#include "agent/reporter.h"
#include "agent/reporting.h"
#include "common/files.h"
#include "tests/kube/control_plane.h"

namespace nodeagent::agent {
namespace {

using namespace std::chrono_literals;
using kube::testing::AuditQuery;
using kube::testing::ControlPlane;
using kube::testing::eventually;

// A fake module: publishes one condition (and a metric) like the real ones do.
void publish(StateStore& store, const std::string& module, const std::string& type, bool status,
             const std::string& reason, const std::string& message = "", Health h = Health::kHealthy) {
  ModuleState s;
  s.name = module;
  s.health = h;
  s.summary = reason;
  s.conditions = {{type, status, reason, message}};
  s.metrics = {{module + "_things", "things", Metric::Type::kGauge, {{"kind", "a\"b\\c"}}, 1.5}};
  store.publish(s);
  store.recordReconcile(module, true, "", 3ms);
}

std::unique_ptr<kube::Client> client(const kube::ClusterConfig& cluster) {
  auto c = kube::Client::create(cluster, {.qps = 50, .burst = 100, .maxAttempts = 1});
  EXPECT_TRUE(c) << c.error().message();
  return std::move(*c);
}
std::unique_ptr<kube::Client> client() { return client(ControlPlane::shared().agentCluster()); }

ReporterOptions options(const std::string& node, std::chrono::milliseconds window = 1s,
                        std::chrono::milliseconds resync = 300s) {
  ReporterOptions o;
  o.nodeName = node;
  o.status.coalesceWindow = window;
  o.status.resyncInterval = resync;
  o.status.resyncJitter = 0.1;
  o.retryBase = 200ms;
  o.retryMax = 2s;
  return o;
}

// A fresh Node for one test (kubelet's Ready condition on it) and the audit log position.
size_t freshNode(const std::string& name) {
  auto& cp = ControlPlane::shared();
  cp.createNode(name);
  return cp.auditMark();
}

// One test's Node, the audit log position after creating it, an agent client and a store.
struct NodeUnderTest {
  std::string node;
  size_t mark;
  std::unique_ptr<kube::Client> c;
  StateStore store;
  explicit NodeUnderTest(std::string name) : node(std::move(name)), mark(freshNode(node)), c(client()) {}
};

Json condition(const Json& node, const std::string& type) {
  for (const auto& c : node.get("status").get("conditions").asArray())
    if (c.get("type").asString() == type) return c;
  return Json();
}
Json condition(const std::string& node, const std::string& type) {
  return condition(ControlPlane::shared().node(node), type);
}

// Status patches of the node the apiserver received from the agent's identity.
int patches(const std::string& node, size_t mark) {
  auto& cp = ControlPlane::shared();
  return cp.countAudit(
      {.verb = "patch", .resource = "nodes", .subresource = "status", .name = node, .user = cp.agentUser()}, mark);
}

// Every write of the agent's identity (anything but get, list and watch).
int writes(size_t mark) {
  auto& cp = ControlPlane::shared();
  int n = 0;
  for (const auto& e : cp.audit(mark)) {
    const std::string& v = e.get("verb").asString();
    if (kube::testing::auditMatches(e, {.user = cp.agentUser()}) && v != "get" && v != "list" && v != "watch") ++n;
  }
  return n;
}

// Another writer of node conditions (node-problem-detector, say), through kubectl.
void otherWriter(const std::string& node, const std::string& type, const std::string& reason) {
  auto r = ControlPlane::shared().kubectl(
      {"patch", "node", node, "--subresource=status", "--type=strategic", "-p",
       R"({"status":{"conditions":[{"type":")" + type + R"(","status":"True","reason":")" + reason +
           R"(","message":"from another agent"}]}})"});
  ASSERT_EQ(r.rc, 0) << r.out;
}

TEST(Reporter, ThousandChangesInTwoSecondsGiveAtMostThreePatches) {
  NodeUnderTest t("rep-burst");
  publish(t.store, "sysctl", "SysctlTuned", true, "Start");
  Reporter r(t.store, *t.c, options(t.node));
  r.start();
  auto& cp = ControlPlane::shared();
  ASSERT_TRUE(eventually([&] { return !condition(t.node, "NodeAgentSysctlTuned").isNull(); }));
  t.mark = cp.auditMark();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 1000; ++i) {  // spread evenly over 1.9 s (no catch-up sleeps when late)
    publish(t.store, "sysctl", "SysctlTuned", i % 2 == 0, "Step" + std::to_string(i), "change " + std::to_string(i));
    std::this_thread::sleep_until(t0 + i * 1900us);
  }
  ASSERT_LT(std::chrono::steady_clock::now() - t0, 2s);
  ASSERT_TRUE(eventually([&] { return condition(t.node, "NodeAgentSysctlTuned").get("reason").asString() == "Step1000"; }));
  std::this_thread::sleep_for(1500ms);
  EXPECT_LE(patches(t.node, t.mark), 3);
  EXPECT_GE(patches(t.node, t.mark), 2);
  auto last = condition(t.node, "NodeAgentSysctlTuned");
  EXPECT_EQ(last.get("status").asString(), "True");
  EXPECT_EQ(last.get("message").asString(), "change 1000");
  // Publishes between two wake-ups merge in the store, so the reporter sees most, not all.
  auto f = r.figures();
  EXPECT_GT(f.get("changes").asInt(), 500);
  EXPECT_GE(f.get("changes_coalesced").asInt(), f.get("changes").asInt() - 3);
  r.stop();
}

// Writes follow changes: the periodic resync compares the watched Node with what the agent
// wants and finds nothing to write.
TEST(Reporter, IdleNodeWritesOnceAndResyncsOnlyCompare) {
  NodeUnderTest t("rep-idle");
  publish(t.store, "sysctl", "SysctlTuned", true, "AllApplied");
  publish(t.store, "ipvs", "IpvsSynced", true, "InSync");
  Reporter r(t.store, *t.c, options(t.node, 200ms, 1s));
  r.start();
  ASSERT_TRUE(eventually([&] { return patches(t.node, t.mark) == 1; }));
  std::this_thread::sleep_for(3500ms);  // 3 resync periods (jitter +-5%) and a half
  EXPECT_EQ(patches(t.node, t.mark), 1);
  EXPECT_EQ(writes(t.mark), 1) << "no events, no other writes";
  auto f = r.figures();
  EXPECT_EQ(f.get("resync_checks").asInt(), 3);
  EXPECT_EQ(f.get("resync_patches").asInt(), 0);
  r.stop();
}

// Without the watch, a resync reads the Node (a GET, not a write) and patches only when the
// agent's conditions are missing or differ there.
TEST(Reporter, ResyncWithoutWatchReadsAndRepairsOnlyWhatIsMissing) {
  NodeUnderTest t("rep-nowatch");
  publish(t.store, "sysctl", "SysctlTuned", true, "AllApplied");
  auto o = options(t.node, 100ms, 1s);
  o.status.watchNode = false;
  Reporter r(t.store, *t.c, o);
  r.start();
  ASSERT_TRUE(eventually([&] { return patches(t.node, t.mark) == 1; }));
  std::this_thread::sleep_for(2300ms);  // two resyncs: both find the conditions in place
  EXPECT_EQ(patches(t.node, t.mark), 1);
  auto& cp = ControlPlane::shared();
  EXPECT_GE(cp.countAudit({.verb = "get", .resource = "nodes", .name = t.node, .user = cp.agentUser()}, t.mark), 2);
  // Someone replaces the whole list; the next resync puts the agent's condition back.
  auto k = cp.kubectl({"patch", "node", t.node, "--subresource=status", "--type=merge", "-p",
                       R"({"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}})"});
  ASSERT_EQ(k.rc, 0) << k.out;
  ASSERT_TRUE(eventually([&] { return !condition(t.node, "NodeAgentSysctlTuned").isNull(); }, 3s));
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(patches(t.node, t.mark), 2);
  EXPECT_EQ(r.figures().get("resync_patches").asInt(), 1);
  r.stop();
}

TEST(Reporter, ConditionsOfOtherWritersSurviveBeforeAndAfter) {
  const std::string node = "rep-others";
  freshNode(node);
  otherWriter(node, "NPDKernelDeadlock", "Before");
  auto c = client();
  StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  Reporter r(store, *c, options(node, 100ms));
  r.start();
  ASSERT_TRUE(eventually([&] { return !condition(node, "NodeAgentSysctlTuned").isNull(); }));
  otherWriter(node, "NPDFrequentRestarts", "After");
  publish(store, "sysctl", "SysctlTuned", false, "Drift");
  publish(store, "ipvs", "IpvsSynced", true, "InSync");
  ASSERT_TRUE(eventually([&] { return !condition(node, "NodeAgentIpvsSynced").isNull(); }));
  ASSERT_TRUE(eventually([&] { return condition(node, "NodeAgentSysctlTuned").get("reason").asString() == "Drift"; }));
  auto n = ControlPlane::shared().node(node);
  EXPECT_EQ(condition(n, "Ready").get("reason").asString(), "KubeletReady");
  EXPECT_EQ(condition(n, "NPDKernelDeadlock").get("reason").asString(), "Before");
  EXPECT_EQ(condition(n, "NPDFrequentRestarts").get("reason").asString(), "After");
  EXPECT_EQ(condition(n, "NodeAgentSysctlTuned").get("status").asString(), "False");
  r.stop();
}

TEST(Reporter, RepatchesWhenAnotherWriterRemovesItsCondition) {
  NodeUnderTest t("rep-removed");
  publish(t.store, "sysctl", "SysctlTuned", true, "AllApplied");
  Reporter r(t.store, *t.c, options(t.node, 100ms));
  r.start();
  ASSERT_TRUE(eventually([&] { return !condition(t.node, "NodeAgentSysctlTuned").isNull(); }));
  // Someone replaces the whole list with a JSON merge patch (the seed's failure mode).
  auto k = ControlPlane::shared().kubectl(
      {"patch", "node", t.node, "--subresource=status", "--type=merge", "-p",
       R"({"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}})"});
  ASSERT_EQ(k.rc, 0) << k.out;
  ASSERT_TRUE(eventually([&] { return !condition(t.node, "NodeAgentSysctlTuned").isNull(); }));
  EXPECT_EQ(r.figures().get("repatches_after_removal").asInt(), 1);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(patches(t.node, t.mark), 2);
  r.stop();
}

TEST(Reporter, RestartWithUnchangedConditionsSendsNothingAndKeepsTransitionTime) {
  const std::string node = "rep-restart";
  size_t mark = freshNode(node);
  std::string transition;
  {
    auto c = client();
    StateStore store;
    publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
    Reporter r(store, *c, options(node, 100ms));
    r.start();
    ASSERT_TRUE(eventually([&] { return patches(node, mark) == 1; }));
    transition = condition(node, "NodeAgentSysctlTuned").get("lastTransitionTime").asString();
    r.stop();
  }
  mark = ControlPlane::shared().auditMark();
  auto c = client();
  StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  Reporter r(store, *c, options(node, 100ms));
  r.start();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(patches(node, mark), 0);
  // A reason change keeps the transition time (status unchanged).
  publish(store, "sysctl", "SysctlTuned", true, "AllAppliedAgain");
  ASSERT_TRUE(eventually([&] { return patches(node, mark) == 1; }));
  EXPECT_EQ(condition(node, "NodeAgentSysctlTuned").get("lastTransitionTime").asString(), transition);
  EXPECT_EQ(condition(node, "NodeAgentSysctlTuned").get("reason").asString(), "AllAppliedAgain");
  r.stop();
}

TEST(Reporter, ReportsUnauthorizedClearly) {
  auto& cp = ControlPlane::shared();
  const std::string node = "rep-unauthorized";
  freshNode(node);
  std::string tokenFile = cp.dir() + "/revoked.token";
  ASSERT_TRUE(writeFileAtomic(tokenFile, "revoked-token\n", 0600));
  auto c = client(cp.clusterWithTokenFile(tokenFile));
  StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  auto o = options(node, 100ms);
  o.firstObservationTimeout = 500ms;
  Reporter r(store, *c, o);
  r.start();
  // The real apiserver ends an HTTP/2 connection (GOAWAY) after a failed authentication,
  // so a request already queued on it may fail in transport first; a retry names the 401.
  std::string err;
  ASSERT_TRUE(eventually([&] {
    err = store.agentInfo().get("reporter").get("last_error").asString();
    return err.find("401 Unauthorized") != std::string::npos;
  })) << err;
  EXPECT_EQ(err.find("revoked-token"), std::string::npos);
  r.stop();
}

TEST(Reporter, EventsOnTransitionsAreDeduplicatedAndRateLimited) {
  auto& cp = ControlPlane::shared();
  NodeUnderTest t("rep-events");
  publish(t.store, "ipvs", "IpvsSynced", true, "InSync");
  auto o = options(t.node, 100ms);
  o.events.burst = 3;
  o.events.refillInterval = 1h;
  Reporter r(t.store, *t.c, o);
  r.start();
  ASSERT_TRUE(eventually([&] { return patches(t.node, t.mark) == 1; }));
  EXPECT_EQ(cp.countAudit({.verb = "create", .resource = "events", .user = cp.agentUser()}, t.mark), 0)
      << "first report is not a transition";
  // A module flapping 10 times: 20 transitions, each its own patch (window 100 ms).
  for (int i = 0; i < 10; ++i) {
    publish(t.store, "ipvs", "IpvsSynced", false, "SyncFailed", "netlink error", Health::kDegraded);
    std::this_thread::sleep_for(250ms);
    publish(t.store, "ipvs", "IpvsSynced", true, "InSync");
    std::this_thread::sleep_for(250ms);
  }
  std::this_thread::sleep_for(300ms);
  std::string uid = cp.node(t.node).get("metadata").get("uid").asString();
  auto ev = cp.admin().get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.uid%3D" + uid);
  ASSERT_TRUE(ev);
  auto items = Json::parse(ev->body)->get("items").asArray();
  // 3 tokens: SyncFailed created, InSync created, SyncFailed again = count 2 on the first.
  ASSERT_EQ(items.size(), 2u);
  int total = 0;
  for (const auto& e : items) {
    EXPECT_EQ(e.get("involvedObject").get("kind").asString(), "Node");
    EXPECT_EQ(e.get("involvedObject").get("uid").asString(), uid);
    total += static_cast<int>(e.get("count").asInt());
    if (e.get("reason").asString() == "SyncFailed") {
      EXPECT_EQ(e.get("type").asString(), "Warning");
    }
  }
  EXPECT_EQ(total, 3);
  EXPECT_EQ(cp.countAudit({.verb = "create", .resource = "events", .user = cp.agentUser()}, t.mark), 2);
  EXPECT_EQ(cp.countAudit({.verb = "patch", .resource = "events", .user = cp.agentUser()}, t.mark), 1);
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
  auto& cp = ControlPlane::shared();
  const std::string node = "rep-metrics";
  size_t mark = freshNode(node);
  StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  publish(store, "ipvs", "IpvsSynced", false, "SyncFailed", "line1\nline2", Health::kDegraded);
  std::string dir = cp.dir() + "/metrics-test";
  ReportingOptions o;
  o.nodeName = node;
  o.kube.mode = "kubeconfig";
  o.kube.kubeconfig = cp.env("KUBECONFIG_AGENT");
  o.kube.status.coalesceWindow = 100ms;
  o.outputs.metricsAddress = "127.0.0.1:0";
  o.outputs.statusFile = dir + "/run/status.json";
  Reporting rep(store, o);
  ASSERT_TRUE(rep.start());
  ASSERT_TRUE(eventually([&] { return patches(node, mark) == 1; }));
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
  StateStore store;
  publish(store, "sysctl", "SysctlTuned", true, "AllApplied");
  ReportingOptions o;
  o.nodeName = "standalone";
  o.serviceAccountDir = "/nonexistent";
  o.outputs.metricsAddress = "127.0.0.1:0";
  o.outputs.statusFile = "";
  Reporting rep(store, o);
  ASSERT_TRUE(rep.start());
  EXPECT_EQ(store.agentInfo().get("reporter").get("state").asString(), "off");
  EXPECT_EQ(overallHealth(store.snapshot()), Health::kHealthy);
  std::string resp = httpGet(rep.metricsPort(), "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  auto samples = parsePrometheus(resp.substr(resp.find("\r\n\r\n") + 4));
  EXPECT_FALSE(samples.count("nodeagent_status_patches_total{result=\"sent\"}"));
  rep.stop();
}

}  // namespace
}  // namespace nodeagent::agent
