// CriImageService: ImageService over CRI runtime.v1 gRPC on the runtime's unix socket
// (containerd's /run/containerd/containerd.sock by default), as kubelet talks to it.
#pragma once

#include <memory>
#include <string>

#include "imagepull/image_service.h"

namespace nodeagent::imagepull {

struct CriOptions {
  std::string endpoint = "unix:///run/containerd/containerd.sock";
  // Image lists of big nodes exceed gRPC's 4 MiB default; kubelet allows 16 MiB.
  int maxReceiveBytes = 64 << 20;
  std::chrono::milliseconds callTimeout{10000};  // for everything but PullImage
};

// The server_address containerd expects in AuthConfig: a URL whose host is the registry
// host (containerd parses it and drops the credential when the host differs).
std::string authServerAddress(const std::string& registryHost);

class CriImageService final : public ImageService {
 public:
  explicit CriImageService(CriOptions options);
  ~CriImageService() override;
  // Version fails with a clear message when the runtime does not serve runtime.v1.
  Result<RuntimeVersion> version() override;
  Result<std::optional<ImageInfo>> status(const std::string& image) override;
  Result<std::string> pull(const std::string& image, const std::string& registryHost, const Credential* auth,
                           std::chrono::milliseconds timeout) override;
  Result<void> remove(const std::string& image) override;
  Result<std::vector<ImageInfo>> list() override;
  Result<std::vector<FsUsage>> fsInfo() override;
  // containerd's own services on the same socket, namespace k8s.io (CRI's).
  Result<void> pin(const std::string& image) override;
  Result<std::vector<Ingest>> ingests() override;
  void cancelAll() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodeagent::imagepull
