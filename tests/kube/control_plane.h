// A real Kubernetes control plane (etcd + kube-apiserver, built by tests/k8s/build.sh) for
// the kube tier, started with tests/k8s/control-plane.sh in a temp dir and stopped when the
// test process ends (also when it crashes: a watchdog child stops it). Gives the tests the
// agent's ServiceAccount credentials, an admin client, kubectl, the apiserver's audit log
// (what the server really received) and etcd compaction.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/kube/client.h"
#include "common/json.h"
#include "tests/kube/eventually.h"

namespace nodeagent::kube::testing {

// Which audit events to count. Empty fields match anything.
struct AuditQuery {
  std::string verb;         // get, list, watch, create, patch, update, ...
  std::string resource;     // nodes, events, leases, ...
  std::string subresource;  // status
  std::string name;
  std::string user;        // e.g. system:serviceaccount:kube-system:nodeagent
  std::string userAgent;   // prefix of the request's User-Agent
  std::string stage = "ResponseComplete";  // watches are also logged at ResponseStarted
};

class ControlPlane {
 public:
  struct Options {
    std::string apiserverArgs;  // extra kube-apiserver flags (APISERVER_EXTRA_ARGS)
  };
  // Starts a control plane. Throws (the test fails) when it cannot start.
  explicit ControlPlane(Options o);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // One per test process, started on first use. NODEAGENT_K8S_ENV=DIR/env attaches to a
  // control plane started by hand instead (it is then left running).
  static ControlPlane& shared();

  const std::string& dir() const { return dir_; }
  std::string env(const std::string& key) const;  // a DIR/env value; throws when missing
  std::string url() const { return env("APISERVER_URL"); }
  std::string agentUser() const { return env("AGENT_SA"); }

  // The agent's cluster config from the agent kubeconfig (ServiceAccount token file).
  ClusterConfig agentCluster() const;
  // Same server and CA, token read from `tokenFile`.
  ClusterConfig clusterWithTokenFile(const std::string& tokenFile) const;
  // A client with the admin certificate and no rate limit, for the test's own requests.
  Client& admin() { return *admin_; }

  struct Run {
    int rc = -1;
    std::string out;  // stdout and stderr
  };
  Run kubectl(const std::vector<std::string>& args) const;
  // A new TokenRequest token of kube-system/nodeagent; bound to a Secret when
  // `boundSecret` is set (the token stops working when the Secret is deleted).
  std::string createToken(const std::string& boundSecret = "") const;

  // Creates the Node (and kubelet's Ready condition, as a kubelet would have set it).
  void createNode(const std::string& name);
  Json node(const std::string& name);

  // The audit log: mark() is its current end; events from a mark on, oldest first.
  size_t auditMark() const;
  std::vector<Json> audit(size_t from = 0) const;
  int countAudit(const AuditQuery& q, size_t from = 0) const;

  // etcd's current revision and a compaction up to it (etcdctl compact, via etcd's
  // gRPC-gateway JSON API).
  int64_t etcdRevision() const;
  void compactEtcd(int64_t revision) const;

 private:
  ControlPlane() = default;
  void load();
  std::string kubectlCommand(const std::vector<std::string>& args) const;

  std::string dir_;
  std::vector<std::pair<std::string, std::string>> env_;
  bool owned_ = false;
  pid_t watchdog_ = -1;
  std::unique_ptr<Client> admin_;
};

bool auditMatches(const Json& event, const AuditQuery& q);

}  // namespace nodeagent::kube::testing
