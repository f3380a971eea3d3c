#include "imagepull/prefetcher.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/log.h"
#include "imagepull/image_ref.h"

namespace nodeagent::imagepull {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::string seconds(milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// How long a disk probe stays valid: a burst of pulls shares one ImageFsInfo call.
constexpr milliseconds kDiskCacheFor{1000};

}  // namespace

Prefetcher::Prefetcher(ImageService& service, DiskProbe& disk, PrefetchOptions options)
    : service_(service), disk_(disk), options_(options) {
  std::lock_guard lock(mu_);
  ensureWorkersLocked();
}

Prefetcher::~Prefetcher() { stop(); }

void Prefetcher::stop() {
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    workers.swap(workers_);
    work_.notify_all();
    changed_.notify_all();
  }
  service_.cancelAll();
  for (auto& t : workers) t.join();
}

void Prefetcher::setOptions(const PrefetchOptions& options) {
  std::lock_guard lock(mu_);
  options_ = options;
  ensureWorkersLocked();
  work_.notify_all();
}

void Prefetcher::setCredentials(std::shared_ptr<const CredentialStore> creds) {
  std::lock_guard lock(mu_);
  creds_ = std::move(creds);
}

void Prefetcher::setOnChange(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  onChange_ = std::move(fn);
}

void Prefetcher::releaseAt(SteadyTime at) {
  std::lock_guard lock(mu_);
  if (releaseAt_ == at) return;
  releaseAt_ = at;
  work_.notify_all();
  changedLocked();
}

bool Prefetcher::released() const {
  std::lock_guard lock(mu_);
  return steady_clock::now() >= releaseAt_;
}

void Prefetcher::ensureWorkersLocked() {
  // Workers only grow; a lowered limit is enforced by the active count.
  while (!stopping_ && workers_.size() < options_.concurrency) workers_.emplace_back([this] { workerLoop(); });
}

void Prefetcher::changedLocked() {
  ++version_;
  changed_.notify_all();
  if (onChange_) onChange_();
}

Result<void> Prefetcher::setConfigured(const std::vector<std::string>& base, const std::vector<std::string>& environment) {
  std::vector<ConfiguredImage> images;
  for (const auto& image : base) images.push_back({image, Tier::kBase});
  for (const auto& image : environment) images.push_back({image, Tier::kEnvironment});
  return setConfigured(images);
}

Result<void> Prefetcher::setConfigured(const std::vector<ConfiguredImage>& images) {
  std::vector<ImageRef> refs;
  for (const auto& c : images) {
    auto ref = parseImageRef(c.image);
    if (!ref) return fail(ref.error());
    refs.push_back(*ref);
  }
  std::lock_guard lock(mu_);
  auto now = steady_clock::now();
  std::set<std::string> keep;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageRef& ref = refs[i];
    const Tier tier = images[i].tier;
    if (!keep.insert(ref.canonical()).second) {  // the first entry wins; of two sets' slots, the earlier
      ImageRecord& r = records_[ref.canonical()];
      if (r.notBefore != SteadyTime{} && images[i].notBefore != SteadyTime{})
        r.notBefore = std::min(r.notBefore, images[i].notBefore);
      continue;
    }
    auto [it, fresh] = records_.try_emplace(ref.canonical());
    ImageRecord& r = it->second;
    if (fresh) {
      r.image = ref.canonical();
      r.requested = images[i].image;
      r.registry = ref.registry;
      r.queuedAt = now;
      r.seq = ++seq_;
      r.tier = r.priority = tier;
    } else {
      r.tier = tier;  // the config says what a configured image is
      r.priority = std::min(r.priority, tier);
    }
    r.configured = true;
    r.source = images[i].source;
    r.notBefore = images[i].notBefore;
  }
  for (auto it = records_.begin(); it != records_.end();) {
    if (it->second.configured && !keep.contains(it->first)) {
      if (it->second.state == PullState::kPulling) {
        it->second.configured = false;
        it->second.source.clear();
        ++it;
      } else {
        it = records_.erase(it);
      }
    } else {
      ++it;
    }
  }
  ensureWorkersLocked();
  work_.notify_all();
  changedLocked();
  return {};
}

