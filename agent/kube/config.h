// Config of the Kubernetes side of the agent: how to reach the API server (`kube:`), how
// node status is reported, and the local outputs (`metrics:`, `status_file:`).
#pragma once

#include <chrono>
#include <string>

#include "common/config_reader.h"
#include "common/json.h"

namespace nodeagent::kube {

using std::chrono::milliseconds;

struct StatusSection {
  std::string conditionPrefix = "NodeAgent";  // every condition the agent owns starts with it
  milliseconds coalesceWindow{1000};           // changes within it go out in one patch
  milliseconds resyncInterval{300'000};        // compare the Node's copy; patch only if it differs
  double resyncJitter = 0.1;                   // +-5% of the interval by default
  bool watchNode = true;                       // re-patch when someone removes our conditions
  milliseconds watchTimeout{300'000};          // server-side watch timeout (timeoutSeconds)
};

struct EventsSection {
  bool enabled = true;
  std::string namespace_ = "default";  // where kubelet puts Node events too
  int burst = 10;                      // token bucket: this many at once,
  milliseconds refillInterval{300'000};  // then one more per interval (client-go's spam filter)
  milliseconds dedupWindow{600'000};   // same event again within it: count++ on the old one
};

struct Config {
  // auto: in-cluster when KUBERNETES_SERVICE_HOST and the service-account token exist,
  // else `kubeconfig` when set, else off. off: no API traffic at all (standalone node).
  std::string mode = "auto";
  std::string kubeconfig;  // path; never guessed from $KUBECONFIG or ~/.kube
  double qps = 5;
  int burst = 10;
  milliseconds connectTimeout{5000};
  milliseconds requestTimeout{30000};
  int maxAttempts = 5;  // per request, for connection errors, 5xx and 429
  StatusSection status;
  EventsSection events;
};

// `metrics:` and `status_file:`: local outputs that work with or without Kubernetes.
struct OutputsConfig {
  std::string metricsAddress = "127.0.0.1:9464";  // "" disables /metrics
  // "" disables the file. When not set in the config, the daemon puts it next to the
  // control socket (so /run/nodeagent/status.json by default, and a test daemon with its
  // own socket directory keeps its status file there too).
  std::string statusFile = "/run/nodeagent/status.json";
  bool statusFileSet = false;
};

void parseConfig(ConfigMap m, Config& c);
Json toJson(const Config& c);
void parseMetricsConfig(ConfigMap m, OutputsConfig& c);
void parseStatusFileConfig(ConfigMap m, OutputsConfig& c);
Json metricsToJson(const OutputsConfig& c);
Json statusFileToJson(const OutputsConfig& c);

}  // namespace nodeagent::kube
