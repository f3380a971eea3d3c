// Registry credentials from a docker-style config.json ({"auths": {HOST: {...}}}) or a
// kubelet-style / legacy .dockercfg file ({HOST: {...}}), looked up by registry host.
// Secrets stay in this struct: nothing here formats them into a string, and Credential
// has no printer, so they cannot end up in a log line or in status output by accident.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace nodeagent::imagepull {

struct Credential {
  std::string username;
  std::string password;
  std::string identityToken;
  std::string registryToken;
};

class CredentialStore {
 public:
  CredentialStore() = default;
  // Parses the file text. `source` names the file in errors (never its content).
  [[nodiscard]] static Result<CredentialStore> parse(const std::string& text, const std::string& source);
  // Loads `path`; a missing file is an empty store (a node without private registries).
  [[nodiscard]] static Result<CredentialStore> load(const std::string& path);
  // A kubernetes.io/dockerconfigjson (or legacy kubernetes.io/dockercfg) Secret as the API
  // returns it: its data decoded and parsed. `where` ("secret kube-system/regcred") names it
  // in errors, which never quote its content.
  [[nodiscard]] static Result<CredentialStore> fromSecret(const std::string& body, const std::string& where);
  // Adds `other`'s hosts; where both have a host, `other`'s credential wins.
  void merge(const CredentialStore& other);

  // The credential for a registry host ("127.0.0.1:5000", "docker.io"), if any.
  std::optional<Credential> lookup(const std::string& registryHost) const;
  // The hosts that have credentials (safe to show).
  std::vector<std::string> hosts() const;
  size_t size() const { return byHost_.size(); }

 private:
  std::map<std::string, Credential> byHost_;
};

// The host part of a config key: "https://index.docker.io/v1/" -> "docker.io",
// "http://127.0.0.1:5000/x" -> "127.0.0.1:5000".
std::string normaliseRegistryHost(std::string key);

// Standard base64 (with or without padding); nullopt on bad input.
std::optional<std::string> decodeBase64(std::string_view in);

}  // namespace nodeagent::imagepull
