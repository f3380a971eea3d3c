// ControlServer: the gRPC Control service on a unix socket, read by nodeagentctl.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/module.h"
#include "core/state_store.h"
#include "common/result.h"

namespace grpc {
class Server;
}

namespace nodeagent::control {

struct ControlBackend {
  core::StateStore* store = nullptr;
  std::string nodeName;
  bool dryRun = false;
  std::chrono::system_clock::time_point started;
  std::function<Json()> configJson;        // the effective config
  std::function<std::string()> configSource;
  std::function<core::Module*(const std::string&)> findModule;
  std::function<std::vector<core::Module*>()> modules;  // in the order they run
};

struct SocketSpec {
  std::string path;
  unsigned mode = 0660;
  std::string group;  // applied when the group exists
};

class ControlServer {
 public:
  explicit ControlServer(ControlBackend backend);
  ~ControlServer();
  // Binds the socket (replacing a stale one), sets its mode and group, starts serving.
  [[nodiscard]] Result<void> start(const SocketSpec& socket);
  void stop();

 private:
  class Service;
  ControlBackend backend_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string socketPath_;
};

}  // namespace nodeagent::control
