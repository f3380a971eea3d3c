#include "control/control_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/version.h"
#include "common/files.h"
#include "common/log.h"
#include "control.grpc.pb.h"

namespace nodeagent::control {

namespace {

int64_t unixMs(std::chrono::system_clock::time_point tp) {
  if (tp.time_since_epoch().count() == 0) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
}

class StreamOutput final : public core::CallOutput {
 public:
  StreamOutput(grpc::ServerContext* ctx, grpc::ServerWriter<v1::CallEvent>* writer)
      : ctx_(ctx), writer_(writer) {}
  void progress(const Json& event) override {
    v1::CallEvent ev;
    ev.set_progress_json(event.dump());
    writer_->Write(ev);
  }
  bool cancelled() const override { return ctx_->IsCancelled(); }

 private:
  grpc::ServerContext* ctx_;
  grpc::ServerWriter<v1::CallEvent>* writer_;
};

}  // namespace

class ControlServer::Service final : public v1::Control::Service {
 public:
  explicit Service(const ControlBackend& b) : b_(b) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*, v1::GetStatusResponse* resp) override {
    auto mods = b_.store->snapshot();
    resp->set_health(std::string(core::healthName(core::overallHealth(mods))));
    resp->set_summary(core::summarize(mods));
    resp->set_node_name(b_.nodeName);
    resp->set_version(kVersion);
    resp->set_config_source(b_.configSource ? b_.configSource() : "");
    resp->set_started_unix_ms(unixMs(b_.started));
    resp->set_dry_run(b_.dryRun);
    resp->set_agent_json(b_.store->agentInfo().dump());
    for (const auto& m : mods) {
      auto* ms = resp->add_modules();
      ms->set_name(m.state.name);
      core::Health h = m.state.health;
      if (h != core::Health::kDisabled && h == core::Health::kHealthy && !m.runner.lastError.empty()) h = core::Health::kDegraded;
      ms->set_health(std::string(core::healthName(h)));
      ms->set_summary(m.state.summary);
      for (const auto& c : m.state.conditions) {
        auto* pc = ms->add_conditions();
        pc->set_type(c.type);
        pc->set_status(c.status ? "True" : "False");
        pc->set_reason(c.reason);
        pc->set_message(c.message);
      }
      ms->set_details_json(m.state.details.isNull() ? "{}" : m.state.details.dump());
      ms->set_reconciles(m.runner.reconciles);
      ms->set_failures(m.runner.failures);
      ms->set_last_error(m.runner.lastError);
      ms->set_last_reconcile_unix_ms(unixMs(m.runner.lastReconcile));
      ms->set_last_duration_ms(m.runner.lastDuration.count());
    }
    return grpc::Status::OK;
  }

  grpc::Status GetVersion(grpc::ServerContext*, const v1::GetVersionRequest*, v1::GetVersionResponse* resp) override {
    resp->set_version(kVersion);
    resp->set_git_commit(kGitCommit);
    resp->set_build_type(kBuildType);
    return grpc::Status::OK;
  }

  grpc::Status GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*, v1::GetConfigResponse* resp) override {
    resp->set_source(b_.configSource ? b_.configSource() : "");
    resp->set_json(b_.configJson ? b_.configJson().dump() : "{}");
    return grpc::Status::OK;
  }

  grpc::Status Call(grpc::ServerContext* ctx, const v1::CallRequest* req,
                    grpc::ServerWriter<v1::CallEvent>* writer) override {
    v1::CallEvent done;
    auto* result = done.mutable_result();
    core::Module* module = b_.findModule ? b_.findModule(req->module()) : nullptr;
    if (!module) {
      result->set_exit_code(2);
      result->set_message("no module \"" + req->module() + "\" is running in this agent");
      writer->Write(done);
      return grpc::Status::OK;
    }
    core::CallRequest call;
    call.command = req->command();
    call.args.assign(req->args().begin(), req->args().end());
    for (const auto& [k, v] : req->options()) call.options[k] = v;
    call.dryRun = req->dry_run();
    StreamOutput out(ctx, writer);
    auto payload = module->call(call, out);
    if (payload) {
      result->set_exit_code(0);
      result->set_payload_json(payload->dump());
    } else {
      bool badRequest = payload.error().code() == std::errc::invalid_argument;
      result->set_exit_code(badRequest ? 2 : 1);
      result->set_message(payload.error().message());
      log::get("control")->warn("{} {}: {}", req->module(), req->command(), payload.error().message());
    }
    writer->Write(done);
    return grpc::Status::OK;
  }

 private:
  const ControlBackend& b_;
};

ControlServer::ControlServer(ControlBackend backend) : backend_(std::move(backend)) {}

ControlServer::~ControlServer() { stop(); }

Result<void> ControlServer::start(const SocketSpec& socket) {
  std::filesystem::path p(socket.path);
  if (auto r = makeDirs(p.parent_path().string(), 0755); !r) return r;
  // A socket file left by a previous run would make bind fail; only ever remove a socket.
  struct stat st;
  if (::lstat(socket.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return failInvalid(socket.path + " exists and is not a socket");
    ::unlink(socket.path.c_str());
  }
  service_ = std::make_unique<Service>(backend_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket.path, grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  // A node agent serves one CLI at a time: keep the thread pool small.
  grpc::ResourceQuota quota("nodeagent-control");
  quota.SetMaxThreads(4);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  server_ = builder.BuildAndStart();
  if (!server_) return failInvalid("cannot listen on " + socket.path);
  socketPath_ = socket.path;
  if (::chmod(socket.path.c_str(), socket.mode) != 0) return failErrno("chmod " + socket.path);
  if (!socket.group.empty()) {
    if (auto gid = localGroupId(socket.group)) {
      if (::chown(socket.path.c_str(), static_cast<uid_t>(-1), *gid) != 0)
        return failErrno("chown " + socket.path + " to group " + socket.group);
    } else {
      log::get("control")->debug("group {} is not in /etc/group; socket keeps the default group", socket.group);
    }
  }
  return {};
}

void ControlServer::stop() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
    ::unlink(socketPath_.c_str());
  }
}

}  // namespace nodeagent::control
