#include "ipvs/module.h"

#include <sys/utsname.h>

#include <cstdio>
#include <filesystem>
#include <mutex>

#include "core/state_store.h"
#include "common/files.h"
#include "common/log.h"

namespace nodeagent::ipvs {

namespace {

std::vector<int> versionParts(const std::string& release) {
  std::vector<int> v;
  int cur = -1;
  for (char c : release) {
    if (c >= '0' && c <= '9') {
      cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
    } else {
      if (cur >= 0) v.push_back(cur);
      cur = -1;
      if (c != '.' || v.size() >= 3) break;
    }
  }
  if (cur >= 0 && v.size() < 3) v.push_back(cur);
  while (v.size() < 3) v.push_back(0);
  return v;
}

// kube-proxy's --cluster-cidr for the nftables rules (only with the Kubernetes source).
std::vector<netfilter::ProxyTable::Prefix> clusterPrefixes(const Config& c) {
  std::vector<netfilter::ProxyTable::Prefix> out;
  if (c.source != "kubernetes") return out;
  for (const auto& text : c.kubernetes.clusterCidrs)
    if (auto r = Cidr::parse(text)) out.push_back({r->base.family, r->base.bytes, r->prefix});
  return out;
}

ReconcilerOptions optionsFrom(const Config& c) {
  ReconcilerOptions o;
  for (const auto& s : c.ownedCidrs)
    if (auto r = Cidr::parse(s)) o.ownedCidrs.push_back(*r);
  o.drainTimeout = c.drainTimeout;
  return o;
}

}  // namespace

std::string runningKernelRelease() {
  utsname u{};
  return ::uname(&u) == 0 ? u.release : "";
}

std::vector<SysctlWant> strictArpSysctls() {
  return {
      {"net.ipv4.conf.all.arp_ignore", "1", "strict ARP: answer only for addresses of the receiving interface, not the VIPs"},
      {"net.ipv4.conf.all.arp_announce", "2", "strict ARP: never announce a VIP of the dummy interface as ARP source"},
  };
}

std::vector<SysctlWant> wantedSysctls(const std::string& release) {
  std::vector<SysctlWant> out = {
      {"net.ipv4.vs.conntrack", "1", "IPVS keeps conntrack entries so nftables masquerade sees service traffic"},
      {"net.ipv4.vs.expire_nodest_conn", "1", "drop connections to deleted real servers at once instead of hanging"},
      {"net.ipv4.vs.expire_quiescent_template", "1", "persistence templates of weight-0 servers expire, so drains end"},
  };
  auto v = versionParts(release);
  auto at = [&](int a, int b) { return v[0] > a || (v[0] == a && v[1] >= b); };
  if (at(4, 1) && !at(5, 9))
    out.push_back({"net.ipv4.vs.conn_reuse_mode", "0", "kernels 4.1 to 5.8 stall reused ports with mode 1 (kube-proxy #81775)"});
  return out;
}

std::string buildServiceEvent(const InvalidService& s, const std::string& eventName, const std::string& nodeName,
                              const std::string& timestamp) {
  return Json::object()
      .set("apiVersion", "v1")
      .set("kind", "Event")
      .set("metadata", Json::object().set("name", eventName).set("namespace", s.ns))
      .set("involvedObject", Json::object()
                                 .set("apiVersion", "v1")
                                 .set("kind", "Service")
                                 .set("namespace", s.ns)
                                 .set("name", s.name)
                                 .set("uid", s.uid))
      .set("reason", "ServiceNotProgrammed")
      .set("message", "nodeagent's IPVS proxy on " + nodeName + " skipped this service: " + s.problem)
      .set("type", "Warning")
      .set("source", Json::object().set("component", "nodeagent").set("host", nodeName))
      .set("firstTimestamp", timestamp)
      .set("lastTimestamp", timestamp)
      .set("count", 1)
      .set("reportingComponent", "nodeagent")
      .set("reportingInstance", nodeName)
      .dump();
}

void DurationHistogram::observe(double seconds) {
  ++count;
  sum += seconds;
  double bound = 0.001;
  for (int i = 0; i < kBuckets; ++i, bound *= 2)
    if (seconds <= bound) ++counts[i];
  ++counts[kBuckets];
}

void DurationHistogram::appendTo(std::vector<core::Metric>& out, const std::string& name,
                                 const std::string& help) const {
  using MT = core::Metric::Type;
  double bound = 0.001;
  for (int i = 0; i < kBuckets; ++i, bound *= 2) {
    char le[32];
    std::snprintf(le, sizeof le, "%g", bound);
    out.push_back({name + "_bucket", help, MT::kCounter, {{"le", le}}, double(counts[i])});
  }
  out.push_back({name + "_bucket", help, MT::kCounter, {{"le", "+Inf"}}, double(counts[kBuckets])});
  out.push_back({name + "_sum", help, MT::kCounter, {}, sum});
  out.push_back({name + "_count", help, MT::kCounter, {}, double(count)});
}

IpvsModule::IpvsModule(core::ModuleContext ctx, Config config, KernelParts kernel, KubeAccess kube)
    : ctx_(std::move(ctx)), kernel_(std::move(kernel)), kubeAccess_(std::move(kube)), config_(std::move(config)),
      resyncMs_(config_.resyncInterval.count()) {}

IpvsModule::~IpvsModule() { stop(); }

void IpvsModule::stop() {
  std::unique_ptr<ServiceSource> src;
  {
    std::lock_guard lock(mu_);
    src = std::move(source_);
    kubeSource_ = nullptr;
  }
  if (kubeClient_) kubeClient_->interrupt();
  if (src) src->stop();
  health_.stop();
}

Result<std::unique_ptr<ServiceSource>> IpvsModule::makeSource() {
  kubeSource_ = nullptr;
  if (config_.source != "kubernetes") return std::make_unique<FileServiceSource>(config_.servicesFile, ctx_.mainLoop);
  if (!kubeClient_) {
    auto cluster = kube::resolveCluster(kubeAccess_.kube);
    if (!cluster) return fail(cluster.error().wrap("ipvs.source kubernetes"));
    if (!*cluster)
      return failInvalid("ipvs.source is kubernetes but no Kubernetes API is configured or found (kube.mode)");
    kube::ClientOptions co;
    co.userAgent = "nodeagent/ipvs";
    auto c = kube::Client::create(**cluster, co);
    if (!c) return fail(c.error());
    kubeClient_ = std::move(*c);
  }
  KubeSourceOptions o;
  o.nodeName = kubeAccess_.nodeName;
  o.proxy.scheduler = config_.kubernetes.scheduler;
  o.proxy.masqueradeAll = config_.kubernetes.masqueradeAll;
  o.proxy.proxyName = config_.kubernetes.serviceProxyName;
  for (const auto& c : config_.kubernetes.clusterCidrs)
    if (auto r = Cidr::parse(c)) o.proxy.clusterCidrs.push_back(*r);
  for (const auto& c : config_.kubernetes.nodePortAddresses)
    if (auto r = Cidr::parse(c)) o.nodePortCidrs.push_back(*r);
  o.pageSize = config_.kubernetes.listPageSize;
  o.vipInterface = config_.interface;
  auto src = std::make_unique<KubeServiceSource>(*kubeClient_, std::move(o));
  kubeSource_ = src.get();
  return src;
}

// After a pass of the Kubernetes source: health-check listeners, Events for services that
// could not be programmed, network programming latency of the slice changes it applied.
void IpvsModule::afterKubePass(bool applied) {
  if (!kubeSource_) return;
  auto log = log::get("ipvs");
  if (auto r = health_.update(kubeSource_->healthChecks()); !r) {
    if (!healthError_ || healthError_->message() != r.error().message()) log->warn("{}", r.error().message());
    healthError_ = r.error();
  } else {
    healthError_.reset();
  }
  for (const auto& inv : kubeSource_->takeNewInvalid()) {
    if (ctx_.dryRun || !kubeClient_) break;
    auto now = std::chrono::system_clock::now();
    char name[96];
    std::snprintf(name, sizeof name, "%.60s.%llx", inv.name.c_str(),
                  static_cast<unsigned long long>(now.time_since_epoch().count()));
    auto r = kubeClient_->request("POST", "/api/v1/namespaces/" + inv.ns + "/events",
                                  buildServiceEvent(inv, name, kubeAccess_.nodeName, formatRfc3339(now)));
    if (r) ++eventsSent_;
    else ++eventsFailed_, log->debug("event for service {}/{}: {}", inv.ns, inv.name, r.error().message());
  }
  if (applied) {
    auto now = std::chrono::system_clock::now();
    for (auto t : kubeSource_->takeTriggerTimes())
      programmingDurations_.observe(std::max(0.0, std::chrono::duration<double>(now - t).count()));
  }
}

std::chrono::milliseconds IpvsModule::resyncInterval() const { return std::chrono::milliseconds(resyncMs_.load()); }

void IpvsModule::reload(const Config& config) {
  // Not under mu_: a sync of 10,000 services may hold it for seconds. Applied next pass.
  pendingConfig_.put(config);
  resyncMs_ = config.resyncInterval.count();
  sourceChanged_ = true;  // SIGHUP also re-reads the services file
}

Result<void> IpvsModule::ensureOpen() {
  if (!table_) {
    auto t = kernel_.serviceTable();
    if (!t) return fail(t.error());
    table_ = std::move(*t);
  }
  std::string dir = ctx_.stateDir + "/ipvs";
  if (!ownership_) {
    if (auto r = makeDirs(dir, 0755); !r) return fail(r.error());
    ownership_ = std::make_unique<Ownership>(dir + "/owned-services");
    if (auto r = ownership_->load(); !r) {
      ownership_.reset();
      return fail(r.error());
    }
  }
  if (!flusher_) flusher_ = kernel_.flowFlusher();
  if (!reconciler_)
    reconciler_ =
        std::make_unique<Reconciler>(*table_, *ownership_, *kernel_.clock, optionsFrom(config_), flusher_.get());
  if (!vips_ && config_.bindVips) vips_ = kernel_.vipBinder(config_.interface, dir + "/interface");
  if (!nft_ && config_.nftables)
    nft_ = kernel_.proxyTable(config_.nftTable, config_.masqueradeMark, clusterPrefixes(config_));
  if (!source_) {
    auto src = makeSource();
    if (!src) return fail(src.error());
    source_ = std::move(*src);
    source_->watch([this] {
      sourceChanged_ = true;
      if (ctx_.trigger) ctx_.trigger();
    });
  }
  return {};
}

Result<SyncReport> IpvsModule::syncLocked(const Pass& pass) {
  if (auto r = ensureOpen(); !r) return fail(r.error());
  auto log = log::get("ipvs");
  // Before the source has its whole input (the first lists from the API), nothing is
  // programmed and nothing removed: a restart while the API is away keeps the kernel as is.
  if (!source_->ready()) return failErrno(EAGAIN, "waiting for " + source_->describe());
  if (sourceChanged_.exchange(false)) {
    auto d = source_->load(&desired_);
    if (!d) {
      sourceError_ = d.error();
      log->error("services from {} rejected, keeping the last good set: {}", source_->describe(), d.error().message());
    } else {
      // Merge walk over both sorted maps: which services differ.
      size_t before = pendingChanged_.size();
      auto a = desired_.begin(), b = d->begin();
      while (a != desired_.end() || b != d->end()) {
        if (b == d->end() || (a != desired_.end() && a->first < b->first)) {
          pendingChanged_.insert((a++)->first);
        } else if (a == desired_.end() || b->first < a->first) {
          pendingChanged_.insert((b++)->first);
        } else {
          if (a->second != b->second && !(*a->second == *b->second)) pendingChanged_.insert(a->first);
          ++a, ++b;
        }
      }
      if (pendingChanged_.size() != before)
        log->info("services from {}: {} services, {} changed", source_->describe(), d->size(),
                  pendingChanged_.size() - before);
      desired_ = std::move(*d);
      sourceError_.reset();
    }
  }
  if (pass.fullRead && !pass.dryRun) {
    Timeouts want{static_cast<uint32_t>(config_.tcpTimeout.count() / 1000),
                  static_cast<uint32_t>(config_.tcpFinTimeout.count() / 1000),
                  static_cast<uint32_t>(config_.udpTimeout.count() / 1000)};
    auto have = table_->timeouts();
    if (have && (have->tcp != want.tcp || have->tcpFin != want.tcpFin || have->udp != want.udp) &&
        (want.tcp || want.tcpFin || want.udp)) {
      if (auto r = table_->setTimeouts(want); r)
        log->info("IPVS timeouts tcp {}s tcpfin {}s udp {}s (were {} {} {})", want.tcp, want.tcpFin, want.udp,
                  have->tcp, have->tcpFin, have->udp);
      else
        log->warn("{}", r.error().message());
    }
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<ServiceKey> changed;
  if (!pass.fullRead) changed.assign(pendingChanged_.begin(), pendingChanged_.end());
  auto report = pass.fullRead ? reconciler_->sync(desired_, SyncRequest{true, pass.dryRun, pass.stopEarly})
                              : reconciler_->syncChanged(desired_, changed, pass.dryRun);
  if (!report) return report;
  // A change came in during a periodic full read: it goes first (pendingChanged_ is kept
  // for it), and the full read starts over after it (the runner logs that it gave way).
  if (report->gaveWay) return report;
  if (!pass.dryRun) pendingChanged_.clear();
  if (!pass.dryRun) {
    lastDuration_ = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    syncDurations_.observe(double(lastDuration_.count()) / 1e6);
    ++syncs_;
    if (report->fullRead) ++fullReads_;
    opsApplied_ += report->applied;
    opFailures_ += report->failures.size();
    lastSync_ = formatRfc3339(std::chrono::system_clock::now());
    lastConflicts_ = report->conflicts;
    lastFailures_ = report->failures;
    if (report->applied > 0)
      log->info("applied {} IPVS changes in {} us{}", report->applied, lastDuration_.count(),
                report->fullRead ? " after a full read" : "");
    else if (lastDuration_ >= std::chrono::seconds(1))
      // A slow pass holds back the changes that arrive meanwhile: say so even when it
      // changed nothing.
      log->info("{} of {} services took {} ms, nothing to change", report->fullRead ? "full read" : "pass",
                reconciler_->applied().size(), lastDuration_.count() / 1000);
    // Failures are not logged here: reconcile() returns them and the runner logs them once
    // (a control call returns them to the client instead).
    if (auto r = syncEdges(report->fullRead || edgesStale_, changed); !r) {
      edgesStale_ = true;  // all of it again next pass
      report->failures.push_back(r.error().message());
    } else {
      edgesStale_ = false;
    }
  }
  if (!pass.dryRun) afterKubePass(true);
  return report;
}

// A service is live on the node (VIP bound, nftables elements) once it is desired and in
// the kernel.
bool IpvsModule::live(const ServiceKey& k) const {
  return k.fwmark == 0 && desired_.contains(k) && reconciler_->applied().contains(k);
}

// Whether some live service has address `a` (services are sorted by family, protocol,
// address: one short range per protocol).
bool IpvsModule::vipWanted(uint16_t family, const Address& a) const {
  for (Protocol p : {Protocol::kTcp, Protocol::kUdp, Protocol::kSctp}) {
    for (auto it = desired_.lower_bound(ServiceKey{family, p, a, 0, 0});
         it != desired_.end() && it->first.family == family && it->first.protocol == p && it->first.address == a; ++it)
      if (live(it->first) && it->second->bindVip) return true;
  }
  return false;
}

netfilter::NftService IpvsModule::nftService(const ServiceKey& k) const {
  netfilter::NftService n;
  n.family = k.family;
  n.addr = k.address.bytes;
  n.protocol = static_cast<uint8_t>(k.protocol);
  n.port = k.port;
  if (auto it = desired_.find(k); it != desired_.end()) {
    n.masquerade = it->second->masquerade;
    n.masqueradeOutside = it->second->masqueradeOutside;
    n.vip = it->second->bindVip;
    n.firewall = !it->second->sourceRanges.empty();
    for (const auto& c : it->second->sourceRanges)
      n.allowedSources.push_back({c.base.family, c.base.bytes, c.prefix});
    for (const auto& d : it->second->hairpin) n.hairpin.push_back({d.address.bytes, d.port});
  }
  return n;
}

Result<void> IpvsModule::syncEdges(bool full, const std::vector<ServiceKey>& changed) {
  if (full) {
    // Start, resync, after an error: the whole set (both compare with what they hold).
    if (vips_) {
      std::set<Address> vips;
      for (const auto& [k, s] : desired_)
        if (live(k) && s->bindVip) vips.insert(k.address);
      if (auto r = vips_->sync(vips, true); !r) return fail(r.error().wrap("VIPs"));
    }
    if (nft_) {
      std::set<netfilter::NftService> svcs;
      for (const auto& [k, s] : desired_)
        if (live(k)) svcs.insert(nftService(k));
      if (auto r = nft_->sync(svcs); !r) return fail(r.error().wrap("nftables"));
    }
    return {};
  }
  // Only the changed services, and the VIPs they use.
  std::vector<std::pair<Address, bool>> vips;
  std::vector<netfilter::NftChange> nft;
  for (const auto& k : changed) {
    if (k.fwmark != 0) continue;
    if (vips_) vips.emplace_back(k.address, vipWanted(k.family, k.address));
    if (nft_) nft.push_back({nftService(k), live(k)});
  }
  if (vips_ && !vips.empty())
    if (auto r = vips_->update(vips); !r) return fail(r.error().wrap("VIPs"));
  if (nft_ && !nft.empty())
    if (auto r = nft_->update(nft); !r) return fail(r.error().wrap("nftables"));
  return {};
}

Result<void> IpvsModule::reconcile(const core::ReconcileContext& ctx) {
  std::lock_guard lock(mu_);
  if (auto next = pendingConfig_.take()) {
    bool sourceMoved = next->servicesFile != config_.servicesFile || next->source != config_.source ||
                       !(toJson(*next).get("kubernetes") == toJson(config_).get("kubernetes"));
    bool ifMoved = next->interface != config_.interface || next->bindVips != config_.bindVips;
    config_ = std::move(*next);
    if (sourceMoved && source_) {
      source_->stop();
      source_.reset();
      kubeSource_ = nullptr;
    }
    if (ifMoved) vips_.reset();
    nft_.reset();  // table name or mark may have changed: rebuilt on the next pass
    edgesStale_ = true;
    if (reconciler_) reconciler_->setOptions(optionsFrom(config_));
  }
  if (!config_.enabled) {
    if (auto r = teardown(ctx.dryRun || ctx_.dryRun); !r)
      log::get("ipvs")->warn("removing what the IPVS proxy made: {}", r.error().message());
    core::ModuleState s;
    s.name = name();
    s.health = core::Health::kDisabled;
    s.summary = "disabled (ipvs.enabled: false)";
    ctx_.store->publish(std::move(s));
    return {};
  }
  auto report = syncLocked(Pass{ctx.initial || ctx.resync, ctx.dryRun || ctx_.dryRun, ctx.changeWaiting});
  if (report && report->gaveWay) {
    ctx.gaveWay = true;
    return {};
  }
  if (!report && source_ && !source_->ready()) {
    core::ModuleState s;
    s.name = name();
    s.health = core::Health::kStarting;
    s.summary = report.error().message();
    s.conditions.push_back({"ServiceProxyReady", false, "WaitingForApi", s.summary});
    ctx_.store->publish(std::move(s));
    return {};
  }
  if (!report) {
    publish(nullptr, report.error());
    return fail(report.error());
  }
  publish(&*report, std::nullopt);
  if (!report->failures.empty())
    return failInvalid(std::to_string(report->failures.size()) + " IPVS changes failed; first: " + report->failures.front());
  return {};
}

// Switched off after having run (a reload, or a start with a state directory from an
// earlier run): what the agent made goes, so nothing keeps steering traffic to backends
// nobody updates. Owned services (foreign ones stay), the VIPs and the dummy interface,
// the nftables table. A node that never ran the proxy has no state directory for it and
// is not touched.
Result<void> IpvsModule::teardown(bool dryRun) {
  std::string dir = ctx_.stateDir + "/ipvs";
  if (!pathExists(dir)) return {};
  auto log = log::get("ipvs");
  if (source_) {
    source_->stop();
    source_.reset();
    kubeSource_ = nullptr;
    (void)health_.update({});
  }
  if (dryRun) {
    if (!teardownLogged_)
      log->info("ipvs disabled: would remove the IPVS services, VIPs, interface {} and nftables table {} nodeagent "
                "made (dry run)",
                config_.interface, config_.nftTable);
    teardownLogged_ = true;
    return {};
  }
  log->info("ipvs disabled: removing the IPVS services, VIPs, interface {} and nftables table {} nodeagent made",
            config_.interface, config_.nftTable);
  std::optional<Error> firstError;
  auto note = [&](Result<void> r, const char* what) {
    if (!r && !firstError) firstError = r.error().wrap(what);
  };
  if (!table_) {
    if (auto t = kernel_.serviceTable()) table_ = std::move(*t);  // no IPVS in the kernel: no services
  }
  if (table_) {
    if (!flusher_) flusher_ = kernel_.flowFlusher();
    if (!ownership_) {
      ownership_ = std::make_unique<Ownership>(dir + "/owned-services");
      note(ownership_->load(), "read owned services");
    }
    if (!reconciler_)
      reconciler_ =
          std::make_unique<Reconciler>(*table_, *ownership_, *kernel_.clock, optionsFrom(config_), flusher_.get());
    auto r = reconciler_->sync(DesiredState{}, SyncRequest{true, false});
    if (!r) note(fail(r.error()), "remove owned IPVS services");
    else if (!r->failures.empty()) note(failInvalid(r->failures.front()), "remove owned IPVS services");
    else log->info("removed {} owned IPVS services", r->applied);
  }
  if (!vips_) vips_ = kernel_.vipBinder(config_.interface, dir + "/interface");
  note(vips_->remove(), "remove the VIP interface");
  if (!nft_) nft_ = kernel_.proxyTable(config_.nftTable, config_.masqueradeMark, {});
  note(nft_->remove(), "remove the nftables table");
  if (firstError) return fail(*firstError);  // state kept: tried again next pass
  reconciler_.reset();
  ownership_.reset();
  table_.reset();
  vips_.reset();
  nft_.reset();
  desired_ = DesiredState{};
  pendingChanged_.clear();
  edgesStale_ = true;
  sourceChanged_ = true;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  log->info("ipvs disabled: nothing of the IPVS proxy is left");
  return {};
}

void IpvsModule::publish(const SyncReport* report, const std::optional<Error>& error) {
  core::ModuleState s;
  s.name = name();
  size_t owned = reconciler_ ? reconciler_->applied().size() : 0;
  size_t draining = reconciler_ ? reconciler_->draining().size() : 0;
  size_t foreign = reconciler_ ? reconciler_->foreign().size() : 0;
  size_t endpoints = reconciler_ ? reconciler_->appliedEndpoints() : 0;
  if (error) {
    s.health = core::Health::kDegraded;
    s.summary = "IPVS not programmed: " + error->message();
    s.conditions.push_back({"IpvsSynced", false, error->errnoValue() == ENOENT ? "IpvsUnavailable" : "SyncFailed",
                            error->message()});
  } else {
    bool ok = report->failures.empty() && !sourceError_;
    s.health = ok ? core::Health::kHealthy : core::Health::kDegraded;
    s.summary = std::to_string(owned) + " services, " + std::to_string(endpoints) + " endpoints, " +
                std::to_string(draining) + " draining" + (ok ? ", in sync" : "");
    if (sourceError_)
      s.conditions.push_back({"IpvsSynced", false, "ServicesInvalid", sourceError_->message()});
    else if (!report->failures.empty())
      s.conditions.push_back({"IpvsSynced", false, "ChangesFailed", report->failures.front()});
    else
      s.conditions.push_back({"IpvsSynced", true, "InSync", s.summary});
  }
  Json kubeDetails;
  if (kubeSource_) {
    auto ks = kubeSource_->status();
    bool ready = ks.synced && !error && report && report->failures.empty();
    std::string msg = std::to_string(ks.programmed) + " Kubernetes services programmed, " +
                      std::to_string(ks.skipped) + " skipped, " + std::to_string(ks.invalid) + " invalid";
    s.conditions.push_back({"ServiceProxyReady", ready, ready ? "Programmed" : error ? "SyncFailed" : "ChangesFailed",
                            ready ? msg : error ? error->message() : msg});
    Json problems = Json::array();
    for (const auto& p : ks.problems) problems.push(p);
    auto watch = [](const kube::ListWatchStats& w) {
      return Json::object()
          .set("lists", w.lists)
          .set("relists", w.relists)
          .set("resumes", w.resumes)
          .set("events", w.events)
          .set("bookmarks", w.bookmarks)
          .set("resource_version", w.resourceVersion)
          .set("last_error", w.lastError);
    };
    kubeDetails = Json::object()
                      .set("services", ks.services)
                      .set("programmed", ks.programmed)
                      .set("skipped", ks.skipped)
                      .set("invalid", ks.invalid)
                      .set("conflicts", ks.conflicts)
                      .set("endpoint_slices", ks.slices)
                      .set("problems", problems)
                      .set("health_check_ports", health_.listeners())
                      .set("events_sent", eventsSent_)
                      .set("events_failed", eventsFailed_)
                      .set("services_watch", watch(ks.serviceWatch))
                      .set("endpointslices_watch", watch(ks.sliceWatch))
                      .set("node_watch", watch(ks.nodeWatch));
    if (ks.invalid > 0 && s.health == core::Health::kHealthy) s.summary += ", " + std::to_string(ks.invalid) + " invalid services skipped";
  }
  Json conflicts = Json::array();
  for (const auto& c : lastConflicts_) conflicts.push(c);
  s.details = Json::object()
                  .set("source", config_.source)
                  .set("kubernetes", kubeDetails)
                  .set("services_file", config_.servicesFile)
                  .set("owned_services", owned)
                  .set("endpoints", endpoints)
                  .set("draining", draining)
                  .set("foreign_services", foreign)
                  .set("conflicts", conflicts)
                  .set("last_sync", lastSync_)
                  .set("last_sync_us", static_cast<int64_t>(lastDuration_.count()));
  using MT = core::Metric::Type;
  s.metrics = {
      {"nodeagent_ipvs_services", "IPVS services owned by the agent", MT::kGauge, {}, double(owned)},
      {"nodeagent_ipvs_endpoints", "IPVS destinations of owned services", MT::kGauge, {}, double(endpoints)},
      {"nodeagent_ipvs_draining_endpoints", "destinations at weight 0 waiting for connections to end", MT::kGauge, {}, double(draining)},
      {"nodeagent_ipvs_syncs_total", "IPVS sync passes", MT::kCounter, {}, double(syncs_)},
      {"nodeagent_ipvs_full_reads_total", "passes that read the whole kernel table", MT::kCounter, {}, double(fullReads_)},
      {"nodeagent_ipvs_operations_total", "IPVS netlink operations applied", MT::kCounter, {}, double(opsApplied_)},
      {"nodeagent_ipvs_operation_failures_total", "IPVS netlink operations the kernel refused", MT::kCounter, {}, double(opFailures_)},
      {"nodeagent_ipvs_last_sync_seconds", "duration of the last sync", MT::kGauge, {}, double(lastDuration_.count()) / 1e6},
  };
  if (kubeSource_) {
    auto ks = kubeSource_->status();
    using MT = core::Metric::Type;
    s.metrics.push_back({"nodeagent_ipvs_kubernetes_services", "Kubernetes services by what the proxy did with them",
                         MT::kGauge, {{"state", "programmed"}}, double(ks.programmed)});
    s.metrics.push_back({"nodeagent_ipvs_kubernetes_services", "Kubernetes services by what the proxy did with them",
                         MT::kGauge, {{"state", "skipped"}}, double(ks.skipped)});
    s.metrics.push_back({"nodeagent_ipvs_kubernetes_services", "Kubernetes services by what the proxy did with them",
                         MT::kGauge, {{"state", "invalid"}}, double(ks.invalid)});
    syncDurations_.appendTo(s.metrics, "nodeagent_ipvs_sync_proxy_rules_duration_seconds",
                            "time to program the changed services into the kernel, per pass (kube-proxy's meaning)");
    programmingDurations_.appendTo(s.metrics, "nodeagent_ipvs_network_programming_duration_seconds",
                                   "from an EndpointSlice's last-change-trigger-time to its change in the kernel");
  }
  ctx_.store->publish(std::move(s));
}

Json IpvsModule::listJson() {
  Json items = Json::array();
  auto kernel = table_->list(true);
  if (!kernel) return Json::object().set("error", kernel.error().message());
  for (const auto& st : *kernel) {
    const auto& k = st.service.key;
    bool owned = reconciler_ && reconciler_->owns(k);
    std::string sched = st.service.scheduler;
    if (st.service.timeout) sched += " persistent " + std::to_string(st.service.timeout);
    auto want = desired_.find(k);
    items.push(Json::object()
                   .set("service", k.toString())
                   .set("name", want != desired_.end() ? want->second->name : "")
                   .set("endpoint", "")
                   .set("scheduler", sched)
                   .set("forward", "")
                   .set("weight", "")
                   .set("active", "")
                   .set("inactive", "")
                   .set("owned", owned)
                   .set("state", owned ? "owned" : "foreign"));
    for (const auto& d : st.dests) {
      bool drain = reconciler_ && reconciler_->draining().contains({k, d.dest.key});
      items.push(Json::object()
                     .set("service", "")
                     .set("name", "")
                     .set("endpoint", d.dest.key.toString())
                     .set("scheduler", "")
                     .set("forward", std::string(forwardName(d.dest.forward)))
                     .set("weight", d.dest.weight)
                     .set("active", d.activeConns)
                     .set("inactive", d.inactiveConns)
                     .set("owned", owned)
                     .set("state", drain ? "draining" : owned ? "active" : "foreign"));
    }
  }
  return Json::object().set("items", items).set("last_sync", lastSync_);
}

std::vector<core::CommandSpec> IpvsModule::commands() const {
  return {
      {.command = "list", .help = "IPVS services and endpoints (as ipvsadm -Ln) with the agent's view"},
      {.command = "plan", .help = "the IPVS changes a sync would make (reads the kernel, changes nothing)"},
      {.command = "sync", .help = "read the kernel table and converge now", .mutating = true},
  };
}

Result<Json> IpvsModule::call(const core::CallRequest& req, core::CallOutput& out) {
  std::lock_guard lock(mu_);
  if (!config_.enabled) return failInvalid("the ipvs module is disabled (set ipvs.enabled: true)");
  if (auto r = ensureOpen(); !r) return fail(r.error());
  if (req.command == "list") return listJson();
  if (req.command == "plan" || req.command == "sync") {
    bool dry = req.command == "plan" || req.dryRun || ctx_.dryRun;
    auto report = syncLocked(Pass{true, dry});
    if (!report) return fail(report.error());
    if (!dry) publish(&*report, std::nullopt);
    Json items = Json::array();
    for (const auto& op : report->planned) items.push(Json::object().set("change", op.toString()));
    if (report->plannedTotal > report->planned.size())
      items.push(Json::object().set("change", "... and " + std::to_string(report->plannedTotal - report->planned.size()) +
                                                  " more changes"));
    Json conflicts = Json::array();
    for (const auto& c : report->conflicts) conflicts.push(c);
    Json failures = Json::array();
    for (const auto& f : report->failures) failures.push(f);
    return Json::object()
        .set("items", items)
        .set("dry_run", dry)
        .set("planned", report->plannedTotal)
        .set("applied", report->applied)
        .set("conflicts", conflicts)
        .set("failures", failures)
        .set("exit_code", report->failures.empty() ? 0 : 1);
  }
  return Module::call(req, out);
}

}  // namespace nodeagent::ipvs
