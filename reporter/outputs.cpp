#include "reporter/outputs.h"

#include "common/version.h"
#include "common/files.h"
#include "common/log.h"

namespace nodeagent::reporter {

namespace {
std::shared_ptr<spdlog::logger> logger() { return log::get("reporter"); }

std::string parentDir(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}
}  // namespace

Json StatusFileWriter::render(const core::StateStore& store, const std::string& nodeName) {
  auto mods = store.snapshot();
  Json modules = Json::array();
  for (const auto& m : mods) {
    Json conds = Json::array();
    for (const auto& c : m.state.conditions)
      conds.push(Json::object()
                     .set("type", c.type)
                     .set("status", c.status ? "True" : "False")
                     .set("reason", c.reason)
                     .set("message", c.message));
    modules.push(Json::object()
                     .set("name", m.state.name)
                     .set("health", std::string(core::healthName(m.state.health)))
                     .set("summary", m.state.summary)
                     .set("conditions", conds)
                     .set("last_error", m.runner.lastError));
  }
  Json info = store.agentInfo();
  Json reporter = info.get("reporter");
  Json slim = Json::object();
  for (const char* k : {"state", "last_patch", "patches_sent", "patches_failed", "changes_coalesced", "last_error"})
    if (reporter.has(k)) slim.set(k, reporter.get(k));
  return Json::object()
      .set("node", nodeName)
      .set("version", kVersion)
      .set("health", std::string(core::healthName(core::overallHealth(mods))))
      .set("modules", modules)
      .set("reporter", slim);
}

void StatusFileWriter::start() {
  thread_ = std::thread([this] { run(); });
}

void StatusFileWriter::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  store_.publishAgentInfo("status_file", Json::object().set("path", path_).set("writes", writes_.load()).set("state", "stopped"));
  thread_.join();
}

void StatusFileWriter::run() {
  uint64_t seen = 0;
  std::string last;
  auto lastWrite = std::chrono::steady_clock::time_point{};
  bool warned = false;
  while (!stop_) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::hours(24);
    auto change = store_.waitForChange(seen, deadline);
    if (stop_ || change.closed) return;
    seen = change.version;
    std::string text = render(store_, nodeName_).dump(2) + "\n";
    if (text == last) continue;
    // At most one write a second: a burst of changes ends in one file with the last state.
    auto since = std::chrono::steady_clock::now() - lastWrite;
    if (since < std::chrono::seconds(1)) {
      std::this_thread::sleep_for(std::chrono::seconds(1) - since);
      if (stop_) return;
      text = render(store_, nodeName_).dump(2) + "\n";
      seen = store_.version();
    }
    auto mk = makeDirs(parentDir(path_), 0755);
    auto r = mk ? writeFileAtomic(path_, text, 0644) : mk;
    lastWrite = std::chrono::steady_clock::now();
    if (!r) {
      if (!warned) logger()->warn("status file {}: {}", path_, r.error().message());
      warned = true;
      continue;
    }
    warned = false;
    last = std::move(text);
    writes_++;
  }
}

Outputs::Outputs(core::StateStore& store, OutputsOptions options) : store_(store), opts_(std::move(options)) {}

Outputs::~Outputs() { stop(); }

std::string Outputs::renderMetrics() const {
  auto samples = storeMetrics(store_.snapshot());
  samples.push_back({"nodeagent_build_info", "nodeagentd version", core::Metric::Type::kGauge, {{"version", kVersion}}, 1});
  if (reporter_) {
    for (auto& m : reporter_->metrics()) samples.push_back(std::move(m));
  }
  return renderPrometheus(samples);
}

Result<void> Outputs::start() {
  if (!opts_.outputs.metricsAddress.empty()) {
    metrics_ = std::make_unique<MetricsServer>([this] { return renderMetrics(); });
    if (auto r = metrics_->start(opts_.outputs.metricsAddress); !r) {
      metrics_.reset();
      return fail(r.error().wrap("metrics"));
    }
    logger()->info("metrics on http://{}:{}/metrics", opts_.outputs.metricsAddress.substr(0, opts_.outputs.metricsAddress.rfind(':')), metrics_->port());
  }
  if (!opts_.outputs.statusFile.empty() && !opts_.dryRun) {
    statusFile_ = std::make_unique<StatusFileWriter>(store_, opts_.outputs.statusFile, opts_.nodeName);
    statusFile_->start();
  }

  auto cluster = kube::resolveCluster(opts_.kube, opts_.serviceAccountDir);
  Json info = Json::object().set("mode", opts_.kube.mode);
  if (!cluster) {
    logger()->error("node status reporting off: {}", cluster.error().message());
    store_.publishAgentInfo("reporter", info.set("state", "error").set("last_error", cluster.error().message()));
    return {};
  }
  if (!cluster->has_value()) {
    logger()->info("no Kubernetes API configured or found (kube.mode {}): node status reporting off", opts_.kube.mode);
    store_.publishAgentInfo("reporter", info.set("state", "off"));
    return {};
  }
  if (opts_.dryRun) {
    logger()->info("dry run: node status reporting to {} disabled", (*cluster)->server);
    store_.publishAgentInfo("reporter", info.set("state", "dry-run"));
    return {};
  }
  auto client = kube::Client::create(**cluster, kube::ClientOptions{.qps = opts_.kube.qps,
                                                                      .burst = opts_.kube.burst,
                                                                      .connectTimeout = opts_.kube.connectTimeout,
                                                                      .requestTimeout = opts_.kube.requestTimeout,
                                                                      .maxAttempts = opts_.kube.maxAttempts,
                                                                      .userAgent = std::string("nodeagent/") + kVersion});
  if (!client) {
    logger()->error("node status reporting off: {}", client.error().message());
    store_.publishAgentInfo("reporter", info.set("state", "error").set("last_error", client.error().message()));
    return {};
  }
  client_ = std::move(*client);
  logger()->info("reporting node {} status to {} ({})", opts_.nodeName, client_->cluster().server, client_->cluster().source);
  reporter_ = std::make_unique<NodeStatusReporter>(
      store_, *client_, NodeStatusReporterOptions{.nodeName = opts_.nodeName, .status = opts_.kube.status, .events = opts_.kube.events});
  reporter_->start();
  return {};
}

void Outputs::stop() {
  if (client_) client_->interrupt();
  if (reporter_) reporter_->stop();
  if (statusFile_) statusFile_->stop();
  if (metrics_) metrics_->stop();
}

}  // namespace nodeagent::reporter
