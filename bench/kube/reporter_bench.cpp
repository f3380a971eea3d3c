// 500 simulated nodes' status reporters against a real kube-apiserver (tests/k8s/
// control-plane.sh), with a churn model, next to simulated kubelets writing at kubelet's
// defaults (Lease renewal every 10 s, node status every 5 min) in the same run. Time is
// compressed by --time-scale: every interval of both sides is divided by it, and rates are
// reported per simulated hour. Writes are counted from the apiserver's audit log (what the
// server received), by identity: the agent's ServiceAccount vs the simulated kubelets.
// Prints patches per condition change, writes per node per hour, the ratio to kubelet's,
// and the extrapolation to 5,000 nodes.
#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <queue>
#include <random>
#include <thread>

#include "agent/reporter.h"
#include "common/json.h"
#include "common/log.h"

using namespace nodeagent;
using namespace std::chrono;

namespace {

long rssKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, ca, tokenFile, adminCert, adminKey, auditLog, agentUser;
  int nodes = 500, kubelets = 25;
  double scale = 20, minutes = 3, flappyShare = 0.05;
  double meanFlipMinutes = 120, flappyFlipSeconds = 30;
  CLI::App app{"nodeagent status reporter fleet simulation"};
  app.add_option("--server", server)->required();
  app.add_option("--ca", ca)->required();
  app.add_option("--token-file", tokenFile, "the agent's ServiceAccount token")->required();
  app.add_option("--admin-cert", adminCert, "client certificate that may create Nodes (the simulated kubelets use it too)")
      ->required();
  app.add_option("--admin-key", adminKey)->required();
  app.add_option("--audit-log", auditLog, "the apiserver's audit log (JSON lines)")->required();
  app.add_option("--agent-user", agentUser, "the agent's user name in the audit log")
      ->default_val("system:serviceaccount:kube-system:nodeagent");
  app.add_option("--nodes", nodes);
  app.add_option("--kubelets", kubelets, "simulated kubelets for the baseline (their rate is per node)");
  app.add_option("--time-scale", scale);
  app.add_option("--minutes", minutes, "wall-clock run time");
  app.add_option("--flappy-share", flappyShare, "share of nodes with one fast-flapping module");
  app.add_option("--mean-flip-minutes", meanFlipMinutes, "mean simulated time between flips of a normal module");
  app.add_option("--flappy-flip-seconds", flappyFlipSeconds, "mean simulated time between flips of a flapping module");
  CLI11_PARSE(app, argc, argv);
  log::setup(log::Format::kText, spdlog::level::err);

  kube::ClusterConfig cluster{.server = server, .caFile = ca, .tokenFile = tokenFile, .source = "bench"};
  auto scaled = [&](duration<double> d) { return duration_cast<milliseconds>(d / scale); };
  kube::ClusterConfig adminCluster{.server = server, .caFile = ca, .certFile = adminCert, .keyFile = adminKey,
                                   .source = "bench admin"};
  auto admin = kube::Client::create(adminCluster, {.qps = 1000, .burst = 1000, .userAgent = "bench-setup"});
  if (!admin) {
    std::fprintf(stderr, "%s\n", admin.error().message().c_str());
    return 1;
  }
  for (int i = 0; i < std::max(nodes, kubelets); ++i) {
    std::string name = "sim-" + std::to_string(i);
    auto r = (*admin)->request("POST", "/api/v1/nodes", R"({"apiVersion":"v1","kind":"Node","metadata":{"name":")" + name + R"("}})");
    if (!r && kube::httpStatus(r.error()) != 409) {
      std::fprintf(stderr, "%s\n", r.error().message().c_str());
      return 1;
    }
  }
  const std::vector<std::string> modules = {"sysctl", "ipvs", "imagepull"};
  struct Sim {
    agent::StateStore store;
    std::unique_ptr<kube::Client> client;
    std::unique_ptr<agent::Reporter> reporter;
    std::vector<bool> state;
  };
  std::vector<std::unique_ptr<Sim>> sims;
  auto publish = [&](Sim& s, size_t m) {
    agent::ModuleState st;
    st.name = modules[m];
    st.health = s.state[m] ? agent::Health::kHealthy : agent::Health::kDegraded;
    st.conditions = {{modules[m] == "sysctl" ? "SysctlTuned" : modules[m] == "ipvs" ? "IpvsSynced" : "ImagesReady",
                      s.state[m], s.state[m] ? "Ok" : "Failing", s.state[m] ? "all good" : "see nodeagentctl status"}};
    if (m == 0) st.conditions.push_back({"ConntrackPressure", false, "BelowThreshold", "fill under 80%"});
    s.store.publish(st);
    s.store.recordReconcile(st.name, true, "", 1ms);
  };
  for (int i = 0; i < nodes; ++i) {
    auto s = std::make_unique<Sim>();
    auto c = kube::Client::create(cluster, {.qps = 5, .burst = 10, .userAgent = "nodeagent-bench"});
    if (!c) return 1;
    s->client = std::move(*c);
    s->state.assign(modules.size(), true);
    for (size_t m = 0; m < modules.size(); ++m) publish(*s, m);
    agent::ReporterOptions o;
    o.nodeName = "sim-" + std::to_string(i);
    o.status.coalesceWindow = scaled(1s);
    o.status.resyncInterval = scaled(5min);
    o.status.watchNode = true;  // the resync compares against the watched Node
    o.events.refillInterval = scaled(5min);
    o.events.dedupWindow = scaled(10min);
    o.retryBase = scaled(1s);
    o.retryMax = scaled(60s);
    o.infoKey = "";
    s->reporter = std::make_unique<agent::Reporter>(s->store, *s->client, o);
    sims.push_back(std::move(s));
  }
  // Every reporter's first patch (its conditions appear on its Node) is start-up, not churn:
  // the measured window begins once all of them are in.
  for (auto& s : sims) s->reporter->start();
  auto startupDeadline = steady_clock::now() + 120s;
  for (auto& s : sims)
    while (s->reporter->figures().get("patches_sent").asInt() < 1 && steady_clock::now() < startupDeadline)
      std::this_thread::sleep_for(20ms);
  uint64_t startupPatches = 0;
  for (auto& s : sims) startupPatches += s->reporter->figures().get("patches_sent").asInt();
  // Audit events from here on are the run's.
  std::streamoff auditStart = 0;
  {
    std::ifstream f(auditLog, std::ios::ate);
    if (!f) {
      std::fprintf(stderr, "cannot read audit log %s\n", auditLog.c_str());
      return 1;
    }
    auditStart = f.tellg();
  }

