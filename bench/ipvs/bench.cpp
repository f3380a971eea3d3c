// IPVS benchmarks, run inside the VM by bench/ipvs/run.sh (real IPVS, TCG).
//   ipvs_bench rules N D           print `ipvsadm -R` input for N services x D endpoints
//   ipvs_bench services N D        print a services file for nodeagentd with the same set
//   ipvs_bench program N D         time the reconciler programming N x D from empty
//   ipvs_bench latency N D K [W N2] K single-endpoint changes with N x D present (after W
//                                  untimed ones), then the same with N2 x D: p50/p99 of the
//                                  agent's path and of the kernel alone, change by change
//   ipvs_bench ipvsadm-e N D K     the same K changes made by running `ipvsadm -e`
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "ipvs/netlink_service_table.h"
#include "ipvs/reconciler.h"

using namespace nodeagent;
using namespace nodeagent::ipvs;
using Clk = std::chrono::steady_clock;

extern char** environ;

namespace {

std::string vip(int i) { return "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }
std::string backend(int d) { return "10.244." + std::to_string(d / 250) + "." + std::to_string(d % 250 + 1); }

// Services [from, n) of the benchmark set, added to `st`.
void addServices(DesiredState& st, int from, int n, int d) {
  for (int i = from; i < n; ++i) {
    auto s = std::make_shared<DesiredService>();
    s->service.key = ServiceKey{AF_INET, Protocol::kTcp, *Address::parse(vip(i)), 80, 0};
    s->service.scheduler = "rr";
    for (int j = 0; j < d; ++j) s->dests.insert({DestKey{*Address::parse(backend(j)), 8080}, Forward::kMasq, 1, 0, 0});
    st.emplace(s->service.key, std::move(s));
  }
}

DesiredState desired(int n, int d) {
  DesiredState st;
  addServices(st, 0, n, d);
  return st;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Env {
  std::unique_ptr<NetlinkServiceTable> table;
  std::unique_ptr<Ownership> own;
  std::unique_ptr<Reconciler> rec;
};

Env make() {
  Env e;
  auto t = NetlinkServiceTable::open();
  if (!t) {
    std::fprintf(stderr, "%s\n", t.error().message().c_str());
    std::exit(1);
  }
  e.table = std::move(*t);
  std::string dir = "/tmp/ipvs-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  e.own = std::make_unique<Ownership>(dir + "/owned");
  e.rec = std::make_unique<Reconciler>(*e.table, *e.own, SystemClock::instance(), ReconcilerOptions{});
  return e;
}

void mustSync(Reconciler& rec, const DesiredState& st, bool full) {
  auto r = rec.sync(st, SyncRequest{full, false});
  if (!r || !r->failures.empty()) {
    std::fprintf(stderr, "sync failed: %s\n", r ? r->failures.front().c_str() : r.error().message().c_str());
    std::exit(1);
  }
}

int run(const std::vector<std::string>& argv) {
  pid_t pid;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: ipvs_bench rules|services|program|latency|ipvsadm-e N D [K]\n");
    return 2;
  }
  std::string mode = argv[1];
  int n = std::atoi(argv[2]), d = std::atoi(argv[3]);
  int k = argc > 4 ? std::atoi(argv[4]) : 1000;
  if (mode == "rules") {
    for (int i = 0; i < n; ++i) {
      std::printf("-A -t %s:80 -s rr\n", vip(i).c_str());
      for (int j = 0; j < d; ++j) std::printf("-a -t %s:80 -r %s:8080 -m -w 1\n", vip(i).c_str(), backend(j).c_str());
    }
    return 0;
  }
  if (mode == "services") {
    std::printf("services:\n");
    for (int i = 0; i < n; ++i) {
      std::printf("  - address: %s\n    port: 80\n    endpoints:\n", vip(i).c_str());
      for (int j = 0; j < d; ++j) std::printf("      - {address: %s, port: 8080}\n", backend(j).c_str());
    }
    return 0;
  }
  Env e = make();
  DesiredState st = desired(n, d);
  if (mode == "program") {
    auto t0 = Clk::now();
    mustSync(*e.rec, st, true);
    double s = std::chrono::duration<double>(Clk::now() - t0).count();
    std::printf("program %d services x %d endpoints: %.3f s\n", n, d, s);
    return 0;
  }
  mustSync(*e.rec, st, true);  // the table being measured against
  std::mt19937 rng(42);
  std::vector<DesiredState::iterator> its;
  auto index = [&] {
    its.clear();
    for (auto it = st.begin(); it != st.end(); ++it) its.push_back(it);
  };
  index();
  // One change made by `how` to one endpoint of a random service, in us.
  auto change = [&](const std::string& how) -> double {
    auto& entry = its[rng() % its.size()]->second;
    size_t which = rng() % entry->dests.size();
    if (how == "kernel-only") {
      // The floor: one prebuilt IPVS_CMD_SET_DEST straight to the netlink table, setting
      // an endpoint to the weight it has (the kernel does the same lookups and update).
      Op op{Op::Type::kEditDest, entry->service, *std::next(entry->dests.begin(), static_cast<long>(which))};
      auto t0 = Clk::now();
      auto r = e.table->apply(std::span<const Op>(&op, 1));
      double us = std::chrono::duration<double, std::micro>(Clk::now() - t0).count();
      if (!r || !(*r)[0].ok()) {
        std::fprintf(stderr, "kernel-only change failed\n");
        std::exit(1);
      }
      return us;
    }
    // The desired change: a new entry for the service with one endpoint's weight flipped.
    auto changed = std::make_shared<DesiredService>(*entry);
    auto dit = std::next(changed->dests.begin(), static_cast<long>(which));
    dit->weight = dit->weight == 1 ? 2 : 1;
    entry = changed;
    const DesiredService& s = *changed;
    auto t0 = Clk::now();
    if (how == "latency") {
      auto r = e.rec->syncChanged(st, {s.service.key}, false);
      if (!r || r->applied != 1) {
        std::fprintf(stderr, "expected one op per change\n");
        std::exit(1);
      }
    } else {
      std::string svc = s.service.key.address.toString() + ":80";
      if (run({"ipvsadm", "-e", "-t", svc, "-r", dit->key.toString(), "-m", "-w", std::to_string(dit->weight)}) != 0) {
        std::fprintf(stderr, "ipvsadm -e failed\n");
        std::exit(1);
      }
    }
    return std::chrono::duration<double, std::micro>(Clk::now() - t0).count();
  };
  auto report = [&](const std::string& how, int size, const std::vector<double>& us) {
    std::printf("%s with %d services x %d endpoints, %d changes: p50 %.1f us  p99 %.1f us\n", how.c_str(), size, d,
                static_cast<int>(us.size()), percentile(us, 0.5), percentile(us, 0.99));
    std::fflush(stdout);
  };
  if (mode != "latency") {
    std::vector<double> us;
    for (int c = 0; c < k; ++c) us.push_back(change(mode));
    report(mode, n, us);
    return 0;
  }
  // The agent's path and the kernel alone, change by change (both see the same noise),
  // after `warm` untimed rounds; then the table grows to n2 services in the same VM and
  // the same is measured again.
  int warm = argc > 5 ? std::atoi(argv[5]) : 0;
  int n2 = argc > 6 ? std::atoi(argv[6]) : 0;
  auto measure = [&](int size) {
    for (int c = 0; c < warm; ++c) change("latency"), change("kernel-only");
    std::vector<double> ours, kernel;
    for (int c = 0; c < k; ++c) {
      ours.push_back(change("latency"));
      kernel.push_back(change("kernel-only"));
    }
    report("latency", size, ours);
    report("kernel-only", size, kernel);
  };
  int repeat = argc > 7 ? std::atoi(argv[7]) : 1;
  for (int i = 0; i < repeat; ++i) measure(n);
  if (n2 > n) {
    addServices(st, n, n2, d);
    mustSync(*e.rec, st, false);
    index();
    for (int i = 0; i < repeat; ++i) measure(n2);
  }
  return 0;
}
