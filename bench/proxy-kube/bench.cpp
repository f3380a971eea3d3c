// The Kubernetes service source against the real kube-apiserver (bench/proxy-kube/run.sh
// starts it). Modes, each its own process, so the measuring process's CPU and memory are the
// source's alone:
//   proxy_kube_bench create  --kubeconfig ADMIN --from A --to B --endpoints D
//   proxy_kube_bench measure --kubeconfig AGENT --admin ADMIN --services N --changes C
//   proxy_kube_bench baseline --kubeconfig AGENT
//   proxy_kube_bench kernel --kubeconfig ADMIN --services N --changes C --agent-pid P --since T
// `kernel` runs in the QEMU VM beside the real agent (guest.sh): the time from the agent's
// start (T, epoch seconds) until every service and its endpoints are in IPVS (read back over
// netlink), then C single-endpoint changes from the API write to the kernel, each beside the
// same write's arrival on a bare watch (the API's own latency, the baseline of the same
// run), and the agent's RSS, anonymous memory and CPU seconds from /proc.
// `measure` reports the time from start until every service is in the desired state
// (decoded and translated; the kernel is the VM benchmark's part, bench/ipvs), against a
// baseline in the same run: the same paged lists fetched and thrown away, timed by the
// `baseline` mode in its own process (so its heap does not count in the source's memory)
// and handed over with --baseline-ms. Then C
// single-endpoint changes, each from the API write to the desired state (p50, p99), RSS,
// anonymous memory and CPU seconds.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "daemon/heap_policy.h"
#include "kube/client.h"
#include "kube/cluster.h"
#include "kube/list_watch.h"
#include "common/log.h"
#include "ipvs/kube_source.h"
#include "ipvs/netlink_service_table.h"

using namespace nodeagent;
using Clock = std::chrono::steady_clock;

namespace {

std::unique_ptr<kube::Client> client(const std::string& kubeconfig) {
  auto cc = kube::loadKubeconfig(kubeconfig);
  if (!cc) {
    std::fprintf(stderr, "%s\n", cc.error().message().c_str());
    std::exit(1);
  }
  kube::ClientOptions o;
  o.qps = 1e6;
  o.burst = 1000000;
  auto c = kube::Client::create(*cc, o);
  if (!c) {
    std::fprintf(stderr, "%s\n", c.error().message().c_str());
    std::exit(1);
  }
  return std::move(*c);
}

std::string ip(int i) {  // 10.200.x.y, one per endpoint
  return "10.200." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
}

std::string sliceBody(int svc, int endpoints, int first) {
  std::string eps;
  for (int e = 0; e < endpoints; ++e)
    eps += std::string(e ? "," : "") + R"({"addresses":[")" + ip(first + e) + R"("],"conditions":{"ready":true}})";
  return R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s)" + std::to_string(svc) +
         R"(-1","namespace":"bench","labels":{"kubernetes.io/service-name":"s)" + std::to_string(svc) +
         R"("}},"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[)" + eps + "]}";
}

int create(const std::string& kubeconfig, int from, int to, int endpoints) {
  auto c = client(kubeconfig);
  (void)c->request("POST", "/api/v1/namespaces", R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}})");
  std::atomic<int> next{from}, failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w)
    workers.emplace_back([&] {
      auto mine = client(kubeconfig);  // one connection per worker
      for (int i = next++; i < to; i = next++) {
        auto s = mine->request("POST", "/api/v1/namespaces/bench/services",
                               R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s)" + std::to_string(i) +
                                   R"("},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}})");
        auto e = mine->request("POST", "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices",
                               sliceBody(i, endpoints, i * endpoints));
        if (!s || !e) ++failed;
      }
    });
  for (auto& t : workers) t.join();
  if (failed) std::fprintf(stderr, "%d creations failed\n", failed.load());
  return failed ? 1 : 0;
}

