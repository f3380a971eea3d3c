#include "tests/kube/test_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "common/files.h"

namespace nodeagent::kube::testing {

namespace {
void run(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
}
}  // namespace

TestServer::TestServer(ServerOptions o) {
  char tmpl[] = "/tmp/nodeagent-kube-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  dir_ = tmpl;
  // A throw-away CA and a server certificate for 127.0.0.1, valid for a day.
  const std::string d = dir_;
  auto ext = writeFileAtomic(d + "/ext.cnf",
                             "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                             "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
  if (!ext) throw std::runtime_error(ext.error().message());
  run("cd " + d + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
      "-out ca.crt -days 1 -subj /CN=nodeagent-test-ca 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr "
      "-subj /CN=127.0.0.1 2>/dev/null && "
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 "
      "-extfile ext.cnf 2>/dev/null");
  std::vector<std::string> args = {"python3", KUBE_TEST_SERVER, "--cert", d + "/server.crt", "--key", d + "/server.key",
                                   "--port-file", d + "/port", "--bookmark-interval", std::to_string(o.bookmarkInterval),
                                   "--history", std::to_string(o.history)};
  for (const auto& t : o.tokens) args.insert(args.end(), {"--token", t});
  for (const auto& n : o.nodes) args.insert(args.end(), {"--node", n});
  if (!o.logBodies) args.push_back("--no-log-bodies");
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
    int logFd = ::open((d + "/server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (logFd >= 0) {
      dup2(logFd, 1);
      dup2(logFd, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("python3", argv.data());
    _exit(127);
  }
  for (int i = 0; i < 200 && !pathExists(d + "/port"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto port = readFile(d + "/port");
  if (!port) throw std::runtime_error("kube test server did not start");
  port_ = std::stoi(*port);
  ClusterConfig admin{.server = url(), .caFile = caFile(), .token = "admin-token", .source = "test admin"};
  auto c = Client::create(admin, ClientOptions{.qps = 1000, .burst = 1000, .maxAttempts = 1});
  if (!c) throw std::runtime_error(c.error().message());
  admin_ = std::move(*c);
}

TestServer::~TestServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty() && dir_.rfind("/tmp/nodeagent-kube-", 0) == 0) (void)std::system(("rm -rf " + dir_).c_str());
}

ClusterConfig TestServer::agentCluster(const std::string& token) {
  writeToken(token);
  return ClusterConfig{.server = url(), .caFile = caFile(), .tokenFile = tokenFile(), .source = "test"};
}

void TestServer::writeToken(const std::string& token) {
  auto r = writeFileAtomic(tokenFile(), token + "\n", 0600);
  if (!r) throw std::runtime_error(r.error().message());
}

Json TestServer::control(const std::string& method, const std::string& path, const Json& body) {
  auto r = admin_->request(method, path, body.isNull() ? "" : body.dump());
  if (!r) throw std::runtime_error(r.error().message());
  auto j = Json::parse(r->body);
  if (!j) throw std::runtime_error(j.error().message());
  return *j;
}

Json::Array TestServer::requests() { return control("GET", "/_test/requests").get("requests").asArray(); }

void TestServer::setTokens(const std::vector<std::string>& tokens) {
  Json list = Json::array();
  for (const auto& t : tokens) list.push(t);
  control("POST", "/_test/tokens", Json::object().set("tokens", list));
}

Json TestServer::node(const std::string& name) {
  auto r = admin_->get("/api/v1/nodes/" + name);
  if (!r) throw std::runtime_error(r.error().message());
  return *Json::parse(r->body);
}

int TestServer::count(const std::string& method, const std::string& path) {
  int n = 0;
  for (const auto& e : requests())
    if (e.get("method").asString() == method && e.get("path").asString() == path) ++n;
  return n;
}

}  // namespace nodeagent::kube::testing
