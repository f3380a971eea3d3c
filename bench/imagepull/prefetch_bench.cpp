// One phase of the image prefetch benchmark, against a real containerd (run.sh sets it up):
//   prefetch_bench ENDPOINT serial IMAGE...          kubelet's serializeImagePulls: one PullImage after another
//   prefetch_bench ENDPOINT prefetch N IMAGE...      nodeagent's Prefetcher with concurrency N
//   prefetch_bench ENDPOINT remove IMAGE...          RemoveImage each (the next phase starts cold)
// Prints "seconds=S rss_kib=K" for pull phases; exits 1 if any pull failed.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "imagepull/cri_image_service.h"
#include "imagepull/disk_guard.h"
#include "imagepull/prefetcher.h"

using namespace nodeagent::imagepull;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: prefetch_bench ENDPOINT serial|prefetch N|remove IMAGE...\n");
    return 2;
  }
  CriImageService svc(CriOptions{.endpoint = argv[1]});
  std::string mode = argv[2];
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
