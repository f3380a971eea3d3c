#include "tests/kube/control_plane.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/files.h"

namespace nodeagent::kube::testing {

namespace {

const std::string kScript = K8S_SOURCE_DIR "/control-plane.sh";

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

ControlPlane::Run runShell(const std::string& cmd) {
  ControlPlane::Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return r;
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

// A child that outlives nothing: when the test process exits (normally or not) the kernel
// sends it SIGTERM and it stops the control plane.
pid_t startWatchdog(const std::string& dir) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  sigprocmask(SIG_BLOCK, &term, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == parent) {
    int sig = 0;
    sigwait(&term, &sig);
  }
  int devnull = ::open("/dev/null", O_WRONLY);
  if (devnull >= 0) {
    dup2(devnull, 1);
    dup2(devnull, 2);
  }
  execlp("bash", "bash", kScript.c_str(), "stop", dir.c_str(), static_cast<char*>(nullptr));
  _exit(127);
}

}  // namespace

ControlPlane::ControlPlane(Options o) {
  char tmpl[] = "/tmp/nodeagent-k8s-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  dir_ = tmpl;
  owned_ = true;
  watchdog_ = startWatchdog(dir_);
  std::string cmd = "APISERVER_EXTRA_ARGS=" + shellQuote(o.apiserverArgs) + " bash " + kScript + " start " + dir_;
  auto r = runShell(cmd + " 2>&1 >/dev/null");
  if (r.rc != 0)
    throw std::runtime_error("the Kubernetes control plane did not start (tests/k8s/control-plane.sh start " + dir_ +
                             "):\n" + r.out);
  load();
}

ControlPlane::~ControlPlane() {
  admin_.reset();
  if (!owned_) return;
  if (watchdog_ > 0) {
    kill(watchdog_, SIGTERM);
    waitpid(watchdog_, nullptr, 0);
  }
  if (!std::getenv("NODEAGENT_K8S_KEEP") && dir_.rfind("/tmp/nodeagent-k8s-", 0) == 0)
    (void)std::system(("rm -rf " + dir_).c_str());
}

ControlPlane& ControlPlane::shared() {
  static std::unique_ptr<ControlPlane> cp = [] {
    if (const char* env = std::getenv("NODEAGENT_K8S_ENV"); env && *env) {
      std::unique_ptr<ControlPlane> c(new ControlPlane());
      std::string path = env;
      c->dir_ = path.substr(0, path.rfind('/'));
      c->load();
      return c;
    }
    return std::make_unique<ControlPlane>(Options{});
  }();
  return *cp;
}

void ControlPlane::load() {
  auto text = readFile(dir_ + "/env");
  if (!text) throw std::runtime_error("control plane env: " + text.error().message());
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env_.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  ClusterConfig admin{.server = url(),
                      .caFile = env("CA_FILE"),
                      .certFile = dir_ + "/pki/admin.crt",
                      .keyFile = dir_ + "/pki/admin.key",
                      .source = "test admin"};
  auto c = Client::create(admin, ClientOptions{.qps = 1000, .burst = 1000, .maxAttempts = 1, .userAgent = "test-admin"});
  if (!c) throw std::runtime_error(c.error().message());
  admin_ = std::move(*c);
}

std::string ControlPlane::env(const std::string& key) const {
  for (const auto& [k, v] : env_)
    if (k == key) return v;
  throw std::runtime_error("control plane env has no " + key);
}

ClusterConfig ControlPlane::agentCluster() const {
  auto c = loadKubeconfig(env("KUBECONFIG_AGENT"));
  if (!c) throw std::runtime_error(c.error().message());
  return *c;
}

ClusterConfig ControlPlane::clusterWithTokenFile(const std::string& tokenFile) const {
  return ClusterConfig{.server = url(), .caFile = env("CA_FILE"), .tokenFile = tokenFile, .source = "test"};
}

std::string ControlPlane::kubectlCommand(const std::vector<std::string>& args) const {
  std::string cmd = shellQuote(env("BIN_DIR") + "/kubectl") + " --kubeconfig " + shellQuote(env("KUBECONFIG_ADMIN"));
  for (const auto& a : args) cmd += " " + shellQuote(a);
  return cmd;
}

ControlPlane::Run ControlPlane::kubectl(const std::vector<std::string>& args) const {
  return runShell(kubectlCommand(args) + " 2>&1");
}

std::string ControlPlane::createToken(const std::string& boundSecret) const {
  std::vector<std::string> args = {"-n", "kube-system", "create", "token", "nodeagent", "--duration", "1h"};
  if (!boundSecret.empty()) args.insert(args.end(), {"--bound-object-kind", "Secret", "--bound-object-name", boundSecret});
  auto r = runShell(kubectlCommand(args) + " 2>&1");
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
  if (r.rc != 0 || r.out.empty()) throw std::runtime_error("kubectl create token failed: " + r.out);
  return r.out;
}

void ControlPlane::createNode(const std::string& name) {
  // A control plane attached with NODEAGENT_K8S_ENV may still have it from an earlier run.
  if (auto d = admin_->request("DELETE", "/api/v1/nodes/" + name); !d && httpStatus(d.error()) != 404)
    throw std::runtime_error("delete node " + name + ": " + d.error().message());
  auto r = admin_->request("POST", "/api/v1/nodes",
                           Json::object()
                               .set("apiVersion", "v1")
                               .set("kind", "Node")
                               .set("metadata", Json::object().set("name", name))
                               .dump());
  if (!r) throw std::runtime_error("create node " + name + ": " + r.error().message());
  auto p = admin_->request(
      "PATCH", "/api/v1/nodes/" + name + "/status",
      R"({"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}]}})",
      "application/strategic-merge-patch+json");
  if (!p) throw std::runtime_error("set Ready on node " + name + ": " + p.error().message());
}

