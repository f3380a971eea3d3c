#include "daemon/daemon.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "daemon/config.h"
#include "daemon/heap_policy.h"
#include "control/control_server.h"
#include "core/module_runner.h"
#include "daemon/modules.h"
#include "reporter/outputs.h"
#include "core/state_store.h"
#include "common/version.h"
#include "common/files.h"
#include "common/event_loop.h"
#include "common/log.h"
#include "ipvs/service_source.h"
#include "systemd/notify.h"

namespace nodeagent::daemon {

std::string defaultStatusFile(const std::string& socket) {
  std::filesystem::path p(socket);
  return (p.parent_path() / (p.stem().string() + ".status.json")).string();
}

std::string planText(const std::string& module, const Json& plan) {
  std::string out;
  for (const auto& item : plan.get("items").asArray()) {
    if (item.get("change").isString()) {
      out += "  " + module + ": " + item.get("change").asString() + "\n";
      continue;
    }
    const auto& action = item.get("action").asString();
    if (action == "set") {
      out += "  " + module + ": " + item.get("key").asString() + ": " +
             (item.get("current").isString() ? item.get("current").asString() : std::string("?")) + " -> " +
             item.get("write").asString() + " (" + item.get("mode").asString() + ", " +
             item.get("source").asString() + ")\n";
    } else if (action == "error") {
      out += "  " + module + ": " + item.get("key").asString() + ": cannot: " + item.get("note").asString() + "\n";
    }
  }
  return out;
}

namespace {

// The control server's stream for calls made by the daemon itself: nothing to show.
class NullCallOutput final : public core::CallOutput {
 public:
  void progress(const Json&) override {}
  bool cancelled() const override { return false; }
};

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Loads the config the options name: an explicit path must exist; the default path is
// used when present, else the built-in defaults. Flags override file values.
Result<Config> loadEffectiveConfig(const DaemonOptions& o) {
  Result<Config> config;
  if (!o.configPath.empty()) {
    config = loadConfigFile(o.configPath);
  } else if (pathExists(kDefaultConfigPath)) {
    config = loadConfigFile(kDefaultConfigPath);
  } else {
    config = parseConfig("", "<built-in>");
  }
  if (!config) return config;
  if (!o.socketOverride.empty()) config->control.socket = o.socketOverride;
  if (!o.stateDirOverride.empty()) config->agent.stateDir = o.stateDirOverride;
  if (!o.logFormatOverride.empty()) config->agent.logFormat = o.logFormatOverride;
  if (!o.logLevelOverride.empty()) config->agent.logLevel = o.logLevelOverride;
  return config;
}

class Daemon {
 public:
  Daemon(const DaemonOptions& o, ExtraModules extra) : opts_(o), extra_(std::move(extra)), logger_(log::get("agent")) {}

  int run(Config config) {
    config_ = std::move(config);
    started_ = std::chrono::system_clock::now();
    nodeName_ = resolveNodeName(config_);
    if (!opts_.dryRun) {
      if (auto r = makeDirs(config_.agent.stateDir, 0750); !r) {
        logger_->error("cannot create state directory: {}", r.error().message());
        return 1;
      }
    }
    // The main loop exists before the modules: their contexts hand it out.
    auto loop = EventLoop::create();
    if (!loop) {
      logger_->error("main loop: {}", loop.error().message());
      return 1;
    }
    if (!opts_.once) mainLoop_ = (*loop)->poster();
    auto modules = createModules(config_, opts_, [this](const std::string& name) { return makeContext(name); });
    if (!modules) {
      logger_->error("cannot set up modules: {}", modules.error().message());
      return 1;
    }
    modules_ = std::move(*modules);
    if (extra_)
      for (auto& m : extra_([this](const std::string& name) { return makeContext(name); })) modules_.push_back(std::move(m));
    core::RunnerTiming timing{config_.agent.minInterval, config_.agent.maxInterval};
    for (auto& m : modules_) {
      auto& r = runners_[m.module->name()];
      r = std::make_unique<core::ModuleRunner>(*m.module, store_, timing, opts_.dryRun);
      r->setAfterPass(returnFreeHeap);
    }

    if (opts_.once) return runOnce();

    logger_->info("nodeagentd {} starting on node {} with config {}{}", kVersion, nodeName_, config_.source,
                  opts_.dryRun ? " (dry run: nothing will be changed)" : "");
    control::ControlServer server(control::ControlBackend{
        .store = &store_,
        .nodeName = nodeName_,
        .dryRun = opts_.dryRun,
        .started = started_,
        .configJson = [this] { std::lock_guard l(configMu_); return config_.toJson(); },
        .configSource = [this] { std::lock_guard l(configMu_); return config_.source; },
        .findModule = [this](const std::string& n) -> core::Module* {
          for (auto& m : modules_)
            if (m.module->name() == n) return m.module.get();
          return nullptr;
        },
        .modules = [this] {
          std::vector<core::Module*> out;
          for (auto& m : modules_) out.push_back(m.module.get());
          return out;
        }});
    if (auto r = server.start({config_.control.socket, config_.control.socketMode, config_.control.socketGroup}); !r) {
      logger_->error("control socket: {}", r.error().message());
      return 1;
    }
    logger_->info("control socket listening on {}", config_.control.socket);
    for (auto& [_, r] : runners_) r->start();
    // Node status, /metrics and the status file. Reporting never stops the daemon: a
    // standalone node has no API server, and a busy metrics port only loses /metrics.
    auto outputs = config_.outputs;
    if (!outputs.statusFileSet) outputs.statusFile = defaultStatusFile(config_.control.socket);
    reporter::Outputs reporting(store_, reporter::OutputsOptions{.nodeName = nodeName_, .kube = config_.kube,
                                                                 .outputs = outputs, .dryRun = opts_.dryRun});
    if (auto r = reporting.start(loop->get()); !r) logger_->error("{}", r.error().message());
    int rc = mainLoop(**loop);
    systemd::notify("STOPPING=1");
    logger_->info("stopping");
    // The control server first: no call reaches a module that is being stopped.
    server.stop();
    reporting.stop();
    for (auto& [_, r] : runners_) r->stop();
    for (auto& m : modules_) m.module->stop();
    store_.close();
    logger_->info("stopped");
    return rc;
  }