struct Mem {
  double rssMb = 0, anonMb = 0, hwmMb = 0;
};
Mem memory(const std::string& pid = "self") {
  Mem m;
  std::ifstream f("/proc/" + pid + "/status");
  std::string k;
  double v;
  while (f >> k) {
    if (k == "VmRSS:" && f >> v) m.rssMb = v / 1024;
    else if (k == "RssAnon:" && f >> v) m.anonMb = v / 1024;
    else if (k == "VmHWM:" && f >> v) m.hwmMb = v / 1024;
  }
  return m;
}
// What malloc holds: in use by the program, and free but kept (not returned to the kernel).
void heapReport(const char* when) {
  struct mallinfo2 mi = ::mallinfo2();
  std::printf("BENCH heap %s: in use %.1f MB (mmapped %.1f MB), free kept by malloc %.1f MB\n", when,
              (mi.uordblks + mi.hblkhd) / 1048576.0, mi.hblkhd / 1048576.0, mi.fordblks / 1048576.0);
}
double cpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The baseline: the same paged lists, bodies thrown away.
double listOnly(kube::Client& c, int pageSize) {
  auto t0 = Clock::now();
  for (std::string path : {"/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"}) {
    std::string cont;
    do {
      auto r = c.request("GET", path + "?limit=" + std::to_string(pageSize) + (cont.empty() ? "" : "&continue=" + kube::urlEncode(cont)));
      if (!r) return -1;
      auto j = Json::parse(r->body);
      cont = j ? j->get("metadata").get("continue").asString() : "";
    } while (!cont.empty());
  }
  return ms(Clock::now() - t0);
}

int measure(const std::string& kubeconfig, const std::string& admin, int services, int changes, int pageSize,
            double baseline) {
  std::printf("BENCH %s\n", daemon::applyHeapPolicy().c_str());  // the agent's heap, as nodeagentd sets it
  auto c = client(kubeconfig);
  ipvs::KubeSourceOptions o;
  o.nodeName = "bench-node";
  o.pageSize = pageSize;
  o.localAddresses = [] { return std::vector<ipvs::Address>{}; };
  ipvs::KubeServiceSource src(*c, o);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t ticks = 0;
  auto cpu0 = cpuSeconds();
  auto t0 = Clock::now();
  src.watch([&] {
    std::lock_guard l(mu);
    ++ticks;
    cv.notify_all();
  });
  ipvs::DesiredState state;
  auto waitLoad = [&](auto done, std::chrono::seconds limit) {
    auto end = Clock::now() + limit;
    uint64_t seen = 0;
    while (Clock::now() < end) {
      {
        std::unique_lock l(mu);
        cv.wait_for(l, std::chrono::milliseconds(50), [&] { return ticks != seen; });
        seen = ticks;
      }
      if (!src.ready()) continue;
      auto d = src.load(&state);
      if (!d) continue;
      state = std::move(*d);
      daemon::returnFreeHeap();  // as the agent's runner does after every pass
      if (done()) return true;
    }
    return false;
  };
  // Services of the bench namespace only (the cluster's own `kubernetes` service counts too).
  bool all = waitLoad(
      [&] {
        return std::count_if(state.begin(), state.end(), [](const auto& e) { return e.second->name.starts_with("bench/"); }) >=
               services;
      },
      std::chrono::seconds(900));
  double full = ms(Clock::now() - t0);
  auto mem = memory();
  std::printf("BENCH initial %d services: %s in %.0f ms; baseline (paged list, no decode) %.0f ms; ratio %.2f\n",
              services, all ? "all translated" : "TIMEOUT", full, baseline, full / baseline);
  std::printf("BENCH memory after initial: RSS %.1f MB, anonymous %.1f MB, HWM %.1f MB\n", mem.rssMb, mem.anonMb,
              mem.hwmMb);
  heapReport("after initial");
  auto writer = client(admin);
  std::vector<double> lat;
  for (int i = 0; i < changes; ++i) {
    int svc = (i * 7919) % services;
    std::string newIp = "10.201." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    auto w0 = Clock::now();
    auto r = writer->request("PATCH", "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/s" + std::to_string(svc) + "-1",
                             R"([{"op":"replace","path":"/endpoints/0/addresses/0","value":")" + newIp + R"("}])",
                             "application/json-patch+json");
    if (!r) {
      std::fprintf(stderr, "patch: %s\n", r.error().message().c_str());
      continue;
    }
    auto want = *ipvs::Address::parse(newIp);
    bool ok = waitLoad(
        [&] {
          for (const auto& [k, p] : state)
            if (p->name == "bench/s" + std::to_string(svc) + ":http")
              for (const auto& d : p->dests)
                if (d.key.address == want) return true;
          return false;
        },
        std::chrono::seconds(30));
    if (ok) lat.push_back(ms(Clock::now() - w0));
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? -1 : lat[std::min(lat.size() - 1, size_t(p * lat.size()))]; };
  std::printf("BENCH changes at %d services: %zu/%d seen, API write to desired state p50 %.1f ms p99 %.1f ms\n",
              services, lat.size(), changes, pct(0.5), pct(0.99));
  mem = memory();
  std::printf("BENCH end at %d services: RSS %.1f MB, anonymous %.1f MB, HWM %.1f MB, CPU %.2f s\n", services,
              mem.rssMb, mem.anonMb, mem.hwmMb, cpuSeconds() - cpu0);
  src.stop();
  return all ? 0 : 1;
}

