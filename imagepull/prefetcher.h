// Prefetcher: the image pull scheduler. A priority queue (base > business requests >
// environment) feeds a bounded pool of worker threads (a global limit and a per-registry
// limit). Workers block in CRI calls or on a condition variable, never poll. An image
// already present is not pulled again; two requests for one image share one pull; each
// attempt has a deadline; failures back off exponentially with jitter, classified by their
// gRPC code; environment and business pulls wait while the image disk is above its
// high-water mark.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "imagepull/credentials.h"
#include "imagepull/disk_guard.h"
#include "imagepull/image_service.h"
#include "imagepull/policy.h"

namespace nodeagent::imagepull {

struct PrefetchOptions {
  unsigned concurrency = 3;
  unsigned perRegistry = 3;
  std::chrono::milliseconds attemptTimeout{std::chrono::minutes(10)};
  std::chrono::milliseconds backoffInitial{std::chrono::seconds(2)};
  std::chrono::milliseconds backoffMax{std::chrono::minutes(5)};
  unsigned maxAttempts = 8;
  unsigned maxPermanentAttempts = 2;
  double diskHighWaterPercent = 80;
  std::chrono::milliseconds diskRecheck{std::chrono::seconds(30)};
  bool dryRun = false;  // check presence only; report what would be pulled
  // An image the runtime removed (image GC) is pulled again after this backoff, doubling
  // with each removal of the same image up to the max, and only while the disk guard allows.
  std::chrono::milliseconds removalBackoffInitial{std::chrono::minutes(10)};
  std::chrono::milliseconds removalBackoffMax{std::chrono::hours(6)};
  bool pinBase = true;  // ask the runtime to pin base images (ImageService::pin)
};

using SteadyTime = std::chrono::steady_clock::time_point;

// An image the node should hold, from the config file or a cluster prefetch set.
struct ConfiguredImage {
  std::string image;
  Tier tier = Tier::kEnvironment;
  std::string source = "config";  // "config" or "set NAME"
  // When its pulls may start (a cluster set's slot on this node); unset: the node's start
  // slot (releaseAt).
  std::chrono::steady_clock::time_point notBefore{};
  bool operator==(const ConfiguredImage&) const = default;
};

struct ImageRecord {
  std::string image;      // canonical reference, the record's key
  std::string requested;  // as first written (config or CLI)
  std::string registry;
  Tier tier = Tier::kEnvironment;  // what the image is: a configured image keeps its tier
  // What it is scheduled as until its pull ends: its tier, or the higher one of a request
  // waiting for it (`images pull` of a configured environment image goes ahead of others
  // without becoming a business image).
  Tier priority = Tier::kEnvironment;
  bool awaited = false;  // a request waits for it (so it does not wait for the start slot)
  PullState state = PullState::kQueued;
  bool configured = false;  // from the config or a cluster set, not from a request
  std::string source;       // ConfiguredImage::source while configured
  bool refresh = false;     // pull even if present: a tag re-check
  unsigned attempts = 0;    // attempts of the current round
  std::string lastError;
  std::string lastCode;  // gRPC code name of the last failure
  bool runtimeDown = false;  // the last failure was the runtime not answering
  std::string waitReason;
  std::string imageId;
  uint64_t size = 0;
  bool pinned = false;   // the runtime says so (CRI Image.pinned)
  std::string pinLabel;  // base images: "set", or why the pin label could not be set
  unsigned removals = 0;  // times the runtime removed it after the agent had it present
  bool removed = false;   // its next pull is a re-pull after a removal (the disk guard applies to every tier)
  bool digestChanged = false;  // the last refresh found a new image behind the tag
  std::chrono::milliseconds lastDuration{0};
  SteadyTime queuedAt{};
  SteadyTime startedAt{};
  SteadyTime nextAttemptAt{};
  SteadyTime notBefore{};    // ConfiguredImage::notBefore
  SteadyTime confirmedAt{};  // when the runtime last said it has the image
  std::chrono::system_clock::time_point lastPulled{};
  uint64_t seq = 0;  // FIFO order within a tier
};

// A present image the runtime no longer lists.
struct Removal {
  std::string image;
  Tier tier = Tier::kEnvironment;
  std::string source;  // "config", "set NAME" or "request"
  unsigned removals = 0;
  std::chrono::milliseconds retryIn{0};
};

struct PrefetchStats {
  unsigned active = 0;
  unsigned maxActive = 0;  // highest number of pulls in flight at once
  uint64_t attempts = 0;
  uint64_t pulled = 0;
  uint64_t failedAttempts = 0;
  uint64_t skippedPresent = 0;
  uint64_t removals = 0;  // present images the runtime removed (checkPresence)
  std::optional<DiskUsage> disk;
  std::string diskError;
  bool diskHigh = false;
  // The runtime did not answer (a failed ImageStatus, or Unavailable) and has not since.
  bool runtimeDown = false;
  std::string runtimeError;
};

class Prefetcher {
 public:
  Prefetcher(ImageService& service, DiskProbe& disk, PrefetchOptions options);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  void setOptions(const PrefetchOptions& options);
  void setCredentials(std::shared_ptr<const CredentialStore> creds);
  // Called after any state change (from worker threads): the module re-publishes.
  void setOnChange(std::function<void()> fn);
  // Configured images hold until `at` (the fleet-wide start spread); requests don't.
  void releaseAt(SteadyTime at);
  void release() { releaseAt(std::chrono::steady_clock::now()); }
  bool released() const;

