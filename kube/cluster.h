// Where the API server is and how to authenticate: from the in-cluster environment
// (service-account token, CA, KUBERNETES_SERVICE_HOST/PORT) or from a kubeconfig file.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "kube/config.h"
#include "common/result.h"

namespace nodeagent::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ClusterConfig {
  std::string server;  // https://host:port
  std::string caFile;  // PEM file, or
  std::string caData;  // PEM text
  bool insecureSkipVerify = false;
  std::string tokenFile;  // re-read when it changes (projected tokens rotate), or
  std::string token;      // a fixed token
  std::string certFile, certData, keyFile, keyData;  // client certificate
  std::string source;  // "in-cluster" or "kubeconfig PATH (context NAME)", for logs
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup processEnv();

[[nodiscard]] Result<ClusterConfig> loadInCluster(const std::string& serviceAccountDir = kServiceAccountDir,
                                                  const EnvLookup& env = processEnv());
// The current context of a kubeconfig: cluster server and CA, user token / tokenFile /
// client certificate (file or inline data).
[[nodiscard]] Result<ClusterConfig> loadKubeconfig(const std::string& path);

// Applies kube.mode: nullopt means "no Kubernetes here" (mode off, or auto without any
// environment); an error means the chosen mode cannot work.
[[nodiscard]] Result<std::optional<ClusterConfig>> resolveCluster(
    const Config& c, const std::string& serviceAccountDir = kServiceAccountDir, const EnvLookup& env = processEnv());

}  // namespace nodeagent::kube
