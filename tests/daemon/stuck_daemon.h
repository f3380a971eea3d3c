// The real daemon with one extra module, "stuck" (tests/daemon/stuck_daemon_main.cpp), run
// by a test that owns its NOTIFY_SOCKET: the module's reconcile hangs while hangFile()
// exists, its stop() while stopHoldFile() exists. Temp paths for everything it writes.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/files.h"
#include "tests/daemon/notify_socket.h"

namespace nodeagent::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class StuckDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-stuck-daemon-XXXXXX";
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
                                "  socket: " + controlSocket() + "\n"
                                "status_file:\n  path: " + dir_ + "/status.json\n"
                                "metrics:\n  address: \"\"\n"
                                "sysctl:\n"
                                "  enabled: false\n"));
  }
  void TearDown() override {
    (void)::unlink(hangFile().c_str());
    (void)::unlink(stopHoldFile().c_str());
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string hangFile() const { return dir_ + "/hang"; }
  // While it exists, the stuck module's stop() waits (and first writes `<it>.entered`).
  std::string stopHoldFile() const { return dir_ + "/stop-hold"; }
  std::string controlSocket() const { return dir_ + "/run/nodeagent.sock"; }
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
            hangFile().c_str(), "--stop-hold-file", stopHoldFile().c_str(), nullptr);
      _exit(127);
    }
  }
  // Waits up to `limit` for the daemon to exit; its exit code, or nullopt (still running,
  // or killed by a signal). The daemon counts as gone either way.
  std::optional<int> awaitExit(std::chrono::milliseconds limit) {
    int status = 0;
    auto end = Clock::now() + limit;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= end) return std::nullopt;
      std::this_thread::sleep_for(50ms);
    }
    pid_ = -1;
    if (!WIFEXITED(status)) return std::nullopt;
    return WEXITSTATUS(status);
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

}  // namespace nodeagent::testing
