// One phase of the image prefetch benchmark, against a real containerd (run.sh sets it up):
//   prefetch_bench ENDPOINT serial IMAGE...          kubelet's serializeImagePulls: one PullImage after another
//   prefetch_bench ENDPOINT prefetch N IMAGE...      nodeagent's Prefetcher with concurrency N
//   prefetch_bench ENDPOINT remove IMAGE...          RemoveImage each (the next phase starts cold)
//   prefetch_bench - spread NODES WINDOW_MS          fleet spread of one new cluster set (no runtime)
// Prints "seconds=S rss_kib=K" for pull phases; exits 1 if any pull failed.
//
// spread: NODES simulated nodes, each its own Prefetcher over a runtime that stands for the
// registry (its PullImage is the node's first registry request, timed), all seeing one new
// prefetch set at the same instant, as a ConfigMap edit reaches a fleet. Each node holds the
// set until its slot, placed exactly as the module places it (startDelay of node and set from
// when the set was first seen, a second away from the node's own start: separateStart).
// Measured twice in one run: without a set slot (a set starts when the node sees it, as
// before sets had slots) and with it; prints the most first requests in any one second
// against the uniform ideal ceil(NODES / window seconds).
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <cstdlib>
#include <string>
#include <vector>

#include "imagepull/cri_image_service.h"
#include "imagepull/disk_guard.h"
#include "common/log.h"
#include "imagepull/policy.h"
#include "imagepull/prefetcher.h"

using namespace nodeagent::imagepull;
using nodeagent::Result;

