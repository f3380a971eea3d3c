// The parts of v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Node that the service
// proxy needs, decoded from the API's JSON with simdjson's On-Demand API straight into
// small structs: only the fields used are read (managedFields and the rest are skipped
// unparsed), and names that repeat across objects (namespaces, nodes, zones, port names)
// are Symbols of 4 bytes. An endpoint takes 24 bytes, so 10,000 slices of 10 endpoints
// hold in about 3 MB. A decoder never fails on a field it does not use; a field it uses
// with a wrong type or value makes the object invalid (`error` says which field), and the
// caller skips that one object. On-Demand checks the syntax of what it reads; a syntax
// error inside a member it skips is not seen (the API server does not send one).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/symbol.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs::k8s {

struct ServicePort {
  Symbol name;  // matches the EndpointSlice port of the same name (may be "")
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
  uint16_t nodePort = 0;  // 0: none
  bool operator==(const ServicePort&) const = default;
};

enum class ServiceType : uint8_t { kClusterIP, kNodePort, kLoadBalancer, kExternalName };

struct Service {
  Symbol ns;
  std::string name, uid;
  ServiceType type = ServiceType::kClusterIP;
  bool headless = false;               // clusterIP None
  std::vector<Address> clusterIPs;     // spec.clusterIPs (else spec.clusterIP), primary first
  std::vector<Address> externalIPs;
  std::vector<Address> loadBalancerIPs;  // status.loadBalancer.ingress[].ip, ipMode Proxy left out
  std::vector<Cidr> sourceRanges;        // spec.loadBalancerSourceRanges
  std::vector<ServicePort> ports;
  bool affinityClientIP = false;
  uint32_t affinityTimeout = 10800;  // sessionAffinityConfig.clientIP.timeoutSeconds
  bool externalLocal = false;        // externalTrafficPolicy: Local
  bool internalLocal = false;        // internalTrafficPolicy: Local
  uint16_t healthCheckNodePort = 0;
  bool topologyAware = false;  // trafficDistribution set, or the topology-mode annotation
  Symbol proxyName;            // label service.kubernetes.io/service-proxy-name
  bool headlessLabel = false;  // label service.kubernetes.io/headless
  std::string error;           // non-empty: invalid, with the field and the problem
  bool operator==(const Service&) const = default;
  std::string id() const { return ns.str() + "/" + name; }
};

struct Endpoint {
  Address address;  // addresses[0], as kube-proxy uses
  bool ready = true, serving = true, terminating = false;
  Symbol nodeName;
  bool operator==(const Endpoint&) const = default;
};

// hints.forZones[].name and hints.forNodes[].name of one endpoint (few slices have any).
struct EndpointHint {
  enum Kind : uint8_t { kZone, kNode };
  uint16_t endpoint = 0;  // index into EndpointSlice::endpoints
  Kind kind = kZone;
  Symbol name;
  bool operator==(const EndpointHint&) const = default;
};

struct SlicePort {
  Symbol name;
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;  // 0: the port is unset (the slice serves no port of that name)
  bool operator==(const SlicePort&) const = default;
};

struct EndpointSlice {
  Symbol ns;
  std::string name, serviceName;  // serviceName: label kubernetes.io/service-name
  uint8_t family = 0;             // AF_INET / AF_INET6; 0: FQDN or unknown (ignored)
  std::vector<SlicePort> ports;
  std::vector<Endpoint> endpoints;
  std::vector<EndpointHint> hints;  // by endpoint, in order
  // endpoints.kubernetes.io/last-change-trigger-time, for network_programming_duration.
  std::optional<std::chrono::system_clock::time_point> triggerTime;
  std::string error;
  bool operator==(const EndpointSlice&) const = default;
  std::string id() const { return ns.str() + "/" + name; }
  // The names endpoint `i` is hinted for, of one kind; `any` tells whether it has any.
  bool hinted(size_t i, EndpointHint::Kind kind, std::string_view name, bool* any = nullptr) const;
};

struct Node {
  std::string name;
  std::string zone;  // label topology.kubernetes.io/zone
  std::vector<Address> addresses;  // status.addresses InternalIP and ExternalIP
};

// Decoding. A list page or a watch event is read once, front to back (simdjson On-Demand),
// and its objects are decoded straight into the structs above; nothing of the document is
// kept. A syntax error or a missing metadata.name is an error of the whole page or event;
// a bad field only marks its object (`error`).
struct ListMeta {
  std::string resourceVersion;
  std::string continueToken;  // "": the last page
};
[[nodiscard]] Result<ListMeta> decodeList(std::string_view json, std::vector<Service>& out);
[[nodiscard]] Result<ListMeta> decodeList(std::string_view json, std::vector<EndpointSlice>& out);
[[nodiscard]] Result<ListMeta> decodeList(std::string_view json, std::vector<Node>& out);

template <class T>
struct WatchEvent {
  std::string type;  // ADDED MODIFIED DELETED BOOKMARK ERROR
  std::string resourceVersion;
  int errorCode = 0;  // ERROR: the Status code (410: the version expired)
  std::string errorMessage;
  std::optional<T> object;  // ADDED MODIFIED DELETED
};
[[nodiscard]] Result<WatchEvent<Service>> decodeServiceEvent(std::string_view line);
[[nodiscard]] Result<WatchEvent<EndpointSlice>> decodeSliceEvent(std::string_view line);
[[nodiscard]] Result<WatchEvent<Node>> decodeNodeEvent(std::string_view line);

// One object (tests, and `nodeagentctl`-side tools).
[[nodiscard]] Result<Service> decodeService(std::string_view json);
[[nodiscard]] Result<EndpointSlice> decodeEndpointSlice(std::string_view json);
[[nodiscard]] Result<Node> decodeNode(std::string_view json);

// RFC 3339 with optional fraction and Z or offset.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view s);

}  // namespace nodeagent::ipvs::k8s