 private:
  core::ModuleContext makeContext(const std::string& name) {
    return core::ModuleContext{
        .store = &store_,
        .dryRun = opts_.dryRun,
        .stateDir = config_.agent.stateDir + "/" + name,
        .trigger = [this, name] {
          std::lock_guard l(runnersMu_);
          if (auto it = runners_.find(name); it != runners_.end()) it->second->trigger();
        },
        .mainLoop = mainLoop_};
  }

  int runOnce() {
    bool ok = true;
    for (auto& m : modules_) {
      auto r = runners_[m.module->name()]->runOnce(true);
      ok = ok && r.has_value();
    }
    for (auto& m : modules_) m.module->stop();
    auto mods = store_.snapshot();
    std::cout << core::summarize(mods) << std::endl;
    // A dry run says what it would do, key by key: each module's plan.
    if (opts_.dryRun)
      for (auto& m : modules_) {
        NullCallOutput out;
        auto plan = m.module->call(core::CallRequest{.command = "plan", .dryRun = true}, out);
        if (plan) std::cout << planText(m.module->name(), *plan);
      }
    return ok ? 0 : 1;
  }

  bool allFirstPassesDone() const {
    for (const auto& m : modules_) {
      auto s = store_.get(m.module->name());
      if (!s || !s->runner.firstPassDone) return false;
    }
    return true;
  }

  void reload() {
    logger_->info("SIGHUP: reloading config");
    systemd::notify("RELOADING=1");
    auto next = loadEffectiveConfig(opts_);
    if (!next) {
      logger_->error("reload rejected, keeping the running config: {}", next.error().message());
      systemd::notify("READY=1\nSTATUS=reload rejected: " + next.error().message().substr(0, 200));
      return;
    }
    if (next->control.socket != config_.control.socket || next->agent.stateDir != config_.agent.stateDir)
      logger_->warn("control.socket and agent.state_dir changes take effect at the next restart");
    if (!(next->toJson().get("kube") == config_.toJson().get("kube")) ||
        !(next->toJson().get("metrics") == config_.toJson().get("metrics")) ||
        !(next->toJson().get("status_file") == config_.toJson().get("status_file")))
      logger_->warn("kube, metrics and status_file changes take effect at the next restart");
    if (auto level = log::parseLevel(next->agent.logLevel)) log::setLevel(*level);
    {
      std::lock_guard l(configMu_);
      auto keepSocket = config_.control;
      auto keepState = config_.agent.stateDir;
      config_ = std::move(*next);
      config_.control = keepSocket;
      config_.agent.stateDir = keepState;
    }
    core::RunnerTiming timing{config_.agent.minInterval, config_.agent.maxInterval};
    for (auto& m : modules_) {
      m.reload(config_);
      runners_[m.module->name()]->setTiming(timing);
      runners_[m.module->name()]->trigger();
    }
    logger_->info("config reloaded from {}", config_.source);
    systemd::notify("READY=1");
  }

  // Tells systemd READY=1 once every module finished its first pass, and STATUS= whenever
  // the one-line summary changes. Runs on the main loop when the store changed.
  void storeChanged() {
    uint64_t version = store_.version();
    if (version == notifiedVersion_) return;
    notifiedVersion_ = version;
    auto status = core::summarize(store_.snapshot());
    if (!ready_ && allFirstPassesDone()) {
      ready_ = true;
      lastStatus_ = status;
      systemd::notify("READY=1\nSTATUS=" + status);
      logger_->info("ready: {}", status);
    } else if (ready_ && status != lastStatus_) {
      lastStatus_ = status;
      systemd::notify("STATUS=" + status);
    }
  }

