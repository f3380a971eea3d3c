#include "cli/commands.h"

namespace nodeagent::cli {

const std::vector<CommandSpec>& moduleCommands() {
  static const std::vector<CommandSpec> kCommands = {
      {.module = "node", .command = "facts", .help = "what the agent knows about this node"},
      {.module = "ipvs", .command = "list", .help = "IPVS services and endpoints (as ipvsadm -Ln) with the agent's view"},
      {.module = "ipvs", .command = "plan", .help = "the IPVS changes a sync would make (reads the kernel, changes nothing)"},
      {.module = "ipvs", .command = "sync", .help = "read the kernel table and converge now", .mutating = true},
      {.module = "sysctl", .command = "plan", .help = "current and desired value of every managed sysctl"},
      {.module = "sysctl", .command = "status", .help = "per-key state, drift counts and where each key comes from"},
      {.module = "sysctl", .command = "apply", .help = "apply the desired sysctls now (resumes after a revert)", .mutating = true},
      {.module = "sysctl", .command = "revert", .help = "restore the saved original values and remove the sysctl.d file", .mutating = true},
      {.module = "sysctl", .group = "conntrack", .command = "stats", .help = "conntrack fill level and per-CPU statistics"},
      {.module = "imagepull", .group = "images", .command = "list", .help = "images the agent prefetches, per tier and state"},
      {.module = "imagepull", .group = "images", .command = "status", .help = "prefetch status: runtime, disk guard, counts, every image"},
      {.module = "imagepull",
       .group = "images",
       .command = "pull",
       .help = "pull an image now, ahead of queued lower tiers (live progress on a terminal; exit 1 if it fails)",
       .args = {"IMAGE"},
       .options = {{.name = "tier", .help = "base, business (default) or environment"}},
       .mutating = true,
       .longRunning = true},
      {.module = "imagepull", .group = "images", .command = "forget", .help = "stop tracking a requested image (the runtime keeps it)",
       .args = {"IMAGE"}, .mutating = true},
  };
  return kCommands;
}

}  // namespace nodeagent::cli
