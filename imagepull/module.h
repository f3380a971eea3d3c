// ImagePullModule: the agent module for layered image prefetch over CRI. Reconcile hands
// the configured tiers to the Prefetcher, re-checks environment images on their interval
// and publishes per-image state; call() serves `nodeagentctl images ...`.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "core/module.h"
#include "imagepull/config.h"
#include "imagepull/disk_guard.h"
#include "imagepull/image_service.h"
#include "imagepull/prefetcher.h"

namespace nodeagent::imagepull {

class ImagePullModule final : public core::Module {
 public:
  // `service` is the runtime client (CriImageService for the configured endpoint when null).
  ImagePullModule(core::ModuleContext ctx, Config config, std::string nodeName,
                  std::unique_ptr<ImageService> service = nullptr);
  ~ImagePullModule() override;

  std::string name() const override { return "imagepull"; }
  Result<void> reconcile(const core::ReconcileContext& ctx) override;
  // Takes a new, validated `imagepull:` section (SIGHUP). Main thread.
  void reload(const Config& config);
  std::chrono::milliseconds resyncInterval() const override;
  std::vector<core::CommandSpec> commands() const override;
  Result<Json> call(const core::CallRequest& req, core::CallOutput& out) override;
  void stop() override;

 private:
  PrefetchOptions optionsFor(const Config& c, bool dryRun) const;
  Result<Json> callPull(const core::CallRequest& req, core::CallOutput& out);
  Json statusJson();
  void publish(const Config& c);

  core::ModuleContext ctx_;
  std::string nodeName_;
  std::unique_ptr<ImageService> service_;
  std::unique_ptr<CriDiskProbe> disk_;
  std::unique_ptr<Prefetcher> prefetcher_;
  SteadyTime started_;

  mutable std::mutex mu_;  // guards the fields below
  Config config_;
  bool configChanged_ = true;
  std::string runtimeError_;
  std::optional<RuntimeVersion> runtime_;
  std::string credentialsError_;
  size_t credentialHosts_ = 0;
  SteadyTime nextRefresh_{};
};

}  // namespace nodeagent::imagepull
