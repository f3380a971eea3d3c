#include "ipvs/kube_source.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace nodeagent::ipvs {

std::vector<Address> kernelAddresses(const std::string& skipInterface) {
  std::vector<Address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) || skipInterface == i->ifa_name) continue;
    Address a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_LINKLOCAL(&in6)) continue;
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &in6, 16);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeifaddrs(list);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// One list page decoded into the list in progress (`first` starts it again).
template <class T>
Result<kube::RawListPage> decodePage(std::mutex& mu, std::vector<T>& into, std::string_view page, bool first) {
  std::lock_guard l(mu);
  if (first) into.clear();
  auto m = k8s::decodeList(page, into);
  if (!m) return fail(m.error());
  return kube::RawListPage{m->resourceVersion, m->continueToken};
}

// A decoded watch event: `apply` (under the lock) for ADDED/MODIFIED/DELETED, then
// `changed`; what the ListWatch needs to know comes back.
template <class T, class Apply, class Changed>
Result<kube::RawWatchEvent> applyEvent(Result<k8s::WatchEvent<T>> ev, std::mutex& mu, Apply apply, Changed changed) {
  if (!ev) return fail(ev.error());
  if (ev->object) {
    bool any;
    {
      std::lock_guard l(mu);
      any = apply(ev->type, std::move(*ev->object));
    }
    if (any) changed();
  }
  return kube::RawWatchEvent{ev->type, ev->resourceVersion, ev->errorCode, ev->errorMessage};
}

}  // namespace

KubeServiceSource::KubeServiceSource(kube::Client& client, KubeSourceOptions options)
    : client_(client), opts_(std::move(options)) {
  if (!opts_.localAddresses) {
    std::string skip = opts_.vipInterface;
    opts_.localAddresses = [skip] { return kernelAddresses(skip); };
  }
}

bool KubeServiceSource::ready() const {
  std::lock_guard l(mu_);
  return servicesListed_ && slicesListed_ && nodeListed_;
}

void KubeServiceSource::changed() {
  if (onChange_) onChange_();
}

void KubeServiceSource::setService(k8s::Service s) {
  s.resourceVersion.clear();  // a relist of an unchanged object is no change
  std::string id = s.id();
  Entry& e = entries_[id];
  if (e.present && e.service == s) return;
  e.service = std::move(s);
  e.present = true;
  dirty_.insert(id);
}

void KubeServiceSource::deleteService(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.present) return;
  it->second.present = false;
  it->second.service = k8s::Service{};
  dirty_.insert(id);
}

void KubeServiceSource::setSlice(k8s::EndpointSlice s) {
  if (s.serviceName.empty()) return;  // not a service's slice: kube-proxy ignores it too
  std::string id = s.id();
  std::string svc = s.ns + "/" + s.serviceName;
  auto it = slices_.find(id);
  if (it != slices_.end()) {
    if (it->second == s) return;
    std::string before = it->second.ns + "/" + it->second.serviceName;
    if (before != svc) {
      entries_[before].slices.erase(id);
      dirty_.insert(before);
    }
  }
  if (s.triggerTime) pendingTriggers_.push_back(*s.triggerTime);
  entries_[svc].slices.insert(id);
  dirty_.insert(svc);
  slices_.insert_or_assign(id, std::move(s));
}

void KubeServiceSource::deleteSlice(const std::string& id) {
  auto it = slices_.find(id);
  if (it == slices_.end()) return;
  std::string svc = it->second.ns + "/" + it->second.serviceName;
  entries_[svc].slices.erase(id);
  dirty_.insert(svc);
  slices_.erase(it);
}

void KubeServiceSource::setNode(const k8s::Node& n) {
  if (node_ && node_->zone == n.zone && node_->addresses == n.addresses) return;
  node_ = n;
  allDirty_ = true;
}

Result<kube::RawListPage> KubeServiceSource::onServicePage(std::string_view page, bool first) {
  return decodePage(mu_, serviceList_, page, first);
}

void KubeServiceSource::onServiceListDone() {
  {
    std::lock_guard l(mu_);
    std::set<std::string> seen;
    for (auto& s : serviceList_) {
      seen.insert(s.id());
      setService(std::move(s));
    }
    serviceList_ = {};
    for (auto& [id, e] : entries_)
      if (e.present && !seen.contains(id)) deleteService(id);
    servicesListed_ = true;
  }
  changed();
}

Result<kube::RawWatchEvent> KubeServiceSource::onServiceEvent(std::string_view line) {
  return applyEvent(
      k8s::decodeServiceEvent(line), mu_,
      [&](const std::string& type, k8s::Service s) {
        if (type == "DELETED") deleteService(s.id());
        else setService(std::move(s));
        return true;
      },
      [&] { changed(); });
}