  // The configured tiers. New images are queued, images no longer listed are dropped
  // (unless pulling), tiers are updated. Invalid references are rejected whole.
  [[nodiscard]] Result<void> setConfigured(const std::vector<std::string>& base,
                                           const std::vector<std::string>& environment);
  // The same for any tier, with where each image comes from. An image listed twice keeps
  // its first entry (callers put the local config first: it wins).
  [[nodiscard]] Result<void> setConfigured(const std::vector<ConfiguredImage>& images);
  // Queues an image (a business pull by default) and returns its key. A request for an
  // image already queued or pulling joins that pull; a higher tier raises its priority.
  [[nodiscard]] Result<std::string> request(const std::string& image, Tier tier, bool refresh = false);
  // Re-checks every configured environment image by tag (and retries failed configured ones).
  void refreshEnvironment();
  // The runtime answered (the module's probe): if it was down, every image that failed or
  // waits because of that is queued again with fresh attempts.
  void runtimeAnswered();
  // Compares the images the agent holds as present with the runtime's list, taken at
  // `listedAt`: each one missing is a removal (kRemoved), pulled again after its removal
  // backoff. Records confirmed after `listedAt` are skipped (the list predates them).
  std::vector<Removal> checkPresence(const std::vector<ImageInfo>& listed, SteadyTime listedAt);
  // True while a configured image waits for its start slot (node or set).
  bool waitingForStartSlot() const;
  // Drops an image the agent tracks (never a configured one). Does not delete it from the runtime.
  [[nodiscard]] Result<void> forget(const std::string& image);

  std::vector<ImageRecord> snapshot() const;
  std::optional<ImageRecord> find(const std::string& key) const;
  PrefetchStats stats() const;
  uint64_t version() const;
  // Waits until something changed after `since`, or the deadline.
  uint64_t waitForChange(uint64_t since, SteadyTime deadline) const;

  // Stops the workers, cancelling pulls in flight.
  void stop();

 private:
  void workerLoop();
  ImageRecord* pickLocked(SteadyTime now, SteadyTime& wake);
  void runOne(std::unique_lock<std::mutex>& lock, ImageRecord& rec);
  void changedLocked();
  void runtimeAnsweredLocked();
  void ensureWorkersLocked();
  bool baseBusyLocked() const;
  SteadyTime gateLocked(const ImageRecord& r) const;
  void pinLocked(std::unique_lock<std::mutex>& lock, ImageRecord& r);
  std::optional<DiskUsage> diskLocked(std::unique_lock<std::mutex>& lock, SteadyTime now);

  ImageService& service_;
  DiskProbe& disk_;
  mutable std::mutex mu_;
  mutable std::condition_variable work_;     // workers wait here
  mutable std::condition_variable changed_;  // waitForChange waits here
  PrefetchOptions options_;
  std::shared_ptr<const CredentialStore> creds_;
  std::function<void()> onChange_;
  std::map<std::string, ImageRecord> records_;
  std::map<std::string, unsigned> activePerRegistry_;
  std::vector<std::thread> workers_;
  PrefetchStats stats_;
  SteadyTime diskCheckedAt_{};
  uint64_t version_ = 0;
  uint64_t seq_ = 0;
  SteadyTime releaseAt_ = SteadyTime::max();
  bool stopping_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

// Json for status output: never includes credentials (records hold none).
Json toJson(const ImageRecord& r, SteadyTime now);

}  // namespace nodeagent::imagepull
