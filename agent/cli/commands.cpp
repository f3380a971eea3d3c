#include "agent/cli/commands.h"

namespace nodeagent::cli {

const std::vector<CommandSpec>& moduleCommands() {
  static const std::vector<CommandSpec> kCommands = {
      {.module = "node", .command = "facts", .help = "what the agent knows about this node"},
  };
  return kCommands;
}

}  // namespace nodeagent::cli
