#include "agent/cli/commands.h"

namespace nodeagent::cli {

const std::vector<CommandSpec>& moduleCommands() {
  static const std::vector<CommandSpec> kCommands = {
      {.module = "node", .command = "facts", .help = "what the agent knows about this node"},
      {.module = "ipvs", .command = "list", .help = "IPVS services and endpoints (as ipvsadm -Ln) with the agent's view"},
      {.module = "ipvs", .command = "plan", .help = "the IPVS changes a sync would make (reads the kernel, changes nothing)"},
      {.module = "ipvs", .command = "sync", .help = "read the kernel table and converge now", .mutating = true},
  };
  return kCommands;
}

}  // namespace nodeagent::cli
