#include "daemon/modules.h"

#include "core/node_module.h"
#include "imagepull/module.h"
#include "ipvs/conntrack_flusher.h"
#include "ipvs/module.h"
#include "ipvs/netlink_service_table.h"
#include "ipvs/vip_manager.h"
#include "netfilter/nft_proxy_table.h"
#include "sysctl/module.h"

namespace nodeagent::daemon {

// The sysctl module's config: the `sysctl:` section plus the keys other modules need.
// Modules that need sysctls append them here (source = module name, one-line reason);
// see sysctl/module.h. Runs at start and on every reload.
sysctl::Config sysctlConfigFor(const Config& config) {
  sysctl::Config c = config.sysctl;
  // IPVS proxy: net.ipv4.vs.* exist only once ip_vs is loaded, so only when enabled.
  if (config.ipvs.enabled && config.ipvs.sysctls) {
    for (const auto& w : ipvs::wantedSysctls(ipvs::runningKernelRelease()))
      c.contributed.push_back({.key = w.key, .value = w.value, .mode = sysctl::Mode::kExact, .reason = w.reason,
                               .source = "ipvs"});
  }
  // kube-proxy's strictARP: service addresses on the dummy interface are not answered
  // over ARP on the node's other interfaces (MetalLB's L2 mode announces them instead).
  if (config.ipvs.enabled && config.ipvs.source == "kubernetes" && config.ipvs.kubernetes.strictArp) {
    for (const auto& w : ipvs::strictArpSysctls())
      c.contributed.push_back({.key = w.key, .value = w.value, .mode = sysctl::Mode::kExact, .reason = w.reason,
                               .source = "ipvs"});
  }
  return c;
}

// What the IPVS proxy programs on a real node: IPVS over generic netlink, VIPs over
// rtnetlink, nftables over libmnl, conntrack over ctnetlink.
ipvs::KernelParts ipvsKernelParts() {
  ipvs::KernelParts k;
  k.serviceTable = []() -> Result<std::unique_ptr<ipvs::ServiceTable>> {
    auto t = ipvs::NetlinkServiceTable::open();
    if (!t) return fail(t.error());
    return std::unique_ptr<ipvs::ServiceTable>(std::move(*t));
  };
  k.flowFlusher = [] { return std::make_unique<ipvs::ConntrackFlusher>(); };
  k.vipBinder = [](const std::string& ifname, const std::string& stateFile) {
    return std::make_unique<ipvs::VipManager>(ifname, stateFile);
  };
  k.proxyTable = [](const std::string& name, uint32_t mark, std::vector<netfilter::ProxyTable::Prefix> cidrs) {
    return std::make_unique<netfilter::NftProxyTable>(name, mark, std::move(cidrs));
  };
  return k;
}

Result<std::vector<ComposedModule>> createModules(
    const Config& config, const DaemonOptions& options,
    const std::function<core::ModuleContext(const std::string&)>& makeContext) {
  std::vector<ComposedModule> modules;
  modules.push_back({std::make_unique<core::NodeModule>(makeContext("node"), options.procRoot, options.sysRoot),
                     [](const Config&) {}});
  // Always present so `status` shows it; it changes nothing unless ipvs.enabled is set.
  auto ipvsModule = std::make_unique<ipvs::IpvsModule>(makeContext("ipvs"), config.ipvs, ipvsKernelParts(),
                                                        ipvs::KubeAccess{config.kube, resolveNodeName(config)});
  auto* ipvsPtr = ipvsModule.get();
  modules.push_back({std::move(ipvsModule), [ipvsPtr](const Config& c) { ipvsPtr->reload(c.ipvs); }});
  if (config.sysctl.enabled) {
    sysctl::ModuleOptions so{.procRoot = options.procRoot,
                             .sysRoot = options.sysRoot,
                             .dropInPath = options.sysctlDropIn,
                             .initialNetns = sysctl::detectInitialNetns()};
    auto sysctlModule = std::make_unique<sysctl::SysctlModule>(makeContext("sysctl"), so, sysctlConfigFor(config));
    auto* sysctlPtr = sysctlModule.get();
    modules.push_back({std::move(sysctlModule), [sysctlPtr](const Config& c) { sysctlPtr->reload(sysctlConfigFor(c)); }});
  }
  auto imagepullModule = std::make_unique<imagepull::ImagePullModule>(makeContext("imagepull"), config.imagepull,
                                                                      resolveNodeName(config), nullptr, config.kube);
  auto* imagepullPtr = imagepullModule.get();
  modules.push_back({std::move(imagepullModule), [imagepullPtr](const Config& c) { imagepullPtr->reload(c.imagepull); }});
  return modules;
}

}  // namespace nodeagent::daemon
