#include "imagepull/cri_decode.h"

namespace nodeagent::imagepull {

namespace {

ImageInfo toInfo(const runtime::v1::Image& im) {
  ImageInfo i;
  i.id = im.id();
  i.repoTags.assign(im.repo_tags().begin(), im.repo_tags().end());
  i.repoDigests.assign(im.repo_digests().begin(), im.repo_digests().end());
  i.size = im.size();
  i.pinned = im.pinned();
  return i;
}

}  // namespace

RuntimeVersion decodeVersion(const runtime::v1::VersionResponse& resp) {
  return RuntimeVersion{resp.runtime_name(), resp.runtime_version(), resp.runtime_api_version()};
}

std::optional<ImageInfo> decodeImageStatus(const runtime::v1::ImageStatusResponse& resp) {
  if (!resp.has_image() || resp.image().id().empty()) return std::nullopt;
  return toInfo(resp.image());
}

std::vector<ImageInfo> decodeListImages(const runtime::v1::ListImagesResponse& resp) {
  std::vector<ImageInfo> out;
  out.reserve(resp.images_size());
  for (const auto& im : resp.images()) out.push_back(toInfo(im));
  return out;
}

std::vector<FsUsage> decodeImageFsInfo(const runtime::v1::ImageFsInfoResponse& resp) {
  std::vector<FsUsage> out;
  for (const auto& f : resp.image_filesystems())
    out.push_back({f.fs_id().mountpoint(), f.has_used_bytes() ? f.used_bytes().value() : 0});
  return out;
}

}  // namespace nodeagent::imagepull
