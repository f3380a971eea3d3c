#include "sysctl/module.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "core/node_module.h"
#include "core/state_store.h"
#include "common/files.h"
#include "common/log.h"
#include "netfilter/conntrack.h"

namespace nodeagent::sysctl {

using core::Condition;
using core::Health;
using core::Metric;

namespace {

constexpr const char* kDropInHeader =
    "# Managed by nodeagent (sysctl module): the values it applied and verified, so a reboot\n"
    "# agrees before the daemon starts. Edits are overwritten; change the nodeagent config.\n";

// Whole numbers as JSON integers (90, not 9e+01).
Json number(double v) { return v == std::floor(v) ? Json(int64_t(v)) : Json(v); }

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

SysctlModule::SysctlModule(core::ModuleContext ctx, ModuleOptions opts, Config config)
    : ctx_(std::move(ctx)),
      opts_(std::move(opts)),
      tuner_(KernelTree(opts_.procRoot, opts_.sysRoot, opts_.initialNetns)),
      originalsPath_(ctx_.stateDir + "/originals.json"),
      revertedMarker_(ctx_.stateDir + "/reverted"),
      config_(std::move(config)),
      driftMs_(config_.driftInterval.count()) {
  reverted_ = pathExists(revertedMarker_);
}

void SysctlModule::reload(Config config) {
  // Not under mu_ (a pass or a control call may hold it): taken at the next pass or call.
  driftMs_ = config.driftInterval.count();
  pending_.put(std::move(config));
}

void SysctlModule::takePendingLocked() {
  if (auto next = pending_.take()) config_ = std::move(*next);
}

std::chrono::milliseconds SysctlModule::resyncInterval() const { return std::chrono::milliseconds(driftMs_.load()); }

Result<std::vector<KeySpec>> SysctlModule::desiredKeys(const Config& config) const {
  ScaleInputs scale = config.scale;
  auto facts = core::readNodeFacts(opts_.procRoot, opts_.sysRoot);
  if (facts) scale.cpus = facts->cpus;
  auto profile = builtinProfile(config.profile, scale);
  if (!profile) return fail(profile.error());
  // Conntrack is sized by the node's CPUs: without them (an unreadable /proc/meminfo, a
  // fake tree missing files) those keys fail rather than follow some other machine's count.
  if (!facts && scale.conntrackMax == 0)
    for (auto& k : *profile)
      if (k.key == "net.netfilter.nf_conntrack_max" || k.key == kHashsizeKey)
        k.unavailable = "cannot size conntrack without the node's CPU count: " + facts.error().message();
  auto keys = mergeKeys(std::move(*profile), config.contributed, config.keys, config.drop);
  if (auto r = validateKeys(keys); !r) return fail(r.error());
  return keys;
}

Result<SysctlModule::PassResult> SysctlModule::passLocked(bool mayApply) {
  auto log = log::get("sysctl");
  auto desired = desiredKeys(config_);
  if (!desired) return fail(desired.error());
  PassResult r;
  r.plan = tuner_.plan(*desired);

  // Drift: a value that differs from what the last pass left is someone else's change.
  driftedNow_.clear();
  std::set<std::string> driftedThisPass;
  std::vector<PlanItem> toApply = r.plan;
  for (auto& item : toApply) {
    if (!item.current) continue;
    auto it = lastSeen_.find(item.spec.key);
    bool drifted = it != lastSeen_.end() && it->second != *item.current;
    if (drifted) {
      driftedThisPass.insert(item.spec.key);
      ++driftTotal_;
      ++driftPerKey_[item.spec.key];
      log->warn("drift: {} changed outside nodeagent from \"{}\" to \"{}\"{}", item.spec.key, it->second, *item.current,
                item.action == Action::kSet
                    ? (config_.driftMode == DriftMode::kEnforce ? "; restoring" : "; reporting only (drift_mode: report)")
                    : " (still satisfies the desired value)");
    }
    bool wasOurs = it != lastSeen_.end();
    if (item.action == Action::kSet && wasOurs && config_.driftMode == DriftMode::kReport) {
      driftedNow_[item.spec.key] = *item.current;
      item.action = Action::kNone;  // report mode: leave it as found
    }
  }

  bool apply = mayApply && !ctx_.dryRun;
  if (apply) {
    Originals originals(originalsPath_);
    if (auto l = originals.load(); !l) log->warn("cannot read saved originals {}: {}", originalsPath_, l.error().message());
    r.applied = tuner_.apply(toApply, originals);
    for (size_t i = 0; i < r.applied.size(); ++i) {
      const auto& a = r.applied[i];
      const auto& p = r.plan[i];
      if (a.changed) {
        bool restore = driftedThisPass.count(a.key) > 0;
        if (restore) ++driftRestored_;
        log->info("{} {}: \"{}\" -> \"{}\" ({}: {})", restore ? "restored" : "set", a.key, a.before.value_or(""),
                  a.after.value_or(""), p.spec.source, p.spec.reason);
      } else if (a.error != KeyError::kNone && p.action == Action::kSet) {
        log->warn("{}: {}", a.key, a.message);
      }
      if (a.after) lastSeen_[a.key] = *a.after;
    }
    if (config_.persist) {
      std::vector<std::pair<KeySpec, std::string>> inSync;
      for (size_t i = 0; i < r.applied.size(); ++i)
        // A value left as found in report mode is someone else's: persist the desired one.
        if (auto d = driftedNow_.find(r.applied[i].key); d != driftedNow_.end())
          inSync.emplace_back(r.plan[i].spec, targetValue(r.plan[i].spec, d->second));
        else if (r.applied[i].inSync && r.applied[i].after)
          inSync.emplace_back(r.plan[i].spec, *r.applied[i].after);
      // Module parameters (paths) are not sysctls: they never go into the drop-in.
      auto isSysctl = [](const std::string& key) { return !key.starts_with("/"); };
      bool anyWanted = std::any_of(r.plan.begin(), r.plan.end(), [&](const PlanItem& p) { return isSysctl(p.spec.key); });
      bool anyInSync = std::any_of(inSync.begin(), inSync.end(), [&](const auto& k) { return isSysctl(k.first.key); });
      if (!anyWanted) {
        // Nothing to persist (profile none, no keys): no drop-in, not even a header; one
        // left from an earlier config would make boot apply values no longer wanted.
        if (::unlink(opts_.dropInPath.c_str()) == 0)
          log->info("removed {}: no sysctl keys to persist", opts_.dropInPath);
        else if (errno != ENOENT)
          log->error("cannot remove {}: {}", opts_.dropInPath, std::strerror(errno));
      } else if (anyInSync) {
        // (None in sync: every key failed this pass; the file keeps what it had.)
        std::string text = renderDropIn(inSync, kDropInHeader);
        if (auto w = persistDropIn(opts_.dropInPath, text); !w)
          log->error("cannot persist {}: {}", opts_.dropInPath, w.error().message());
        else if (*w)
          log->info("persisted {} keys to {}", inSync.size(), opts_.dropInPath);
      }
    }
  } else {
    for (const auto& p : r.plan)
      if (p.current && lastSeen_.count(p.spec.key)) lastSeen_[p.spec.key] = *p.current;
  }

  // Per-key state for `status`, in the plan's order.
  keyState_.clear();
  keyOrder_.clear();
  for (const auto& p : r.plan) keyOrder_.push_back(p.spec.key);
  for (size_t i = 0; i < r.plan.size(); ++i) {
    const auto& p = r.plan[i];
    std::string state, value = p.current.value_or(""), message;
    if (!r.applied.empty()) {
      const auto& a = r.applied[i];
      value = a.after.value_or(value);
      message = a.message;
      state = a.error != KeyError::kNone ? std::string(keyErrorName(a.error)) : a.changed ? "changed" : "in-sync";
    } else {
      message = p.message;
      state = p.action == Action::kError ? std::string(keyErrorName(p.error)) : p.action == Action::kSet ? "pending" : "in-sync";
    }
    if (driftedNow_.count(p.spec.key)) state = "drifted";
    keyState_[p.spec.key] = Json::object()
                                .set("key", p.spec.key)
                                .set("state", state)
                                .set("value", value)
                                .set("desired", normalize(p.spec.value))
                                .set("mode", modeName(p.spec.mode))
                                .set("drifts", driftPerKey_.count(p.spec.key) ? driftPerKey_[p.spec.key] : 0)
                                .set("source", p.spec.source)
                                .set("message", message.empty() ? p.spec.reason : message);
  }
  return r;
}

Json SysctlModule::conntrackStatsLocked() {
  auto ct = netfilter::Conntrack::open();
  Result<netfilter::ConntrackStats> st = ct ? ct->stats() : Result<netfilter::ConntrackStats>(std::unexpected(ct.error()));
  if (!st) return Json::object().set("available", false).set("error", st.error().message());
  Json cpus = Json::array();
  for (const auto& c : st->cpus)
    cpus.push(Json::object()
                  .set("cpu", c.cpu)
                  .set("found", c.found)
                  .set("invalid", c.invalid)
                  .set("insert", c.insert)
                  .set("insert_failed", c.insertFailed)
                  .set("drop", c.drop)
                  .set("early_drop", c.earlyDrop)
                  .set("error", c.error)
                  .set("search_restart", c.searchRestart));
  const auto& t = st->total;
  return Json::object()
      .set("available", true)
      .set("count", st->fill.count)
      .set("max", st->fill.max)
      .set("percent", number(std::round(st->fill.percent() * 10) / 10))
      .set("threshold_percent", number(config_.fillWarningPercent))
      .set("totals", Json::object()
                         .set("found", t.found)
                         .set("invalid", t.invalid)
                         .set("insert_failed", t.insertFailed)
                         .set("drop", t.drop)
                         .set("early_drop", t.earlyDrop)
                         .set("error", t.error))
      .set("cpus", cpus);
}

void SysctlModule::publishLocked(const PassResult& r) {
  core::ModuleState s;
  s.name = name();
  size_t total = r.plan.size(), inSync = 0, netns = 0, failed = 0, pending = 0, drifted = driftedNow_.size();
  std::vector<std::string> failedKeys, netnsKeys;
  for (const auto& [key, st] : keyState_) {
    const auto& state = st.get("state").asString();
    if (state == "in-sync" || state == "changed") ++inSync;
    else if (state == "not-in-netns") ++netns, netnsKeys.push_back(key);
    else if (state == "pending") ++pending;
    else if (state != "drifted") ++failed, failedKeys.push_back(key + " (" + st.get("message").asString() + ")");
  }
  std::string summary = std::to_string(inSync) + "/" + std::to_string(total) + " keys in sync";
  if (netns) summary += ", " + std::to_string(netns) + " host-level keys not writable in this network namespace";
  if (failed) summary += ", " + std::to_string(failed) + " failed";
  if (drifted) summary += ", " + std::to_string(drifted) + " drifted (report mode)";
  if (pending) summary += ", " + std::to_string(pending) + (reverted_ ? " not enforced (reverted)" : " to change (dry run)");
  summary += ", drift events " + std::to_string(driftTotal_);

  Condition tuned{"SysctlTuned", true, "InSync", "all " + std::to_string(total) + " desired keys hold"};
  if (reverted_) {
    tuned = {"SysctlTuned", false, "Reverted", "originals restored; run `nodeagentctl sysctl apply` to enforce again"};
  } else if (failed) {
    std::string list;
    for (size_t i = 0; i < failedKeys.size() && i < 3; ++i) list += (i ? "; " : "") + failedKeys[i];
    tuned = {"SysctlTuned", false, "KeysFailed", std::to_string(failed) + " keys failed: " + list};
  } else if (drifted) {
    tuned = {"SysctlTuned", false, "Drifted", std::to_string(drifted) + " keys changed outside nodeagent (drift_mode report)"};
  } else if (netns) {
    tuned = {"SysctlTuned", true, "NamespaceLimited",
             std::to_string(netns) + " host-level keys cannot be set from this network namespace: " + netnsKeys.front() +
                 (netns > 1 ? ", ..." : "")};
  }
  s.conditions.push_back(tuned);
  s.health = failed || drifted ? Health::kDegraded : Health::kHealthy;

  if (conntrack_.get("available").asBool()) {
    double p = conntrack_.get("percent").asDouble();
    bool pressure = p >= config_.fillWarningPercent;
    s.conditions.push_back({"ConntrackPressure", pressure, pressure ? "FillAboveThreshold" : "FillBelowThreshold",
                            "conntrack table " + pct(p) + "% full (" + std::to_string(conntrack_.get("count").asInt()) +
                                "/" + std::to_string(conntrack_.get("max").asInt()) + "), warning at " +
                                pct(config_.fillWarningPercent) + "%"});
    if (pressure) s.health = Health::kDegraded;
    summary += "; conntrack " + pct(p) + "% full";
  }
  s.summary = summary;

  Json keys = Json::array();
  for (const auto& p : r.plan) keys.push(keyState_[p.spec.key]);
  s.details = Json::object()
                  .set("profile", config_.profile)
                  .set("drift_mode", config_.driftMode == DriftMode::kEnforce ? "enforce" : "report")
                  .set("reverted", reverted_)
                  .set("network_namespace", opts_.initialNetns ? "initial" : "non-initial")
                  .set("keys_total", total)
                  .set("keys_in_sync", inSync)
                  .set("keys_failed", failed)
                  .set("keys_not_in_netns", netns)
                  .set("drift_events", driftTotal_)
                  .set("drift_restored", driftRestored_)
                  .set("drop_in", opts_.dropInPath)
                  .set("keys", keys)
                  .set("conntrack", conntrack_);

  auto gauge = [&](std::string n, std::string help, double v, std::vector<std::pair<std::string, std::string>> l = {}) {
    s.metrics.push_back({std::move(n), std::move(help), Metric::Type::kGauge, std::move(l), v});
  };
  auto counter = [&](std::string n, std::string help, double v) {
    s.metrics.push_back({std::move(n), std::move(help), Metric::Type::kCounter, {}, v});
  };
  gauge("nodeagent_sysctl_keys", "Desired sysctl keys by state", double(inSync), {{"state", "in_sync"}});
  gauge("nodeagent_sysctl_keys", "Desired sysctl keys by state", double(failed), {{"state", "failed"}});
  gauge("nodeagent_sysctl_keys", "Desired sysctl keys by state", double(netns), {{"state", "not_in_netns"}});
  gauge("nodeagent_sysctl_keys", "Desired sysctl keys by state", double(drifted), {{"state", "drifted"}});
  counter("nodeagent_sysctl_drift_total", "Values changed outside nodeagent", double(driftTotal_));
  counter("nodeagent_sysctl_drift_restored_total", "Drifted values nodeagent restored", double(driftRestored_));
  if (conntrack_.get("available").asBool()) {
    gauge("nodeagent_conntrack_entries", "Conntrack entries in this network namespace", double(conntrack_.get("count").asInt()));
    gauge("nodeagent_conntrack_max", "nf_conntrack_max", double(conntrack_.get("max").asInt()));
    gauge("nodeagent_conntrack_fill_ratio", "Conntrack entries / max", conntrack_.get("percent").asDouble() / 100);
    const auto& t = conntrack_.get("totals");
    counter("nodeagent_conntrack_insert_failed_total", "Conntrack insert failures (all CPUs)", double(t.get("insert_failed").asInt()));
    counter("nodeagent_conntrack_drop_total", "Packets dropped by conntrack (all CPUs)", double(t.get("drop").asInt()));
    counter("nodeagent_conntrack_early_drop_total", "Entries dropped early for room (all CPUs)", double(t.get("early_drop").asInt()));
    counter("nodeagent_conntrack_invalid_total", "Invalid packets seen by conntrack (all CPUs)", double(t.get("invalid").asInt()));
  }
  ctx_.store->publish(std::move(s));
}

Result<void> SysctlModule::reconcile(const core::ReconcileContext& ctx) {
  std::lock_guard lock(mu_);
  takePendingLocked();
  if (!config_.enabled) {
    ctx_.store->publish({.name = name(), .health = Health::kDisabled, .summary = "disabled in config"});
    return {};
  }
  auto r = passLocked(!ctx.dryRun && !reverted_);
  if (!r) {
    ctx_.store->publish({.name = name(), .health = Health::kFailed, .summary = r.error().message()});
    return fail(r.error());
  }
  if (opts_.conntrackStats) {
    conntrack_ = conntrackStatsLocked();
    if (conntrack_.get("available").asBool() && conntrack_.get("percent").asDouble() >= config_.fillWarningPercent)
      log::get("sysctl")->warn("conntrack table {}% full ({} of {})", pct(conntrack_.get("percent").asDouble()),
                               conntrack_.get("count").asInt(), conntrack_.get("max").asInt());
  }
  publishLocked(*r);
  return {};
}

Json SysctlModule::statusItemsLocked() const {
  Json items = Json::array();
  for (const auto& key : keyOrder_)
    if (auto it = keyState_.find(key); it != keyState_.end()) items.push(it->second);
  return items;
}

std::vector<core::CommandSpec> SysctlModule::commands() const {
  return {
      {.command = "plan", .help = "current and desired value of every managed sysctl"},
      {.command = "status", .help = "per-key state, drift counts and where each key comes from"},
      {.command = "apply", .help = "apply the desired sysctls now (resumes after a revert)", .mutating = true},
      {.command = "revert", .help = "restore the saved original values and remove the sysctl.d file", .mutating = true},
      {.command = "stats", .group = "conntrack", .help = "conntrack fill level and per-CPU statistics"},
  };
}

Result<Json> SysctlModule::call(const core::CallRequest& req, core::CallOutput& out) {
  std::lock_guard lock(mu_);
  takePendingLocked();
  const Json planColumns = Json(Json::Array{"key", "current", "desired", "mode", "action", "write", "source", "note"});
  if (req.command == "plan" || (req.command == "apply" && req.dryRun)) {
    auto desired = desiredKeys(config_);
    if (!desired) return fail(desired.error());
    Json items = Json::array();
    size_t sets = 0, errors = 0;
    for (const auto& p : tuner_.plan(*desired)) {
      sets += p.action == Action::kSet;
      errors += p.action == Action::kError;
      items.push(toJson(p));
    }
    return Json::object()
        .set("items", items)
        .set("columns", planColumns)
        .set("keys", desired->size())
        .set("to_change", sets)
        .set("errors", errors)
        .set("reverted", reverted_);
  }
  if (req.command == "status") {
    return Json::object()
        .set("items", statusItemsLocked())
        .set("columns", Json(Json::Array{"key", "state", "value", "desired", "mode", "drifts", "source", "message"}))
        .set("drift_mode", config_.driftMode == DriftMode::kEnforce ? "enforce" : "report")
        .set("drift_events", driftTotal_)
        .set("drift_restored", driftRestored_)
        .set("reverted", reverted_)
        .set("drop_in", opts_.dropInPath);
  }
  if (req.command == "apply") {
    if (!config_.enabled) return failInvalid("the sysctl module is disabled in the config");
    if (ctx_.dryRun) return failInvalid("the daemon runs with --dry-run: it changes nothing");
    if (reverted_) {
      if (::unlink(revertedMarker_.c_str()) != 0 && errno != ENOENT) return failErrno("remove " + revertedMarker_);
      reverted_ = false;
      log::get("sysctl")->info("apply requested: enforcing the desired sysctls again");
    }
    auto r = passLocked(true);
    if (!r) return fail(r.error());
    publishLocked(*r);
    Json items = Json::array();
    size_t changed = 0, failed = 0;
    for (const auto& a : r->applied) {
      changed += a.changed;
      failed += a.error != KeyError::kNone && a.error != KeyError::kNotInNetns;
      items.push(toJson(a));
    }
    return Json::object()
        .set("items", items)
        .set("columns", Json(Json::Array{"key", "before", "after", "changed", "in_sync", "error", "message"}))
        .set("changed", changed)
        .set("failed", failed)
        .set("exit_code", failed ? 1 : 0);
  }
  if (req.command == "revert") {
    Originals originals(originalsPath_);
    if (auto l = originals.load(); !l) return fail(l.error());
    if (req.dryRun || ctx_.dryRun) {
      Json items = Json::array();
      for (const auto& [k, v] : originals.values()) {
        auto cur = tuner_.tree().read(k);
        items.push(Json::object().set("key", k).set("current", cur ? Json(*cur) : Json()).set("restore", v));
      }
      return Json::object().set("items", items).set("remove", opts_.dropInPath);
    }
    auto results = tuner_.revert(originals);
    Json items = Json::array();
    size_t failed = 0;
    for (const auto& a : results) {
      failed += a.error != KeyError::kNone;
      items.push(toJson(a));
      if (a.changed) log::get("sysctl")->info("reverted {}: \"{}\" -> \"{}\"", a.key, a.before.value_or(""), a.after.value_or(""));
    }
    if (::unlink(opts_.dropInPath.c_str()) == 0)
      log::get("sysctl")->info("removed {}", opts_.dropInPath);
    if (auto m = makeDirs(ctx_.stateDir, 0750); m) (void)writeFileAtomic(revertedMarker_, "reverted\n", 0640);
    reverted_ = true;
    lastSeen_.clear();
    driftedNow_.clear();
    if (ctx_.trigger) ctx_.trigger();
    return Json::object()
        .set("items", items)
        .set("columns", Json(Json::Array{"key", "before", "after", "changed", "error", "message"}))
        .set("removed", opts_.dropInPath)
        .set("failed", failed)
        .set("exit_code", failed ? 1 : 0);
  }
  if (req.command == "stats") {
    Json st = conntrackStatsLocked();
    if (!st.get("available").asBool()) return failInvalid("conntrack statistics: " + st.get("error").asString());
    conntrack_ = st;
    Json out = Json::object()
                   .set("items", st.get("cpus"))
                   .set("count", st.get("count"))
                   .set("max", st.get("max"))
                   .set("percent", st.get("percent"))
                   .set("threshold_percent", st.get("threshold_percent"))
                   .set("totals", st.get("totals"));
    return out;
  }
  return Module::call(req, out);
}

}  // namespace nodeagent::sysctl
