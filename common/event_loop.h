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

  // Runs functions on the loop's thread for any thread (a mutex-guarded queue and an
  // eventfd). Copies share the queue; posting after the loop is gone is harmless: nothing
  // runs, and what was posted is released with the last Poster. A default Poster has no
  // loop (valid() is false).
  class Poster {
   public:
    bool valid() const { return queue_ != nullptr; }
    void post(std::function<void(EventLoop&)> fn) const;

   private:
    friend class EventLoop;
    struct Queue;
    std::shared_ptr<Queue> queue_;
  };

  // Calls its handler on the loop's thread whenever a descriptor is readable. Made and
  // destroyed on the loop's thread (or once the loop no longer runs).
  class Reader {
   public:
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

   private:
    friend class EventLoop;
    Reader() = default;
    sd_event_source* source_ = nullptr;
    Handler fn_;
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

  // Watches `fd` (which must outlive the Reader) for input. Loop thread only.
  [[nodiscard]] Result<std::unique_ptr<Reader>> reader(int fd, Handler fn);
  Poster poster() const { return poster_; }

  // Runs handlers until a handler calls exit(); returns exit's code.
  [[nodiscard]] Result<int> run();
  void exit(int code);

 private:
  EventLoop() = default;
  struct Source;
  sd_event* event_ = nullptr;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::unique_ptr<Timer>> timers_;
  Poster poster_;
};

}  // namespace nodeagent
