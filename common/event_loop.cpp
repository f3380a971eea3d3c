#include "common/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <systemd/sd-event.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

namespace nodeagent {

// A source's handler and (for wake-ups) its eventfd; owned by the loop.
struct EventLoop::Source {
  sd_event_source* source = nullptr;
  Handler fn;
  std::shared_ptr<Fd> fd;
};

namespace {

uint64_t monotonicUsec(std::chrono::steady_clock::time_point t) {
  // steady_clock is CLOCK_MONOTONIC, sd-event's clock here.
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

}  // namespace

struct EventLoop::Poster::Queue {
  std::mutex mu;
  std::vector<std::function<void(EventLoop&)>> items;
  Waker waker;
};

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  if (int r = sd_event_new(&loop->event_); r < 0) return failErrno(-r, "sd_event_new");
  auto queue = std::make_shared<Poster::Queue>();
  // The handler holds the queue weakly: the queue lives as long as a Poster does.
  auto waker = loop->waker([raw = loop.get(), weak = std::weak_ptr<Poster::Queue>(queue)] {
    auto q = weak.lock();
    if (!q) return;
    std::vector<std::function<void(EventLoop&)>> items;
    {
      std::lock_guard l(q->mu);
      items.swap(q->items);
    }
    for (auto& fn : items) fn(*raw);
  });
  if (!waker) return fail(waker.error());
  queue->waker = *waker;
  loop->poster_.queue_ = std::move(queue);
  return loop;
}

void EventLoop::Poster::post(std::function<void(EventLoop&)> fn) const {
  if (!queue_) return;
  {
    std::lock_guard l(queue_->mu);
    queue_->items.push_back(std::move(fn));
  }
  queue_->waker.wake();
}

Result<std::unique_ptr<EventLoop::Reader>> EventLoop::reader(int fd, Handler fn) {
  std::unique_ptr<Reader> r(new Reader());
  r->fn_ = std::move(fn);
  auto cb = [](sd_event_source*, int, uint32_t, void* self) -> int {
    static_cast<Reader*>(self)->fn_();
    return 0;
  };
  if (int rc = sd_event_add_io(event_, &r->source_, fd, EPOLLIN, cb, r.get()); rc < 0)
    return failErrno(-rc, "sd_event_add_io");
  return r;
}

// The source holds a reference to its sd_event, so this is safe after the loop is gone.
EventLoop::Reader::~Reader() { sd_event_source_disable_unref(source_); }

EventLoop::~EventLoop() {
  for (auto& t : timers_) sd_event_source_disable_unref(t->source_);
  for (auto& s : sources_) sd_event_source_disable_unref(s->source);
  sd_event_unref(event_);
}

Result<void> EventLoop::onSignal(int sig, Handler fn) {
  auto s = std::make_unique<Source>();
  s->fn = std::move(fn);
  auto cb = [](sd_event_source*, const signalfd_siginfo*, void* self) -> int {
    static_cast<Source*>(self)->fn();
    return 0;
  };
  if (int r = sd_event_add_signal(event_, &s->source, sig, cb, s.get()); r < 0)
    return failErrno(-r, "sd_event_add_signal " + std::to_string(sig));
  sources_.push_back(std::move(s));
  return {};
}

Result<void> EventLoop::every(std::chrono::microseconds interval, Handler fn) {
  auto s = std::make_unique<Source>();
  s->fn = [raw = s.get(), interval, f = std::move(fn)] {
    sd_event_source_set_time_relative(raw->source, static_cast<uint64_t>(interval.count()));
    sd_event_source_set_enabled(raw->source, SD_EVENT_ONESHOT);
    f();
  };
  auto cb = [](sd_event_source*, uint64_t, void* self) -> int {
    static_cast<Source*>(self)->fn();
    return 0;
  };
  // sd-event's default accuracy is 250 ms: a watchdog tick of half a short WatchdogSec
  // could then come late. A tenth of the interval (at most the default) keeps it on time.
  auto accuracy = std::min<uint64_t>(static_cast<uint64_t>(interval.count()) / 10, 250'000);
  if (int r = sd_event_add_time_relative(event_, &s->source, CLOCK_MONOTONIC, static_cast<uint64_t>(interval.count()),
                                         std::max<uint64_t>(accuracy, 1), cb, s.get());
      r < 0)
    return failErrno(-r, "sd_event_add_time_relative");
  sources_.push_back(std::move(s));
  return {};
}

Result<EventLoop::Timer*> EventLoop::timer(Handler fn) {
  auto t = std::make_unique<Timer>();
  t->fn_ = std::move(fn);
  auto cb = [](sd_event_source*, uint64_t, void* self) -> int {
    static_cast<Timer*>(self)->fn_();
    return 0;
  };
  if (int r = sd_event_add_time(event_, &t->source_, CLOCK_MONOTONIC, UINT64_MAX, 0, cb, t.get()); r < 0)
    return failErrno(-r, "sd_event_add_time");
  sd_event_source_set_enabled(t->source_, SD_EVENT_OFF);
  timers_.push_back(std::move(t));
  return timers_.back().get();
}

void EventLoop::Timer::armAt(std::chrono::steady_clock::time_point when) {
  sd_event_source_set_time(source_, monotonicUsec(when));
  sd_event_source_set_enabled(source_, SD_EVENT_ONESHOT);
}

void EventLoop::Timer::disarm() { sd_event_source_set_enabled(source_, SD_EVENT_OFF); }

Result<EventLoop::Waker> EventLoop::waker(Handler fn) {
  auto s = std::make_unique<Source>();
  s->fd = std::make_shared<Fd>(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!*s->fd) return failErrno("eventfd");
  s->fn = std::move(fn);
  auto cb = [](sd_event_source*, int fd, uint32_t, void* self) -> int {
    uint64_t n;
    while (::read(fd, &n, sizeof n) == sizeof n) {
    }
    static_cast<Source*>(self)->fn();
    return 0;
  };
  if (int r = sd_event_add_io(event_, &s->source, s->fd->get(), EPOLLIN, cb, s.get()); r < 0)
    return failErrno(-r, "sd_event_add_io");
  Waker w;
  w.fd_ = s->fd;
  sources_.push_back(std::move(s));
  return w;
}

void EventLoop::Waker::wake() const {
  uint64_t one = 1;
  // EAGAIN: the counter is full, a wake-up is pending anyway.
  [[maybe_unused]] auto n = ::write(fd_->get(), &one, sizeof one);
}

Result<int> EventLoop::run() {
  int r = sd_event_loop(event_);
  if (r < 0) return failErrno(-r, "sd_event_loop");
  return r;
}

void EventLoop::exit(int code) { sd_event_exit(event_, code); }

}  // namespace nodeagent
