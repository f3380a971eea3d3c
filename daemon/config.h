// The agent's configuration: one section per module, strictly validated as a whole before
// anything uses it. An empty file (or no file) gives the built-in defaults.
#pragma once

#include <chrono>
#include <string>

#include "kube/config.h"
#include "reporter/config.h"
#include "common/json.h"
#include "common/result.h"
#include "ipvs/config.h"
#include "sysctl/config.h"
#include "imagepull/config.h"

namespace nodeagent::daemon {

struct AgentSection {
  std::string nodeName;  // empty: $NODE_NAME, else the host name
  std::string stateDir = "/var/lib/nodeagent";
  std::string logLevel = "info";
  std::string logFormat = "auto";
  std::chrono::milliseconds minInterval{1000};
  std::chrono::milliseconds maxInterval{60000};
};

struct ControlSection {
  std::string socket = "/run/nodeagent/nodeagent.sock";
  std::string socketGroup = "nodeagent";  // group of the socket when it exists
  unsigned socketMode = 0660;
};

struct Config {
  std::string source = "<built-in>";  // the file it came from
  AgentSection agent;
  ControlSection control;
  kube::Config kube;              // kube: API server access, node status, events
  reporter::OutputsConfig outputs;  // metrics: and status_file:
  ipvs::Config ipvs;
  sysctl::Config sysctl;
  imagepull::Config imagepull;

  // The effective config, every default filled in (for --check-config and `config show`).
  Json toJson() const;
};

// The default path; absent means the built-in defaults.
inline constexpr const char* kDefaultConfigPath = "/etc/nodeagent/config.yaml";

// Parses and validates YAML text. `source` names the file in every error message.
[[nodiscard]] Result<Config> parseConfig(const std::string& text, const std::string& source);
[[nodiscard]] Result<Config> loadConfigFile(const std::string& path);

// The node name: the configured one, else $NODE_NAME, else the host name.
std::string resolveNodeName(const Config& config);

}  // namespace nodeagent::daemon
