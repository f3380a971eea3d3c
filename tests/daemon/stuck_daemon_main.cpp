// A test build of nodeagentd: the real daemon (runDaemon) plus one extra module, "stuck",
// whose reconcile blocks while a file named on the command line exists (a module caught
// in a call that never returns), and whose stop() blocks while another file exists (after
// writing `<that file>.entered`), so a test can act while the daemon is stopping modules.
// Only this test binary has it: nodeagentd and its config know nothing of it.
//   stuck_daemon --config FILE --hang-file FILE [--stop-hold-file FILE]
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/files.h"
#include "common/handoff.h"
#include "core/state_store.h"
#include "daemon/daemon.h"
#include "daemon/modules.h"

namespace {

using namespace std::chrono_literals;
using namespace nodeagent;

class StuckModule final : public core::Module {
 public:
  StuckModule(core::ModuleContext ctx, std::string hangFile, std::string stopHoldFile)
      : ctx_(std::move(ctx)), hangFile_(std::move(hangFile)), stopHoldFile_(std::move(stopHoldFile)) {}
  std::string name() const override { return "stuck"; }
  Result<void> reconcile(const core::ReconcileContext&) override {
    while (::access(hangFile_.c_str(), F_OK) == 0) std::this_thread::sleep_for(20ms);
    (void)reloads_.take();
    ctx_.store->publish({.name = name(), .health = core::Health::kHealthy, .summary = "not stuck"});
    return {};
  }
  void stop() override {
    if (stopHoldFile_.empty()) return;
    (void)writeFileAtomic(stopHoldFile_ + ".entered", "stop\n");
    for (int i = 0; i < 3000 && ::access(stopHoldFile_.c_str(), F_OK) == 0; ++i) std::this_thread::sleep_for(20ms);
  }
  // A reload hands over and returns, even while reconcile is stuck.
  void reload(int generation) { reloads_.put(generation); }

 private:
  core::ModuleContext ctx_;
  std::string hangFile_;
  std::string stopHoldFile_;  // "": stop() returns at once
  Handoff<int> reloads_;
};

}  // namespace

int main(int argc, char** argv) {
  daemon::DaemonOptions o;
  std::string hangFile, stopHoldFile;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--config") == 0) o.configPath = argv[i + 1];
    if (std::strcmp(argv[i], "--hang-file") == 0) hangFile = argv[i + 1];
    if (std::strcmp(argv[i], "--stop-hold-file") == 0) stopHoldFile = argv[i + 1];
  }
  if (o.configPath.empty() || hangFile.empty()) return 2;
  return daemon::runDaemon(o, [hangFile, stopHoldFile](const std::function<core::ModuleContext(const std::string&)>& makeContext) {
    auto m = std::make_unique<StuckModule>(makeContext("stuck"), hangFile, stopHoldFile);
    auto* raw = m.get();
    std::vector<daemon::ComposedModule> out;
    out.push_back({std::move(m), [raw, n = 0](const daemon::Config&) mutable { raw->reload(++n); }});
    return out;
  });
}
