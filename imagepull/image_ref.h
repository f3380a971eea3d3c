// Image references as kubelet and containerd normalise them ("nginx" is
// "docker.io/library/nginx:latest"), so two spellings of one image share one pull.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace nodeagent::imagepull {

struct ImageRef {
  std::string registry;    // "docker.io", "127.0.0.1:5000", "registry.example.com"
  std::string repository;  // "library/nginx"
  std::string tag;         // empty when pinned by digest only
  std::string digest;      // "sha256:..." or empty

  // The canonical name: registry/repository[:tag][@digest].
  std::string canonical() const;
};

// Parses and normalises a reference by the distribution reference grammar (what containerd
// accepts): path components of lower-case alphanumerics with single separators (no "..",
// no leading '-'), a valid host, a tag of at most 128 characters, a sha256/384/512 digest.
[[nodiscard]] Result<ImageRef> parseImageRef(std::string_view text);

}  // namespace nodeagent::imagepull