  // Whether every runner is live (waiting, or in a pass within its interval plus slack;
  // core/module_runner.h). Says once which module hung, and when it answers again.
  bool allRunnersLive() {
    auto now = steady_clock::now();
    bool all = true;
    for (auto& [name, runner] : runners_) {
      auto l = runner->liveness(now);
      bool reported = hung_.contains(name);
      if (!l.live) {
        all = false;
        if (!reported)
          logger_->error("module {} hung: its pass has run {} s, over its limit of {} s (interval plus slack); "
                         "watchdog pings withheld",
                         name, l.running.count() / 1000, l.limit.count() / 1000);
        hung_.insert(name);
      } else if (reported) {
        logger_->warn("module {} answers again", name);
        hung_.erase(name);
      }
    }
    return all;
  }

  // The main thread's loop (sd-event): signals, watchdog pings and systemd notifications
  // on store changes (and the status file: reporter::Outputs). Returns at SIGTERM/SIGINT.
  int mainLoop(EventLoop& loop) {
    int rc = 0;
    auto quit = [&](const char* name) {
      logger_->info("received {}", name);
      loop.exit(0);
    };
    auto wd = systemd::watchdogInterval();
    // Without a watchdog, runners are still checked (and a hang logged) every 30 s.
    auto tick = wd ? std::chrono::duration_cast<std::chrono::microseconds>(*wd) / 2 : std::chrono::microseconds(30'000'000);
    auto wake = loop.waker([this] { storeChanged(); });
    for (auto r : {loop.onSignal(SIGTERM, [&] { quit("SIGTERM"); }), loop.onSignal(SIGINT, [&] { quit("SIGINT"); }),
                   loop.onSignal(SIGHUP, [this] { reload(); }),
                   // WATCHDOG=1 means every module still makes progress, not only that this loop runs.
                   loop.every(tick, [this, wd] {
                     if (allRunnersLive() && wd) systemd::notify("WATCHDOG=1");
                   }),
                   wake ? Result<void>{} : Result<void>(fail(wake.error()))}) {
      if (!r) {
        logger_->error("main loop: {}", r.error().message());
        return 1;
      }
    }
    auto storeChanges = store_.subscribe([w = *wake] { w.wake(); });
    storeChanged();
    if (auto r = loop.run(); !r) {
      logger_->error("main loop: {}", r.error().message());
      rc = 1;
    }
    stopping_ = true;
    storeChanges.reset();
    return rc;
  }

  const DaemonOptions& opts_;
  ExtraModules extra_;
  std::shared_ptr<spdlog::logger> logger_;
  std::set<std::string> hung_;  // modules reported hung (main thread only)
  std::mutex configMu_;
  Config config_;
  std::string nodeName_;
  std::chrono::system_clock::time_point started_;
  core::StateStore store_;
  std::vector<ComposedModule> modules_;
  std::mutex runnersMu_;
  std::map<std::string, std::unique_ptr<core::ModuleRunner>> runners_;
  std::atomic<bool> stopping_{false};
  // What modules post to the main loop with (makeContext).
  EventLoop::Poster mainLoop_;
  // Main loop state (storeChanged).
  bool ready_ = false;
  std::string lastStatus_;
  uint64_t notifiedVersion_ = 0;
};

}  // namespace

int runDaemon(const DaemonOptions& options, const ExtraModules& extra) {
  auto config = loadEffectiveConfig(options);
  if (!config) {
    std::fprintf(stderr, "nodeagentd: invalid config:\n%s\n", config.error().message().c_str());
    return 2;
  }
  // The services file the IPVS module will read is input like the config: an invalid one
  // stops the start (a running daemon keeps its last good services instead). A missing
  // one is waited for: the module watches its directory.
  std::string servicesNote;
  if (config->ipvs.enabled) {
    auto services = ipvs::FileServiceSource(config->ipvs.servicesFile).load();
    if (!services && services.error().errnoValue() != ENOENT) {
      std::fprintf(stderr, "nodeagentd: invalid services file:\n%s\n", services.error().message().c_str());
      return 2;
    }
    servicesNote = services ? "# services file OK: " + config->ipvs.servicesFile + " (" +
                                  std::to_string(services->size()) + " services)\n"
                            : "# services file " + config->ipvs.servicesFile +
                                  " does not exist yet: the IPVS module waits for it\n";
  }
  if (options.checkConfig) {
    std::printf("# config OK: %s\n%s%s", config->source.c_str(), servicesNote.c_str(),
                config->toJson().toYaml().c_str());
    return 0;
  }
  auto format = log::parseFormat(config->agent.logFormat);
  auto level = log::parseLevel(config->agent.logLevel);
  if (!format || !level) {
    std::fprintf(stderr, "nodeagentd: %s\n", (!format ? format.error() : level.error()).message().c_str());
    return 2;
  }
  log::setup(*format, *level);
  // Signals are taken synchronously by the main loop; block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  log::get("agent")->info("{}", applyHeapPolicy());
  Daemon d(options, extra);
  return d.run(std::move(*config));
}

}  // namespace nodeagent::daemon
