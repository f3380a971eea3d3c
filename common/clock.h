// Clock: injectable time source so loops and rate limits are testable without sleeping.
#pragma once

#include <chrono>
#include <string>

namespace nodeagent {

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Wall-clock time, for timestamps shown to people and sent to the API server.
  virtual std::chrono::system_clock::time_point wallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wallNow() const override { return std::chrono::system_clock::now(); }
  static SystemClock& instance() {
    static SystemClock c;
    return c;
  }
};

// Seconds since the epoch as RFC 3339 UTC ("2026-11-21T10:00:00Z").
std::string formatRfc3339(std::chrono::system_clock::time_point tp);

}  // namespace nodeagent