Result<std::string> Prefetcher::request(const std::string& image, Tier tier, bool refresh) {
  auto ref = parseImageRef(image);
  if (!ref) return fail(ref.error());
  std::lock_guard lock(mu_);
  if (stopping_) return failInvalid("image prefetch is shutting down");
  auto key = ref->canonical();
  auto [it, fresh] = records_.try_emplace(key);
  ImageRecord& r = it->second;
  auto now = steady_clock::now();
  if (fresh) {
    r.image = key;
    r.requested = image;
    r.registry = ref->registry;
    r.tier = r.priority = tier;
  } else if (!r.configured && tier < r.tier) {
    r.tier = tier;  // a request's image is what its most important request says
  }
  // A business request overtakes a queued environment prefetch, and a configured image
  // keeps its tier: only its place in the queue changes.
  if (tier < r.priority) r.priority = tier;
  bool restart = fresh || r.state == PullState::kFailed || r.state == PullState::kWouldPull ||
                 (r.state == PullState::kPresent && refresh);
  if (restart) {
    r.state = PullState::kQueued;
    r.refresh = refresh;
    r.attempts = 0;
    r.waitReason.clear();
    r.queuedAt = now;
    r.seq = ++seq_;
  }
  if (!isTerminal(r.state)) r.awaited = true;
  ensureWorkersLocked();
  work_.notify_all();
  changedLocked();
  return key;
}

void Prefetcher::refreshEnvironment() {
  std::lock_guard lock(mu_);
  auto now = steady_clock::now();
  bool any = false;
  for (auto& [key, r] : records_) {
    if (!r.configured) continue;
    bool recheck = r.tier == Tier::kEnvironment && r.state == PullState::kPresent;
    if (recheck || r.state == PullState::kFailed) {
      r.state = PullState::kQueued;
      r.refresh = recheck;
      r.attempts = 0;
      r.queuedAt = now;
      r.seq = ++seq_;
      any = true;
    }
  }
  if (any) {
    work_.notify_all();
    changedLocked();
  }
}

Result<void> Prefetcher::forget(const std::string& image) {
  auto ref = parseImageRef(image);
  if (!ref) return fail(ref.error());
  std::lock_guard lock(mu_);
  auto it = records_.find(ref->canonical());
  if (it == records_.end()) return failInvalid("image " + ref->canonical() + " is not tracked");
  if (it->second.configured)
    return failInvalid("image " + ref->canonical() + " is configured in the " + std::string(tierName(it->second.tier)) +
                       " tier; remove it from the config instead");
  if (it->second.state == PullState::kPulling)
    return failInvalid("image " + ref->canonical() + " is being pulled; forget it when the pull ends");
  records_.erase(it);
  changedLocked();
  return {};
}

void Prefetcher::runtimeAnswered() {
  std::lock_guard lock(mu_);
  runtimeAnsweredLocked();
}

void Prefetcher::runtimeAnsweredLocked() {
  if (!stats_.runtimeDown) return;
  stats_.runtimeDown = false;
  stats_.runtimeError.clear();
  auto now = steady_clock::now();
  size_t requeued = 0;
  for (auto& [key, r] : records_) {
    if (!r.runtimeDown || (r.state != PullState::kRetrying && r.state != PullState::kFailed)) continue;
    r.state = PullState::kQueued;
    r.runtimeDown = false;
    r.attempts = 0;
    r.queuedAt = now;
    ++requeued;
  }
  log::get("imagepull")->info("container runtime answers again; {} image(s) queued again", requeued);
  work_.notify_all();
  changedLocked();
}

bool Prefetcher::baseBusyLocked() const {
  return std::any_of(records_.begin(), records_.end(), [](const auto& kv) {
    const auto& r = kv.second;
    return r.tier == Tier::kBase && (r.state == PullState::kQueued || r.state == PullState::kPulling ||
                                     r.state == PullState::kRetrying);
  });
}

