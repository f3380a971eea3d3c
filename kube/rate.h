// Token bucket and backoff: pure arithmetic on time points, so they are tested without sleeping.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace nodeagent::kube {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  // `rate` tokens per second, at most `burst` saved up. Starts full.
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

  // Takes one token if available now (returns 0), else reserves the next one and returns
  // how long the caller must wait before going ahead.
  Clock::duration reserve(Clock::time_point now) {
    refill(now);
    tokens_ -= 1;
    if (tokens_ >= 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
  }
  // Takes one token only if available now; never goes into debt.
  bool tryTake(Clock::time_point now) {
    refill(now);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }
  double tokens(Clock::time_point now) {
    refill(now);
    return tokens_;
  }

 private:
  void refill(Clock::time_point now) {
    if (last_ != Clock::time_point{} && now > last_)
      tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = std::max(last_, now);
  }
  double rate_, burst_, tokens_;
  Clock::time_point last_{};
};

// Exponential backoff with "full jitter": a random delay in [cap/2, cap] where cap doubles
// per attempt up to `max`. Half the cap is kept so retries never bunch near zero.
inline std::chrono::milliseconds backoffDelay(int attempt, std::chrono::milliseconds base,
                                              std::chrono::milliseconds max, std::mt19937_64& rng) {
  double cap = static_cast<double>(base.count());
  for (int i = 1; i < attempt && cap < static_cast<double>(max.count()); ++i) cap *= 2;
  cap = std::min(cap, static_cast<double>(max.count()));
  std::uniform_real_distribution<double> d(cap / 2, cap);
  return std::chrono::milliseconds(static_cast<int64_t>(d(rng)));
}

}  // namespace nodeagent::kube
