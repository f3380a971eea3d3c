// Config of the local outputs (`metrics:`, `status_file:`): they work with or without
// Kubernetes. The Node status reporter's own settings live under `kube:` (kube/config.h).
#pragma once

#include <string>

#include "common/config_reader.h"
#include "common/json.h"

namespace nodeagent::reporter {

// `metrics:` and `status_file:`: local outputs that work with or without Kubernetes.
struct OutputsConfig {
  std::string metricsAddress = "127.0.0.1:9464";  // "" disables /metrics
  // "" disables the file. When not set in the config, the daemon puts it next to the
  // control socket (so /run/nodeagent/status.json by default, and a test daemon with its
  // own socket directory keeps its status file there too).
  std::string statusFile = "/run/nodeagent/status.json";
  bool statusFileSet = false;
};

void parseMetricsConfig(ConfigMap m, OutputsConfig& c);
void parseStatusFileConfig(ConfigMap m, OutputsConfig& c);
Json metricsToJson(const OutputsConfig& c);
Json statusFileToJson(const OutputsConfig& c);

}  // namespace nodeagent::reporter
