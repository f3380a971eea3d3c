// Runs the real nodeagentd with a temp config and socket, and a NOTIFY_SOCKET owned by the
// test, then talks to it with the real nodeagentctl.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "common/files.h"
#include "tests/daemon/notify_socket.h"
#include "common/json.h"
#include "tests/common/subprocess.h"

namespace nodeagent {
namespace {

using namespace std::chrono_literals;

using testing::run;
using testing::RunResult;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-daemon-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_ = dir_ + "/config.yaml";
    socket_ = dir_ + "/run/nodeagent.sock";
    notifyPath_ = dir_ + "/notify.sock";
    notify_ = testing::bindNotifySocket(notifyPath_);
    ASSERT_TRUE(notify_) << "bind " << notifyPath_ << ": " << strerror(errno);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  std::string configText(const std::string& logLevel) {
    return "agent:\n"
           "  node_name: test-node\n"
           "  state_dir: " + dir_ + "/state\n"
           "  log_level: " + logLevel + "\n"
           "  log_format: json\n"
           "  reconcile: {min_interval: 50ms, max_interval: 10s}\n"
           "control:\n"
           "  socket: " + socket_ + "\n"
           // This daemon runs in the host's namespaces: it must not tune the host's sysctls.
           "sysctl:\n"
           "  enabled: false\n";
  }

  void startDaemon() {
    std::string logPath = dir_ + "/daemon.log";
    pid_ = fork();
    if (pid_ == 0) {
      int l = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(l, 1);
      dup2(l, 2);
      setenv("NOTIFY_SOCKET", notifyPath_.c_str(), 1);
      setenv("WATCHDOG_USEC", "400000", 1);
      execl(NODEAGENTD, NODEAGENTD, "--config", config_.c_str(), nullptr);
      _exit(127);
    }
  }

  // Reads notifications until one contains `want` or the time runs out.
  bool awaitNotify(const std::string& want, std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{notify_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(notify_.get(), buf, sizeof buf, 0);
      if (n <= 0) return false;
      std::string msg(buf, static_cast<size_t>(n));
      notifications_.push_back(msg);
      if (msg.find(want) != std::string::npos) return true;
    }
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {NODEAGENTCTL, "--socket", socket_, "--timeout", "5s"});
    return run(args, dir_);
  }

