// The composition root: the one place that knows every module nodeagentd runs. Each issue
// that adds a module adds it here. Core never sees a module's config: each module is built
// with its own section and handed its own section again on reload.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/module.h"
#include "daemon/config.h"
#include "daemon/daemon.h"

namespace nodeagent::daemon {

struct ComposedModule {
  std::unique_ptr<core::Module> module;
  // Hands the module its section of a new, fully validated config (SIGHUP).
  std::function<void(const Config&)> reload;
};

// Builds the enabled modules for `config`. `makeContext(name)` gives each its context.
[[nodiscard]] Result<std::vector<ComposedModule>> createModules(
    const Config& config, const DaemonOptions& options,
    const std::function<core::ModuleContext(const std::string&)>& makeContext);

}  // namespace nodeagent::daemon
