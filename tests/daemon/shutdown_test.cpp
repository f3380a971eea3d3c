// Shutdown stops the control server before the modules: while a module's stop() runs
// (held by the test, tests/daemon/stuck_daemon_main.cpp), a control call is refused
// (nodeagentctl exit 3, daemon unreachable) instead of reaching a module being stopped.
// With the order reversed the call would be answered and this test fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/files.h"
#include "tests/common/subprocess.h"
#include "tests/daemon/stuck_daemon.h"

namespace nodeagent {
namespace {

using namespace std::chrono_literals;
using ShutdownTest = testing::StuckDaemonTest;

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

TEST_F(ShutdownTest, ControlCallsAreRefusedBeforeAnyModuleStops) {
  start();
  ASSERT_TRUE(await("READY=1", 20s)) << log();
  auto status = [&] {
    return testing::run({NODEAGENTCTL, "--socket", controlSocket(), "--timeout", "5s", "status"}, dir_);
  };
  // Running: the control server answers (healthy or degraded, not unreachable).
  auto before = status();
  ASSERT_TRUE(before.exitCode == 0 || before.exitCode == 1) << before.exitCode << " " << before.err;

  ASSERT_TRUE(writeFileAtomic(stopHoldFile(), "hold\n"));
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  // The daemon is in the stuck module's stop(), which waits for the test.
  for (int i = 0; i < 400 && !exists(stopHoldFile() + ".entered"); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_TRUE(exists(stopHoldFile() + ".entered")) << "the module's stop() never ran; log:\n" << log();
  auto during = status();
  EXPECT_EQ(during.exitCode, 3) << "a control call was answered while modules were stopping:\n"
                                << during.out << during.err << "\nlog:\n"
                                << log();
  EXPECT_FALSE(exists(controlSocket())) << "the control socket is still there while modules stop";

  ASSERT_EQ(::unlink(stopHoldFile().c_str()), 0);
  EXPECT_EQ(awaitExit(10s), 0) << log();
}

}  // namespace
}  // namespace nodeagent