  int waitExit(std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  std::string logLevelShown() {
    auto r = ctl({"config", "show", "-o", "json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    auto j = Json::parse(r.out);
    EXPECT_TRUE(j) << r.out;
    return j ? j->get("config").get("agent").get("log_level").asString() : "";
  }

  std::string dir_, config_, socket_, notifyPath_;
  Fd notify_;
  pid_t pid_ = -1;
  std::vector<std::string> notifications_;
};

TEST_F(DaemonTest, ReadyWatchdogStatusReloadAndStop) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info")));
  startDaemon();
  ASSERT_TRUE(awaitNotify("READY=1")) << "no READY=1; log:\n" << readFile(dir_ + "/daemon.log").value_or("");
  EXPECT_NE(notifications_.back().find("STATUS=healthy"), std::string::npos) << notifications_.back();
  ASSERT_TRUE(awaitNotify("WATCHDOG=1", 2s));

  // Status as JSON, with the exit code a script relies on.
  auto st = ctl({"status", "-o", "json"});
  ASSERT_EQ(st.exitCode, 0) << st.err;
  auto j = Json::parse(st.out);
  ASSERT_TRUE(j) << "not JSON:\n" << st.out;
  EXPECT_EQ(j->get("health").asString(), "healthy");
  EXPECT_EQ(j->get("node").asString(), "test-node");
  EXPECT_EQ(j->get("config").asString(), config_);
  bool sawNode = false;
  for (const auto& m : j->get("modules").asArray())
    if (m.get("name").asString() == "node") sawNode = m.get("reconciles").asInt() >= 1;
  EXPECT_TRUE(sawNode) << st.out;
  auto yaml = ctl({"status", "-o", "yaml"});
  EXPECT_EQ(yaml.exitCode, 0);
  EXPECT_NE(yaml.out.find("node: test-node"), std::string::npos) << yaml.out;
  auto table = ctl({"status"});
  EXPECT_EQ(table.exitCode, 0);
  EXPECT_NE(table.out.find("MODULE"), std::string::npos) << table.out;

  // The socket is 0660.
  struct stat sb;
  ASSERT_EQ(::stat(socket_.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0660u);

  // A bad reload is rejected and the running config stays.
  EXPECT_EQ(logLevelShown(), "info");
  ASSERT_TRUE(writeFileAtomic(config_, configText("info") + "bogus_section: {}\n"));
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(awaitNotify("reload rejected", 5s));
  EXPECT_EQ(logLevelShown(), "info");
  EXPECT_EQ(ctl({"status"}).exitCode, 0);
  auto log = readFile(dir_ + "/daemon.log").value_or("");
  EXPECT_NE(log.find("bogus_section: unknown key"), std::string::npos) << log;

  // A good reload takes effect.
  ASSERT_TRUE(writeFileAtomic(config_, configText("debug")));
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(awaitNotify("READY=1", 5s));
  EXPECT_EQ(logLevelShown(), "debug");

  // SIGTERM: STOPPING=1, exit 0, socket gone, and the CLI says the daemon is unreachable.
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  ASSERT_TRUE(awaitNotify("STOPPING=1", 5s));
  EXPECT_EQ(waitExit(), 0);
  EXPECT_FALSE(pathExists(socket_));
  auto down = ctl({"status"});
  EXPECT_EQ(down.exitCode, 3);
  EXPECT_NE(down.err.find("no control socket at " + socket_ + " (is nodeagentd running?"), std::string::npos)
      << down.err;
}

// Without the Kubernetes features libcurl is never mapped; the heap policy is set once at
// start and says so; the daemon keeps serving and reloads.
TEST_F(DaemonTest, IdleDaemonDoesNotMapLibcurlAndSaysItsHeapPolicy) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info") + "kube:\n  mode: \"off\"\n"));
  startDaemon();
  ASSERT_TRUE(awaitNotify("READY=1")) << readFile(dir_ + "/daemon.log").value_or("");
  auto maps = readFile("/proc/" + std::to_string(pid_) + "/maps");
  ASSERT_TRUE(maps);
  EXPECT_EQ(maps->find("libcurl"), std::string::npos) << "libcurl is mapped without the Kubernetes features";
  std::string log = readFile(dir_ + "/daemon.log").value_or("");
  EXPECT_NE(log.find("heap: 2 malloc arenas, fixed 128 KiB mmap threshold"), std::string::npos) << log;
  auto st = ctl({"status", "-o", "json"});
  EXPECT_EQ(st.exitCode, 0) << st.err;
  EXPECT_TRUE(Json::parse(st.out)) << st.out;
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(awaitNotify("READY=1", 5s));
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(waitExit(), 0);
}

TEST_F(DaemonTest, BadConfigAtStartExitsTwoAndCreatesNothing) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info") + "agent_typo: 1\n"));
  auto r = run({NODEAGENTD, "--config", config_}, dir_);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find(config_ + ":11:1: agent_typo: unknown key"), std::string::npos) << r.err;
  EXPECT_FALSE(pathExists(dir_ + "/state"));
  EXPECT_FALSE(pathExists(socket_));
}

TEST_F(DaemonTest, CheckConfigPrintsTheEffectiveConfig) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("warn")));
  auto r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("log_level: warn"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max_interval: 10s"), std::string::npos) << r.out;
  EXPECT_FALSE(pathExists(dir_ + "/state"));
}

TEST_F(DaemonTest, OnceRunsOnePassAndExits) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info")));
  auto r = run({NODEAGENTD, "--config", config_, "--once"}, dir_);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("healthy"), std::string::npos) << r.out;
  EXPECT_FALSE(pathExists(socket_));  // --once serves nothing
}