SteadyTime Prefetcher::gateLocked(const ImageRecord& r) const {
  return r.notBefore == SteadyTime{} ? releaseAt_ : r.notBefore;
}

bool Prefetcher::waitingForStartSlot() const {
  std::lock_guard lock(mu_);
  auto now = steady_clock::now();
  return std::any_of(records_.begin(), records_.end(), [&](const auto& kv) {
    const auto& r = kv.second;
    return r.configured && !r.awaited && r.state == PullState::kQueued && now < gateLocked(r);
  });
}

std::vector<Removal> Prefetcher::checkPresence(const std::vector<ImageInfo>& listed, SteadyTime listedAt) {
  // By name only: `crictl rmi` of one tag leaves the image id under its other names, and
  // the agent's reference is then gone all the same.
  std::map<std::string, const ImageInfo*> byName;
  for (const auto& info : listed) {
    for (const auto& n : info.repoTags) byName[n] = &info;
    for (const auto& n : info.repoDigests) byName[n] = &info;
  }
  std::lock_guard lock(mu_);
  std::vector<Removal> out;
  auto now = steady_clock::now();
  bool changed = false;
  for (auto& [key, r] : records_) {
    auto found = byName.find(r.image);
    // A queued image the runtime already has is present, start slot or not: the list is the
    // answer ImageStatus would give (so a restart is ready at once). Base images still go
    // through a worker unless pinned, for their pin label.
    if (r.state == PullState::kQueued && !r.refresh && found != byName.end() &&
        (r.tier != Tier::kBase || found->second->pinned || !options_.pinBase)) {
      r.state = PullState::kPresent;
      r.imageId = found->second->id;
      r.size = found->second->size;
      r.pinned = found->second->pinned;
      r.confirmedAt = now;
      r.priority = r.tier;
      r.awaited = false;
      ++stats_.skippedPresent;
      changed = true;
      continue;
    }
    if (r.state != PullState::kPresent || r.confirmedAt > listedAt || found != byName.end()) continue;
    ++r.removals;
    ++stats_.removals;
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    auto delay = backoffDelay(r.removals, options_.removalBackoffInitial, options_.removalBackoffMax, jitter(rng_));
    r.state = PullState::kRemoved;
    r.removed = true;
    r.pinned = false;
    r.pinLabel.clear();
    r.attempts = 0;
    r.nextAttemptAt = now + delay;
    r.waitReason = "removed by the runtime (" + std::to_string(r.removals) + (r.removals == 1 ? " time" : " times") +
                   "); pulled again after the backoff, when the disk guard allows";
    log::get("imagepull")->warn("{} ({}) was removed from the runtime (image garbage collection?), removal {}; "
                                "pulling it again in {} if the image disk is below its high-water mark",
                                r.image, tierName(r.tier), r.removals, seconds(delay));
    out.push_back({.image = r.image,
                   .tier = r.tier,
                   .source = !r.configured ? "request" : r.source.empty() ? "config" : r.source,
                   .removals = r.removals,
                   .retryIn = delay});
    changed = true;
  }
  if (changed) {
    work_.notify_all();
    changedLocked();
  }
  return out;
}

ImageRecord* Prefetcher::pickLocked(SteadyTime now, SteadyTime& wake) {
  ImageRecord* best = nullptr;
  bool baseBusy = baseBusyLocked();
  for (auto& [key, r] : records_) {
    bool ready = r.state == PullState::kQueued;
    if (r.state == PullState::kRetrying || r.state == PullState::kWaitingForDisk || r.state == PullState::kRemoved) {
      if (r.nextAttemptAt <= now)
        ready = true;
      else
        wake = std::min(wake, r.nextAttemptAt);
    }
    if (!ready) continue;
    if (auto gate = gateLocked(r); r.configured && !r.awaited && now < gate) {  // the start spread
      wake = std::min(wake, gate);
      continue;
    }
    if (r.priority == Tier::kEnvironment && baseBusy) continue;  // base first
    auto active = activePerRegistry_.find(r.registry);
    if (active != activePerRegistry_.end() && active->second >= options_.perRegistry) continue;
    if (!best || std::pair(r.priority, r.seq) < std::pair(best->priority, best->seq)) best = &r;
  }
  return best;
}

