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

std::string serviceIdOf(const k8s::EndpointSlice& s) { return s.ns.str() + "/" + s.serviceName; }

// One list page: decoded outside the lock, then under it `start` (the first page of a
// list) and `apply` for each object; the page's text is the caller's and is dropped after.
template <class T, class Start, class Apply>
Result<kube::RawListPage> applyPage(std::string_view page, bool first, std::mutex& mu, Start start, Apply apply) {
  std::vector<T> items;
  auto m = k8s::decodeList(page, items);
  if (!m) return fail(m.error());
  std::lock_guard l(mu);
  if (first) start();
  for (auto& item : items) apply(std::move(item));
  return kube::RawListPage{m->resourceVersion, m->continueToken};
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

void KubeServiceSource::markDirty(const std::string& id, Entry& e) {
  if (e.dirty) return;
  e.dirty = true;
  if (!allDirty_) dirty_.push_back(id);
}

void KubeServiceSource::setService(k8s::Service s, uint32_t listed) {
  std::string id = s.id();
  Entry& e = entries_[id];
  e.listed = listed;
  if (e.present && e.service == s) return;
  e.service = std::move(s);
  e.present = true;
  markDirty(id, e);
}

void KubeServiceSource::deleteService(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.present) return;
  it->second.present = false;
  it->second.service = k8s::Service{};
  markDirty(id, it->second);
}

void KubeServiceSource::setSlice(k8s::EndpointSlice s, uint32_t listed) {
  std::string id = s.id();
  if (s.serviceName.empty()) {  // not (or no longer) a service's slice: kube-proxy ignores it
    deleteSlice(id);
    return;
  }
  std::string svc = serviceIdOf(s);
  auto [owner, fresh] = sliceOwner_.try_emplace(id, nullptr);
  if (!fresh) {
    Entry& before = *owner->second;
    auto it = std::find_if(before.slices.begin(), before.slices.end(),
                           [&](const Slice& x) { return x.slice.name == s.name; });
    if (it != before.slices.end()) {
      if (it->slice.serviceName == s.serviceName) {
        it->listed = listed;
        if (it->slice == s) return;
        if (s.triggerTime) pendingTriggers_.push_back(*s.triggerTime);
        it->slice = std::move(s);
        markDirty(svc, before);
        return;
      }
      // Relabelled to another service: it leaves the one before.
      markDirty(serviceIdOf(it->slice), before);
      before.slices.erase(it);
    }
  }
  if (s.triggerTime) pendingTriggers_.push_back(*s.triggerTime);
  Entry& e = entries_[svc];
  e.slices.push_back(Slice{std::move(s), listed});
  owner->second = &e;
  markDirty(svc, e);
}

void KubeServiceSource::deleteSlice(const std::string& id) {
  auto owner = sliceOwner_.find(id);
  if (owner == sliceOwner_.end()) return;
  Entry& e = *owner->second;
  std::string_view name = std::string_view(id).substr(id.find('/') + 1);
  auto it = std::find_if(e.slices.begin(), e.slices.end(), [&](const Slice& x) { return x.slice.name == name; });
  if (it != e.slices.end()) {
    markDirty(serviceIdOf(it->slice), e);
    e.slices.erase(it);
  }
  sliceOwner_.erase(owner);
}

void KubeServiceSource::setNode(const k8s::Node& n) {
  if (node_ && node_->zone == n.zone && node_->addresses == n.addresses) return;
  node_ = n;
  allDirty_ = true;
}

Result<kube::RawListPage> KubeServiceSource::onServicePage(std::string_view page, bool first) {
  return applyPage<k8s::Service>(
      page, first, mu_, [this] { ++serviceList_; }, [this](k8s::Service s) { setService(std::move(s), serviceList_); });
}

void KubeServiceSource::onServiceListDone() {
  {
    std::lock_guard l(mu_);
    std::vector<std::string> gone;
    for (const auto& [id, e] : entries_)
      if (e.present && e.listed != serviceList_) gone.push_back(id);
    for (const auto& id : gone) deleteService(id);
    servicesListed_ = true;
  }
  changed();
}

