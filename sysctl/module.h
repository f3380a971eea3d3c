// SysctlModule: keeps the node's sysctls (and the conntrack hash size) at the desired
// state, persists them to a sysctl.d drop-in, watches for drift and reports conntrack
// fill level and per-CPU statistics.
//
// Other modules contribute keys (how the IPVS module sets net.ipv4.vs.*):
//   In daemon/modules.cpp, `sysctlConfigFor(config)` builds this module's Config from the
//   daemon's config. Append to its `contributed` list, one KeySpec per key, with `source` set
//   to your module's name and a one-line `reason`, e.g.
//
//     c.contributed.push_back({.key = "net.ipv4.vs.conntrack", .value = "1",
//                              .mode = sysctl::Mode::kExact,
//                              .reason = "IPVS keeps conntrack entries so nft masquerade works",
//                              .source = "ipvs"});
//
//   The function runs at start and on every reload, so contributions follow your config.
//   Precedence: profile < contributed < the user's `sysctl.keys`; `sysctl.drop` removes
//   any of them. `nodeagentctl sysctl plan` shows each key's source and reason. Keys must be
//   valid (see keySyntaxError); numeric=true (the default) requires integer values.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/handoff.h"
#include "core/module.h"
#include "sysctl/config.h"
#include "sysctl/tuner.h"

namespace nodeagent::sysctl {

struct ModuleOptions {
  std::string procRoot = "/proc";
  std::string sysRoot = "/sys";
  std::string dropInPath = "/etc/sysctl.d/90-nodeagent.conf";
  bool initialNetns = true;     // see detectInitialNetns()
  bool conntrackStats = true;   // read conntrack over ctnetlink each pass
};

class SysctlModule final : public core::Module {
 public:
  SysctlModule(core::ModuleContext ctx, ModuleOptions opts, Config config);

  std::string name() const override { return "sysctl"; }
  Result<void> reconcile(const core::ReconcileContext& ctx) override;
  // Takes a new, validated config (SIGHUP), contributions included. Main thread.
  void reload(Config config);
  std::chrono::milliseconds resyncInterval() const override;
  // plan | status | apply | revert | stats (conntrack)
  std::vector<core::CommandSpec> commands() const override;
  Result<Json> call(const core::CallRequest& req, core::CallOutput& out) override;

  // The merged, validated desired keys for `config` on this node (CPU count from the
  // node's facts). Public for tests and the benchmark.
  [[nodiscard]] Result<std::vector<KeySpec>> desiredKeys(const Config& config) const;

 private:
  struct PassResult {
    std::vector<PlanItem> plan;
    std::vector<ApplyItem> applied;  // empty when nothing was applied (dry run, reverted)
  };
  Result<PassResult> passLocked(bool mayApply);
  void takePendingLocked();
  void publishLocked(const PassResult& r);
  Json statusItemsLocked() const;
  Json conntrackStatsLocked();

  core::ModuleContext ctx_;
  ModuleOptions opts_;
  Tuner tuner_;
  std::string originalsPath_, revertedMarker_;

  mutable std::mutex mu_;  // reconcile and control calls both take it
  Config config_;
  std::atomic<int64_t> driftMs_;  // config_.driftInterval, readable without mu_
  Handoff<Config> pending_;       // from reload(); taken under mu_ by the next pass or call
  bool reverted_ = false;
  std::map<std::string, std::string> lastSeen_;      // value at the end of the last pass
  std::map<std::string, uint64_t> driftPerKey_;
  std::map<std::string, std::string> driftedNow_;    // report mode: key -> value found
  uint64_t driftTotal_ = 0, driftRestored_ = 0;
  std::map<std::string, Json> keyState_;             // last known per-key state, for status
  std::vector<std::string> keyOrder_;                // the plan's key order
  Json conntrack_;
  std::string lastDropIn_;
};

}  // namespace nodeagent::sysctl