TEST_F(DaemonTest, ServicesFileIsCheckedByCheckConfigAndAtStart) {
  std::string services = dir_ + "/services.yaml";
  auto withIpvs = configText("info") + "ipvs:\n  enabled: true\n  services_file: " + services + "\n";
  ASSERT_TRUE(writeFileAtomic(config_, withIpvs));
  // Missing: waited for (the module watches for it).
  auto r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("# services file " + services + " does not exist yet"), std::string::npos) << r.out;
  // Valid.
  ASSERT_TRUE(writeFileAtomic(services, "services:\n  - {address: 10.96.0.1, port: 80}\n"));
  r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("# services file OK: " + services + " (1 services)"), std::string::npos) << r.out;
  // Invalid: named with file, line and key, by --check-config and at start alike.
  ASSERT_TRUE(writeFileAtomic(services, "services:\n  - address: 10.96.0.1\n    port: 0\n"));
  for (bool check : {true, false}) {
    std::vector<std::string> argv = {NODEAGENTD, "--config", config_};
    if (check) argv.push_back("--check-config");
    r = run(argv, dir_);
    EXPECT_EQ(r.exitCode, 2) << r.err;
    EXPECT_NE(r.err.find("invalid services file:\n" + services + ":3:11: services[0].port: value 0 out of range"),
              std::string::npos) << r.err;
  }
  // A directory: an error, not an abort.
  std::filesystem::remove(services);
  std::filesystem::create_directory(services);
  for (bool check : {true, false}) {
    std::vector<std::string> argv = {NODEAGENTD, "--config", config_};
    if (check) argv.push_back("--check-config");
    r = run(argv, dir_);
    EXPECT_EQ(r.exitCode, 2) << r.err;
    EXPECT_NE(r.err.find("read services file: " + services + ": Is a directory"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(pathExists(dir_ + "/state"));
  EXPECT_FALSE(pathExists(socket_));
}

TEST_F(DaemonTest, CheckConfigRejectsWhatTheDaemonWouldRefuse) {
  auto expectRejected = [&](const std::string& extra, const std::string& want) {
    ASSERT_TRUE(writeFileAtomic(config_, configText("info") + extra));
    auto r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
    EXPECT_EQ(r.exitCode, 2) << extra;
    EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
  };
  // The metrics server binds addresses, it resolves no names: localhost is refused at both.
  expectRejected("metrics:\n  address: localhost:9464\n", "metrics.address: must be IP:PORT");
  expectRejected("metrics:\n  address: \"[::1:9464\"\n", "metrics.address: must be IP:PORT");
  std::string first = configText("info") + "imagepull:\n  disk_high_water_percent: 80\n";
  auto line = std::count(first.begin(), first.end(), '\n') + 1;
  expectRejected("imagepull:\n  disk_high_water_percent: 80\n---\nagent: {}\n",
                 config_ + ":" + std::to_string(line) + ":1: a second YAML document starts here");
}

TEST_F(DaemonTest, CheckConfigPrintsNumbersAsWritten) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info") + "metrics:\n  address: \"[::1]:9464\"\n"));
  auto r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("disk_high_water_percent: 80\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("e+"), std::string::npos) << r.out;
}

TEST_F(DaemonTest, OversizedConfigIsRejectedBeforeParsing) {
  std::string big = configText("info");
  while (big.size() <= (1u << 20)) big += "# padding padding padding padding padding padding padding padding\n";
  ASSERT_TRUE(writeFileAtomic(config_, big));
  auto r = run({NODEAGENTD, "--config", config_, "--check-config"}, dir_);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find(config_ + ": larger than the limit of 1048576 bytes"), std::string::npos) << r.err;
}

TEST_F(DaemonTest, OnceDryRunPrintsThePlanKeyByKey) {
  // A fake kernel tree: the dry run reads it and changes nothing.
  std::string proc = dir_ + "/proc", sys = dir_ + "/sys", dropIn = dir_ + "/sysctl.d/90-nodeagent.conf";
  std::filesystem::create_directories(proc + "/sys/vm");
  std::filesystem::create_directories(sys + "/devices/system/cpu");
  ASSERT_TRUE(writeFileAtomic(proc + "/meminfo", "MemTotal:       16384000 kB\n"));
  ASSERT_TRUE(writeFileAtomic(proc + "/sys/vm/max_map_count", "65530\n"));
  ASSERT_TRUE(writeFileAtomic(sys + "/devices/system/cpu/online", "0-7\n"));
  std::string text = configText("info");
  text.replace(text.find("  enabled: false\n"), 17, "  enabled: true\n");
  ASSERT_TRUE(writeFileAtomic(config_, text));
  auto r = run({NODEAGENTD, "--config", config_, "--once", "--dry-run", "--proc-root", proc, "--sys-root", sys,
                "--sysctl-file", dropIn},
               dir_);
  EXPECT_NE(r.out.find("  sysctl: vm.max_map_count: 65530 -> 262144 (min, profile large-cluster)\n"),
            std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("  sysctl: kernel.panic: cannot: absent"), std::string::npos) << r.out;
  EXPECT_EQ(readFile(proc + "/sys/vm/max_map_count").value_or(""), "65530\n");
  EXPECT_FALSE(pathExists(dropIn));
}

