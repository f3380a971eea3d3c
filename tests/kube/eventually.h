// eventually(): the kube tests' one way to wait for a condition of a live system.
#pragma once

#include <chrono>
#include <thread>

namespace nodeagent::kube::testing {

// Polls `f` every 20 ms until it holds or `within` has passed; the last poll decides.
template <class F>
bool eventually(F f, std::chrono::milliseconds within = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

}  // namespace nodeagent::kube::testing