void Prefetcher::workerLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = steady_clock::now();
    SteadyTime wake = SteadyTime::max();
    if (stats_.active < options_.concurrency) {
      if (ImageRecord* rec = pickLocked(now, wake)) {
        runOne(lock, *rec);
        continue;
      }
    }
    if (wake == SteadyTime::max())
      work_.wait(lock);
    else
      work_.wait_until(lock, wake);
  }
}

std::optional<DiskUsage> Prefetcher::diskLocked(std::unique_lock<std::mutex>& lock, SteadyTime now) {
  if (stats_.disk && now - diskCheckedAt_ < kDiskCacheFor) return stats_.disk;
  lock.unlock();
  auto d = disk_.probe();
  lock.lock();
  diskCheckedAt_ = steady_clock::now();
  if (!d) {
    // Fail open: without a reading the runtime's own GC still guards the disk.
    if (stats_.diskError != d.error().message())
      log::get("imagepull")->warn("cannot read image file system usage: {}; pulls go ahead", d.error().message());
    stats_.diskError = d.error().message();
    stats_.disk.reset();
    return std::nullopt;
  }
  stats_.diskError.clear();
  stats_.disk = *d;
  return d.value();
}

void Prefetcher::runOne(std::unique_lock<std::mutex>& lock, ImageRecord& r) {
  auto logger = log::get("imagepull");
  auto start = steady_clock::now();
  const PullState before = r.state;
  r.state = PullState::kPulling;
  r.startedAt = start;
  r.waitReason.clear();
  ++stats_.active;
  stats_.maxActive = std::max(stats_.maxActive, stats_.active);
  ++activePerRegistry_[r.registry];
  changedLocked();
  const std::string image = r.image, registry = r.registry, previousId = r.imageId;
  const bool refresh = r.refresh;
  const bool repull = r.removed;  // after a removal: the disk guard holds every tier
  const Tier tier = r.tier;
  const unsigned attemptsBefore = r.attempts;
  const PrefetchOptions opts = options_;
  std::optional<Credential> cred;
  if (creds_) cred = creds_->lookup(registry);

  auto finish = [&] {
    if (isTerminal(r.state)) {
      r.priority = r.tier;  // the request that raised it is answered
      r.awaited = false;
    }
    --stats_.active;
    if (--activePerRegistry_[registry] == 0) activePerRegistry_.erase(registry);
    r.lastDuration = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
    work_.notify_all();
    changedLocked();
  };
  auto fromInfo = [&](const ImageInfo& info) {
    r.imageId = info.id;
    r.size = info.size;
    r.pinned = info.pinned;
    r.removed = false;
    r.confirmedAt = steady_clock::now();
  };

  // 1. Present already? Then it costs nothing (a tag re-check pulls anyway).
  std::optional<Error> err;
  if (!refresh) {
    lock.unlock();
    auto st = service_.status(image);
    lock.lock();
    if (st) runtimeAnsweredLocked();
    if (st && *st) {
      fromInfo(**st);
      if (tier == Tier::kBase && opts.pinBase && !opts.dryRun) pinLocked(lock, r);
      r.state = PullState::kPresent;
      r.attempts = 0;
      r.lastError.clear();
      r.lastCode.clear();
      ++stats_.skippedPresent;
      logger->debug("{} ({}) already present as {}", image, tierName(tier), r.imageId);
      finish();
      return;
    }
    if (!st) err = st.error();
  }
  if (!err && opts.dryRun) {
    r.state = PullState::kWouldPull;
    logger->info("dry run: would pull {} ({})", image, tierName(tier));
    finish();
    return;
  }
  // 2. The disk guard holds everything but base images above the high-water mark.
  if (!err && (tier != Tier::kBase || repull)) {
    auto d = diskLocked(lock, start);
    if (d && d->usedPercent > opts.diskHighWaterPercent) {
      char why[256];
      std::snprintf(why, sizeof why, "image file system %s is %.1f%% used, above the %.0f%% high-water mark",
                    d->mountpoint.c_str(), d->usedPercent, opts.diskHighWaterPercent);
      if (before != PullState::kWaitingForDisk)
        logger->warn("holding {} ({}): {}", image, tierName(tier), why);
      r.state = PullState::kWaitingForDisk;
      r.waitReason = why;
      r.nextAttemptAt = steady_clock::now() + opts.diskRecheck;
      stats_.diskHigh = true;
      finish();
      return;
    }
    stats_.diskHigh = d && d->usedPercent > opts.diskHighWaterPercent;
  }
  // 3. Pull, within the attempt deadline.
  std::optional<ImageInfo> info;
  if (!err) {
    ++r.attempts;
    ++stats_.attempts;
    logger->info("pulling {} ({}, attempt {}{})", image, tierName(tier), r.attempts, refresh ? ", tag re-check" : "");
    lock.unlock();
    auto pulled = service_.pull(image, registry, cred ? &*cred : nullptr, opts.attemptTimeout);
    if (pulled) {
      auto st = service_.status(image);
      if (st && *st) info = **st;
      else if (st) info = ImageInfo{.id = *pulled};
      else err = st.error();
    } else {
      err = pulled.error();
    }
    lock.lock();
    if (pulled) runtimeAnsweredLocked();
  }
  if (info) {
    bool changed = !previousId.empty() && previousId != info->id;
    fromInfo(*info);
    if (tier == Tier::kBase && opts.pinBase) pinLocked(lock, r);
    auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
    if (changed)
      logger->info("{} ({}): tag now points to a new image {} (was {}), pulled in {}", image, tierName(tier), info->id,
                   previousId, seconds(took));
    else if (refresh)
      logger->debug("{} ({}): tag re-checked, unchanged", image, tierName(tier));
    else
      logger->info("pulled {} ({}) in {}: {} bytes, id {}{}", image, tierName(tier), seconds(took), info->size,
                   info->id, tier == Tier::kBase ? (r.pinned ? ", pinned by the runtime" : ", not pinned by the runtime") : "");
    r.digestChanged = changed;
    r.state = PullState::kPresent;
    r.refresh = false;  // attempts stay: how many this round took
    r.lastError.clear();
    r.lastCode.clear();
    r.lastPulled = std::chrono::system_clock::now();
    ++stats_.pulled;
    finish();
    return;
  }
  // 4. Failed: back off and retry, or give up, by what kind of failure it was.
  ++stats_.failedAttempts;
  GrpcCode code = grpcCodeOf(*err);
  RetryClass cls = classifyError(code, err->message());
  r.lastError = err->message();
  r.lastCode = std::string(grpcCodeName(code));
  // A failed presence check is an attempt too: a runtime that is down backs off like a
  // failing pull instead of being asked again every few seconds, forever.
  bool statusFailed = r.attempts == attemptsBefore;
  if (statusFailed) {
    ++r.attempts;
    ++stats_.attempts;
  }
  // Unavailable is gRPC's "could not reach the server"; a presence check that timed out is
  // the runtime not answering too. Other failures are answers.
  r.runtimeDown = code == GrpcCode::kUnavailable || (statusFailed && code == GrpcCode::kDeadlineExceeded);
  if (r.runtimeDown) {
    stats_.runtimeDown = true;
    stats_.runtimeError = r.lastError;
  } else if (code != GrpcCode::kDeadlineExceeded && code != GrpcCode::kCancelled) {
    runtimeAnsweredLocked();  // the runtime itself gave the answer (not found, refused...)
  }
  unsigned limit = cls == RetryClass::kRejected    ? 1
                   : cls == RetryClass::kPermanent ? opts.maxPermanentAttempts
                                                   : opts.maxAttempts;
  if (stopping_) {
    r.state = PullState::kQueued;
  } else if (r.attempts >= limit) {
    r.state = PullState::kFailed;
    logger->warn("giving up on {} ({}) after {} attempt(s), {}: {}", image, tierName(tier), r.attempts, r.lastCode,
                 r.lastError);
  } else {
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    auto delay = backoffDelay(r.attempts, opts.backoffInitial, opts.backoffMax, jitter(rng_));
    r.state = PullState::kRetrying;
    r.nextAttemptAt = steady_clock::now() + delay;
    logger->warn("pull of {} ({}) failed on attempt {}, {}: {}; retrying in {}", image, tierName(tier), r.attempts,
                 r.lastCode, r.lastError, seconds(delay));
  }
  finish();
}

