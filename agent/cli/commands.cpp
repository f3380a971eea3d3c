#include "agent/cli/commands.h"

namespace nodeagent::cli {

const std::vector<CommandSpec>& moduleCommands() {
  static const std::vector<CommandSpec> kCommands = {
      {.module = "node", .command = "facts", .help = "what the agent knows about this node"},
      {.module = "sysctl", .command = "plan", .help = "current and desired value of every managed sysctl"},
      {.module = "sysctl", .command = "status", .help = "per-key state, drift counts and where each key comes from"},
      {.module = "sysctl", .command = "apply", .help = "apply the desired sysctls now (resumes after a revert)", .mutating = true},
      {.module = "sysctl", .command = "revert", .help = "restore the saved original values and remove the sysctl.d file", .mutating = true},
      {.module = "sysctl", .group = "conntrack", .command = "stats", .help = "conntrack fill level and per-CPU statistics"},
  };
  return kCommands;
}

}  // namespace nodeagent::cli
