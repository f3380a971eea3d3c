// Byte progress of pulls in flight, from the runtime's downloads (containerd's content
// service ListStatuses; ImageService::ingests). CRI names no image in an ingest (its keys
// are "layer-sha256:..."), so the downloads are attributed to the one pull in flight; with
// several pulls in flight the figures are the node's total, marked shared. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/json.h"
#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

struct ByteProgress {
  uint64_t done = 0;
  uint64_t total = 0;           // of the downloads whose size is known
  double bytesPerSecond = 0;    // each download's bytes over its own time so far, summed
  size_t downloads = 0;
  bool shared = false;          // several pulls in flight: the node's total, not this image's
};

ByteProgress sumIngests(const std::vector<Ingest>& ingests, size_t pullsInFlight);
// "12.0 MiB / 40.0 MiB, 5.2 MiB/s (3 downloads)"; "" when nothing is downloading.
std::string formatProgress(const ByteProgress& p);
Json toJson(const ByteProgress& p);
std::string humanBytes(uint64_t bytes);

}  // namespace nodeagent::imagepull
