#include "core/node_module.h"

#include <unistd.h>

#include <charconv>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "core/state_store.h"
#include "common/files.h"

namespace nodeagent::core {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Counts CPUs in a list such as "0-3,5,7-8" (the format of /sys/devices/system/cpu/online).
std::optional<unsigned> countCpuList(const std::string& list) {
  auto number = [](std::string_view t) -> std::optional<unsigned> {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
    return v;
  };
  unsigned n = 0;
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ',')) {
    auto dash = part.find('-');
    if (dash == std::string::npos) {
      if (!number(part)) return std::nullopt;
      n += 1;
    } else {
      auto a = number(std::string_view(part).substr(0, dash)), b = number(std::string_view(part).substr(dash + 1));
      if (!a || !b) return std::nullopt;
      n += *b >= *a ? *b - *a + 1 : 0;
    }
  }
  return n;
}

}  // namespace

Result<NodeFacts> readNodeFacts(const std::string& procRoot, const std::string& sysRoot) {
  NodeFacts f;
  if (auto online = readFile(sysRoot + "/devices/system/cpu/online")) {
    auto cpus = countCpuList(trim(*online));
    if (!cpus) return failInvalid("cannot parse " + sysRoot + "/devices/system/cpu/online: \"" + trim(*online) + "\"");
    f.cpus = std::max(1u, *cpus);
  } else {
    f.cpus = std::max(1u, std::thread::hardware_concurrency());
  }
  auto meminfo = readFile(procRoot + "/meminfo");
  if (!meminfo) return fail(meminfo.error());
  std::istringstream in(*meminfo);
  std::string key;
  uint64_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemTotal:") {
      f.memoryBytes = kb * 1024;
      break;
    }
    in.ignore(1 << 20, '\n');
  }
  if (auto rel = readFile(procRoot + "/sys/kernel/osrelease")) f.kernelRelease = trim(*rel);
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) f.hostname = host;
  return f;
}

NodeModule::NodeModule(ModuleContext ctx, std::string procRoot, std::string sysRoot)
    : ctx_(std::move(ctx)), procRoot_(std::move(procRoot)), sysRoot_(std::move(sysRoot)) {}

Result<void> NodeModule::reconcile(const ReconcileContext&) {
  auto facts = readNodeFacts(procRoot_, sysRoot_);
  ModuleState s;
  s.name = name();
  if (!facts) {
    s.health = Health::kDegraded;
    s.summary = "cannot read node facts";
    ctx_.store->publish(std::move(s));
    return fail(facts.error());
  }
  s.health = Health::kHealthy;
  s.summary = std::to_string(facts->cpus) + " CPUs, " + std::to_string(facts->memoryBytes >> 20) +
              " MiB, kernel " + facts->kernelRelease;
  s.details = Json::object()
                  .set("cpus", facts->cpus)
                  .set("memory_bytes", facts->memoryBytes)
                  .set("kernel", facts->kernelRelease)
                  .set("hostname", facts->hostname);
  {
    std::lock_guard lock(mu_);
    facts_ = s.details;
  }
  s.metrics.push_back({"nodeagent_node_cpus", "CPUs online on the node", Metric::Type::kGauge, {}, double(facts->cpus)});
  ctx_.store->publish(std::move(s));
  return {};
}

std::vector<CommandSpec> NodeModule::commands() const {
  return {{.command = "facts", .help = "what the agent knows about this node"}};
}

Result<Json> NodeModule::call(const CallRequest& req, CallOutput& out) {
  if (req.command != "facts") return Module::call(req, out);
  std::lock_guard lock(mu_);
  return facts_;
}

}  // namespace nodeagent::core
