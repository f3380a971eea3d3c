// The pure decisions of image prefetch: tier order, which errors are worth retrying, how
// long to back off, and where in the fleet-wide start window this node begins.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

// Declared in priority order: base first, then on-demand business pulls, then environment.
enum class Tier { kBase = 0, kBusiness = 1, kEnvironment = 2 };
std::string_view tierName(Tier t);
std::optional<Tier> parseTier(std::string_view name);

// kRemoved: the image was present and the runtime no longer has it (the kubelet's image GC,
// `crictl rmi`); it waits for its re-pull backoff and the disk guard.
enum class PullState { kQueued, kPulling, kPresent, kFailed, kWaitingForDisk, kRetrying, kWouldPull, kRemoved };
std::string_view stateName(PullState s);
inline bool isTerminal(PullState s) {
  return s == PullState::kPresent || s == PullState::kFailed || s == PullState::kWouldPull;
}

enum class RetryClass {
  kRetryable,  // the registry or runtime may recover: Unavailable, DeadlineExceeded, Unknown...
  kPermanent,  // retrying will not help soon: NotFound, auth refused
  kRejected,   // the request itself is wrong (an invalid reference): never retried
};
// containerd reports many registry failures as Unknown with the HTTP status in the text,
// so an auth refusal and an invalid reference are recognised by their message too.
RetryClass classifyError(GrpcCode code, std::string_view message);

// Exponential backoff with jitter: initial * 2^(attempt-1), capped at max, then scaled into
// [50%, 100%] by jitter01 in [0, 1), so nodes that failed together do not retry together.
std::chrono::milliseconds backoffDelay(unsigned attempt, std::chrono::milliseconds initial,
                                       std::chrono::milliseconds max, double jitter01);

// Where this node starts within the fleet-wide window: FNV-1a of the node name, scaled to
// [0, window). The same name always gets the same delay; names spread evenly.
std::chrono::milliseconds startDelay(std::string_view nodeName, std::chrono::milliseconds window);
// Where one prefetch set starts within the window on this node, counted from when the node
// first selected it: a hash of the node name AND the set name, so a set new to the whole
// fleet spreads over the window, and two sets on one node land on unrelated offsets.
std::chrono::milliseconds startDelay(std::string_view nodeName, std::string_view setName,
                                     std::chrono::milliseconds window);
// A set's start on this node, at least `gap` away from every start in `taken` (the other
// sets' starts on this node): `candidate`, moved later by whole gaps while it collides.
std::chrono::steady_clock::time_point separateStart(std::chrono::steady_clock::time_point candidate,
                                                    const std::vector<std::chrono::steady_clock::time_point>& taken,
                                                    std::chrono::milliseconds gap);

}  // namespace nodeagent::imagepull