Result<kube::RawWatchEvent> KubeServiceSource::onServiceEvent(std::string_view line) {
  return applyEvent(
      k8s::decodeServiceEvent(line), mu_,
      [&](const std::string& type, k8s::Service s) {
        if (type == "DELETED") deleteService(s.id());
        else setService(std::move(s), serviceList_);
        return true;
      },
      [&] { changed(); });
}

Result<kube::RawListPage> KubeServiceSource::onSlicePage(std::string_view page, bool first) {
  return applyPage<k8s::EndpointSlice>(
      page, first, mu_, [this] { ++sliceList_; }, [this](k8s::EndpointSlice s) { setSlice(std::move(s), sliceList_); });
}

void KubeServiceSource::onSliceListDone() {
  {
    std::lock_guard l(mu_);
    std::vector<std::string> gone;
    for (const auto& [id, e] : entries_)
      for (const auto& s : e.slices)
        if (s.listed != sliceList_) gone.push_back(s.slice.id());
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
        else setSlice(std::move(s), sliceList_);
        return true;
      },
      [&] { changed(); });
}

Result<kube::RawListPage> KubeServiceSource::onNodePage(std::string_view page, bool first) {
  return applyPage<k8s::Node>(
      page, first, mu_, [this] { nodeList_.clear(); }, [this](k8s::Node n) { nodeList_.push_back(std::move(n)); });
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
  std::vector<const k8s::EndpointSlice*> slices;
  auto retranslate = [&](const std::string& id, Entry& e) {
    e.dirty = false;
    if (!e.present) {
      e.servers = {};
      e.skip = k8s::Skip::kNone;
      e.healthPort = 0;
      invalid_.erase(id);
      return;
    }
    slices.clear();
    for (const auto& s : e.slices) slices.push_back(&s.slice);
    k8s::ServiceProgram before;
    before.servers = std::move(e.servers);
    auto prog = k8s::translate(e.service, slices, view, opts_.proxy, &before);
    std::string problem = prog.skip == k8s::Skip::kInvalid ? prog.error : "";
    if (problem.empty() && !prog.warnings.empty()) problem = prog.warnings.front();
    if (!problem.empty()) {
      InvalidService inv{e.service.ns.str(), e.service.name, e.service.uid, problem};
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
    e.servers = std::move(prog.servers);
    e.servers.shrink_to_fit();
    e.skip = prog.skip;
    e.healthPort = prog.health ? prog.health->port : 0;
    e.healthLocal = prog.health ? static_cast<uint32_t>(prog.health->localEndpoints) : 0;
  };
  auto unused = [](const Entry& e) { return !e.present && e.slices.empty(); };
  if (allDirty_) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      retranslate(it->first, it->second);
      it = unused(it->second) ? entries_.erase(it) : std::next(it);
    }
  } else {
    for (const auto& id : dirty_) {
      auto it = entries_.find(id);
      if (it == entries_.end() || !it->second.dirty) continue;
      retranslate(id, it->second);
      if (unused(it->second)) entries_.erase(it);
    }
  }
  dirty_ = {};
  allDirty_ = false;
  takenTriggers_.insert(takenTriggers_.end(), pendingTriggers_.begin(), pendingTriggers_.end());
  pendingTriggers_.clear();

  // Assemble: every program's virtual servers, in key order. Two services claiming one
  // address and port (externalIPs can collide): the first by name wins, the other is counted.
  std::vector<std::pair<ServiceKey, ServicePtr>> all;
  std::map<uint16_t, HealthTarget> health;
  size_t count = 0;
  for (const auto& [id, e] : entries_) count += e.servers.size();
  all.reserve(count);
  for (const auto& [id, e] : entries_) {
    all.insert(all.end(), e.servers.begin(), e.servers.end());
    if (e.healthPort != 0)
      health.emplace(e.healthPort, HealthTarget{e.service.ns.str(), e.service.name, e.healthLocal});
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
  s.slices = sliceOwner_.size();
  for (const auto& [id, e] : entries_) {
    if (!e.present) continue;
    ++s.services;
    if (e.skip == k8s::Skip::kNone) ++s.programmed;
    else if (e.skip == k8s::Skip::kInvalid) ++s.invalid;
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
