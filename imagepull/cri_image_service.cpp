#include "imagepull/cri_image_service.h"

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <set>

#include "api.grpc.pb.h"
#include "containerd_content.grpc.pb.h"
#include "containerd_images.grpc.pb.h"
#include "imagepull/cri_decode.h"

namespace nodeagent::imagepull {

namespace {

class GrpcCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "grpc"; }
  std::string message(int c) const override { return std::string(grpcCodeName(static_cast<GrpcCode>(c))); }
};

Error toError(const grpc::Status& s, const std::string& what) {
  // The runtime's message names the image and the registry; it never carries credentials.
  return Error(makeGrpcError(static_cast<GrpcCode>(s.error_code())), what + ": " + s.error_message());
}

}  // namespace

const std::error_category& grpcCategory() {
  static GrpcCategory c;
  return c;
}

GrpcCode grpcCodeOf(const Error& e) {
  if (e.code().category() == grpcCategory()) return static_cast<GrpcCode>(e.code().value());
  return GrpcCode::kUnknown;
}

std::string_view grpcCodeName(GrpcCode c) {
  static constexpr std::string_view kNames[] = {
      "OK", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
      "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
      "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
  auto i = static_cast<size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "Unknown";
}

std::string authServerAddress(const std::string& registryHost) { return "https://" + registryHost; }

struct CriImageService::Impl {
  CriOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime;
  std::unique_ptr<runtime::v1::ImageService::Stub> images;
  std::unique_ptr<containerd::services::images::v1::Images::Stub> ctrImages;
  std::unique_ptr<containerd::services::content::v1::Content::Stub> ctrContent;
  std::mutex mu;
  std::set<grpc::ClientContext*> pulls;  // in flight, for cancelAll()
  bool cancelled = false;

  void deadline(grpc::ClientContext& ctx, std::chrono::milliseconds d) const {
    ctx.set_deadline(std::chrono::system_clock::now() + d);
  }
  // containerd's own services need the namespace; CRI keeps its images in k8s.io.
  void containerdCall(grpc::ClientContext& ctx) const {
    deadline(ctx, options.callTimeout);
    ctx.AddMetadata("containerd-namespace", "k8s.io");
  }
};

CriImageService::CriImageService(CriOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(impl_->options.maxReceiveBytes);
  impl_->channel = grpc::CreateCustomChannel(impl_->options.endpoint, grpc::InsecureChannelCredentials(), args);
  impl_->runtime = runtime::v1::RuntimeService::NewStub(impl_->channel);
  impl_->images = runtime::v1::ImageService::NewStub(impl_->channel);
  impl_->ctrImages = containerd::services::images::v1::Images::NewStub(impl_->channel);
  impl_->ctrContent = containerd::services::content::v1::Content::NewStub(impl_->channel);
}

CriImageService::~CriImageService() = default;

Result<RuntimeVersion> CriImageService::version() {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, impl_->options.callTimeout);
  runtime::v1::VersionRequest req;
  req.set_version("v1");
  runtime::v1::VersionResponse resp;
  auto s = impl_->runtime->Version(&ctx, req, &resp);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED)
    return fail(Error(makeGrpcError(GrpcCode::kUnimplemented),
                      "container runtime at " + impl_->options.endpoint +
                          " does not serve CRI runtime.v1 (is its CRI plugin enabled? containerd >= 1.6 serves it)"));
  if (!s.ok()) return fail(toError(s, "CRI Version at " + impl_->options.endpoint));
  return decodeVersion(resp);
}

Result<std::optional<ImageInfo>> CriImageService::status(const std::string& image) {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, impl_->options.callTimeout);
  runtime::v1::ImageStatusRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::ImageStatusResponse resp;
  auto s = impl_->images->ImageStatus(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "CRI ImageStatus " + image));
  return decodeImageStatus(resp);
}