// CPU seconds of another process (utime + stime of /proc/PID/stat).
double cpuSecondsOf(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string line;
  std::getline(f, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15 (1-based)
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * v.size()))];
}

// The bench services in the kernel: TCP port 80 virtual servers (the cluster's own
// `kubernetes` service is 443).
std::vector<ipvs::ServiceKey> benchServices(ipvs::NetlinkServiceTable& t) {
  std::vector<ipvs::ServiceKey> out;
  auto all = t.list(false);
  if (!all) return out;
  for (const auto& s : *all)
    if (s.service.key.port == 80 && s.service.key.protocol == ipvs::Protocol::kTcp) out.push_back(s.service.key);
  return out;
}

int kernel(const std::string& admin, int services, int endpoints, int changes, const std::string& agentPid,
           double since, double baseline, int spacingMs) {
  auto table = ipvs::NetlinkServiceTable::open();
  if (!table) {
    std::fprintf(stderr, "%s\n", table.error().message().c_str());
    return 1;
  }
  auto& t = **table;
  // 1. Everything in the kernel: all N services, and the endpoints of the last one the
  // agent programs (it goes in key order, so that one is in the last batch).
  auto sinceStart = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count() -
           since * 1000;
  };
  bool all = false;
  double took = -1;
  auto deadline = Clock::now() + std::chrono::minutes(20);
  while (Clock::now() < deadline) {
    auto keys = benchServices(t);
    if (static_cast<int>(keys.size()) >= services) {
      auto last = *std::max_element(keys.begin(), keys.end());
      auto d = t.listDests(last);
      if (d && static_cast<int>(d->size()) >= endpoints) {
        took = sinceStart();
        all = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  size_t dests = 0;
  if (auto l = t.list(true))
    for (const auto& s : *l)
      if (s.service.key.port == 80) dests += s.dests.size();
  auto mem = memory(agentPid);
  std::printf("BENCH kernel initial %d services: %s in %.0f ms from the agent's start (%zu endpoints read back); "
              "baseline (paged list, no decode) %.0f ms; ratio %.2f\n",
              services, all ? "all in IPVS" : "TIMEOUT", took, dests, baseline, took / baseline);
  std::printf("BENCH kernel agent after initial: RSS %.1f MB, anonymous %.1f MB, HWM %.1f MB, CPU %.2f s\n", mem.rssMb,
              mem.anonMb, mem.hwmMb, cpuSecondsOf(agentPid));
  if (!all) return 1;

  // 2. Changes: a bare watch of the bench slices beside the agent sees each write arrive.
  auto c = client(admin);
  auto watcherClient = client(admin);
  std::string rv;
  if (auto r = c->request("GET", "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices?limit=1"))
    if (auto j = Json::parse(r->body)) rv = j->get("metadata").get("resourceVersion").asString();
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> seen;  // slice name -> when its event arrived
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop) {
      auto r = watcherClient->stream(
          "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices?watch=1&resourceVersion=" + kube::urlEncode(rv),
          [&](std::string_view line) {
            auto now = Clock::now();
            auto ev = kube::decodeWatchEvent(line);
            if (ev && ev->type == "MODIFIED") {
              std::lock_guard l(mu);
              seen[ev->object.get("metadata").get("name").asString()] = now;
              cv.notify_all();
            }
            if (ev && !ev->resourceVersion.empty()) rv = ev->resourceVersion;
            return !stop.load();
          },
          std::chrono::minutes(30), &stop);
      (void)r;
    }
  });
  std::vector<double> kernelMs, watchMs;
  for (int i = 0; i < changes; ++i) {
    int svc = (i * 7919) % services;
    std::string name = "s" + std::to_string(svc);
    auto g = c->request("GET", "/api/v1/namespaces/bench/services/" + name);
    auto sj = g ? Json::parse(g->body) : Result<Json>(failInvalid("no service"));
    auto vip = sj ? ipvs::Address::parse(sj->get("spec").get("clusterIP").asString()) : failInvalid("no service");
    if (!vip) continue;
    ipvs::ServiceKey key{AF_INET, ipvs::Protocol::kTcp, *vip, 80, 0};
    std::string newIp = "10.202." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    auto want = *ipvs::Address::parse(newIp);
    auto w0 = Clock::now();
    auto r = c->request("PATCH", "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/" + name + "-1",
                        R"([{"op":"replace","path":"/endpoints/0/addresses/0","value":")" + newIp + R"("}])",
                        "application/json-patch+json");
    if (!r) continue;
    bool inKernel = false;
    auto end = w0 + std::chrono::seconds(60);
    while (Clock::now() < end && !inKernel) {
      if (auto d = t.listDests(key))
        for (const auto& ds : *d)
          if (ds.dest.key.address == want && ds.dest.weight > 0) inKernel = true;
      if (!inKernel) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (inKernel) kernelMs.push_back(ms(Clock::now() - w0));
    {
      std::unique_lock l(mu);
      if (cv.wait_until(l, end, [&] { auto it = seen.find(name + "-1"); return it != seen.end() && it->second >= w0; }))
        watchMs.push_back(ms(seen[name + "-1"] - w0));
    }
    // The next write after the agent's min_interval: each change meets an idle agent, so
    // the figure is the path's latency, not the rate limit's wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(spacingMs));
  }
  stop = true;
  watcherClient->interrupt();
  watcher.join();
  mem = memory(agentPid);
  std::printf("BENCH kernel changes at %d services: %zu/%d in IPVS (%d ms apart), API write to kernel p50 %.1f ms "
              "p99 %.1f ms; API write to a bare watch event (baseline) p50 %.1f ms p99 %.1f ms; ratio p50 %.2f\n",
              services, kernelMs.size(), changes, spacingMs, pct(kernelMs, 0.5), pct(kernelMs, 0.99),
              pct(watchMs, 0.5), pct(watchMs, 0.99), pct(kernelMs, 0.5) / pct(watchMs, 0.5));
  std::printf("BENCH kernel agent at the end: RSS %.1f MB, anonymous %.1f MB, HWM %.1f MB, CPU %.2f s\n", mem.rssMb,
              mem.anonMb, mem.hwmMb, cpuSecondsOf(agentPid));
  return kernelMs.size() == static_cast<size_t>(changes) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Kubernetes service source benchmark"};
  std::string mode, kubeconfig, admin;
  int from = 0, to = 0, endpoints = 10, services = 0, changes = 100, pageSize = 500;
  double baselineMs = 0;
  std::string agentPid;
  double since = 0;
  app.add_option("mode", mode)->required()->check(CLI::IsMember({"create", "measure", "baseline", "kernel"}));
  app.add_option("--agent-pid", agentPid);
  app.add_option("--since", since);
  int spacingMs = 1100;  // the agent's default min_interval (1 s) and a little
  app.add_option("--spacing-ms", spacingMs);
  app.add_option("--kubeconfig", kubeconfig)->required();
  app.add_option("--admin", admin);
  app.add_option("--from", from);
  app.add_option("--to", to);
  app.add_option("--endpoints", endpoints);
  app.add_option("--services", services);
  app.add_option("--changes", changes);
  app.add_option("--page-size", pageSize);
  app.add_option("--baseline-ms", baselineMs);
  CLI11_PARSE(app, argc, argv);
  if (mode == "create") return create(kubeconfig, from, to, endpoints);
  if (mode == "kernel")
    return kernel(kubeconfig, services, endpoints, changes, agentPid, since, baselineMs, spacingMs);
  if (mode == "baseline") {
    auto c = client(kubeconfig);
    double took = listOnly(*c, pageSize);
    std::printf("%.0f\n", took);
    return took < 0 ? 1 : 0;
  }
  return measure(kubeconfig, admin, services, changes, pageSize, baselineMs);
}
