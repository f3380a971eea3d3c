// The CLI's output for every command, byte for byte, from the real daemon and the real
// nodeagentctl: each `nodeagentctl -o json COMMAND` (and `-o yaml` / table for a few) is
// compared with tests/cli/golden/NAME.txt. Only volatile parts are normalised: the test's
// temp dir, timestamps, durations, pass counters, the git commit.
//
// The daemon runs in a new network namespace (`unshare --net`: conntrack figures of an
// empty namespace, no traffic) against a fake /proc and /sys tree written by the test, so
// the sysctl module is enabled and deterministic and the host is untouched.
//
// After an intended change of the output: NODEAGENT_UPDATE_GOLDEN=1 ctest -R cli_golden
// rewrites the files; review the diff.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "sysctl/profile.h"
#include "sysctl/tuner.h"
#include "tests/common/subprocess.h"

namespace nodeagent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::run;
using testing::RunResult;

void put(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(writeFileAtomic(path, text));
}

class CliGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    // A fixed name: it appears in outputs (paths) and is normalised to <tmp>.
    char tmpl[] = "/tmp/nodeagent-golden-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/run/nodeagent.sock";
    std::string proc = dir_ + "/proc", sys = dir_ + "/sys";
    put(proc + "/meminfo", "MemTotal:       16384000 kB\n");
    put(proc + "/sys/kernel/osrelease", "6.1.0-golden\n");
    put(proc + "/sys/kernel/hostname", "golden-host\n");
    put(sys + "/devices/system/cpu/online", "0-7\n");
    // Every profile key with a kernel-like default; a few below the profile so the plan
    // has work to show.
    auto keys = *sysctl::builtinProfile("large-cluster", sysctl::ScaleInputs{.cpus = 8});
    sysctl::KernelTree tree(proc, sys, false);
    for (const auto& k : keys) put(tree.pathOf(k.key), k.value + "\n");
    put(tree.pathOf("vm.max_map_count"), "65530\n");
    put(tree.pathOf("net.core.somaxconn"), "4096\n");
    put(sys + "/module/nf_conntrack/parameters/hashsize", "16384\n");
    put(dir_ + "/config.yaml",
        "agent:\n"
        "  node_name: golden-node\n"
        "  state_dir: " + dir_ + "/state\n"
        "  log_format: json\n"
        "  reconcile: {min_interval: 50ms, max_interval: 1h}\n"
        "control:\n"
        "  socket: " + socket_ + "\n"
        "kube:\n"
        "  mode: \"off\"\n"
        "metrics:\n"
        "  address: \"\"\n"
        "imagepull:\n"
        "  runtime_endpoint: unix://" + dir_ + "/no-containerd.sock\n"
        // The prefetcher's start stays hours away, so `images status` says "started": false
        // however slowly the commands run (a sanitizer build takes longer than the default
        // 2m spread's delay for this node name, 6.4 s).
        "  start_spread: 6h\n");
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  void startDaemon() {
    std::string log = dir_ + "/daemon.log";
    pid_ = fork();
    if (pid_ == 0) {
      int l = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(l, 1);
      dup2(l, 2);
      std::string cfg = dir_ + "/config.yaml", proc = dir_ + "/proc", sys = dir_ + "/sys",
                  dropIn = dir_ + "/sysctl.d/90-nodeagent.conf";
      execl("/usr/bin/unshare", "unshare", "--net", "--", NODEAGENTD, "--config", cfg.c_str(), "--proc-root",
            proc.c_str(), "--sys-root", sys.c_str(), "--sysctl-file", dropIn.c_str(), nullptr);
      _exit(127);
    }
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {NODEAGENTCTL, "--socket", socket_, "--timeout", "10s"});
    return run(args, dir_);
  }

  // Waits until `status` says every module finished its first pass (exit code not 4).
  bool awaitReady() {
    for (int i = 0; i < 200; ++i) {
      auto r = ctl({"status", "-o", "json"});
      if (r.exitCode != 3 && r.exitCode != 4 && r.out.find("\"reconciles\": 0") == std::string::npos) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string normalise(std::string text) const {
    auto replace = [&](const std::string& re, const std::string& with) {
      text = std::regex_replace(text, std::regex(re), with);
    };
    // The temp dir, the only machine- and run-specific path.
    for (size_t at; (at = text.find(dir_)) != std::string::npos;) text.replace(at, dir_.size(), "<tmp>");
    replace(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)", "<time>");
    // Figures that depend on timing, not on what the daemon does.
    replace(R"re("(reconciles|last_duration_ms|duration_ms|took_ms|elapsed_ms|started_unix_ms)": \d+)re",
            R"re("$1": <n>)re");
    replace(R"re("git_commit": "[^"]*")re", R"re("git_commit": "<commit>")re");
    replace(R"((reconciles|last_duration_ms|duration_ms): \d+)", "$1: <n>");
    replace(R"(git_commit: \S+)", "git_commit: <commit>");
    replace(R"(\d+(s|m|h) ago)", "<ago>");
    return text;
  }

  std::string dir_, socket_;
  pid_t pid_ = -1;
};

struct Case {
  std::string name;
  std::vector<std::string> args;
};

TEST_F(CliGolden, EveryCommandPrintsWhatItPrintedBefore) {
  startDaemon();
  ASSERT_TRUE(awaitReady()) << readFile(dir_ + "/daemon.log").value_or("");
  // Order matters for the mutating commands: revert before apply, pull before forget.
  const std::vector<Case> cases = {
      {"status", {"-o", "json", "status"}},
      {"status_yaml", {"-o", "yaml", "status"}},
      {"version", {"-o", "json", "version"}},
      {"config_show", {"-o", "json", "config", "show"}},
      {"config_show_yaml", {"-o", "yaml", "config", "show"}},
      {"node_facts", {"-o", "json", "node", "facts"}},
      {"ipvs_list", {"-o", "json", "ipvs", "list"}},
      {"ipvs_plan", {"-o", "json", "ipvs", "plan"}},
      {"ipvs_sync", {"-o", "json", "ipvs", "sync"}},
      {"ipvs_sync_dry_run", {"-o", "json", "ipvs", "sync", "--dry-run"}},
      {"sysctl_plan", {"-o", "json", "sysctl", "plan"}},
      {"sysctl_plan_table", {"sysctl", "plan"}},
      {"sysctl_status", {"-o", "json", "sysctl", "status"}},
      {"conntrack_stats", {"-o", "json", "conntrack", "stats"}},
      {"sysctl_revert_dry_run", {"-o", "json", "sysctl", "revert", "--dry-run"}},
      {"sysctl_revert", {"-o", "json", "sysctl", "revert"}},
      {"sysctl_apply_dry_run", {"-o", "json", "sysctl", "apply", "--dry-run"}},
      {"sysctl_apply", {"-o", "json", "sysctl", "apply"}},
      {"images_list", {"-o", "json", "images", "list"}},
      {"images_status", {"-o", "json", "images", "status"}},
      {"images_pull_dry_run", {"-o", "json", "images", "pull", "--dry-run", "registry.example/app:1"}},
      {"images_pull_bad_tier", {"-o", "json", "images", "pull", "--tier", "gold", "registry.example/app:1"}},
      {"images_forget", {"-o", "json", "images", "forget", "registry.example/app:1"}},
      {"unknown_module_command", {"-o", "json", "ipvs", "nope"}},
  };
  const char* update = std::getenv("NODEAGENT_UPDATE_GOLDEN");
  for (const auto& c : cases) {
    auto r = ctl(c.args);
    std::string got = "$ nodeagentctl";
    for (const auto& a : c.args) got += " " + a;
    got += "\nexit " + std::to_string(r.exitCode) + "\n--- stdout\n" + normalise(r.out) + "--- stderr\n" +
           normalise(r.err);
    std::string path = std::string(GOLDEN_DIR) + "/" + c.name + ".txt";
    if (update && *update) {
      ASSERT_TRUE(writeFileAtomic(path, got)) << path;
      continue;
    }
    auto want = readFile(path);
    ASSERT_TRUE(want) << path << " is missing (NODEAGENT_UPDATE_GOLDEN=1 writes it)";
    EXPECT_EQ(got, *want) << c.name << ": output changed";
  }
  ::kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace
}  // namespace nodeagent