Result<kube::RawListPage> KubeServiceSource::onSlicePage(std::string_view page, bool first) {
  return decodePage(mu_, sliceList_, page, first);
}

void KubeServiceSource::onSliceListDone() {
  {
    std::lock_guard l(mu_);
    std::set<std::string> seen;
    for (auto& s : sliceList_) {
      seen.insert(s.id());
      setSlice(std::move(s));
    }
    sliceList_ = {};
    std::vector<std::string> gone;
    for (const auto& [id, s] : slices_)
      if (!seen.contains(id)) gone.push_back(id);
    for (const auto& id : gone) deleteSlice(id);
    slicesListed_ = true;
  }
  changed();
}

Result<kube::RawWatchEvent> KubeServiceSource::onSliceEvent(std::string_view line) {
  return applyEvent(
      k8s::decodeSliceEvent(line), mu_,
      [&](const std::string& type, k8s::EndpointSlice s) {
        if (type == "DELETED") deleteSlice(s.id());
        else setSlice(std::move(s));
        return true;
      },
      [&] { changed(); });
}

Result<kube::RawListPage> KubeServiceSource::onNodePage(std::string_view page, bool first) {
  return decodePage(mu_, nodeList_, page, first);
}

void KubeServiceSource::onNodeListDone() {
  {
    std::lock_guard l(mu_);
    for (const auto& n : nodeList_)
      if (n.name == opts_.nodeName) setNode(n);
    nodeList_ = {};
    nodeListed_ = true;
  }
  changed();
}

Result<kube::RawWatchEvent> KubeServiceSource::onNodeEvent(std::string_view line) {
  return applyEvent(
      k8s::decodeNodeEvent(line), mu_,
      [&](const std::string& type, k8s::Node n) {
        if (type == "DELETED" || n.name != opts_.nodeName) return false;
        setNode(n);
        return true;
      },
      [&] { changed(); });
}

k8s::NodeView KubeServiceSource::nodeView() const {
  k8s::NodeView v;
  v.name = opts_.nodeName;
  if (node_) v.zone = node_->zone;
  for (const auto& a : opts_.localAddresses()) {
    v.addresses.push_back(a);
    bool ok = opts_.nodePortCidrs.empty() ||
              std::any_of(opts_.nodePortCidrs.begin(), opts_.nodePortCidrs.end(),
                          [&](const Cidr& c) { return c.contains(a); });
    if (ok) v.nodePortAddresses.push_back(a);
  }
  return v;
}

Result<DesiredState> KubeServiceSource::load(const DesiredState*) {
  std::lock_guard l(mu_);
  if (!(servicesListed_ && slicesListed_ && nodeListed_))
    return failErrno(EAGAIN, "the first list of Services, EndpointSlices and the Node is not complete yet");
  auto view = nodeView();
  if (!(view == lastView_)) {
    allDirty_ = true;
    lastView_ = view;
  }
  auto log = log::get("ipvs");
  auto retranslate = [&](const std::string& id, Entry& e) {
    if (!e.present) {
      e.program = {};
      invalid_.erase(id);
      return;
    }
    std::vector<const k8s::EndpointSlice*> slices;
    for (const auto& sid : e.slices)
      if (auto it = slices_.find(sid); it != slices_.end()) slices.push_back(&it->second);
    auto prog = k8s::translate(e.service, slices, view, opts_.proxy, &e.program);
    std::string problem = prog.skip == k8s::Skip::kInvalid ? prog.error : "";
    if (problem.empty() && !prog.warnings.empty()) problem = prog.warnings.front();
    if (!problem.empty()) {
      InvalidService inv{e.service.ns, e.service.name, e.service.uid, problem};
      auto [it, fresh] = invalid_.try_emplace(id, inv);
      if (fresh || !(it->second == inv)) {
        it->second = inv;
        newInvalid_.push_back(inv);
        log->warn("service {} {}: {}", id, prog.skip == k8s::Skip::kInvalid ? "skipped" : "partly programmed",
                  problem);
      }
    } else {
      invalid_.erase(id);
    }
    e.program = std::move(prog);
  };
  if (allDirty_) {
    for (auto& [id, e] : entries_) retranslate(id, e);
  } else {
    for (const auto& id : dirty_)
      if (auto it = entries_.find(id); it != entries_.end()) retranslate(id, it->second);
  }
  for (const auto& id : dirty_)
    if (auto it = entries_.find(id); it != entries_.end() && !it->second.present && it->second.slices.empty())
      entries_.erase(it);
  dirty_.clear();
  allDirty_ = false;
  takenTriggers_.insert(takenTriggers_.end(), pendingTriggers_.begin(), pendingTriggers_.end());
  pendingTriggers_.clear();

  // Assemble: every program's virtual servers, in key order. Two services claiming one
  // address and port (externalIPs can collide): the first by name wins, the other is counted.
  std::vector<std::pair<ServiceKey, ServicePtr>> all;
  std::map<uint16_t, HealthTarget> health;
  for (const auto& [id, e] : entries_) {
    all.insert(all.end(), e.program.servers.begin(), e.program.servers.end());
    if (e.program.health)
      health.emplace(e.program.health->port,
                     HealthTarget{e.program.health->ns, e.program.health->name, e.program.health->localEndpoints});
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first < b.first || (a.first == b.first && a.second->name < b.second->name);
  });
  DesiredState out;
  out.reserve(all.size());
  conflicts_ = 0;
  for (auto& [k, p] : all) {
    if (!out.empty() && out.rbegin()->first == k) {
      ++conflicts_;
      continue;
    }
    out.emplace_hint(out.end(), k, std::move(p));
  }
  health_ = std::move(health);
  return out;
}

