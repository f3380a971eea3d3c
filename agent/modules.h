// The list of modules nodeagentd runs. Each issue that adds a module adds it here.
#pragma once

#include <memory>
#include <vector>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/module.h"

namespace nodeagent::agent {

// Builds the enabled modules for `config`. `makeContext(name)` gives each its context.
[[nodiscard]] Result<std::vector<std::unique_ptr<Module>>> createModules(
    const Config& config, const DaemonOptions& options,
    const std::function<ModuleContext(const std::string&)>& makeContext);

}  // namespace nodeagent::agent