TEST_F(DaemonTest, CliSocketPathsPermissionsAndTimeouts) {
  std::string text = configText("info") + "imagepull:\n  runtime_endpoint: unix://" + dir_ + "/no-runtime.sock\n";
  text.insert(text.find("sysctl:\n"), "  socket_group: no-such-group-for-the-test\n");  // under control:
  ASSERT_TRUE(writeFileAtomic(config_, text));
  startDaemon();
  ASSERT_TRUE(awaitNotify("READY=1")) << readFile(dir_ + "/daemon.log").value_or("");
  auto log = readFile(dir_ + "/daemon.log").value_or("");
  EXPECT_NE(log.find("is not in /etc/group"), std::string::npos) << log;
  EXPECT_NE(log.find("\"warn"), std::string::npos) << log;

  // A relative --socket is taken from the current directory.
  auto rel = run({NODEAGENTCTL, "--socket", "run/nodeagent.sock", "--timeout", "5s", "version"}, dir_, dir_);
  EXPECT_EQ(rel.exitCode, 0) << rel.err;

  // Someone outside the socket's group is told so, with the group's name.
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((dir_ + "/run").c_str(), 0755), 0);
  ASSERT_EQ(::chown(socket_.c_str(), 0, 0), 0);
  std::string rootGroup = ::getgrgid(0) ? ::getgrgid(0)->gr_name : "0";
  auto denied = run({NODEAGENTCTL, "--socket", socket_, "--timeout", "5s", "status"}, dir_, "/", 65534);
  EXPECT_EQ(denied.exitCode, 3);
  EXPECT_NE(denied.err.find("permission denied on " + socket_ + " (mode 0660, group " + rootGroup + "): "),
            std::string::npos) << denied.err;
  EXPECT_NE(denied.err.find(" is not in the group \"" + rootGroup + "\""), std::string::npos)
      << denied.err << " (exit " << denied.exitCode << ")";

  // --timeout running out on a pull that waits (the runtime is not there): 5, not 3.
  auto pull = run({NODEAGENTCTL, "--socket", socket_, "--timeout", "1s", "images", "pull", "127.0.0.1:1/waits:v1"},
                  dir_);
  EXPECT_EQ(pull.exitCode, 5) << pull.err;
  EXPECT_NE(pull.err.find("--timeout 1s ran out before the daemon finished"), std::string::npos) << pull.err;
  // Invalid names are refused by the daemon, never queued.
  auto bad = ctl({"images", "pull", "../etc"});
  EXPECT_EQ(bad.exitCode, 2) << bad.err;
  EXPECT_NE(bad.err.find("invalid registry host"), std::string::npos) << bad.err;
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(waitExit(), 0);
}

// Module commands come from the daemon (ListCommands). With the daemon down, every group
// word it listed still says "unreachable" (exit 3), not "no such command" (exit 2).
TEST_F(DaemonTest, CliKnowsModuleWordsWhenTheDaemonIsDown) {
  ASSERT_TRUE(writeFileAtomic(config_, configText("info")));
  startDaemon();
  ASSERT_TRUE(awaitNotify("READY=1"));
  auto help = ctl({"--help"});
  ASSERT_EQ(help.exitCode, 0) << help.err;
  std::vector<std::string> words;
  bool inSubcommands = false;
  for (size_t at = 0; at < help.out.size();) {
    size_t end = help.out.find('\n', at);
    if (end == std::string::npos) end = help.out.size();
    std::string line = help.out.substr(at, end - at);
    at = end + 1;
    if (line.starts_with("Subcommands:")) {
      inSubcommands = true;
      continue;
    }
    if (!inSubcommands || !line.starts_with("  ")) continue;
    auto word = line.substr(2, line.find(' ', 2) - 2);
    if (word != "status" && word != "version" && word != "config") words.push_back(word);
  }
  // node facts and the IPVS and image commands at least (sysctl is off in this config).
  for (const char* w : {"node", "ipvs", "images"})
    EXPECT_NE(std::ranges::find(words, w), words.end()) << w << " not listed:\n" << help.out;
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(waitExit(), 0);
  for (const auto& w : words) {
    auto r = ctl({w, "list"});
    EXPECT_EQ(r.exitCode, 3) << w << ": " << r.err;
  }
}

TEST_F(DaemonTest, CliUsageErrorsExitTwo) {
  EXPECT_EQ(ctl({"no-such-command"}).exitCode, 2);
  EXPECT_EQ(ctl({"status", "-o", "xml"}).exitCode, 2);
}

}  // namespace
}  // namespace nodeagent