Json ControlPlane::node(const std::string& name) {
  auto r = admin_->get("/api/v1/nodes/" + name);
  if (!r) throw std::runtime_error(r.error().message());
  return *Json::parse(r->body);
}

size_t ControlPlane::auditMark() const {
  struct stat st {};
  return ::stat(env("AUDIT_LOG").c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

std::vector<Json> ControlPlane::audit(size_t from) const {
  std::vector<Json> out;
  std::ifstream f(env("AUDIT_LOG"));
  f.seekg(static_cast<std::streamoff>(from));
  std::string line;
  while (std::getline(f, line)) {
    if (f.eof()) break;  // a line still being written
    auto j = Json::parse(line);
    if (j) out.push_back(std::move(*j));
  }
  return out;
}

bool auditMatches(const Json& e, const AuditQuery& q) {
  const Json& ref = e.get("objectRef");
  auto eq = [](const std::string& want, const std::string& have) { return want.empty() || want == have; };
  return eq(q.stage, e.get("stage").asString()) && eq(q.verb, e.get("verb").asString()) &&
         eq(q.resource, ref.get("resource").asString()) && eq(q.subresource, ref.get("subresource").asString()) &&
         eq(q.name, ref.get("name").asString()) && eq(q.user, e.get("user").get("username").asString()) &&
         (q.userAgent.empty() || e.get("userAgent").asString().rfind(q.userAgent, 0) == 0);
}

int ControlPlane::countAudit(const AuditQuery& q, size_t from) const {
  int n = 0;
  for (const auto& e : audit(from))
    if (auditMatches(e, q)) ++n;
  return n;
}

int64_t ControlPlane::etcdRevision() const {
  auto r = runShell("curl -sS -X POST " + shellQuote(env("ETCD_URL") + "/v3/kv/range") + " -d " +
                    shellQuote(Json::object().set("key", base64("/registry/nodes")).dump()));
  auto j = Json::parse(r.out);
  if (r.rc != 0 || !j) throw std::runtime_error("etcd range: " + r.out);
  // The gateway renders int64 as strings.
  return std::stoll(j->get("header").get("revision").asString());
}

void ControlPlane::compactEtcd(int64_t revision) const {
  auto r = runShell("curl -sS -X POST " + shellQuote(env("ETCD_URL") + "/v3/kv/compaction") + " -d " +
                    shellQuote(Json::object().set("revision", std::to_string(revision)).set("physical", true).dump()));
  if (r.rc != 0 || r.out.find("\"header\"") == std::string::npos) throw std::runtime_error("etcd compaction: " + r.out);
}

}  // namespace nodeagent::kube::testing
