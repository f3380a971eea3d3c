#include "imagepull/disk_guard.h"

#include <sys/statvfs.h>

namespace nodeagent::imagepull {

Result<FsStat> statFs(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return failErrno("statvfs " + path);
  return FsStat{static_cast<uint64_t>(st.f_blocks) * st.f_frsize, static_cast<uint64_t>(st.f_bavail) * st.f_frsize};
}

Result<DiskUsage> CriDiskProbe::probe() {
  auto fs = service_.fsInfo();
  if (!fs) return fail(fs.error());
  if (fs->empty() || fs->front().mountpoint.empty())
    return failInvalid("CRI ImageFsInfo returned no image file system");
  DiskUsage u;
  u.mountpoint = fs->front().mountpoint;
  u.imageBytes = fs->front().usedBytes;
  auto st = stat_(u.mountpoint);
  if (!st) return fail(st.error());
  u.capacityBytes = st->capacity;
  u.availableBytes = st->available;
  if (u.capacityBytes > 0)
    u.usedPercent = 100.0 * static_cast<double>(u.capacityBytes - std::min(u.availableBytes, u.capacityBytes)) /
                    static_cast<double>(u.capacityBytes);
  return u;
}

}  // namespace nodeagent::imagepull
