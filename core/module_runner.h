// ModuleRunner: one thread per module running its reconcile loop, so a slow or failing
// module never blocks another.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/module.h"
#include "core/state_store.h"

namespace nodeagent::core {

struct RunnerTiming {
  // At most one pass per min_interval, however often triggered.
  std::chrono::milliseconds minInterval{1000};
  // A full (periodic) pass at least this often, counted from the last full pass, unless
  // the module asks for its own interval; triggered passes do not put it off.
  std::chrono::milliseconds maxInterval{60000};
};

class ModuleRunner {
 public:
  ModuleRunner(Module& module, StateStore& store, RunnerTiming timing, bool dryRun);
  ~ModuleRunner();
  ModuleRunner(const ModuleRunner&) = delete;
  ModuleRunner& operator=(const ModuleRunner&) = delete;

  void start();
  // Asks for a pass as soon as min_interval allows.
  void trigger();
  void setTiming(RunnerTiming timing);
  // Called on the runner's thread after every pass (set before start()): the daemon
  // returns freed heap pages to the kernel there.
  void setAfterPass(std::function<void()> f) { afterPass_ = std::move(f); }
  // Stops after the pass in progress, if any, and joins the thread.
  void stop();
  // Runs exactly one pass on the calling thread (--once); returns its result.
  [[nodiscard]] Result<void> runOnce(bool initial);

  // For the daemon's watchdog: a runner is live while it waits for its next pass, or while
  // its pass in progress has run no longer than its interval (the module's resync interval,
  // else max_interval) plus slack. A runner that is not live is hung: a call into the
  // kernel, a socket or a lock that does not return.
  struct Liveness {
    bool live = true;
    std::chrono::milliseconds running{0};  // how long the pass in progress has run
    std::chrono::milliseconds limit{0};
  };
  Liveness liveness(std::chrono::steady_clock::time_point now) const;
  // The slack above the interval: half of it, at least 10 s. A legitimate long pass (a
  // first sync of 10,000 IPVS services takes seconds) stays well inside it.
  static std::chrono::milliseconds slackFor(std::chrono::milliseconds interval);

 private:
  void loop();
  // `mayGiveWay`: a periodic pass that may stop early for a waiting change; returns in
  // `gaveWay` whether it did.
  Result<void> pass(bool initial, bool resync, bool mayGiveWay = false, bool* gaveWay = nullptr);
  // The periodic pass's interval: the module's own, else max_interval. Holds mu_.
  std::chrono::milliseconds resyncIntervalLocked() const;

  Module& module_;
  StateStore& store_;
  bool dryRun_;
  std::mutex mu_;
  std::condition_variable cv_;
  RunnerTiming timing_;
  bool triggered_ = false;
  std::atomic<bool> changeWaiting_{false};  // triggered_, readable during a pass without mu_
  bool stopping_ = false;
  std::thread thread_;
  // Set by the runner thread at the start of a pass (steady-clock ns) and back to 0 when
  // it ends; the limit that pass gets. Read by the watchdog without taking mu_.
  std::atomic<int64_t> passStarted_{0};
  std::atomic<int64_t> passLimitMs_{0};
  // The failure last logged ("" after a pass that succeeded): each is logged once.
  std::string lastLoggedError_;
  std::function<void()> afterPass_;
};

}  // namespace nodeagent::core
