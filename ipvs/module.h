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

#include "agent/kube/client.h"
#include "agent/kube/config.h"
#include "agent/module.h"
#include "common/handoff.h"
#include "ipvs/config.h"
#include "ipvs/health_server.h"
#include "ipvs/kube_source.h"
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
// kube-proxy's ipvs.strictARP: net.ipv4.conf.all.arp_ignore=1 and arp_announce=2.
std::vector<SysctlWant> strictArpSysctls();

// What the Kubernetes service source needs from the agent's config.
struct KubeAccess {
  kube::Config kube;
  std::string nodeName;
};

// The Event that tells a Service's owner why the proxy skipped it (core/v1 Event JSON).
//   kubectl create -f - <<< '{"kind":"Event","involvedObject":{"kind":"Service",...},...}'
std::string buildServiceEvent(const InvalidService& s, const std::string& eventName, const std::string& nodeName,
                              const std::string& timestamp);

// A Prometheus histogram kept as cumulative bucket counters (kube-proxy's buckets:
// 1 ms doubling 15 times).
struct DurationHistogram {
  static constexpr int kBuckets = 15;
  uint64_t counts[kBuckets + 1] = {};  // the last: +Inf
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
  void appendTo(std::vector<agent::Metric>& out, const std::string& name, const std::string& help) const;
};

class IpvsModule final : public agent::Module {
 public:
  IpvsModule(agent::ModuleContext ctx, Config config, std::string procRoot, KubeAccess kube = {});
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

  [[nodiscard]] Result<std::unique_ptr<ServiceSource>> makeSource();
  void afterKubePass(bool applied);

  agent::ModuleContext ctx_;
  std::string procRoot_;
  KubeAccess kubeAccess_;
  std::unique_ptr<kube::Client> kubeClient_;
  KubeServiceSource* kubeSource_ = nullptr;  // source_ when it is the Kubernetes one
  HealthCheckServer health_;
  std::optional<Error> healthError_;
  DurationHistogram syncDurations_, programmingDurations_;
  uint64_t eventsSent_ = 0, eventsFailed_ = 0;
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