Result<std::string> CriImageService::pull(const std::string& image, const std::string& registryHost,
                                          const Credential* auth, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, timeout);
  runtime::v1::PullImageRequest req;
  req.mutable_image()->set_image(image);
  if (auth) {
    auto* a = req.mutable_auth();
    a->set_username(auth->username);
    a->set_password(auth->password);
    a->set_identity_token(auth->identityToken);
    a->set_registry_token(auth->registryToken);
    a->set_server_address(authServerAddress(registryHost));
  }
  runtime::v1::PullImageResponse resp;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->cancelled) return fail(Error(makeGrpcError(GrpcCode::kCancelled), "CRI PullImage " + image + ": shutting down"));
    impl_->pulls.insert(&ctx);
  }
  auto s = impl_->images->PullImage(&ctx, req, &resp);
  {
    std::lock_guard lock(impl_->mu);
    impl_->pulls.erase(&ctx);
  }
  req.Clear();  // drop the secret copy now rather than at scope end
  if (!s.ok()) return fail(toError(s, "CRI PullImage " + image));
  return resp.image_ref();
}

void CriImageService::cancelAll() {
  std::lock_guard lock(impl_->mu);
  impl_->cancelled = true;
  for (auto* ctx : impl_->pulls) ctx->TryCancel();
}

Result<void> CriImageService::remove(const std::string& image) {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, impl_->options.callTimeout);
  runtime::v1::RemoveImageRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::RemoveImageResponse resp;
  auto s = impl_->images->RemoveImage(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "CRI RemoveImage " + image));
  return {};
}

Result<std::vector<ImageInfo>> CriImageService::list() {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, impl_->options.callTimeout);
  runtime::v1::ListImagesRequest req;
  runtime::v1::ListImagesResponse resp;
  auto s = impl_->images->ListImages(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "CRI ListImages"));
  return decodeListImages(resp);
}

Result<std::vector<FsUsage>> CriImageService::fsInfo() {
  grpc::ClientContext ctx;
  impl_->deadline(ctx, impl_->options.callTimeout);
  runtime::v1::ImageFsInfoRequest req;
  runtime::v1::ImageFsInfoResponse resp;
  auto s = impl_->images->ImageFsInfo(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "CRI ImageFsInfo"));
  return decodeImageFsInfo(resp);
}

Result<void> CriImageService::pin(const std::string& image) {
  namespace images = containerd::services::images::v1;
  constexpr const char* kKey = "io.cri-containerd.pinned";
  images::GetImageResponse got;
  {
    grpc::ClientContext ctx;
    impl_->containerdCall(ctx);
    images::GetImageRequest req;
    req.set_name(image);
    auto s = impl_->ctrImages->Get(&ctx, req, &got);
    if (!s.ok()) return fail(toError(s, "containerd images Get " + image));
  }
  if (got.image().labels().contains(kKey)) return {};
  // The whole image goes back (containerd validates its target), with a mask naming only
  // the one label: nothing else of the image changes.
  grpc::ClientContext ctx;
  impl_->containerdCall(ctx);
  images::UpdateImageRequest req;
  *req.mutable_image() = got.image();
  (*req.mutable_image()->mutable_labels())[kKey] = "pinned";
  req.mutable_update_mask()->add_paths(std::string("labels.") + kKey);
  images::UpdateImageResponse resp;
  auto s = impl_->ctrImages->Update(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "containerd images Update " + image + " (pin label)"));
  return {};
}

Result<std::vector<Ingest>> CriImageService::ingests() {
  namespace content = containerd::services::content::v1;
  grpc::ClientContext ctx;
  impl_->containerdCall(ctx);
  content::ListStatusesRequest req;
  content::ListStatusesResponse resp;
  auto s = impl_->ctrContent->ListStatuses(&ctx, req, &resp);
  if (!s.ok()) return fail(toError(s, "containerd content ListStatuses"));
  auto when = [](const content::Timestamp& t) {
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
  };
  std::vector<Ingest> out;
  for (const auto& st : resp.statuses())
    out.push_back({.ref = st.ref(),
                   .offset = static_cast<uint64_t>(std::max<int64_t>(0, st.offset())),
                   .total = static_cast<uint64_t>(std::max<int64_t>(0, st.total())),
                   .startedAt = when(st.started_at()),
                   .updatedAt = when(st.updated_at())});
  return out;
}

}  // namespace nodeagent::imagepull
