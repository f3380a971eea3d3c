// From one Kubernetes Service and its EndpointSlices to the IPVS virtual servers
// kube-proxy's IPVS mode would program for it on this node. Pure: no I/O, no clock. The
// Kubernetes ServiceSource calls it for each changed service only; ipvs/README.md lists
// every rule beside kube-proxy's behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ipvs/kube_objects.h"
#include "ipvs/planner.h"

namespace nodeagent::ipvs::k8s {

struct ProxyOptions {
  std::string scheduler = "rr";     // kube-proxy's ipvs.scheduler
  std::vector<Cidr> clusterCidrs;   // --cluster-cidr: SNAT ClusterIP traffic from outside them
  bool masqueradeAll = false;       // --masquerade-all
  std::string proxyName;            // service-proxy-name label value this agent serves ("": none)
};

// The node as the proxy sees it.
struct NodeView {
  std::string name;
  std::string zone;                        // topology.kubernetes.io/zone
  std::vector<Address> nodePortAddresses;  // where NodePorts listen (nodePortAddresses applied)
  std::vector<Address> addresses;          // all of the node's addresses (source-range checks)
  bool operator==(const NodeView&) const = default;
};

enum class Skip : uint8_t { kNone, kHeadless, kExternalName, kOtherProxy, kNoClusterIP, kInvalid };
std::string_view skipName(Skip s);

struct HealthCheck {
  uint16_t port = 0;  // spec.healthCheckNodePort
  std::string ns, name;
  size_t localEndpoints = 0;  // local ready endpoints, summed over the service's ports
  bool operator==(const HealthCheck&) const = default;
};

// What one Service becomes on this node.
struct ServiceProgram {
  Skip skip = Skip::kNone;
  std::string error;  // kInvalid: the field and the problem
  std::vector<std::pair<ServiceKey, ServicePtr>> servers;  // sorted by key, unique
  std::optional<HealthCheck> health;
  size_t endpoints = 0;  // destinations over all virtual servers
  std::vector<std::string> warnings;  // e.g. a slice skipped as invalid
};

// `slices` are the service's EndpointSlices (label kubernetes.io/service-name), any family.
// `reuse` (the program built before) lends its unchanged virtual servers, so an unchanged
// service keeps the same objects and the planner sees nothing to do.
ServiceProgram translate(const Service& svc, std::span<const EndpointSlice* const> slices, const NodeView& node,
                         const ProxyOptions& options, const ServiceProgram* reuse = nullptr);

// "ns/name:port-name", or "ns/name:port" for an unnamed port (kube-proxy prints the port's
// name; the number keeps single-port services readable).
std::string servicePortName(const Service& svc, const ServicePort& port);

}  // namespace nodeagent::ipvs::k8s
