// Starts tests/kube/kube_api_server.py on a free 127.0.0.1 port with TLS (a CA and server
// certificate generated here with openssl) and bearer-token auth, and talks to its
// /_test/ control endpoints.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "agent/kube/client.h"
#include "common/json.h"
#include "tests/kube/eventually.h"

namespace nodeagent::kube::testing {

struct ServerOptions {
  std::vector<std::string> tokens = {"agent-token", "admin-token"};
  std::vector<std::string> nodes = {"node-1"};
  double bookmarkInterval = 0.5;
  int history = 10000;
  bool logBodies = true;
};

class TestServer {
 public:
  explicit TestServer(ServerOptions o = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string caFile() const { return dir_ + "/ca.crt"; }
  // A cluster config for the agent, with the token in a file (so it can rotate).
  ClusterConfig agentCluster(const std::string& token = "agent-token");
  // Writes a token file atomically (rename), as kubelet's projected volume does.
  void writeToken(const std::string& token);
  std::string tokenFile() const { return dir_ + "/token"; }

  Json control(const std::string& method, const std::string& path, const Json& body = Json());
  Json::Array requests();  // the request log, oldest first
  void clearRequests() { control("DELETE", "/_test/requests"); }
  void setFaults(Json rules) { control("POST", "/_test/faults", Json::object().set("rules", std::move(rules))); }
  void setTokens(const std::vector<std::string>& tokens);
  Json node(const std::string& name);
  Json stats() { return control("GET", "/_test/stats"); }
  // Counts log entries with this method whose path matches exactly.
  int count(const std::string& method, const std::string& path);
  // A client with the admin token and no rate limit, for the test's own requests.
  Client& admin() { return *admin_; }

 private:
  std::string dir_;
  int pid_ = -1;
  int port_ = 0;
  std::unique_ptr<Client> admin_;
};

}  // namespace nodeagent::kube::testing
