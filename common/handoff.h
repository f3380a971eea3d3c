// Handoff<T>: the newest value one thread hands to another, taken at the taker's next
// pass. Its lock is held only to move the value, never across work: a module's reload
// (called on the daemon's main thread) puts the new config here and returns at once, even
// while a long reconcile holds the module's own lock; the reconcile applies it next pass.
#pragma once

#include <mutex>
#include <optional>
#include <utility>

namespace nodeagent {

template <class T>
class Handoff {
 public:
  // Replaces any value not taken yet: only the newest matters.
  void put(T value) {
    std::lock_guard lock(mu_);
    value_ = std::move(value);
  }
  std::optional<T> take() {
    std::lock_guard lock(mu_);
    return std::exchange(value_, std::nullopt);
  }

 private:
  std::mutex mu_;
  std::optional<T> value_;
};

}  // namespace nodeagent
