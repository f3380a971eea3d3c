#include "core/state_store.h"

namespace nodeagent::core {

std::string_view healthName(Health h) {
  switch (h) {
    case Health::kStarting: return "starting";
    case Health::kHealthy: return "healthy";
    case Health::kDegraded: return "degraded";
    case Health::kFailed: return "failed";
    case Health::kDisabled: return "disabled";
  }
  return "unknown";
}

static bool sameState(const ModuleState& a, const ModuleState& b) {
  if (a.health != b.health || a.summary != b.summary || a.conditions != b.conditions) return false;
  if (!(a.details == b.details) || a.metrics.size() != b.metrics.size()) return false;
  for (size_t i = 0; i < a.metrics.size(); ++i)
    if (a.metrics[i].name != b.metrics[i].name || a.metrics[i].value != b.metrics[i].value ||
        a.metrics[i].labels != b.metrics[i].labels)
      return false;
  return true;
}

void StateStore::bumpLocked() {
  ++version_;
  cv_.notify_all();
}

void StateStore::publish(ModuleState state) {
  {
    std::lock_guard lock(mu_);
    auto& slot = modules_[state.name];
    if (slot.state.name == state.name && sameState(slot.state, state)) return;
    slot.state = std::move(state);
    bumpLocked();
  }
  notifySubscribers();
}

void StateStore::recordReconcile(const std::string& module, bool ok, const std::string& error,
                                 std::chrono::milliseconds duration) {
  bool changed;
  {
    std::lock_guard lock(mu_);
    auto& slot = modules_[module];
    if (slot.state.name.empty()) slot.state.name = module;
    auto& r = slot.runner;
    changed = !r.firstPassDone || r.lastError != error;
    r.reconciles++;
    if (!ok) r.failures++;
    r.lastError = error;
    r.lastDuration = duration;
    r.lastReconcile = std::chrono::system_clock::now();
    r.firstPassDone = true;
    // Counting passes alone is not news: readers wake only for what they would show.
    if (changed) bumpLocked();
  }
  if (changed) notifySubscribers();
}

void StateStore::publishAgentInfo(const std::string& key, Json value) {
  {
    std::lock_guard lock(mu_);
    if (agentInfo_.get(key) == value) return;
    agentInfo_.set(key, std::move(value));
    bumpLocked();
  }
  notifySubscribers();
}

void StateStore::notifySubscribers() const {
  std::lock_guard lock(subscribersMu_);
  for (const auto& [_, fn] : subscribers_) fn();
}

StateStore::Subscription StateStore::subscribe(std::function<void()> onChange) const {
  std::lock_guard lock(subscribersMu_);
  uint64_t id = nextSubscriber_++;
  subscribers_.emplace(id, std::move(onChange));
  return Subscription(this, id);
}

void StateStore::Subscription::reset() {
  if (!store_) return;
  std::lock_guard lock(store_->subscribersMu_);
  store_->subscribers_.erase(id_);
  store_ = nullptr;
}

std::optional<ModuleSnapshot> StateStore::get(const std::string& module) const {
  std::lock_guard lock(mu_);
  auto it = modules_.find(module);
  if (it == modules_.end()) return std::nullopt;
  return it->second;
}

std::vector<ModuleSnapshot> StateStore::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ModuleSnapshot> out;
  out.reserve(modules_.size());
  for (const auto& [_, s] : modules_) out.push_back(s);
  return out;
}

Json StateStore::agentInfo() const {
  std::lock_guard lock(mu_);
  return agentInfo_;
}

uint64_t StateStore::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

StateStore::Change StateStore::waitForChange(uint64_t since, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return closed_ || version_ > since; });
  return {version_, closed_};
}

bool StateStore::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void StateStore::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  notifySubscribers();
}

Health overallHealth(const std::vector<ModuleSnapshot>& modules) {
  Health worst = Health::kHealthy;
  auto rank = [](Health h) {
    switch (h) {
      case Health::kHealthy: return 0;
      case Health::kStarting: return 1;
      case Health::kDegraded: return 2;
      case Health::kFailed: return 3;
      default: return -1;
    }
  };
  for (const auto& m : modules) {
    Health h = m.state.health;
    if (h == Health::kDisabled) continue;
    if (m.runner.firstPassDone && !m.runner.lastError.empty() && rank(h) < rank(Health::kDegraded))
      h = Health::kDegraded;
    if (rank(h) > rank(worst)) worst = h;
  }
  return worst;
}

std::string summarize(const std::vector<ModuleSnapshot>& modules) {
  Health overall = overallHealth(modules);
  std::string out(healthName(overall));
  std::string parts;
  for (const auto& m : modules) {
    if (m.state.health == Health::kDisabled) continue;
    std::string part = m.state.name;
    if (!m.state.summary.empty()) part += " " + m.state.summary;
    if (!m.runner.lastError.empty()) part += " (error: " + m.runner.lastError + ")";
    parts += (parts.empty() ? "" : "; ") + part;
  }
  if (!parts.empty()) out += ": " + parts;
  // STATUS= is one line; keep it short enough to read in `systemctl status`.
  for (auto& c : out)
    if (c == '\n') c = ' ';
  if (out.size() > 400) out = out.substr(0, 397) + "...";
  return out;
}

}  // namespace nodeagent::core