  auto t0 = steady_clock::now();
  auto end = t0 + duration_cast<steady_clock::duration>(duration<double>(minutes * 60));

  // Churn: each module flips after an exponential time; one module of the flappy nodes flips fast.
  std::atomic<uint64_t> flips{0};
  std::thread churn([&] {
    std::mt19937_64 rng(42);
    using Ev = std::pair<steady_clock::time_point, std::pair<int, int>>;
    std::priority_queue<Ev, std::vector<Ev>, std::greater<>> q;
    auto next = [&](int node, int m) {
      bool flappy = node < nodes * flappyShare && m == 1;
      std::exponential_distribution<double> d(1.0 / (flappy ? flappyFlipSeconds : meanFlipMinutes * 60));
      return steady_clock::now() + duration_cast<steady_clock::duration>(duration<double>(d(rng) / scale));
    };
    for (int n = 0; n < nodes; ++n)
      for (int m = 0; m < static_cast<int>(modules.size()); ++m) q.push({next(n, m), {n, m}});
    while (!q.empty()) {
      auto [at, nm] = q.top();
      if (at >= end) break;
      q.pop();
      std::this_thread::sleep_until(at);
      auto& s = *sims[nm.first];
      s.state[nm.second] = !s.state[nm.second];
      publish(s, nm.second);
      flips++;
      q.push({next(nm.first, nm.second), nm});
    }
  });

