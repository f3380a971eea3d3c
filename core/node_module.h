// NodeModule: reads what the node is (CPUs, memory, kernel) and publishes it. Other
// modules size their defaults from the same facts (NodeFacts).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "core/module.h"

namespace nodeagent::core {

struct NodeFacts {
  unsigned cpus = 1;
  uint64_t memoryBytes = 0;
  std::string kernelRelease;
  std::string hostname;
};

// Reads the facts under `procRoot` (normally "/proc") and `sysRoot` ("/sys").
[[nodiscard]] Result<NodeFacts> readNodeFacts(const std::string& procRoot, const std::string& sysRoot);

class NodeModule final : public Module {
 public:
  NodeModule(ModuleContext ctx, std::string procRoot, std::string sysRoot);
  std::string name() const override { return "node"; }
  Result<void> reconcile(const ReconcileContext& ctx) override;
  // Facts rarely change: an hourly look is plenty.
  std::chrono::milliseconds resyncInterval() const override { return std::chrono::hours(1); }
  std::vector<CommandSpec> commands() const override;
  Result<Json> call(const CallRequest& req, CallOutput& out) override;

 private:
  ModuleContext ctx_;
  std::string procRoot_;
  std::string sysRoot_;
  std::mutex mu_;
  Json facts_;
};

}  // namespace nodeagent::core
