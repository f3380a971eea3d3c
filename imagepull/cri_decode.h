// What the agent reads from the runtime's CRI answers, as pure functions of the decoded
// protobuf messages (no gRPC), so the fuzz target and unit tests reach them directly.
#pragma once

#include <optional>
#include <vector>

#include "api.pb.h"
#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

RuntimeVersion decodeVersion(const runtime::v1::VersionResponse& resp);
// nullopt when the runtime does not have the image (no image, or one without an id).
std::optional<ImageInfo> decodeImageStatus(const runtime::v1::ImageStatusResponse& resp);
std::vector<ImageInfo> decodeListImages(const runtime::v1::ListImagesResponse& resp);
std::vector<FsUsage> decodeImageFsInfo(const runtime::v1::ImageFsInfoResponse& resp);

}  // namespace nodeagent::imagepull
