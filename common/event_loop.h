// EventLoop: one thread's loop over libsystemd's sd-event (epoll underneath): signals
// (through signalfd), timers on the monotonic clock, and wake-ups that other threads post
// (an eventfd). Every handler runs on the thread that runs the loop, one at a time, so
// what they share needs no lock. The daemon's main thread runs one; it serves what would
// otherwise be threads that only wait (docs/architecture.md, Threads).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

struct sd_event;
struct sd_event_source;

namespace nodeagent {

class EventLoop {
 public:
  using Handler = std::function<void()>;

  // A one-shot timer: runs its handler once at the time it was last armed for.
  class Timer {
   public:
    void armAt(std::chrono::steady_clock::time_point when);
    void armIn(std::chrono::steady_clock::duration d) { armAt(std::chrono::steady_clock::now() + d); }
    void disarm();

   private:
    friend class EventLoop;
    sd_event_source* source_ = nullptr;
    Handler fn_;
  };

  // Posted from any thread (never blocks, async-signal-safe): the loop runs the waker's
  // handler once for any number of posts since it last ran. Copies share the eventfd;
  // post only while the loop that made it exists.
  class Waker {
   public:
    void wake() const;

   private:
    friend class EventLoop;
    std::shared_ptr<Fd> fd_;
  };

  [[nodiscard]] static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // `fn` runs on each arrival of `sig`, which must be blocked in every thread beforehand.
  [[nodiscard]] Result<void> onSignal(int sig, Handler fn);
  // `fn` runs every `interval`, the first time one interval from now.
  [[nodiscard]] Result<void> every(std::chrono::microseconds interval, Handler fn);
  // A timer, not armed yet. It lives as long as the loop.
  [[nodiscard]] Result<Timer*> timer(Handler fn);
  // A wake-up source whose handler is `fn`.
  [[nodiscard]] Result<Waker> waker(Handler fn);

  // Runs handlers until a handler calls exit(); returns exit's code.
  [[nodiscard]] Result<int> run();
  void exit(int code);

 private:
  EventLoop() = default;
  struct Source;
  sd_event* event_ = nullptr;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::unique_ptr<Timer>> timers_;
};

}  // namespace nodeagent
