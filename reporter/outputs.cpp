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

Result<void> StatusFileWriter::start(EventLoop& loop) {
  auto timer = loop.timer([this] { write(); });
  if (!timer) return fail(timer.error());
  burstEnd_ = *timer;
  auto wake = loop.waker([this] { changed(); });
  if (!wake) return fail(wake.error());
  storeChanges_ = store_.subscribe([w = *wake] { w.wake(); });
  started_ = true;
  wake->wake();  // the state as it is now
  return {};
}

void StatusFileWriter::stop() {
  if (!started_) return;
  started_ = false;
  storeChanges_.reset();
  store_.publishAgentInfo("status_file", Json::object().set("path", path_).set("writes", writes_.load()).set("state", "stopped"));
}

// At most one write a second: a burst of changes ends in one file with the last state.
void StatusFileWriter::changed() {
  auto next = lastWrite_ + std::chrono::seconds(1);
  if (std::chrono::steady_clock::now() < next)
    burstEnd_->armAt(next);
  else
    write();
}

void StatusFileWriter::write() {
  std::string text = render(store_, nodeName_).dump(2) + "\n";
  if (text == last_) return;
  auto mk = makeDirs(parentDir(path_), 0755);
  auto r = mk ? writeFileAtomic(path_, text, 0644) : mk;
  lastWrite_ = std::chrono::steady_clock::now();
  if (!r) {
    if (!warned_) logger()->warn("status file {}: {}", path_, r.error().message());
    warned_ = true;
    return;
  }
  warned_ = false;
  last_ = std::move(text);
  writes_++;
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

Result<void> Outputs::startStatusFile(EventLoop* loop) {
  if (!loop) {
    auto own = EventLoop::create();
    if (!own) return fail(own.error());
    ownLoop_ = std::move(*own);
    auto stopper = ownLoop_->waker([this] { ownLoop_->exit(0); });
    if (!stopper) return fail(stopper.error());
    ownLoopStop_ = *stopper;
    loop = ownLoop_.get();
  }
  statusFile_ = std::make_unique<StatusFileWriter>(store_, opts_.outputs.statusFile, opts_.nodeName);
  if (auto r = statusFile_->start(*loop); !r) return fail(r.error());
  if (ownLoop_) ownLoopThread_ = std::thread([this] { (void)ownLoop_->run(); });
  return {};
}

Result<void> Outputs::start(EventLoop* loop) {
  if (!opts_.outputs.metricsAddress.empty()) {
    metrics_ = std::make_unique<MetricsServer>([this] { return renderMetrics(); });
    if (auto r = metrics_->start(opts_.outputs.metricsAddress); !r) {
      metrics_.reset();
      return fail(r.error().wrap("metrics"));
    }
    logger()->info("metrics on http://{}:{}/metrics", opts_.outputs.metricsAddress.substr(0, opts_.outputs.metricsAddress.rfind(':')), metrics_->port());
  }
  if (!opts_.outputs.statusFile.empty() && !opts_.dryRun)
    if (auto r = startStatusFile(loop); !r) {
      logger()->error("status file {} not written: {}", opts_.outputs.statusFile, r.error().message());
      statusFile_.reset();
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
  if (ownLoopThread_.joinable()) {
    ownLoopStop_->wake();
    ownLoopThread_.join();
  }
  if (statusFile_) statusFile_->stop();
  if (metrics_) metrics_->stop();
}

}  // namespace nodeagent::reporter
