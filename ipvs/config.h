// The `ipvs:` section of the agent config. Disabled by default: a node without IPVS (or
// that does not want the agent to program it) must not degrade.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config_reader.h"
#include "common/json.h"

namespace nodeagent::ipvs {

// `ipvs.kubernetes`: the Kubernetes service source, with kube-proxy's IPVS options.
struct KubernetesConfig {
  std::vector<std::string> clusterCidrs;        // kube-proxy --cluster-cidr
  std::vector<std::string> nodePortAddresses;   // CIDRs; empty: every address of the node
  bool masqueradeAll = false;                   // kube-proxy --masquerade-all
  bool strictArp = false;                       // kube-proxy ipvs.strictARP
  std::string scheduler = "rr";                 // kube-proxy ipvs.scheduler
  std::string serviceProxyName;                 // serve services labelled with this name too
  int listPageSize = 500;                       // items per list request
  std::string healthCheckBindAddress;           // "": every address
};

struct Config {
  bool enabled = false;
  std::string source = "file";  // file | kubernetes
  KubernetesConfig kubernetes;
  std::string servicesFile = "/etc/nodeagent/services.yaml";
  std::string interface = "nodeagent-ipvs0";  // dummy interface that holds the VIPs
  bool bindVips = true;
  std::vector<std::string> ownedCidrs;  // services inside these are the agent's too
  std::chrono::milliseconds resyncInterval{std::chrono::seconds(60)};
  std::chrono::milliseconds drainTimeout{std::chrono::minutes(10)};
  // IPVS connection timeouts. TCP well above the kernel's 900 s so idle long-lived
  // connections survive (as conntrack's established timeout of 24 h).
  std::chrono::milliseconds tcpTimeout{std::chrono::hours(24)};
  std::chrono::milliseconds tcpFinTimeout{std::chrono::seconds(120)};
  std::chrono::milliseconds udpTimeout{std::chrono::seconds(300)};
  bool nftables = true;
  std::string nftTable = "nodeagent-ipvs";
  uint32_t masqueradeMark = 0x4000;
  bool sysctls = true;  // net.ipv4.vs.* the proxy needs
};

void parseConfig(nodeagent::ConfigMap m, Config& c);
Json toJson(const Config& c);

}  // namespace nodeagent::ipvs
