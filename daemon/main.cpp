// nodeagentd: the per-node agent.
#include <CLI/CLI.hpp>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "common/version.h"

int main(int argc, char** argv) {
  nodeagent::daemon::DaemonOptions o;
  CLI::App app{"nodeagentd: node tuning, IPVS services, image prefetch and node status for large clusters"};
  app.set_version_flag("--version", std::string("nodeagentd ") + nodeagent::kVersion);
  app.add_option("-c,--config", o.configPath,
                 std::string("config file (default ") + nodeagent::daemon::kDefaultConfigPath +
                     " when it exists, else the built-in defaults)");
  app.add_flag("--check-config", o.checkConfig, "validate the config, print the effective config and exit");
  app.add_flag("--dry-run", o.dryRun, "plan only: log and publish what would change, change nothing");
  app.add_flag("--once", o.once, "run one reconcile pass of every module and exit with its status");
  app.add_option("--socket", o.socketOverride, "control socket path (overrides control.socket)");
  app.add_option("--state-dir", o.stateDirOverride, "state directory (overrides agent.state_dir)");
  app.add_option("--log-format", o.logFormatOverride, "text, json, journal or auto")
      ->check(CLI::IsMember({"text", "json", "journal", "auto"}));
  app.add_option("--log-level", o.logLevelOverride, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--proc-root", o.procRoot, "root of the proc file system (tests use a fake tree)");
  app.add_option("--sys-root", o.sysRoot, "root of the sys file system (tests use a fake tree)");
  app.add_option("--sysctl-file", o.sysctlDropIn, "sysctl.d file the agent persists its values to");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return nodeagent::daemon::runDaemon(o);
}
