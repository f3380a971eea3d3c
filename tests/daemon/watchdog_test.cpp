// WATCHDOG=1 means every module makes progress: the real daemon (a test build with one
// extra module that hangs while a file exists, tests/daemon/stuck_daemon_main.cpp) pings a
// NOTIFY_SOCKET owned by the test; when the module hangs past its interval plus slack the
// pings stop and the log names the module; when it answers again they resume. A reload
// while it hangs is handed over and does not wait for it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/files.h"
#include "tests/daemon/notify_socket.h"

namespace nodeagent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class WatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-watchdog-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    notifyPath_ = dir_ + "/notify.sock";
    notify_ = testing::bindNotifySocket(notifyPath_);
    ASSERT_TRUE(notify_) << "bind " << notifyPath_ << ": " << strerror(errno);
    // Outside any sandbox: no sysctl tuning, temp paths for everything the daemon writes.
    ASSERT_TRUE(writeFileAtomic(dir_ + "/config.yaml",
                                "agent:\n"
                                "  node_name: watchdog-node\n"
                                "  state_dir: " + dir_ + "/state\n"
                                "  log_format: text\n"
                                "  reconcile: {min_interval: 50ms, max_interval: 1s}\n"
                                "control:\n"
                                "  socket: " + dir_ + "/run/nodeagent.sock\n"
                                "status_file:\n  path: " + dir_ + "/status.json\n"
                                "metrics:\n  address: \"\"\n"
                                "sysctl:\n"
                                "  enabled: false\n"));
  }
  void TearDown() override {
    (void)::unlink(hangFile().c_str());
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string hangFile() const { return dir_ + "/hang"; }
  std::string log() const { return readFile(dir_ + "/daemon.log").value_or(""); }

  void start() {
    pid_ = fork();
    if (pid_ == 0) {
      int l = ::open((dir_ + "/daemon.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(l, 1);
      dup2(l, 2);
      setenv("NOTIFY_SOCKET", notifyPath_.c_str(), 1);
      setenv("WATCHDOG_USEC", "400000", 1);  // a ping every 200 ms while all is well
      execl(STUCK_DAEMON, STUCK_DAEMON, "--config", (dir_ + "/config.yaml").c_str(), "--hang-file",
            hangFile().c_str(), nullptr);
      _exit(127);
    }
  }
  // The next notification, or "" when none comes within `limit`.
  std::string next(std::chrono::milliseconds limit) {
    pollfd p{notify_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return "";
    char buf[4096];
    ssize_t n = ::recv(notify_.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, size_t(n)) : "";
  }
  bool await(const std::string& want, std::chrono::milliseconds limit) {
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (next(std::max(left, 1ms)).find(want) != std::string::npos) return true;
    }
    return false;
  }
  // Waits (up to `limit`) for a gap of `gap` without a WATCHDOG=1; returns when it began.
  std::optional<Clock::time_point> awaitPingGap(std::chrono::milliseconds gap, std::chrono::milliseconds limit) {
    auto end = Clock::now() + limit;
    auto lastPing = Clock::now();
    while (Clock::now() < end) {
      std::string n = next(100ms);
      if (n.find("WATCHDOG=1") != std::string::npos) lastPing = Clock::now();
      if (Clock::now() - lastPing >= gap) return lastPing;
    }
    return std::nullopt;
  }

  std::string dir_, notifyPath_;
  Fd notify_;
  pid_t pid_ = -1;
};

TEST_F(WatchdogTest, PingsStopWhileAModuleHangsAndTheLogNamesIt) {
  start();
  ASSERT_TRUE(await("READY=1", 20s)) << log();
  ASSERT_TRUE(await("WATCHDOG=1", 2s)) << log();

  // The module's next pass (max_interval 1 s) hangs. Its limit is 1 s + 10 s of slack.
  auto hangAt = Clock::now();
  ASSERT_TRUE(writeFileAtomic(hangFile(), "hang\n"));
  // Pings go on while the pass is within its limit...
  ASSERT_TRUE(await("WATCHDOG=1", 2s)) << log();
  // ...then stop: no ping for 3 s (a ping is due every 200 ms).
  auto gap = awaitPingGap(3s, 30s);
  ASSERT_TRUE(gap) << "pings never stopped; log:\n" << log();
  EXPECT_GE(*gap - hangAt, 9s) << "pings stopped before the module's limit";
  std::string text = log();
  EXPECT_NE(text.find("module stuck hung"), std::string::npos) << text;
  EXPECT_NE(text.find("watchdog pings withheld"), std::string::npos) << text;
  EXPECT_EQ(text.find("module node hung"), std::string::npos) << text;

  // A reload while the module hangs: handed over, the daemon says READY=1 at once.
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(await("RELOADING=1", 2s)) << log();
  ASSERT_TRUE(await("READY=1", 2s)) << log();

  // It answers again: pings resume, and the log says so.
  ASSERT_EQ(::unlink(hangFile().c_str()), 0);
  ASSERT_TRUE(await("WATCHDOG=1", 3s)) << log();
  EXPECT_NE(log().find("module stuck answers again"), std::string::npos) << log();

  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  int status = 0;
  for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(WIFEXITED(status)) << log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << log();
  pid_ = -1;
}

}  // namespace
}  // namespace nodeagent
