#include "agent/modules.h"

#include "agent/node_module.h"
#include "imagepull/imagepull_module.h"

namespace nodeagent::agent {

Result<std::vector<std::unique_ptr<Module>>> createModules(
    const Config& config, const DaemonOptions& options,
    const std::function<ModuleContext(const std::string&)>& makeContext) {
  std::vector<std::unique_ptr<Module>> modules;
  modules.push_back(std::make_unique<NodeModule>(makeContext("node"), options.procRoot, options.sysRoot));
  modules.push_back(std::make_unique<imagepull::ImagePullModule>(makeContext("imagepull"), config.imagepull,
                                                                resolveNodeName(config)));
  return modules;
}

}  // namespace nodeagent::agent
