#include "imagepull/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace nodeagent::imagepull {

ByteProgress sumIngests(const std::vector<Ingest>& ingests, size_t pullsInFlight) {
  ByteProgress p;
  p.shared = pullsInFlight > 1;
  for (const auto& in : ingests) {
    ++p.downloads;
    p.done += in.offset;
    p.total += in.total ? std::max(in.total, in.offset) : in.offset;
    double took = std::chrono::duration<double>(in.updatedAt - in.startedAt).count();
    p.bytesPerSecond += static_cast<double>(in.offset) / std::max(took, 0.1);
  }
  return p;
}

std::string humanBytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(b >> 10));
  return buf;
}

std::string formatProgress(const ByteProgress& p) {
  if (p.downloads == 0) return "";
  std::string s = humanBytes(p.done) + " / " + humanBytes(p.total) + ", " +
                  humanBytes(static_cast<uint64_t>(p.bytesPerSecond)) + "/s (" + std::to_string(p.downloads) +
                  (p.downloads == 1 ? " download" : " downloads");
  return s + (p.shared ? ", node total: several pulls in flight)" : ")");
}

Json toJson(const ByteProgress& p) {
  return Json::object()
      .set("done", p.done)
      .set("total", p.total)
      .set("bytes_per_second", std::round(p.bytesPerSecond))
      .set("downloads", p.downloads)
      .set("shared", p.shared);
}

}  // namespace nodeagent::imagepull
