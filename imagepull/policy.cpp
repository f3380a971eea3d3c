#include "imagepull/policy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <initializer_list>

namespace nodeagent::imagepull {

namespace {

bool containsNoCase(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

}  // namespace

std::string_view tierName(Tier t) {
  switch (t) {
    case Tier::kBase: return "base";
    case Tier::kBusiness: return "business";
    case Tier::kEnvironment: return "environment";
  }
  return "unknown";
}

std::optional<Tier> parseTier(std::string_view name) {
  for (Tier t : {Tier::kBase, Tier::kBusiness, Tier::kEnvironment})
    if (tierName(t) == name) return t;
  return std::nullopt;
}

std::string_view stateName(PullState s) {
  switch (s) {
    case PullState::kQueued: return "queued";
    case PullState::kPulling: return "pulling";
    case PullState::kPresent: return "present";
    case PullState::kFailed: return "failed";
    case PullState::kWaitingForDisk: return "waiting-for-disk";
    case PullState::kRetrying: return "retrying";
    case PullState::kWouldPull: return "would-pull";
    case PullState::kRemoved: return "removed";
  }
  return "unknown";
}

RetryClass classifyError(GrpcCode code, std::string_view message) {
  // containerd: "failed to pull and unpack image ...: invalid reference format" (Unknown).
  if (code == GrpcCode::kInvalidArgument || containsNoCase(message, "invalid reference format"))
    return RetryClass::kRejected;
  switch (code) {
    case GrpcCode::kNotFound:
    case GrpcCode::kPermissionDenied:
    case GrpcCode::kUnauthenticated:
    case GrpcCode::kUnimplemented:
      return RetryClass::kPermanent;
    default:
      break;
  }
  for (std::string_view auth : {"401 Unauthorized", "403 Forbidden", "authorization failed", "unauthorized:",
                                "pull access denied"})
    if (containsNoCase(message, auth)) return RetryClass::kPermanent;
  if (containsNoCase(message, "not found") && containsNoCase(message, "manifest")) return RetryClass::kPermanent;
  return RetryClass::kRetryable;
}

std::chrono::milliseconds backoffDelay(unsigned attempt, std::chrono::milliseconds initial,
                                       std::chrono::milliseconds max, double jitter01) {
  double d = static_cast<double>(initial.count());
  for (unsigned i = 1; i < attempt && d < static_cast<double>(max.count()); ++i) d *= 2;
  d = std::min(d, static_cast<double>(max.count()));
  jitter01 = std::clamp(jitter01, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(d * (0.5 + 0.5 * jitter01)));
}

namespace {

// FNV-1a over the parts (a 0xff byte between them: no name holds it), then the high bits
// mixed down: FNV's low bits alone spread poorly for names like node-0001.
uint64_t spreadHash(std::initializer_list<std::string_view> parts) {
  uint64_t h = 14695981039346656037ull;
  bool first = true;
  for (auto part : parts) {
    if (!first) h = (h ^ 0xffu) * 1099511628211ull;
    first = false;
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ull;
    }
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

std::chrono::milliseconds slot(uint64_t hash, std::chrono::milliseconds window) {
  if (window.count() <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<int64_t>(hash % static_cast<uint64_t>(window.count())));
}

}  // namespace

std::chrono::milliseconds startDelay(std::string_view nodeName, std::chrono::milliseconds window) {
  return slot(spreadHash({nodeName}), window);
}

std::chrono::milliseconds startDelay(std::string_view nodeName, std::string_view setName,
                                     std::chrono::milliseconds window) {
  return slot(spreadHash({nodeName, setName}), window);
}

std::chrono::steady_clock::time_point separateStart(std::chrono::steady_clock::time_point candidate,
                                                    const std::vector<std::chrono::steady_clock::time_point>& taken,
                                                    std::chrono::milliseconds gap) {
  // Each move clears at least one start, so this ends after at most taken.size() moves.
  for (size_t moves = 0; moves <= taken.size(); ++moves) {
    auto clash = std::find_if(taken.begin(), taken.end(), [&](auto t) { return candidate > t - gap && candidate < t + gap; });
    if (clash == taken.end()) break;
    candidate = *clash + gap;
  }
  return candidate;
}

}  // namespace nodeagent::imagepull
