// KubeServiceSource: desired IPVS services from the Kubernetes API, as kube-proxy's IPVS
// mode derives them. Lists and watches v1 Services and discovery.k8s.io/v1 EndpointSlices
// cluster-wide and the agent's own Node (kube::ListWatch: bookmarks, resume, one relist on
// 410 Gone), decoding each list page and event straight into small structs and dropping
// the text at once. A watch event only marks its service changed; load() re-translates the changed services and shares every other one with the
// state before, so the module's planner sees only them. Nothing is offered before the
// first list of all three completed (a restart with the API away changes nothing).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kube/client.h"
#include "kube/list_watch.h"
#include "ipvs/health_server.h"
#include "ipvs/kube_translate.h"
#include "ipvs/service_source.h"

namespace nodeagent::ipvs {

struct KubeSourceOptions {
  std::string nodeName;
  k8s::ProxyOptions proxy;
  std::vector<Cidr> nodePortCidrs;  // empty: every address
  int pageSize = 500;
  std::chrono::milliseconds watchTimeout{std::chrono::minutes(5)};  // asked of the server per watch
  // The node's own addresses, where NodePorts listen (before nodePortCidrs). Default: the
  // kernel's addresses except loopback, IPv6 link-local and `vipInterface`.
  std::function<std::vector<Address>()> localAddresses;
  std::string vipInterface;
};

// A Service the proxy could not program, for the log, an Event and status.
struct InvalidService {
  std::string ns, name, uid;
  std::string problem;
  bool operator==(const InvalidService&) const = default;
};

struct KubeSourceStatus {
  bool synced = false;  // all three first lists done
  size_t services = 0, slices = 0, programmed = 0, skipped = 0, invalid = 0, conflicts = 0;
  std::vector<std::string> problems;  // first few invalid services / slices, "ns/name: problem"
  kube::ListWatchStats serviceWatch, sliceWatch, nodeWatch;
};

class KubeServiceSource final : public ServiceSource {
 public:
  KubeServiceSource(kube::Client& client, KubeSourceOptions options);
  ~KubeServiceSource() override { stop(); }
  using ServiceSource::load;
  Result<DesiredState> load(const DesiredState* reuse) override;
  bool ready() const override;
  void watch(std::function<void()> onChange) override;
  void stop() override;
  std::string describe() const override { return "the Kubernetes API (Services, EndpointSlices)"; }

  KubeSourceStatus status() const;
  // Health-check ports of the services as last loaded (port -> service, local endpoints).
  std::map<uint16_t, HealthTarget> healthChecks() const;
  // Services found invalid since the last call (each reported once per problem).
  std::vector<InvalidService> takeNewInvalid();
  // The last-change-trigger-time of every EndpointSlice change taken into a load since
  // the last call: network programming latency once the pass is in the kernel.
  std::vector<std::chrono::system_clock::time_point> takeTriggerTimes();

  // The event handlers, public so unit tests can drive the source without an API server.
  Result<kube::RawListPage> onServicePage(std::string_view page, bool first);
  void onServiceListDone();
  Result<kube::RawWatchEvent> onServiceEvent(std::string_view line);
  Result<kube::RawListPage> onSlicePage(std::string_view page, bool first);
  void onSliceListDone();
  Result<kube::RawWatchEvent> onSliceEvent(std::string_view line);
  Result<kube::RawListPage> onNodePage(std::string_view page, bool first);
  void onNodeListDone();
  Result<kube::RawWatchEvent> onNodeEvent(std::string_view line);

 private:
  struct Slice {
    k8s::EndpointSlice slice;
    uint32_t listed = 0;  // the slice list that last saw it
  };
  // One Service (ns/name) and its EndpointSlices as the lists and events left them, with
  // what it became on this node at the last load. Compact on purpose: at 10,000 services
  // this is most of the source's memory.
  struct Entry {
    k8s::Service service;
    std::vector<Slice> slices;  // label kubernetes.io/service-name, any family
    std::vector<std::pair<ServiceKey, ServicePtr>> servers;  // the last translation
    uint32_t listed = 0;          // the service list that last saw the Service
    uint32_t healthLocal = 0;     // local ready endpoints, for the health check
    uint16_t healthPort = 0;      // 0: no health check
    k8s::Skip skip = k8s::Skip::kNone;
    bool present = false;  // the Service exists (an entry may hold only slices)
    bool dirty = false;    // to translate at the next load
  };
  void markDirty(const std::string& id, Entry& e);
  void setService(k8s::Service s, uint32_t listed);
  void deleteService(const std::string& id);
  void setSlice(k8s::EndpointSlice s, uint32_t listed);
  void deleteSlice(const std::string& id);
  void setNode(const k8s::Node& n);
  void changed();
  k8s::NodeView nodeView() const;

  kube::Client& client_;
  KubeSourceOptions opts_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // by Service id ns/name
  std::unordered_map<std::string, Entry*> sliceOwner_;  // slice id ns/name -> its entry
  std::vector<std::string> dirty_;  // ids of entries marked dirty (unless allDirty_)
  bool allDirty_ = true;
  std::optional<k8s::Node> node_;
  k8s::NodeView lastView_;
  bool servicesListed_ = false, slicesListed_ = false, nodeListed_ = false;
  // Lists in progress: each page is applied as it comes; what a (re)list did not see is
  // deleted when it ends (by generation, so no set of the seen ids is kept).
  uint32_t serviceList_ = 0, sliceList_ = 0;
  std::vector<k8s::Node> nodeList_;
  std::vector<std::chrono::system_clock::time_point> pendingTriggers_, takenTriggers_;
  std::map<std::string, InvalidService> invalid_;  // by id
  std::vector<InvalidService> newInvalid_;
  std::map<uint16_t, HealthTarget> health_;
  size_t conflicts_ = 0;
  std::function<void()> onChange_;
  std::vector<std::unique_ptr<kube::ListWatch>> watches_;
  std::vector<std::thread> threads_;
};

// The node's addresses from the kernel (getifaddrs): all but loopback, IPv6 link-local
// and those on `skipInterface`.
std::vector<Address> kernelAddresses(const std::string& skipInterface);

}  // namespace nodeagent::ipvs
