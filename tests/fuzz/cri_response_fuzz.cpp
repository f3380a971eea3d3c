// The CRI answers the prefetcher and disk guard read from the runtime: Version,
// ImageStatus, ListImages, ImageFsInfo and PullImage. The first byte picks the message;
// the rest is its protobuf wire form, as gRPC would hand it over.
// Property: the disk guard's view of any ImageFsInfo answer is a percentage in [0, 100].
#include "imagepull/cri_decode.h"
#include "imagepull/disk_guard.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;
using namespace nodeagent::imagepull;

namespace {

// The runtime answers ImageFsInfo with the fuzzed file systems; everything else is unused.
class FsInfoService final : public ImageService {
 public:
  explicit FsInfoService(std::vector<FsUsage> fs) : fs_(std::move(fs)) {}
  Result<RuntimeVersion> version() override { return RuntimeVersion{}; }
  Result<std::optional<ImageInfo>> status(const std::string&) override { return std::optional<ImageInfo>{}; }
  Result<std::string> pull(const std::string&, const std::string&, const Credential*, std::chrono::milliseconds) override {
    return std::string();
  }
  Result<void> remove(const std::string&) override { return {}; }
  Result<std::vector<ImageInfo>> list() override { return std::vector<ImageInfo>{}; }
  Result<std::vector<FsUsage>> fsInfo() override { return fs_; }

 private:
  std::vector<FsUsage> fs_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  if (size < 1) return 0;
  const uint8_t* wire = data + 1;
  int len = static_cast<int>(size - 1);
  switch (data[0] % 5) {
    case 0: {
      runtime::v1::VersionResponse r;
      if (r.ParseFromArray(wire, len)) (void)decodeVersion(r);
      break;
    }
    case 1: {
      runtime::v1::ImageStatusResponse r;
      if (!r.ParseFromArray(wire, len)) break;
      auto info = decodeImageStatus(r);
      FUZZ_CHECK(!info || !info->id.empty());
      break;
    }
    case 2: {
      runtime::v1::ListImagesResponse r;
      if (r.ParseFromArray(wire, len)) FUZZ_CHECK(decodeListImages(r).size() == static_cast<size_t>(r.images_size()));
      break;
    }
    case 3: {
      runtime::v1::ImageFsInfoResponse r;
      if (!r.ParseFromArray(wire, len)) break;
      FsInfoService service(decodeImageFsInfo(r));
      // A capacity and free space from the input too, including the impossible ones
      // (more free than capacity, zero capacity) a broken statvfs could give.
      uint64_t cap = r.image_filesystems_size() > 0 ? r.image_filesystems(0).inodes_used().value() : 0;
      uint64_t avail = r.image_filesystems_size() > 0 ? r.image_filesystems(0).used_bytes().value() : 0;
      CriDiskProbe probe(service, [&](const std::string&) -> Result<FsStat> { return FsStat{cap, avail}; });
      auto usage = probe.probe();
      if (usage) FUZZ_CHECK(usage->usedPercent >= 0 && usage->usedPercent <= 100);
      break;
    }
    case 4: {
      runtime::v1::PullImageResponse r;
      (void)r.ParseFromArray(wire, len);
      break;
    }
  }
  return 0;
}