void Prefetcher::pinLocked(std::unique_lock<std::mutex>& lock, ImageRecord& r) {
  // Called while the record is still kPulling, so nothing erases it while unlocked. The
  // label is set once per presence; a runtime that ignores it (containerd 1.6) stays unpinned.
  if (r.pinLabel == "set") return;
  const std::string image = r.image;
  lock.unlock();
  auto pinned = service_.pin(image);
  std::optional<ImageInfo> info;
  if (pinned)
    if (auto st = service_.status(image); st && *st) info = **st;
  lock.lock();
  std::string outcome = pinned ? "set" : pinned.error().message();
  if (!pinned && outcome != r.pinLabel)
    log::get("imagepull")->warn("base image {} not pinned against image GC: {}", image, outcome);
  else if (pinned)
    log::get("imagepull")->info("base image {}: pin label set; the runtime reports it {}", image,
                                info && info->pinned ? "pinned" : "not pinned (containerd before 1.7.10 ignores the label)");
  r.pinLabel = outcome;
  if (info) r.pinned = info->pinned;
}

std::vector<ImageRecord> Prefetcher::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ImageRecord> out;
  for (const auto& [k, r] : records_) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return std::pair(a.tier, a.seq) < std::pair(b.tier, b.seq); });
  return out;
}

