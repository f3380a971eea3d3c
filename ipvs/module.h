// IpvsModule: the IPVS service proxy. Desired services come from a ServiceSource; the
// Reconciler programs IPVS over netlink; VIPs go on a dummy interface; stale UDP flows are
// flushed through ctnetlink. Disabled unless `ipvs.enabled` is set.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/handoff.h"
#include "core/module.h"
#include "kube/client.h"
#include "kube/config.h"
#include "ipvs/config.h"
#include "ipvs/health_server.h"
#include "ipvs/kube_source.h"
#include "ipvs/reconciler.h"
#include "ipvs/service_source.h"
#include "ipvs/service_table.h"
#include "ipvs/vip_binder.h"
#include "netfilter/proxy_table.h"

namespace nodeagent::ipvs {

// A sysctl the proxy needs, with why (contributed to the sysctl module).
struct SysctlWant {
  std::string key;
  std::string value;
  std::string reason;
};
// net.ipv4.vs.* as kube-proxy sets them; conn_reuse_mode only on kernels 4.1 to 5.8
// (from 5.9 the kernel's default no longer stalls reused connections: left as is).
// The sysctl module applies them (daemon/modules.cpp contributes them to its config).
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
  void appendTo(std::vector<core::Metric>& out, const std::string& name, const std::string& help) const;
};

// What the module programs, made by the composition root (daemon/modules.cpp: generic
// netlink, rtnetlink, nftables, ctnetlink) or by a test (fakes). The module makes each
// when it first needs it, and again when a reload changes what it was made from: a node
// with the proxy switched off opens nothing.
struct KernelParts {
  // The IPVS table. ENOENT: the kernel has no IPVS (reported as IpvsUnavailable).
  std::function<Result<std::unique_ptr<ServiceTable>>()> serviceTable;
  // Removes the conntrack entries of UDP flows to removed backends and services.
  std::function<std::unique_ptr<FlowFlusher>()> flowFlusher;
  // VIPs on the dummy interface `ifname`; its creation is recorded in `stateFile`.
  std::function<std::unique_ptr<VipBinder>(const std::string& ifname, const std::string& stateFile)> vipBinder;
  // The nftables table `name` with masquerade mark `mark` and the cluster CIDRs.
  std::function<std::unique_ptr<netfilter::ProxyTable>(const std::string& name, uint32_t mark,
                                                      std::vector<netfilter::ProxyTable::Prefix> clusterCidrs)>
      proxyTable;
  const Clock* clock = &SystemClock::instance();  // drain deadlines
};

class IpvsModule final : public core::Module {
 public:
  IpvsModule(core::ModuleContext ctx, Config config, KernelParts kernel, KubeAccess kube = {});
  ~IpvsModule() override;
  std::string name() const override { return "ipvs"; }
  Result<void> reconcile(const core::ReconcileContext& ctx) override;
  // Takes a new, validated `ipvs:` section (SIGHUP); the next pass applies it. Main thread.
  void reload(const Config& config);
  std::chrono::milliseconds resyncInterval() const override;
  std::vector<core::CommandSpec> commands() const override;
  Result<Json> call(const core::CallRequest& req, core::CallOutput& out) override;
  void stop() override;

 private:
  struct Pass {
    bool fullRead = false;
    bool dryRun = false;
    std::function<bool()> stopEarly;  // a periodic full read may give way to a change
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

  core::ModuleContext ctx_;
  KernelParts kernel_;
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
  std::unique_ptr<VipBinder> vips_;
  std::unique_ptr<netfilter::ProxyTable> nft_;
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
