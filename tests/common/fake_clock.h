// FakeClock: a Clock that stands still until the test moves `t`.
#pragma once

#include "common/clock.h"

namespace nodeagent::testing {

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return t; }
  std::chrono::system_clock::time_point wallNow() const override { return {}; }
  TimePoint t{};
};

}  // namespace nodeagent::testing