  // Baseline: kubelets at their defaults (Lease every 10 s, status every 5 min).
  std::atomic<uint64_t> kubeletWrites{0};
  std::vector<std::thread> kts;
  for (int k = 0; k < kubelets; ++k)
    kts.emplace_back([&, k] {
      auto c = kube::Client::create(adminCluster, {.qps = 50, .burst = 50, .userAgent = "kubelet-sim"});
      if (!c) return;
      std::mt19937_64 rng(k);
      std::string name = "sim-" + std::to_string(k);
      std::string leaseRv;  // kubelet keeps its Lease and updates it with one PUT
      auto nextLease = steady_clock::now() + scaled(duration<double>(std::uniform_real_distribution<double>(0, 10)(rng)));
      auto nextStatus = steady_clock::now() + scaled(duration<double>(std::uniform_real_distribution<double>(0, 300)(rng)));
      while (true) {
        auto at = std::min(nextLease, nextStatus);
        if (at >= end) return;
        std::this_thread::sleep_until(at);
        if (at == nextLease) {
          std::string meta = R"("name":")" + name + R"(","namespace":"kube-node-lease")";
          if (!leaseRv.empty()) meta += R"(,"resourceVersion":")" + leaseRv + "\"";
          auto r = (*c)->request("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + name,
                                 R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{)" + meta +
                                     R"(},"spec":{"holderIdentity":")" + name + R"(","leaseDurationSeconds":40}})");
          if (r)
            if (auto j = Json::parse(r->body)) leaseRv = j->get("metadata").get("resourceVersion").asString();
          nextLease += scaled(10s);
        } else {
          (void)(*c)->request("PATCH", "/api/v1/nodes/" + name + "/status",
                              R"({"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}})",
                              "application/strategic-merge-patch+json");
          nextStatus += scaled(5min);
        }
        kubeletWrites++;
      }
    });
  churn.join();
  for (auto& t : kts) t.join();
  std::this_thread::sleep_until(end);
  long rss = rssKb();
  uint64_t patches = 0, failed = 0, coalesced = 0, events = 0, dropped = 0, resyncs = 0;
  for (auto& s : sims) {
    auto f = s->reporter->figures();
    patches += f.get("patches_sent").asInt();  // start-up patches subtracted below
    failed += f.get("patches_failed").asInt();
    coalesced += f.get("changes_coalesced").asInt();
    resyncs += f.get("resync_patches").asInt();
    events += f.get("events").get("created").asInt() + f.get("events").get("updated").asInt();
    dropped += f.get("events").get("dropped").asInt();
  }
  patches -= startupPatches;
  for (auto& s : sims) s->store.close();
  for (auto& s : sims) s->client->interrupt();
  for (auto& s : sims) s->reporter->stop();

  // What the apiserver received, from its audit log (one ResponseComplete event per request).
  std::this_thread::sleep_for(1s);
  uint64_t auditPatches = 0, auditPatchFailures = 0, auditEvents = 0, auditKubelet = 0, auditAgentReads = 0;
  {
    std::ifstream f(auditLog);
    f.seekg(auditStart);
    std::string line;
    while (std::getline(f, line)) {
      auto e = Json::parse(line);
      if (!e || e->get("stage").asString() != "ResponseComplete") continue;
      const std::string& verb = e->get("verb").asString();
      const Json& ref = e->get("objectRef");
      bool write = verb != "get" && verb != "list" && verb != "watch";
      if (e->get("user").get("username").asString() == agentUser) {
        if (!write) {
          auditAgentReads++;
        } else if (ref.get("resource").asString() == "nodes" && ref.get("subresource").asString() == "status") {
          (e->get("responseStatus").get("code").asInt() == 200 ? auditPatches : auditPatchFailures)++;
        } else if (ref.get("resource").asString() == "events") {
          auditEvents++;
        }
      } else if (write && e->get("userAgent").asString().rfind("kubelet-sim", 0) == 0) {
        auditKubelet++;
      }
    }
  }
  double simHours = minutes / 60.0 * scale;
  double agentPerNodeHour = double(auditPatches + auditPatchFailures + auditEvents) / nodes / simHours;
  double kubeletPerNodeHour = double(auditKubelet) / kubelets / simHours;
  double patchesPerChange = flips ? double(auditPatches) / double(flips) : 0;
  std::printf("start-up: %llu first patches of %d reporters before the measured window\n",
              (unsigned long long)startupPatches, nodes);
  std::printf("simulated %.2f h (%.1f min wall, time scale %.0fx), %d nodeagent reporters, %d kubelets, real kube-apiserver\n",
              simHours, minutes, scale, nodes, kubelets);
  std::printf("churn: %llu condition changes (%.1f per node per hour), %.0f%% of nodes with a module flapping every ~%.0f s\n",
              (unsigned long long)flips.load(), double(flips) / nodes / simHours, flappyShare * 100, flappyFlipSeconds);
  std::printf("apiserver audit log: nodeagent %llu status patches (%llu failed), %llu event writes, %llu reads; kubelets %llu writes\n",
              (unsigned long long)auditPatches, (unsigned long long)auditPatchFailures, (unsigned long long)auditEvents,
              (unsigned long long)auditAgentReads, (unsigned long long)auditKubelet);
  std::printf("reporters' own figures: %llu patches sent (%llu resync patches), %llu changes coalesced, %llu events dropped by the limiter\n",
              (unsigned long long)patches, (unsigned long long)resyncs, (unsigned long long)coalesced,
              (unsigned long long)dropped);
  std::printf("status patches per condition change: %.3f (target <= 1.2)\n", patchesPerChange);
  std::printf("writes per node per hour: nodeagent %.1f (%.1f patches), kubelet %.1f (ratio %.3f, target < 0.1)\n",
              agentPerNodeHour, double(auditPatches) / nodes / simHours, kubeletPerNodeHour,
              agentPerNodeHour / kubeletPerNodeHour);
  std::printf("extrapolated to 5,000 nodes: nodeagent %.1f writes/s, kubelet %.1f writes/s\n",
              agentPerNodeHour * 5000 / 3600, kubeletPerNodeHour * 5000 / 3600);
  std::printf("bench process RSS: %ld KiB for %d reporters (%.1f KiB each, client, watch and threads included)\n", rss,
              nodes, double(rss) / nodes);
  (void)events;
  (void)failed;
  if (patchesPerChange > 1.2) return 1;
  return agentPerNodeHour / kubeletPerNodeHour < 0.1 ? 0 : 1;
}