namespace {

// A node's runtime, standing for the registry: records when the node first asked for a blob.
class RegistryClock final : public ImageService {
 public:
  std::mutex mu;
  std::optional<std::chrono::steady_clock::time_point> first;
  Result<RuntimeVersion> version() override { return RuntimeVersion{"sim", "1", "v1"}; }
  Result<std::optional<ImageInfo>> status(const std::string& image) override {
    std::lock_guard l(mu);
    if (!first) return std::optional<ImageInfo>{};
    return std::optional<ImageInfo>{ImageInfo{.id = "sha256:" + image, .repoTags = {image}}};
  }
  Result<std::string> pull(const std::string& image, const std::string&, const Credential*,
                           std::chrono::milliseconds) override {
    std::lock_guard l(mu);
    if (!first) first = std::chrono::steady_clock::now();
    return "sha256:" + image;
  }
  Result<void> remove(const std::string&) override { return {}; }
  Result<std::vector<ImageInfo>> list() override { return std::vector<ImageInfo>{}; }
  Result<std::vector<FsUsage>> fsInfo() override { return std::vector<FsUsage>{}; }
};

class NoDisk final : public DiskProbe {
 public:
  Result<DiskUsage> probe() override { return DiskUsage{.mountpoint = "/sim", .usedPercent = 1}; }
};

// Returns the most first requests in any one second, counted from the moment the set appeared.
unsigned spreadRun(unsigned nodes, std::chrono::milliseconds window, bool setSlots, double& lastSecond) {
  using std::chrono::steady_clock;
  std::vector<std::unique_ptr<RegistryClock>> runtimes;
  std::vector<std::unique_ptr<NoDisk>> disks;
  std::vector<std::unique_ptr<Prefetcher>> fleet;
  for (unsigned i = 0; i < nodes; ++i) {
    runtimes.push_back(std::make_unique<RegistryClock>());
    disks.push_back(std::make_unique<NoDisk>());
    fleet.push_back(std::make_unique<Prefetcher>(*runtimes.back(), *disks.back(),
                                                 PrefetchOptions{.concurrency = 1, .perRegistry = 1}));
    fleet.back()->release();  // the nodes started long ago: their own slots are past
  }
  const std::string set = "new-set", image = "registry.example.com/ml/cuda:12.4";
  auto seen = steady_clock::now();
  for (unsigned i = 0; i < nodes; ++i) {
    std::string node = "node-" + std::to_string(i);
    ConfiguredImage c{.image = image, .tier = Tier::kEnvironment, .source = "set " + set};
    if (setSlots)  // as ImagePullModule::setStart places it (the node's own start is long past)
      c.notBefore = separateStart(seen + startDelay(node, set, window), {seen - std::chrono::hours(1)},
                                  std::chrono::seconds(1));
    if (!fleet[i]->setConfigured(std::vector<ConfiguredImage>{c})) return 0;
  }
  for (;;) {
    bool done = true;
    for (auto& r : runtimes) {
      std::lock_guard l(r->mu);
      done = done && r->first.has_value();
    }
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::map<long, unsigned> perSecond;
  lastSecond = 0;
  for (auto& r : runtimes) {
    double at = std::chrono::duration<double>(*r->first - seen).count();
    ++perSecond[static_cast<long>(at)];
    lastSecond = std::max(lastSecond, at);
  }
  unsigned most = 0;
  for (auto [sec, n] : perSecond) most = std::max(most, n);
  for (auto& p : fleet) p->stop();
  return most;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: prefetch_bench ENDPOINT serial|prefetch N|remove IMAGE...\n");
    return 2;
  }
  std::string mode = argv[2];
  if (mode == "spread") {
    if (argc != 5) return 2;
    nodeagent::log::setLevel(spdlog::level::warn);  // one line per simulated pull otherwise
    unsigned nodes = static_cast<unsigned>(std::atoi(argv[3]));
    std::chrono::milliseconds window(std::atol(argv[4]));
    double lastBefore = 0, lastAfter = 0;
    unsigned before = spreadRun(nodes, window, false, lastBefore);
    unsigned after = spreadRun(nodes, window, true, lastAfter);
    double secs = static_cast<double>(window.count()) / 1000.0;
    unsigned ideal = static_cast<unsigned>(std::ceil(nodes / secs));
    std::printf("spread nodes=%u window=%.0fs: without set slots max %u first requests in one second (all within %.1fs); "
                "with (node, set) slots max %u in one second, last at %.1fs; uniform ideal %u\n",
                nodes, secs, before, lastBefore, after, lastAfter, ideal);
    // The same placement at fleet scale, computed (no clocks): 5,000 nodes, one new set,
    // the default 2-minute window.
    std::map<long, unsigned> fleet;
    for (int i = 0; i < 5000; ++i) ++fleet[startDelay("node-" + std::to_string(i), "new-set", std::chrono::minutes(2)).count() / 1000];
    unsigned fleetMost = 0;
    for (auto [sec, n] : fleet) fleetMost = std::max(fleetMost, n);
    std::printf("spread nodes=5000 window=120s (computed slots): max %u first requests in one second; uniform ideal %u\n",
                fleetMost, 5000u / 120u + 1);
    return before && after ? 0 : 1;
  }
  CriImageService svc(CriOptions{.endpoint = argv[1]});
  int first = mode == "prefetch" ? 4 : 3;
  std::vector<std::string> images(argv + first, argv + argc);
  auto t0 = std::chrono::steady_clock::now();
  bool ok = true;
  if (mode == "remove") {
    for (const auto& i : images)
      if (auto r = svc.remove(i); !r) std::fprintf(stderr, "%s\n", r.error().message().c_str()), ok = false;
    return ok ? 0 : 1;
  } else if (mode == "serial") {
    for (const auto& i : images) {
      auto reg = i.substr(0, i.find('/'));
      if (auto r = svc.pull(i, reg, nullptr, std::chrono::minutes(10)); !r)
        std::fprintf(stderr, "%s\n", r.error().message().c_str()), ok = false;
    }
  } else if (mode == "prefetch") {
    unsigned n = static_cast<unsigned>(std::atoi(argv[3]));
    CriDiskProbe disk(svc);
    Prefetcher p(svc, disk, PrefetchOptions{.concurrency = n, .perRegistry = n, .diskHighWaterPercent = 100});
    if (auto r = p.setConfigured({}, images); !r) return 2;
    p.release();
    uint64_t v = 0;
    for (;;) {
      bool done = true;
      for (const auto& r : p.snapshot()) done = done && isTerminal(r.state);
      if (done) break;
      v = p.waitForChange(v, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    }
    for (const auto& r : p.snapshot())
      if (r.state != PullState::kPresent) std::fprintf(stderr, "%s: %s\n", r.image.c_str(), r.lastError.c_str()), ok = false;
    std::fprintf(stderr, "max_in_flight=%u\n", p.stats().maxActive);
  } else {
    return 2;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("seconds=%.3f rss_kib=%ld\n", s, ru.ru_maxrss);
  return ok ? 0 : 1;
}
