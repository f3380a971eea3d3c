// The Kubernetes service source against the real kube-apiserver (bench/proxy-kube/run.sh
// starts it). Two modes, two processes, so the measuring process's CPU and memory are the
// source's alone:
//   proxy_kube_bench create  --kubeconfig ADMIN --from A --to B --endpoints D
//   proxy_kube_bench measure --kubeconfig AGENT --admin ADMIN --services N --changes C
//   proxy_kube_bench baseline --kubeconfig AGENT
// `measure` reports the time from start until every service is in the desired state
// (decoded and translated; the kernel is the VM benchmark's part, bench/ipvs), against a
// baseline in the same run: the same paged lists fetched and thrown away, timed by the
// `baseline` mode in its own process (so its heap does not count in the source's memory)
// and handed over with --baseline-ms. Then C
// single-endpoint changes, each from the API write to the desired state (p50, p99), RSS,
// anonymous memory and CPU seconds.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "kube/client.h"
#include "kube/cluster.h"
#include "common/log.h"
#include "ipvs/kube_source.h"

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
Mem memory() {
  Mem m;
  std::ifstream f("/proc/self/status");
  std::string k;
  double v;
  while (f >> k) {
    if (k == "VmRSS:" && f >> v) m.rssMb = v / 1024;
    else if (k == "RssAnon:" && f >> v) m.anonMb = v / 1024;
    else if (k == "VmHWM:" && f >> v) m.hwmMb = v / 1024;
  }
  return m;
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Kubernetes service source benchmark"};
  std::string mode, kubeconfig, admin;
  int from = 0, to = 0, endpoints = 10, services = 0, changes = 100, pageSize = 500;
  double baselineMs = 0;
  app.add_option("mode", mode)->required()->check(CLI::IsMember({"create", "measure", "baseline"}));
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
  if (mode == "baseline") {
    auto c = client(kubeconfig);
    double took = listOnly(*c, pageSize);
    std::printf("%.0f\n", took);
    return took < 0 ? 1 : 0;
  }
  return measure(kubeconfig, admin, services, changes, pageSize, baselineMs);
}
