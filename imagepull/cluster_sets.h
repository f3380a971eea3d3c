// ClusterSetSource: the prefetch sets this node should hold, from the cluster. Lists and
// watches one ConfigMap in the agent's namespace (field selector metadata.name, so RBAC can
// grant exactly that object by resourceNames) and the agent's own Node (its labels), with
// kube::ListWatch (bookmarks, resume, one relist on 410). A change of either re-parses the
// sets and re-evaluates which ones the Node's labels select. Never writes to the API.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "imagepull/prefetch_set.h"
#include "kube/client.h"
#include "kube/list_watch.h"

namespace nodeagent::imagepull {

struct ClusterSetsOptions {
  std::string ns = "kube-system";
  std::string configMap = "nodeagent-prefetch";
  std::string nodeName;
  std::chrono::milliseconds watchTimeout{std::chrono::minutes(5)};
};

struct ClusterSetsView {
  bool nodeListed = false;       // the Node's labels are known
  bool configMapListed = false;  // the ConfigMap was read (found or not)
  bool configMapFound = false;
  Labels labels;
  ParsedSets parsed;
  std::vector<std::string> selected;  // names of the valid sets the labels select
  bool synced() const { return nodeListed && configMapListed; }
};

class ClusterSetSource {
 public:
  ClusterSetSource(kube::Client& client, ClusterSetsOptions options);
  ~ClusterSetSource();
  ClusterSetSource(const ClusterSetSource&) = delete;
  ClusterSetSource& operator=(const ClusterSetSource&) = delete;

  // Starts the two watches; onChange runs (on a watch thread) after each change.
  void start(std::function<void()> onChange);
  void stop();

  ClusterSetsView view() const;
  // Sets rejected since the last call, each (name, problem) reported once.
  std::vector<RejectedSet> takeNewRejected();
  std::string where() const { return opts_.ns + "/" + opts_.configMap; }
  kube::ListWatchStats nodeWatch() const;
  kube::ListWatchStats configMapWatch() const;

  // The watch handlers, public so unit tests can drive the source without an API server.
  void setNode(const Json& node);
  void setConfigMap(const Json* configMap);  // null: absent or deleted

 private:
  void changed();

  kube::Client& client_;
  ClusterSetsOptions opts_;
  mutable std::mutex mu_;
  ClusterSetsView view_;
  std::set<std::pair<std::string, std::string>> reported_;  // rejections already taken
  std::function<void()> onChange_;
  std::unique_ptr<kube::ListWatch> nodeWatch_, configMapWatch_;
  std::vector<std::thread> threads_;
};

}  // namespace nodeagent::imagepull
