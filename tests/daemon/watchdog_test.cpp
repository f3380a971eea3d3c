// WATCHDOG=1 means every module makes progress: the real daemon (a test build with one
// extra module that hangs while a file exists, tests/daemon/stuck_daemon_main.cpp) pings a
// NOTIFY_SOCKET owned by the test; when the module hangs past its interval plus slack the
// pings stop and the log names the module; when it answers again they resume. A reload
// while it hangs is handed over and does not wait for it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/files.h"
#include "tests/daemon/stuck_daemon.h"

namespace nodeagent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using WatchdogTest = testing::StuckDaemonTest;

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
  EXPECT_EQ(awaitExit(10s), 0) << log();
}

}  // namespace
}  // namespace nodeagent
