// EventLoop (common/event_loop.h) on a real sd-event: wake-ups from other threads, timers,
// periodic handlers and signals all run on the thread that runs the loop.
#include "common/event_loop.h"
#include "common/fd.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace nodeagent {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<EventLoop> makeLoop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop.has_value()) << loop.error().message();
  return std::move(*loop);
}

TEST(EventLoop, WakeFromAnotherThreadRunsTheHandlerOnTheLoopThread) {
  auto loop = makeLoop();
  std::thread::id ranOn;
  int runs = 0;
  auto waker = loop->waker([&] {
    ranOn = std::this_thread::get_id();
    if (++runs == 1) loop->exit(7);
  });
  ASSERT_TRUE(waker.has_value());
  std::thread poster([w = *waker] {
    for (int i = 0; i < 100; ++i) w.wake();
  });
  poster.join();
  auto rc = loop->run();
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 7);
  EXPECT_EQ(ranOn, std::this_thread::get_id());
  // A hundred posts before the loop ran are one wake-up.
  EXPECT_EQ(runs, 1);
}

TEST(EventLoop, TimerFiresOnceAtTheTimeItWasLastArmedFor) {
  auto loop = makeLoop();
  int fired = 0, early = 0;
  auto t = loop->timer([&] { ++fired; });
  ASSERT_TRUE(t.has_value());
  auto disarmed = loop->timer([&] { ++early; });
  ASSERT_TRUE(disarmed.has_value());
  (*disarmed)->armIn(10ms);
  (*disarmed)->disarm();
  (*t)->armIn(1h);
  (*t)->armIn(20ms);  // re-armed: the later time is forgotten
  auto start = std::chrono::steady_clock::now();
  auto end = loop->timer([&] { loop->exit(0); });
  ASSERT_TRUE(end.has_value());
  (*end)->armIn(150ms);
  ASSERT_TRUE(loop->run().has_value());
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(early, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
}

TEST(EventLoop, EveryRunsRepeatedly) {
  auto loop = makeLoop();
  int ticks = 0;
  ASSERT_TRUE(loop->every(5ms, [&] {
    if (++ticks == 3) loop->exit(0);
  }));
  ASSERT_TRUE(loop->run().has_value());
  EXPECT_EQ(ticks, 3);
}

// Any thread posts work to the loop's thread; a reader made there runs its handler when
// the descriptor has input, and not after it is dropped. Posting once the loop is gone
// runs nothing and does not crash.
TEST(EventLoop, PostedWorkAndReadersRunOnTheLoopThread) {
  auto loop = makeLoop();
  auto poster = loop->poster();
  ASSERT_TRUE(poster.valid());
  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_NONBLOCK | O_CLOEXEC), 0);
  Fd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  std::unique_ptr<EventLoop::Reader> reader;  // loop thread only
  std::atomic<int> reads{0};
  std::atomic<bool> made{false}, onLoopThread{true};
  std::thread looper([&] { (void)loop->run(); });
  auto loopThread = looper.get_id();
  poster.post([&](EventLoop& l) {
    if (std::this_thread::get_id() != loopThread) onLoopThread = false;
    auto r = l.reader(readEnd.get(), [&] {
      if (std::this_thread::get_id() != loopThread) onLoopThread = false;
      char c;
      while (::read(readEnd.get(), &c, 1) == 1) {
      }
      ++reads;
    });
    if (r) reader = std::move(*r);
    made = r.has_value();
  });
  auto waitFor = [](auto pred) {
    for (int i = 0; i < 500 && !pred(); ++i) std::this_thread::sleep_for(10ms);
    return pred();
  };
  ASSERT_TRUE(waitFor([&] { return made.load(); }));
  ASSERT_EQ(::write(writeEnd.get(), "x", 1), 1);
  EXPECT_TRUE(waitFor([&] { return reads == 1; }));
  // Dropped (on the loop's thread): more input calls nothing.
  std::atomic<bool> dropped{false};
  poster.post([&](EventLoop&) {
    reader.reset();
    dropped = true;
  });
  ASSERT_TRUE(waitFor([&] { return dropped.load(); }));
  ASSERT_EQ(::write(writeEnd.get(), "y", 1), 1);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(reads, 1);
  EXPECT_TRUE(onLoopThread);
  poster.post([](EventLoop& l) { l.exit(0); });
  looper.join();
  loop.reset();
  bool ran = false;
  poster.post([&](EventLoop&) { ran = true; });
  EXPECT_FALSE(ran);
}

TEST(EventLoop, SignalRunsItsHandlerInsteadOfTheDefaultAction) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  {
    auto loop = makeLoop();
    int got = 0;
    ASSERT_TRUE(loop->onSignal(SIGUSR2, [&] {
      ++got;
      loop->exit(0);
    }));
    ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
    ASSERT_TRUE(loop->run().has_value());
    EXPECT_EQ(got, 1);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace
}  // namespace nodeagent
