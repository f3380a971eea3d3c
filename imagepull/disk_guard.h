// DiskGuard: how full the runtime's image file system is. The mount point comes from CRI
// ImageFsInfo (the runtime knows where it keeps images), the capacity from statvfs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

struct DiskUsage {
  std::string mountpoint;
  uint64_t imageBytes = 0;     // what the runtime says its images use (ImageFsInfo)
  uint64_t capacityBytes = 0;  // statvfs of the mount point
  uint64_t availableBytes = 0;
  double usedPercent = 0;  // (capacity - available) / capacity, as kubelet's GC sees it
};

class DiskProbe {
 public:
  virtual ~DiskProbe() = default;
  [[nodiscard]] virtual Result<DiskUsage> probe() = 0;
};

// statvfs is injectable so unit tests can pretend a disk is full.
struct FsStat {
  uint64_t capacity = 0;
  uint64_t available = 0;
};
using StatFs = std::function<Result<FsStat>(const std::string& path)>;
[[nodiscard]] Result<FsStat> statFs(const std::string& path);

class CriDiskProbe final : public DiskProbe {
 public:
  explicit CriDiskProbe(ImageService& service, StatFs stat = statFs) : service_(service), stat_(std::move(stat)) {}
  Result<DiskUsage> probe() override;

 private:
  ImageService& service_;
  StatFs stat_;
};

}  // namespace nodeagent::imagepull