std::optional<ImageRecord> Prefetcher::find(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

PrefetchStats Prefetcher::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

uint64_t Prefetcher::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

uint64_t Prefetcher::waitForChange(uint64_t since, SteadyTime deadline) const {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, deadline, [&] { return version_ != since || stopping_; });
  return version_;
}

Json toJson(const ImageRecord& r, SteadyTime now) {
  Json j = Json::object()
               .set("image", r.image)
               .set("tier", std::string(tierName(r.tier)))
               .set("state", std::string(stateName(r.state)))
               .set("attempts", r.attempts);
  double elapsed = 0;
  if (r.state == PullState::kPulling)
    elapsed = std::chrono::duration<double>(now - r.startedAt).count();
  else
    elapsed = std::chrono::duration<double>(r.lastDuration).count();
  j.set("duration_s", std::round(elapsed * 10) / 10);
  j.set("image_ref", r.imageId);
  j.set("size_bytes", r.size);
  if (r.tier == Tier::kBase) {
    j.set("pinned", r.pinned);
    if (!r.pinLabel.empty()) j.set("pin_label", r.pinLabel);
  }
  if (r.removals) j.set("removed_by_runtime", r.removals);
  j.set("last_error", r.lastError);
  if (!r.lastCode.empty()) j.set("error_code", r.lastCode);
  if (!r.waitReason.empty()) j.set("waiting_for", r.waitReason);
  if (r.state == PullState::kRetrying || r.state == PullState::kWaitingForDisk || r.state == PullState::kRemoved) {
    double in = std::chrono::duration<double>(r.nextAttemptAt - now).count();
    j.set("next_attempt_in_s", std::round(std::max(0.0, in) * 10) / 10);
  }
  if (r.requested != r.image) j.set("requested_as", r.requested);
  j.set("source", !r.configured ? "request" : r.source.empty() ? "config" : r.source);
  return j;
}

}  // namespace nodeagent::imagepull