void KubeServiceSource::watch(std::function<void()> onChange) {
  {
    std::lock_guard l(mu_);
    onChange_ = std::move(onChange);
  }
  auto start = [&](const std::string& path, const std::string& fieldSelector, kube::ListWatchHandler h) {
    kube::ListWatchOptions o;
    o.path = path;
    o.fieldSelector = fieldSelector;
    o.pageSize = opts_.pageSize;
    o.watchTimeout = opts_.watchTimeout;
    auto lw = std::make_unique<kube::ListWatch>(client_, o, std::move(h));
    auto* raw = lw.get();
    watches_.push_back(std::move(lw));
    threads_.emplace_back([raw] { raw->run(); });
  };
  kube::ListWatchHandler svc;
  svc.onListPage = [this](std::string_view p, bool first) { return onServicePage(p, first); };
  svc.onListDone = [this](const std::string&) { onServiceListDone(); };
  svc.onRawEvent = [this](std::string_view line) { return onServiceEvent(line); };
  start("/api/v1/services", "", std::move(svc));
  kube::ListWatchHandler es;
  es.onListPage = [this](std::string_view p, bool first) { return onSlicePage(p, first); };
  es.onListDone = [this](const std::string&) { onSliceListDone(); };
  es.onRawEvent = [this](std::string_view line) { return onSliceEvent(line); };
  start("/apis/discovery.k8s.io/v1/endpointslices", "", std::move(es));
  kube::ListWatchHandler node;
  node.onListPage = [this](std::string_view p, bool first) { return onNodePage(p, first); };
  node.onListDone = [this](const std::string&) { onNodeListDone(); };
  node.onRawEvent = [this](std::string_view line) { return onNodeEvent(line); };
  start("/api/v1/nodes", "metadata.name=" + opts_.nodeName, std::move(node));
}

void KubeServiceSource::stop() {
  for (auto& w : watches_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  watches_.clear();
}

KubeSourceStatus KubeServiceSource::status() const {
  std::lock_guard l(mu_);
  KubeSourceStatus s;
  s.synced = servicesListed_ && slicesListed_ && nodeListed_;
  s.slices = slices_.size();
  for (const auto& [id, e] : entries_) {
    if (!e.present) continue;
    ++s.services;
    if (e.program.skip == k8s::Skip::kNone) ++s.programmed;
    else if (e.program.skip == k8s::Skip::kInvalid) ++s.invalid;
    else ++s.skipped;
  }
  s.conflicts = conflicts_;
  for (const auto& [id, inv] : invalid_) {
    if (s.problems.size() >= 10) break;
    s.problems.push_back(id + ": " + inv.problem);
  }
  if (watches_.size() == 3) {
    s.serviceWatch = watches_[0]->stats();
    s.sliceWatch = watches_[1]->stats();
    s.nodeWatch = watches_[2]->stats();
  }
  return s;
}

std::map<uint16_t, HealthTarget> KubeServiceSource::healthChecks() const {
  std::lock_guard l(mu_);
  return health_;
}

std::vector<InvalidService> KubeServiceSource::takeNewInvalid() {
  std::lock_guard l(mu_);
  return std::exchange(newInvalid_, {});
}

std::vector<std::chrono::system_clock::time_point> KubeServiceSource::takeTriggerTimes() {
  std::lock_guard l(mu_);
  return std::exchange(takenTriggers_, {});
}

}  // namespace nodeagent::ipvs
