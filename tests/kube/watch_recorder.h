// What the kube tier's list/watch tests share: a client with fast backoff and a handler
// that records lists, events and the reason of the "Probe" condition another writer sets.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/kube/client.h"
#include "agent/kube/list_watch.h"

namespace nodeagent::kube::testing {

inline std::unique_ptr<Client> makeClient(ClusterConfig c, ClientOptions o = {}) {
  o.backoffBase = std::chrono::milliseconds(50);
  auto r = Client::create(std::move(c), o);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(*r) : nullptr;
}

struct WatchRecorder {
  std::mutex mu;
  int lists = 0;
  std::vector<std::string> events;
  std::string lastReason;
  ListWatchHandler handler() {
    return {[this](const std::vector<Json>&, const std::string&) {
              std::lock_guard l(mu);
              lists++;
            },
            [this](const std::string& type, const Json& obj) {
              std::lock_guard l(mu);
              events.push_back(type);
              for (const auto& c : obj.get("status").get("conditions").asArray())
                if (c.get("type").asString() == "Probe") lastReason = c.get("reason").asString();
            }};
  }
  std::string reason() {
    std::lock_guard l(mu);
    return lastReason;
  }
};

}  // namespace nodeagent::kube::testing
