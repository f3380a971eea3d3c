#include "imagepull/cluster_sets.h"

#include <algorithm>

#include "common/log.h"

namespace nodeagent::imagepull {

ClusterSetSource::ClusterSetSource(kube::Client& client, ClusterSetsOptions options)
    : client_(client), opts_(std::move(options)) {}

ClusterSetSource::~ClusterSetSource() { stop(); }

void ClusterSetSource::start(std::function<void()> onChange) {
  {
    std::lock_guard l(mu_);
    onChange_ = std::move(onChange);
  }
  // kubectl get node NODE --watch (the labels) and
  // kubectl -n NS get configmap NAME --watch (the sets), each by field selector.
  kube::ListWatchHandler node;
  node.onList = [this](const std::vector<Json>& items, const std::string&) {
    if (!items.empty()) setNode(items.front());
  };
  node.onEvent = [this](const std::string& type, const Json& obj) {
    if (type != "DELETED") setNode(obj);
  };
  kube::ListWatchHandler cm;
  cm.onList = [this](const std::vector<Json>& items, const std::string&) {
    setConfigMap(items.empty() ? nullptr : &items.front());
  };
  cm.onEvent = [this](const std::string& type, const Json& obj) { setConfigMap(type == "DELETED" ? nullptr : &obj); };
  nodeWatch_ = std::make_unique<kube::ListWatch>(
      client_,
      kube::ListWatchOptions{.path = "/api/v1/nodes",
                             .fieldSelector = "metadata.name=" + opts_.nodeName,
                             .watchTimeout = opts_.watchTimeout},
      std::move(node));
  configMapWatch_ = std::make_unique<kube::ListWatch>(
      client_,
      kube::ListWatchOptions{.path = "/api/v1/namespaces/" + opts_.ns + "/configmaps",
                             .fieldSelector = "metadata.name=" + opts_.configMap,
                             .watchTimeout = opts_.watchTimeout},
      std::move(cm));
  threads_.emplace_back([this] { nodeWatch_->run(); });
  threads_.emplace_back([this] { configMapWatch_->run(); });
}

void ClusterSetSource::stop() {
  if (nodeWatch_) nodeWatch_->stop();
  if (configMapWatch_) configMapWatch_->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void ClusterSetSource::setNode(const Json& node) {
  Labels labels;
  for (const auto& [k, v] : node.get("metadata").get("labels").asObject()) labels[k] = v.asString();
  {
    std::lock_guard l(mu_);
    if (view_.nodeListed && view_.labels == labels) return;
    view_.nodeListed = true;
    view_.labels = std::move(labels);
  }
  changed();
}

void ClusterSetSource::setConfigMap(const Json* configMap) {
  std::map<std::string, std::string> data;
  if (configMap)
    for (const auto& [k, v] : configMap->get("data").asObject()) data[k] = v.asString();
  auto parsed = parsePrefetchSets(data, where());
  {
    std::lock_guard l(mu_);
    if (view_.configMapListed && view_.configMapFound == (configMap != nullptr) && view_.parsed.sets == parsed.sets &&
        view_.parsed.rejected == parsed.rejected)
      return;
    view_.configMapListed = true;
    view_.configMapFound = configMap != nullptr;
    view_.parsed = std::move(parsed);
    // A set fixed (or removed) and broken again the same way is reported again.
    std::erase_if(reported_, [&](const auto& r) {
      return std::none_of(view_.parsed.rejected.begin(), view_.parsed.rejected.end(),
                          [&](const RejectedSet& x) { return x.name == r.first && x.problem == r.second; });
    });
  }
  changed();
}

void ClusterSetSource::changed() {
  std::function<void()> fn;
  {
    std::lock_guard l(mu_);
    view_.selected.clear();
    if (view_.nodeListed)
      for (const auto& s : view_.parsed.sets)
        if (selects(s, view_.labels)) view_.selected.push_back(s.name);
    fn = onChange_;
  }
  if (fn) fn();
}

ClusterSetsView ClusterSetSource::view() const {
  std::lock_guard l(mu_);
  return view_;
}

std::vector<RejectedSet> ClusterSetSource::takeNewRejected() {
  std::lock_guard l(mu_);
  std::vector<RejectedSet> out;
  for (const auto& r : view_.parsed.rejected)
    if (reported_.emplace(r.name, r.problem).second) out.push_back(r);
  return out;
}

kube::ListWatchStats ClusterSetSource::nodeWatch() const {
  return nodeWatch_ ? nodeWatch_->stats() : kube::ListWatchStats{};
}

kube::ListWatchStats ClusterSetSource::configMapWatch() const {
  return configMapWatch_ ? configMapWatch_->stats() : kube::ListWatchStats{};
}

}  // namespace nodeagent::imagepull
