#include "control/control_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
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

// The project's Json as the control API's Value: keys keep their order.
void toValue(const Json& j, v1::Value* out) {
  if (j.isBool()) {
    out->set_bool_value(j.asBool());
  } else if (j.isInt()) {
    out->set_int_value(j.asInt());
  } else if (j.isDouble()) {
    // Not finite: null, as Json writes it.
    if (std::isfinite(j.asDouble())) out->set_double_value(j.asDouble());
  } else if (j.isString()) {
    out->set_string_value(j.asString());
  } else if (j.isArray()) {
    auto* list = out->mutable_list_value();
    for (const auto& e : j.asArray()) toValue(e, list->add_values());
  } else if (j.isObject()) {
    auto* obj = out->mutable_object_value();
    for (const auto& [k, v] : j.asObject()) {
      auto* f = obj->add_fields();
      f->set_key(k);
      toValue(v, f->mutable_value());
    }
  }  // null: no kind
}

class StreamOutput final : public core::CallOutput {
 public:
  StreamOutput(grpc::ServerContext* ctx, grpc::ServerWriter<v1::CallEvent>* writer)
      : ctx_(ctx), writer_(writer) {}
  void progress(const Json& event) override {
    v1::CallEvent ev;
    toValue(event, ev.mutable_progress());
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
    toValue(b_.store->agentInfo(), resp->mutable_agent());
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
      toValue(m.state.details.isNull() ? Json::object() : m.state.details, ms->mutable_details());
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
    toValue(b_.configJson ? b_.configJson() : Json::object(), resp->mutable_config());
    return grpc::Status::OK;
  }

  grpc::Status ListCommands(grpc::ServerContext*, const v1::ListCommandsRequest*,
                            v1::ListCommandsResponse* resp) override {
    for (core::Module* m : b_.modules ? b_.modules() : std::vector<core::Module*>{}) {
      for (const auto& c : m->commands()) {
        auto* pc = resp->add_commands();
        pc->set_module(m->name());
        pc->set_group(c.group);
        pc->set_command(c.command);
        pc->set_help(c.help);
        for (const auto& a : c.args) pc->add_args(a);
        for (const auto& o : c.options) {
          auto* po = pc->add_options();
          po->set_name(o.name);
          po->set_help(o.help);
          po->set_flag(o.flag);
        }
        pc->set_mutating(c.mutating);
        pc->set_long_running(c.longRunning);
      }
    }
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
      toValue(*payload, result->mutable_payload());
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
      // Not fatal (root still gets in), but nobody else will: say so where it is seen.
      log::get("control")->warn("control.socket_group \"{}\" is not in /etc/group: {} keeps the daemon's group "
                                "and only root can use nodeagentctl (create it: groupadd --system {})",
                                socket.group, socket.path, socket.group);
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
