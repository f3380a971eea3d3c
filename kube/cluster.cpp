#include "kube/cluster.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "common/files.h"

namespace nodeagent::kube {

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  };
}

namespace {

// kubeconfig "*-data" fields are base64.
Result<std::string> base64Decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    int v = val(c);
    if (v < 0) return failInvalid("invalid base64");
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return out;
}

std::string dirOf(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Relative paths in a kubeconfig are relative to the file itself.
std::string resolvePath(const std::string& base, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return dirOf(base) + "/" + p;
}

YAML::Node findNamed(const YAML::Node& list, const std::string& name, const char* field) {
  if (!list.IsSequence()) return {};
  for (const auto& item : list)
    if (item["name"] && item["name"].as<std::string>("") == name) return item[field];
  return {};
}

std::string str(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap() || !n[key] || !n[key].IsScalar()) return "";
  return n[key].Scalar();
}

}  // namespace

Result<ClusterConfig> loadInCluster(const std::string& saDir, const EnvLookup& env) {
  auto host = env("KUBERNETES_SERVICE_HOST");
  auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return failInvalid("in-cluster config: KUBERNETES_SERVICE_HOST/PORT not set");
  ClusterConfig c;
  bool v6 = host->find(':') != std::string::npos;
  c.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  c.tokenFile = saDir + "/token";
  c.caFile = saDir + "/ca.crt";
  if (!pathExists(c.tokenFile)) return failInvalid("in-cluster config: no service-account token at " + c.tokenFile);
  if (!pathExists(c.caFile)) return failInvalid("in-cluster config: no CA bundle at " + c.caFile);
  c.source = "in-cluster";
  return c;
}

Result<ClusterConfig> loadKubeconfig(const std::string& path) {
  auto text = readFile(path);
  if (!text) return fail(text.error().wrap("kubeconfig"));
  YAML::Node doc;
  try {
    doc = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return failInvalid("kubeconfig " + path + ": " + e.what());
  }
  std::string ctxName = str(doc, "current-context");
  if (ctxName.empty()) return failInvalid("kubeconfig " + path + ": no current-context");
  auto ctx = findNamed(doc["contexts"], ctxName, "context");
  if (!ctx) return failInvalid("kubeconfig " + path + ": context \"" + ctxName + "\" not found");
  std::string clusterName = str(ctx, "cluster"), userName = str(ctx, "user");
  auto cluster = findNamed(doc["clusters"], clusterName, "cluster");
  if (!cluster) return failInvalid("kubeconfig " + path + ": cluster \"" + clusterName + "\" not found");
  ClusterConfig c;
  c.source = "kubeconfig " + path + " (context " + ctxName + ")";
  c.server = str(cluster, "server");
  if (c.server.rfind("https://", 0) != 0)
    return failInvalid("kubeconfig " + path + ": cluster \"" + clusterName + "\" server must be https://, got \"" + c.server + "\"");
  c.caFile = resolvePath(path, str(cluster, "certificate-authority"));
  if (auto d = str(cluster, "certificate-authority-data"); !d.empty()) {
    auto pem = base64Decode(d);
    if (!pem) return failInvalid("kubeconfig " + path + ": certificate-authority-data: " + pem.error().message());
    c.caData = *pem;
  }
  c.insecureSkipVerify = str(cluster, "insecure-skip-tls-verify") == "true";
  if (!userName.empty()) {
    auto user = findNamed(doc["users"], userName, "user");
    if (!user) return failInvalid("kubeconfig " + path + ": user \"" + userName + "\" not found");
    c.token = str(user, "token");
    c.tokenFile = resolvePath(path, str(user, "tokenFile"));
    c.certFile = resolvePath(path, str(user, "client-certificate"));
    c.keyFile = resolvePath(path, str(user, "client-key"));
    for (auto [field, out] : {std::pair{"client-certificate-data", &c.certData}, std::pair{"client-key-data", &c.keyData}}) {
      if (auto d = str(user, field); !d.empty()) {
        auto pem = base64Decode(d);
        if (!pem) return failInvalid("kubeconfig " + path + ": " + field + ": " + pem.error().message());
        *out = *pem;
      }
    }
    if (user["exec"] || user["auth-provider"])
      return failInvalid("kubeconfig " + path + ": user \"" + userName + "\" uses exec/auth-provider plugins, which nodeagent does not run; use a token or client certificate");
  }
  return c;
}

Result<std::optional<ClusterConfig>> resolveCluster(const Config& c, const std::string& saDir, const EnvLookup& env) {
  if (c.mode == "off") return std::optional<ClusterConfig>();
  if (c.mode == "in-cluster") {
    auto r = loadInCluster(saDir, env);
    if (!r) return fail(r.error());
    return std::optional<ClusterConfig>(*r);
  }
  if (c.mode == "kubeconfig") {
    auto r = loadKubeconfig(c.kubeconfig);
    if (!r) return fail(r.error());
    return std::optional<ClusterConfig>(*r);
  }
  // auto
  if (env("KUBERNETES_SERVICE_HOST") && pathExists(saDir + "/token")) {
    auto r = loadInCluster(saDir, env);
    if (!r) return fail(r.error());
    return std::optional<ClusterConfig>(*r);
  }
  if (!c.kubeconfig.empty()) {
    auto r = loadKubeconfig(c.kubeconfig);
    if (!r) return fail(r.error());
    return std::optional<ClusterConfig>(*r);
  }
  return std::optional<ClusterConfig>();
}

}  // namespace nodeagent::kube
