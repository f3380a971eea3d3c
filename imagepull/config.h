// The `imagepull:` section of nodeagent's config.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/config_reader.h"
#include "common/json.h"

namespace nodeagent::imagepull {

// Prefetch sets from the cluster (imagepull/README.md): one ConfigMap in the agent's namespace.
struct ClusterSetsConfig {
  // auto: watch the ConfigMap when the Kubernetes API is configured (kube.mode); true: it
  // must be (an error otherwise); false: local lists only.
  std::string enabled = "auto";
  std::string namespace_ = "kube-system";
  std::string configMap = "nodeagent-prefetch";
};

struct Config {
  // "auto": prefetch runs only when images are configured, so a node without containerd
  // (and no image lists) is not degraded. "true" always talks to the runtime; "false" never.
  std::string enabled = "auto";
  std::string runtimeEndpoint = "unix:///run/containerd/containerd.sock";
  std::vector<std::string> base;         // OS images: pulled first, at start
  std::vector<std::string> environment;  // runtimes: pulled after base, re-checked on an interval
  unsigned concurrency = 3;              // pulls in flight, all registries
  unsigned perRegistry = 3;              // pulls in flight against one registry host
  std::chrono::milliseconds attemptTimeout{std::chrono::minutes(10)};
  std::chrono::milliseconds refreshInterval{std::chrono::hours(1)};
  std::chrono::milliseconds startSpread{std::chrono::minutes(2)};
  std::chrono::milliseconds backoffInitial{std::chrono::seconds(2)};
  std::chrono::milliseconds backoffMax{std::chrono::minutes(5)};
  unsigned maxAttempts = 8;           // for retryable errors (Unavailable, DeadlineExceeded, ...)
  unsigned maxPermanentAttempts = 2;  // for NotFound, auth and invalid-reference errors
  double diskHighWaterPercent = 80;   // below kubelet's 85% image GC high threshold
  std::chrono::milliseconds diskRecheck{std::chrono::seconds(30)};
  // How often the runtime's image list is compared with what the agent pulled: an image
  // removed behind its back (the kubelet's image GC, `crictl rmi`) is reported and pulled
  // again only after removal_backoff (doubling per removal of the same image) and while
  // the disk guard allows, so the agent never fights the GC in a loop.
  std::chrono::milliseconds presenceCheck{std::chrono::minutes(1)};
  std::chrono::milliseconds removalBackoffInitial{std::chrono::minutes(10)};
  std::chrono::milliseconds removalBackoffMax{std::chrono::hours(6)};
  bool pinBase = true;  // label base images io.cri-containerd.pinned=pinned (containerd >= 1.7.10 honours it)
  std::string authFile = "/var/lib/kubelet/config.json";
  int maxReceiveBytes = 64 << 20;
  ClusterSetsConfig clusterSets;

  // Whether the module runs prefetch at all (see `enabled`).
  bool active() const { return enabled == "true" || (enabled == "auto" && !(base.empty() && environment.empty())); }
};

void parseConfig(ConfigMap m, Config& c);
Json toJson(const Config& c);

}  // namespace nodeagent::imagepull
