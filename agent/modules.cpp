#include "agent/modules.h"

#include "agent/node_module.h"
#include "ipvs/module.h"

namespace nodeagent::agent {

Result<std::vector<std::unique_ptr<Module>>> createModules(
    const Config& config, const DaemonOptions& options,
    const std::function<ModuleContext(const std::string&)>& makeContext) {
  (void)config;
  std::vector<std::unique_ptr<Module>> modules;
  modules.push_back(std::make_unique<NodeModule>(makeContext("node"), options.procRoot, options.sysRoot));
  // Always present so `status` shows it; it changes nothing unless ipvs.enabled is set.
  modules.push_back(std::make_unique<ipvs::IpvsModule>(makeContext("ipvs"), config.ipvs, options.procRoot));
  return modules;
}

}  // namespace nodeagent::agent
