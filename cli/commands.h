// The module commands nodeagentctl knows. Each module adds its commands to kModuleCommands.
#pragma once

#include <string>
#include <vector>

namespace nodeagent::cli {

struct OptionSpec {
  std::string name;  // "--tier" is written "tier"
  std::string help;
  bool flag = false;  // takes no value
};

struct CommandSpec {
  std::string module;   // control-API module name ("sysctl")
  std::string group;    // CLI word, when it differs from the module ("images" for imagepull)
  std::string command;  // "plan"
  std::string help;
  std::vector<std::string> args;  // positional argument names; a trailing "..." takes many
  std::vector<OptionSpec> options;
  bool mutating = false;     // accepts --dry-run
  bool longRunning = false;  // waits without a deadline unless --timeout is given
};

const std::vector<CommandSpec>& moduleCommands();

}  // namespace nodeagent::cli
