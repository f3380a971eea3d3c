// IpvsModule: the IPVS service proxy. Desired services come from a ServiceSource; the
// Reconciler programs IPVS over netlink; VIPs go on a dummy interface; stale UDP flows are
// flushed through ctnetlink. Disabled unless `ipvs.enabled` is set.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/module.h"
#include "common/handoff.h"
#include "ipvs/config.h"
#include "ipvs/reconciler.h"
#include "ipvs/service_source.h"
#include "ipvs/vip_manager.h"
#include "netfilter/nft_proxy_table.h"

namespace nodeagent::ipvs {

// A sysctl the proxy needs, with why (contributed to the sysctl module).
struct SysctlWant {
  std::string key;
  std::string value;
  std::string reason;
};
// net.ipv4.vs.* as kube-proxy sets them; conn_reuse_mode only on kernels 4.1 to 5.8
// (from 5.9 the kernel's default no longer stalls reused connections: left as is).
// The sysctl module applies them (agent/modules.cpp contributes them to its config).
std::vector<SysctlWant> wantedSysctls(const std::string& kernelRelease);
std::string runningKernelRelease();  // uname -r

class IpvsModule final : public agent::Module {
 public:
  IpvsModule(agent::ModuleContext ctx, Config config, std::string procRoot);
  ~IpvsModule() override;
  std::string name() const override { return "ipvs"; }
  Result<void> reconcile(const agent::ReconcileContext& ctx) override;
  void reload(const agent::Config& config) override;
  std::chrono::milliseconds resyncInterval() const override;
  Result<Json> call(const agent::CallRequest& req, agent::CallOutput& out) override;
  void stop() override;

 private:
  struct Pass {
    bool fullRead = false;
    bool dryRun = false;
  };
  [[nodiscard]] Result<SyncReport> syncLocked(const Pass& pass);
  [[nodiscard]] Result<void> ensureOpen();
  void publish(const SyncReport* report, const std::optional<Error>& error);
  // VIPs and nftables elements: all of them (`full`), or those of the changed services.
  [[nodiscard]] Result<void> teardown(bool dryRun);
  [[nodiscard]] Result<void> syncEdges(bool full, const std::vector<ServiceKey>& changed);
  bool live(const ServiceKey& k) const;
  bool vipWanted(uint16_t family, const Address& a) const;
  netfilter::NftService nftService(const ServiceKey& k) const;
  Json listJson();

  agent::ModuleContext ctx_;
  std::string procRoot_;
  mutable std::mutex mu_;  // guards everything below (reconcile thread vs. control calls)
  Config config_;
  std::atomic<int64_t> resyncMs_;  // config_.resyncInterval, readable without mu_
  Handoff<Config> pendingConfig_;  // from reload(); its own lock, not mu_
  std::unique_ptr<ServiceSource> source_;
  std::atomic<bool> sourceChanged_{true};
  std::unique_ptr<ServiceTable> table_;
  std::unique_ptr<FlowFlusher> flusher_;
  std::unique_ptr<Ownership> ownership_;
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<VipManager> vips_;
  std::unique_ptr<netfilter::NftProxyTable> nft_;
  DesiredState desired_;
  std::set<ServiceKey> pendingChanged_;  // changed in the source, not yet applied
  bool edgesStale_ = true;               // VIPs and nftables need a full pass
  bool teardownLogged_ = false;          // a dry run said what switching off would remove
  std::optional<Error> sourceError_;
  std::string lastSync_;
  uint64_t syncs_ = 0, opsApplied_ = 0, opFailures_ = 0, fullReads_ = 0;
  std::chrono::microseconds lastDuration_{0};
  std::vector<std::string> lastConflicts_;
  std::vector<std::string> lastFailures_;
};

}  // namespace nodeagent::ipvs
