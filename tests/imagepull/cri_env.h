// The cri tier's real parts for tests: containerd + docker-registry (+ an optional throttle
// proxy) started by cri_harness.sh in a fresh temp dir, and what tests read from them
// (containerd's log of PullImage calls, the registry's access log of blob GETs, ctr).
// Needs NODEAGENT_SOURCE_DIR defined by the test target.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "imagepull/cri_image_service.h"

namespace nodeagent::imagepull {

inline const std::string kHarness = std::string(NODEAGENT_SOURCE_DIR) + "/tests/imagepull/cri_harness.sh";

inline std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  if (status) *status = rc;
  return out;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One harness: containerd + registry (+ optional throttle proxy) in a fresh temp dir.
class Env {
 public:
  explicit Env(const std::string& extra = "") {
    char tmpl[] = "/tmp/na-cri-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    int rc = 0;
    auto out = run(kHarness + " start " + dir_ + " " + extra, &rc);
    if (rc != 0) throw std::runtime_error("cri harness failed to start containerd/registry:\n" + out);
    std::istringstream env(slurp(dir_ + "/env"));
    for (std::string line; std::getline(env, line);)
      if (auto eq = line.find('='); eq != std::string::npos) vars_[line.substr(0, eq)] = line.substr(eq + 1);
  }
  ~Env() {
    run(kHarness + " stop " + dir_);
    if (!::testing::Test::HasFailure()) run("rm -rf " + dir_);
    else std::fprintf(stderr, "cri harness files kept in %s\n", dir_.c_str());
  }
  const std::string& operator[](const std::string& k) { return vars_[k]; }
  const std::string& dir() const { return dir_; }
  std::string image(const std::string& nameTag) { return vars_["REGISTRY"] + "/" + nameTag; }
  void push(const std::string& specs) {
    int rc = 0;
    auto out = run(kHarness + " push " + dir_ + " " + specs, &rc);
    if (rc != 0) throw std::runtime_error("push failed:\n" + out);
  }
  // Blob GETs in the registry access log, per digest.
  std::map<std::string, int> blobGets() {
    std::map<std::string, int> m;
    static const std::regex re("\"GET /v2/[^ ]*/blobs/(sha256:[0-9a-f]+)[? ]");
    auto log = slurp(vars_["REGISTRY_LOG"]);
    for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) ++m[(*it)[1]];
    return m;
  }
  int totalBlobGets() {
    int n = 0;
    for (auto& [k, v] : blobGets()) n += v;
    return n;
  }
  // Unique blobs (config + layers) of images pushed so far, per image name.
  std::set<std::string> blobsOf(const std::vector<std::string>& refs) {
    std::set<std::string> s;
    std::istringstream in(slurp(dir_ + "/images.txt"));
    for (std::string line; std::getline(in, line);) {
      std::istringstream f(line);
      std::string ref, d;
      f >> ref;
      if (std::find(refs.begin(), refs.end(), ref) == refs.end()) continue;
      while (f >> d) s.insert(d);
    }
    return s;
  }
  struct Pull {
    std::string image, start, end;
    bool ok = false;
  };
  // PullImage calls as containerd logged them, in start order.
  std::vector<Pull> runtimePulls() {
    std::vector<Pull> pulls;
    std::map<std::string, std::vector<size_t>> open;
    static const std::regex line(R"re(time="([^"]+)" level=\w+ msg="PullImage \\"([^\\]+)\\"( returns| failed)?)re");
    std::istringstream in(slurp(vars_["CONTAINERD_LOG"]));
    for (std::string l; std::getline(in, l);) {
      std::smatch m;
      if (!std::regex_search(l, m, line)) continue;
      if (!m[3].matched) {
        open[m[2]].push_back(pulls.size());
        pulls.push_back({m[2], m[1], "", false});
      } else if (auto& o = open[m[2]]; !o.empty()) {
        pulls[o.front()].end = m[1];
        pulls[o.front()].ok = m[3] == " returns";
        o.erase(o.begin());
      }
    }
    return pulls;
  }
  // How many PullImage calls containerd logged for `image`.
  int pullsOf(const std::string& image) {
    int n = 0;
    for (const auto& pl : runtimePulls()) n += pl.image == image;
    return n;
  }
  // The most PullImage calls containerd had in flight at once.
  int runtimeMaxConcurrency() {
    std::vector<std::pair<std::string, int>> ev;
    for (auto& p : runtimePulls()) {
      ev.push_back({p.start, +1});
      ev.push_back({p.end.empty() ? "9999" : p.end, -1});
    }
    std::sort(ev.begin(), ev.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first < b.first : a.second < b.second; });
    int cur = 0, best = 0;
    for (auto& [t, d] : ev) best = std::max(best, cur += d);
    return best;
  }
  std::string ctrImages() { return run("ctr --address " + vars_["CRI_SOCKET"] + " -n k8s.io images ls -q"); }
  CriOptions cri() { return CriOptions{.endpoint = "unix://" + vars_["CRI_SOCKET"]}; }

 private:
  std::string dir_;
  std::map<std::string, std::string> vars_;
};

}  // namespace nodeagent::imagepull
