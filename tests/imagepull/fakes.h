// Small stateful fakes of the container runtime and the image disk for imagepull's tests.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "imagepull/disk_guard.h"
#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

// A fake runtime: pulls take `pullTime`, may fail by script, and record their order and
// the most pulls ever in flight.
class FakeService final : public ImageService {
 public:
  std::mutex mu;
  std::set<std::string> present;
  std::map<std::string, std::vector<GrpcCode>> failures;  // per image, consumed in order
  std::vector<std::string> order;
  std::map<std::string, int> pulls;
  int inFlight = 0, maxInFlight = 0;
  std::map<std::string, std::string> failureText;  // per image: the message of its failures
  std::chrono::milliseconds pullTime{30};
  uint64_t used = 10;
  std::atomic<bool> down{false};  // the runtime's socket does not answer
  int statusCalls = 0;
  std::set<std::string> pinned;  // images given the pin label
  int pinCalls = 0;
  bool honourPin = true;  // the runtime reports a labelled image pinned (containerd >= 1.7.10)
  std::vector<Ingest> downloads;  // what ingests() reports
  std::map<std::string, std::optional<Credential>> credentials;  // per image, of its last pull

  static Error unreachable() {
    return Error(makeGrpcError(GrpcCode::kUnavailable), "connection error: dial unix /run/fake.sock: no such file");
  }
  Result<RuntimeVersion> version() override {
    if (down) return fail(unreachable());
    return RuntimeVersion{"fake", "1", "v1"};
  }
  Result<std::optional<ImageInfo>> status(const std::string& image) override {
    std::lock_guard l(mu);
    ++statusCalls;
    if (down) return fail(unreachable());
    if (!present.contains(image)) return std::optional<ImageInfo>{};
    return std::optional<ImageInfo>{
        ImageInfo{.id = "sha256:" + image, .size = 42, .pinned = honourPin && pinned.contains(image)}};
  }
  Result<std::string> pull(const std::string& image, const std::string&, const Credential* auth,
                           std::chrono::milliseconds timeout) override {
    std::chrono::milliseconds takes;
    {
      std::lock_guard l(mu);
      credentials[image] = auth ? std::optional<Credential>(*auth) : std::nullopt;
      order.push_back(image);
      ++pulls[image];
      maxInFlight = std::max(maxInFlight, ++inFlight);
      takes = pullTime;  // under the lock: a test may change it between phases
    }
    std::this_thread::sleep_for(std::min(takes, timeout));
    std::lock_guard l(mu);
    --inFlight;
    if (takes > timeout) return fail(Error(makeGrpcError(GrpcCode::kDeadlineExceeded), "deadline"));
    if (down) return fail(unreachable());
    if (auto& f = failures[image]; !f.empty()) {
      auto code = f.front();
      f.erase(f.begin());
      auto text = failureText.contains(image) ? failureText[image] : "scripted failure";
      return fail(Error(makeGrpcError(code), text));
    }
    present.insert(image);
    return "sha256:" + image;
  }
  Result<void> remove(const std::string& image) override {
    std::lock_guard l(mu);
    present.erase(image);
    pinned.erase(image);
    return {};
  }
  Result<std::vector<ImageInfo>> list() override {
    std::lock_guard l(mu);
    if (down) return fail(unreachable());
    std::vector<ImageInfo> out;
    for (const auto& image : present) out.push_back({.id = "sha256:" + image, .repoTags = {image}, .size = 42});
    return out;
  }
  Result<void> pin(const std::string& image) override {
    std::lock_guard l(mu);
    ++pinCalls;
    if (!present.contains(image)) return fail(Error(makeGrpcError(GrpcCode::kNotFound), "image " + image + ": not found"));
    pinned.insert(image);
    return {};
  }
  Result<std::vector<Ingest>> ingests() override {
    std::lock_guard l(mu);
    return downloads;
  }
  Result<std::vector<FsUsage>> fsInfo() override { return std::vector<FsUsage>{{"/fake", 0}}; }
};

class FakeDisk final : public DiskProbe {
 public:
  std::atomic<double> percent{10};
  Result<DiskUsage> probe() override { return DiskUsage{.mountpoint = "/fake", .usedPercent = percent.load()}; }
};

}  // namespace nodeagent::imagepull
