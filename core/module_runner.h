// ModuleRunner: one thread per module running its reconcile loop, so a slow or failing
// module never blocks another.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "core/module.h"
#include "core/state_store.h"

namespace nodeagent::core {

struct RunnerTiming {
  // At most one pass per min_interval, however often triggered.
  std::chrono::milliseconds minInterval{1000};
  // A pass at least this often (periodic resync), unless the module asks for its own.
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
  // Stops after the pass in progress, if any, and joins the thread.
  void stop();
  // Runs exactly one pass on the calling thread (--once); returns its result.
  [[nodiscard]] Result<void> runOnce(bool initial);

 private:
  void loop();
  Result<void> pass(bool initial, bool resync);

  Module& module_;
  StateStore& store_;
  bool dryRun_;
  std::mutex mu_;
  std::condition_variable cv_;
  RunnerTiming timing_;
  bool triggered_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nodeagent::core
