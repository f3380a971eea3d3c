// Benchmark: plan + apply + verify of the whole large-cluster profile by nodeagent's Tuner
// against `sysctl -q -p FILE` with the equivalent file, in the same run, same sandbox.
// Before every timed run all keys are put back to their starting values (not timed), so
// both sides really write every key. Reports wall time (median and min) and CPU time
// (user+sys; for sysctl including the cost of spawning it): on a shared, loaded machine the
// wall-clock median mostly measures the scheduler, the CPU time measures the work. The exit
// code follows the CPU-time ratio (0 when <= 0.5). Run it through bench/sysctl/run.sh (a sandbox with a
// fresh network namespace and tmpfs over /proc/sys/{vm,fs,kernel}); never on a host as is.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/files.h"
#include "sysctl/profile.h"
#include "sysctl/tuner.h"

extern char** environ;

using namespace nodeagent;
using namespace nodeagent::sysctl;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double cpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double rusageMs(const rusage& ru) {
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

// Runs sysctl; `childCpu` gets the child's user+system CPU time.
int runSysctl(const std::string& file, double& childCpu) {
  std::vector<std::string> args = {"sysctl", "-q", "-p", file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);  // host-level keys complain
  pid_t pid;
  if (posix_spawnp(&pid, "sysctl", &fa, nullptr, argv.data(), environ) != 0) return -1;
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  childCpu = rusageMs(ru);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SYS_ROOT WORK_DIR ITERATIONS\n", argv[0]);
    return 2;
  }
  std::string sysRoot = argv[1], work = argv[2];
  int iterations = std::max(3, std::atoi(argv[3]));
  KernelTree tree("/proc", sysRoot, detectInitialNetns());
  Tuner tuner(tree);
  auto keys = *builtinProfile("large-cluster", ScaleInputs{.cpus = std::max(1u, unsigned(sysconf(_SC_NPROCESSORS_ONLN)))});

  // Starting values, and the equivalent sysctl.d file (sysctls only; hashsize is not one).
  std::vector<std::pair<std::string, std::string>> start;
  std::vector<std::pair<KeySpec, std::string>> fileKeys;
  for (const auto& k : keys) {
    if (auto v = tree.read(k.key)) start.emplace_back(k.key, *v);
    fileKeys.emplace_back(k, targetValue(k, tree.read(k.key).value_or(k.value)));
  }
  std::string file = work + "/bench.conf";
  if (!writeFileAtomic(file, renderDropIn(fileKeys, "# benchmark: the large-cluster profile\n"))) return 1;
  auto reset = [&] {
    for (const auto& [k, v] : start) (void)tree.write(k, v);
  };

  std::vector<double> agent, baseline, agentCpu, baselineCpu;
  double cold = 0;  // first run: no originals saved yet, so it also writes originals.json
  size_t written = 0, inSync = 0;
  for (int i = 0; i < iterations; ++i) {
    reset();
    // As the module does each pass: load the saved originals, plan, apply, verify.
    auto t0 = Clock::now();
    double c0 = cpuMs();
    Originals originals(work + "/originals.json");
    (void)originals.load();
    auto plan = tuner.plan(keys);
    auto applied = tuner.apply(plan, originals);
    (i == 0 ? cold : agent.emplace_back()) = ms(Clock::now() - t0);
    if (i > 0) agentCpu.push_back(cpuMs() - c0);
    written = inSync = 0;
    for (const auto& a : applied) written += a.changed, inSync += a.inSync;

    reset();
    t0 = Clock::now();
    c0 = cpuMs();
    double child = 0;
    int rc = runSysctl(file, child);
    baseline.push_back(ms(Clock::now() - t0));
    baselineCpu.push_back(cpuMs() - c0 + child);  // spawning it plus its own run
    if (rc < 0) {
      std::fprintf(stderr, "cannot run sysctl\n");
      return 1;
    }
  }
  reset();
  double a = median(agent), b = median(baseline);
  std::printf("keys in profile:            %zu (%zu written and verified per run, %zu in sync after)\n", keys.size(),
              written, inSync);
  std::printf("iterations:                 %d\n", iterations);
  std::printf("nodeagent plan+apply+verify: median %.3f ms (min %.3f)\n", a, *std::min_element(agent.begin(), agent.end()));
  std::printf("nodeagent first run (saves originals.json, fsync): %.3f ms\n", cold);
  std::printf("sysctl -q -p (baseline):     median %.3f ms (min %.3f)\n", b, *std::min_element(baseline.begin(), baseline.end()));
  double ac = median(agentCpu), bc = median(baselineCpu);
  double amin = *std::min_element(agent.begin(), agent.end()), bmin = *std::min_element(baseline.begin(), baseline.end());
  std::printf("CPU time (user+sys) median:  nodeagent %.3f ms, sysctl %.3f ms (incl. spawning it)\n", ac, bc);
  std::printf("ratio nodeagent/sysctl:      wall median %.3f, wall min %.3f, CPU median %.3f (target <= 0.5)\n", a / b,
              amin / bmin, ac / bc);
  return ac / bc <= 0.5 ? 0 : 1;
}
