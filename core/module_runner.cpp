#include "core/module_runner.h"

#include "common/log.h"

namespace nodeagent::core {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

ModuleRunner::ModuleRunner(Module& module, StateStore& store, RunnerTiming timing, bool dryRun)
    : module_(module), store_(store), dryRun_(dryRun), timing_(timing) {
  // Every module is in the store from the moment it has a runner, so a status served before
  // its first pass says "starting" for it instead of leaving it out (and calling the agent
  // healthy with only the modules that happened to publish first).
  if (!store_.get(module_.name())) store_.publish(ModuleState{.name = module_.name(), .summary = "first pass pending"});
}

ModuleRunner::~ModuleRunner() { stop(); }

void ModuleRunner::start() { thread_ = std::thread([this] { loop(); }); }

void ModuleRunner::trigger() {
  std::lock_guard lock(mu_);
  triggered_ = true;
  changeWaiting_ = true;
  cv_.notify_all();
}

void ModuleRunner::setTiming(RunnerTiming timing) {
  std::lock_guard lock(mu_);
  timing_ = timing;
  cv_.notify_all();
}

void ModuleRunner::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Result<void> ModuleRunner::runOnce(bool initial) { return pass(initial, false); }

milliseconds ModuleRunner::resyncIntervalLocked() const {
  auto own = module_.resyncInterval();
  return own.count() > 0 ? own : timing_.maxInterval;
}

milliseconds ModuleRunner::slackFor(milliseconds interval) {
  return std::max<milliseconds>(interval / 2, std::chrono::seconds(10));
}

ModuleRunner::Liveness ModuleRunner::liveness(steady_clock::time_point now) const {
  int64_t started = passStarted_.load();
  if (started == 0) return {};  // waiting for its next pass
  Liveness l;
  l.running = std::chrono::duration_cast<milliseconds>(now.time_since_epoch() - std::chrono::nanoseconds(started));
  l.limit = milliseconds(passLimitMs_.load());
  l.live = l.running <= l.limit;
  return l;
}

Result<void> ModuleRunner::pass(bool initial, bool resync, bool mayGiveWay, bool* gaveWay) {
  auto start = steady_clock::now();
  milliseconds interval;
  {
    std::lock_guard lock(mu_);
    interval = resyncIntervalLocked();
  }
  passLimitMs_ = (interval + slackFor(interval)).count();
  passStarted_ = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count());
  ReconcileContext ctx{.dryRun = dryRun_, .initial = initial, .resync = resync};
  if (mayGiveWay) ctx.changeWaiting = [this] { return changeWaiting_.load(std::memory_order_relaxed); };
  auto result = module_.reconcile(ctx);
  if (gaveWay) *gaveWay = result && ctx.gaveWay;
  passStarted_ = 0;
  auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  std::string err = result ? "" : result.error().message();
  store_.recordReconcile(module_.name(), result.has_value(), err, took);
  auto logger = log::get(module_.name());
  // The runner decides what a failure means (degraded, retried with backoff), so it logs
  // it, once: a module that fails the same way every pass (container runtime down, no
  // IPVS in the kernel) does not repeat itself in the journal; status shows every pass.
  if (!result) {
    if (err != lastLoggedError_)
      logger->error("reconcile failed after {} ms: {}", took.count(), err);
    else
      logger->debug("reconcile failed again after {} ms: {}", took.count(), err);
    logger->debug("at {}", result.error().describe());
    lastLoggedError_ = err;
  } else {
    if (!lastLoggedError_.empty()) logger->info("reconcile succeeded again (it had failed: {})", lastLoggedError_);
    lastLoggedError_.clear();
    if (ctx.gaveWay)
      logger->debug("periodic pass gave way to a change after {} ms; it runs again after it", took.count());
    else
      logger->debug("reconcile done in {} ms", took.count());
  }
  if (afterPass_) afterPass_();
  return result;
}

void ModuleRunner::loop() {
  bool initial = true;
  int failuresInRow = 0;
  auto lastPass = steady_clock::time_point{};
  auto nextDue = steady_clock::now();
  // Whether a periodic pass gave way to a change and is still to run to its end, and when
  // it first started.
  bool periodicOutstanding = false;
  bool changeFirst = false;  // the last pass gave way: the waiting change runs next
  auto periodicDueSince = steady_clock::time_point{};
  for (;;) {
    bool resync = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stopping_) return;
        auto now = steady_clock::now();
        auto earliest = lastPass + timing_.minInterval;
        bool periodicDue = now >= nextDue && now >= earliest;
        // When both are due the periodic pass goes first (it takes the change in too), so
        // changes faster than min_interval cannot starve it; but not right after it gave
        // way to that change.
        if (triggered_ && now >= earliest && (changeFirst || !periodicDue)) break;
        if (periodicDue) {
          resync = !initial;
          break;
        }
        auto wakeAt = triggered_ ? earliest : std::max(nextDue, earliest);
        cv_.wait_until(lock, wakeAt);
      }
      triggered_ = false;
      changeWaiting_ = false;
    }
    milliseconds interval;
    {
      std::lock_guard lock(mu_);
      interval = resyncIntervalLocked();
    }
    // A periodic pass gives way to changes for at most twice its interval.
    auto started = steady_clock::now();
    if (resync && !periodicOutstanding) periodicDueSince = started;
    bool mayGiveWay = resync && started - periodicDueSince < 2 * interval;
    bool gaveWay = false;
    bool full = initial || resync;
    auto result = pass(initial, resync, mayGiveWay, &gaveWay);
    initial = false;
    if (gaveWay) {
      // It changed nothing, so it does not count against min_interval: the waiting change
      // runs now, and the periodic pass is still due right after it.
      periodicOutstanding = true;
      changeFirst = true;
      nextDue = steady_clock::now();
      continue;
    }
    changeFirst = false;
    lastPass = steady_clock::now();
    if (resync) periodicOutstanding = false;
    {
      std::lock_guard lock(mu_);
      interval = resyncIntervalLocked();  // setTiming may have changed it during the pass
      if (!result) {
        // Back off from min_interval, doubling per failure, capped by the resync interval.
        failuresInRow = std::min(failuresInRow + 1, 16);
        auto backoff = timing_.minInterval * (1LL << std::min(failuresInRow - 1, 10));
        nextDue = std::min(full ? lastPass + interval : nextDue, lastPass + std::min<milliseconds>(interval, backoff));
      } else {
        failuresInRow = 0;
        // The periodic pass counts from the last full pass: triggered passes (which may
        // look only at what changed) do not put it off.
        if (full) nextDue = lastPass + interval;
      }
    }
    // A periodic pass that gave way is due again as soon as min_interval allows.
    if (periodicOutstanding) nextDue = lastPass;
  }
}

}  // namespace nodeagent::core
