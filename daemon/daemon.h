// Daemon: nodeagentd's life cycle. Loads and validates the config, starts modules and the
// control server, talks to systemd, handles signals, reloads and shuts down.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/module.h"

#include "common/json.h"

namespace nodeagent::daemon {

struct DaemonOptions {
  std::string configPath;       // empty: the default path if it exists, else built-in
  bool checkConfig = false;     // validate, print the effective config, exit
  bool dryRun = false;          // plan only, change nothing
  bool once = false;            // one reconcile pass per module, exit with its status
  std::string socketOverride;   // --socket
  std::string stateDirOverride; // --state-dir
  std::string logFormatOverride;
  std::string logLevelOverride;
  // Roots of kernel interfaces, so tests can point modules at a fake tree.
  std::string procRoot = "/proc";
  std::string sysRoot = "/sys";
  std::string sysctlDropIn = "/etc/sysctl.d/90-nodeagent.conf";
};

struct ComposedModule;

// Modules run beside those the config enables, made with the daemon's context factory.
// For daemon test binaries only (a module that hangs on purpose, to see the watchdog act);
// nodeagentd passes none, and no config key reaches it.
using ExtraModules = std::function<std::vector<ComposedModule>(
    const std::function<core::ModuleContext(const std::string&)>& makeContext)>;

// Exit codes: 0 ok, 1 runtime failure (or a failed --once pass), 2 bad config or usage.
int runDaemon(const DaemonOptions& options, const ExtraModules& extra = {});

// The status file when status_file.path is not set: beside the control socket, named after
// it ("nodeagent.sock" -> "nodeagent.status.json"), so it cannot take a caller's own
// "status.json" in the same directory.
std::string defaultStatusFile(const std::string& socket);
// A module's plan (its "plan" command's answer) as one line per change, for
// `nodeagentd --once --dry-run`: "  sysctl: KEY: CURRENT -> NEW (MODE, SOURCE)" or
// "  ipvs: ipvsadm ...". Pure.
std::string planText(const std::string& module, const Json& plan);

}  // namespace nodeagent::daemon
