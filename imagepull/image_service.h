// ImageService: what the prefetcher needs from a container runtime. CriImageService talks
// CRI runtime.v1 over gRPC; tests of the scheduling logic use a small fake.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "common/result.h"
#include "imagepull/credentials.h"

namespace nodeagent::imagepull {

// gRPC status codes as std::error_code values, so Result errors keep the code a retry
// decision needs (NOT_FOUND = 5, DEADLINE_EXCEEDED = 4, UNAVAILABLE = 14, ...).
const std::error_category& grpcCategory();
enum class GrpcCode {
  kOk = 0, kCancelled = 1, kUnknown = 2, kInvalidArgument = 3, kDeadlineExceeded = 4,
  kNotFound = 5, kAlreadyExists = 6, kPermissionDenied = 7, kResourceExhausted = 8,
  kFailedPrecondition = 9, kAborted = 10, kOutOfRange = 11, kUnimplemented = 12,
  kInternal = 13, kUnavailable = 14, kDataLoss = 15, kUnauthenticated = 16,
};
inline std::error_code makeGrpcError(GrpcCode c) { return {static_cast<int>(c), grpcCategory()}; }
// The gRPC code of an error, or kUnknown when it did not come from gRPC.
GrpcCode grpcCodeOf(const Error& e);
std::string_view grpcCodeName(GrpcCode c);

struct RuntimeVersion {
  std::string runtimeName;
  std::string runtimeVersion;
  std::string apiVersion;
};

struct ImageInfo {
  std::string id;  // "sha256:..." of the config
  std::vector<std::string> repoTags;
  std::vector<std::string> repoDigests;
  uint64_t size = 0;
  bool pinned = false;
};

struct FsUsage {
  std::string mountpoint;
  uint64_t usedBytes = 0;
};

// One download in flight in the runtime's content store (containerd ListStatuses): a blob
// of some image being written, `offset` of `total` bytes.
struct Ingest {
  std::string ref;  // containerd's ingest key, "layer-sha256:...", "manifest-sha256:..."
  uint64_t offset = 0;
  uint64_t total = 0;  // 0 when unknown
  std::chrono::system_clock::time_point startedAt{}, updatedAt{};
};

class ImageService {
 public:
  virtual ~ImageService() = default;
  [[nodiscard]] virtual Result<RuntimeVersion> version() = 0;
  // nullopt when the image is not present.
  [[nodiscard]] virtual Result<std::optional<ImageInfo>> status(const std::string& image) = 0;
  // Returns the image id. `auth` may be null. The call is cancelled after `timeout`.
  [[nodiscard]] virtual Result<std::string> pull(const std::string& image, const std::string& registryHost,
                                                 const Credential* auth, std::chrono::milliseconds timeout) = 0;
  [[nodiscard]] virtual Result<void> remove(const std::string& image) = 0;
  [[nodiscard]] virtual Result<std::vector<ImageInfo>> list() = 0;
  [[nodiscard]] virtual Result<std::vector<FsUsage>> fsInfo() = 0;
  // Asks the runtime to keep the image from garbage collection (containerd: the image label
  // io.cri-containerd.pinned=pinned, set through its images service; the CRI then reports
  // Image.pinned from containerd 1.7.10 on and the kubelet's image GC skips it).
  [[nodiscard]] virtual Result<void> pin(const std::string& image) {
    return fail(Error(makeGrpcError(GrpcCode::kUnimplemented), "pin " + image + ": not supported by this runtime client"));
  }
  // The runtime's downloads in flight, for byte progress (containerd's content service).
  [[nodiscard]] virtual Result<std::vector<Ingest>> ingests() {
    return fail(Error(makeGrpcError(GrpcCode::kUnimplemented), "byte progress: not supported by this runtime client"));
  }
  // Cancels pulls in flight and refuses new ones (at shutdown); they fail with Cancelled.
  virtual void cancelAll() {}
};

}  // namespace nodeagent::imagepull
