// nodeagentctl: asks nodeagentd what it is doing, over its control socket.
//
// Exit codes scripts can rely on:
//   0 healthy / command succeeded      1 degraded or failed / command failed
//   2 usage error or rejected request  3 daemon unreachable
//   4 daemon still starting (status only)
//   5 --timeout ran out while the daemon was working on the command (it goes on with it)
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <algorithm>
#include <array>
#include <iostream>
#include <map>

#include "cli/proto_json.h"
#include "cli/render.h"
#include "common/version.h"
#include "common/config_reader.h"
#include "control.grpc.pb.h"

namespace {

using nodeagent::Json;
using namespace nodeagent::cli;

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3, kExitStarting = 4,
              kExitTimedOut = 5;

struct Globals {
  std::string socket = "/run/nodeagent/nodeagent.sock";
  std::string output = "table";
  std::string timeout = "30s";
  OutputFormat format = OutputFormat::kTable;
  std::chrono::milliseconds deadline{30000};
  bool timeoutGiven = false;  // --timeout on the command line
};

int unreachable(const Globals& g, const grpc::Status& s) {
  // The file system usually knows why: no socket, or a user outside the socket's group.
  std::string why = s.error_code() == grpc::StatusCode::UNAVAILABLE ? socketAccessMessage(inspectSocket(g.socket)) : "";
  if (!why.empty())
    std::fprintf(stderr, "nodeagentctl: %s\n", why.c_str());
  else if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
    std::fprintf(stderr, "nodeagentctl: cannot reach nodeagentd at %s: %s\n(is it running? try: systemctl status nodeagent)\n",
                 g.socket.c_str(), s.error_message().c_str());
  else if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    std::fprintf(stderr, "nodeagentctl: nodeagentd at %s did not answer within %s\n", g.socket.c_str(), g.timeout.c_str());
  else
    std::fprintf(stderr, "nodeagentctl: %s: %s\n", g.socket.c_str(), s.error_message().c_str());
  return kExitUnreachable;
}

std::unique_ptr<nodeagent::v1::Control::Stub> connect(const Globals& g) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel("unix://" + g.socket, grpc::InsecureChannelCredentials(), args);
  return nodeagent::v1::Control::NewStub(channel);
}

void setDeadline(grpc::ClientContext& ctx, const Globals& g) {
  ctx.set_deadline(std::chrono::system_clock::now() + g.deadline);
}

// "state=on, patches_sent=12, last_patch=..." for one line of the status header.
std::string keyValues(const Json& obj) {
  std::string out;
  for (const auto& [k, v] : obj.asObject()) {
    if (v.isString() && v.asString().empty()) continue;
    out += (out.empty() ? "" : ", ") + k + "=" + (v.isObject() ? v.dump() : cellText(v));
  }
  return out;
}

std::string ago(int64_t unixMs) {
  if (unixMs == 0) return "never";
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  int64_t s = std::max<int64_t>(0, (now - unixMs) / 1000);
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  return std::to_string(s / 3600) + "h ago";
}

std::string rfc3339(int64_t unixMs) {
  if (unixMs == 0) return "";
  std::time_t t = unixMs / 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int cmdStatus(const Globals& g) {
  auto stub = connect(g);
  grpc::ClientContext ctx;
  setDeadline(ctx, g);
  nodeagent::v1::GetStatusResponse r;
  auto s = stub->GetStatus(&ctx, {}, &r);
  if (!s.ok()) return unreachable(g, s);
  Json modules = Json::array();
  for (const auto& m : r.modules()) {
    Json conds = Json::array();
    for (const auto& c : m.conditions())
      conds.push(Json::object().set("type", c.type()).set("status", c.status()).set("reason", c.reason()).set("message", c.message()));
    modules.push(Json::object()
                     .set("name", m.name())
                     .set("health", m.health())
                     .set("summary", m.summary())
                     .set("conditions", conds)
                     .set("reconciles", m.reconciles())
                     .set("failures", m.failures())
                     .set("last_error", m.last_error())
                     .set("last_reconcile", rfc3339(m.last_reconcile_unix_ms()))
                     .set("last_duration_ms", m.last_duration_ms())
                     .set("details", toJson(m.details())));
  }
  Json out = Json::object()
                 .set("node", r.node_name())
                 .set("health", r.health())
                 .set("summary", r.summary())
                 .set("version", r.version())
                 .set("config", r.config_source())
                 .set("started", rfc3339(r.started_unix_ms()))
                 .set("dry_run", r.dry_run())
                 .set("agent", toJson(r.agent()))
                 .set("modules", modules);
  if (g.format != OutputFormat::kTable) {
    std::cout << render(out, g.format);
  } else {
    std::vector<std::vector<std::string>> head = {
        {"Node:", r.node_name()},
        {"Health:", r.health() + (r.dry_run() ? " (dry run)" : "")},
        {"Version:", r.version()},
        {"Config:", r.config_source()},
        {"Started:", rfc3339(r.started_unix_ms()) + " (" + ago(r.started_unix_ms()) + ")"}};
    Json agentInfo = toJson(r.agent());  // named: a temporary would die before the loop
    for (const auto& [k, v] : agentInfo.asObject())
      head.push_back({k + ":", v.isObject() ? keyValues(v) : cellText(v)});
    std::cout << alignColumns(head) << "\n";
    std::vector<std::vector<std::string>> rows = {{"MODULE", "HEALTH", "LAST PASS", "SUMMARY"}};
    for (const auto& m : r.modules()) {
      std::string summary = m.summary();
      if (!m.last_error().empty()) summary += (summary.empty() ? "" : "; ") + std::string("error: ") + m.last_error();
      rows.push_back({m.name(), m.health(), ago(m.last_reconcile_unix_ms()), summary});
    }
    std::cout << alignColumns(rows);
    std::vector<std::vector<std::string>> conds = {{"CONDITION", "STATUS", "REASON", "MESSAGE"}};
    for (const auto& m : r.modules())
      for (const auto& c : m.conditions()) conds.push_back({c.type(), c.status(), c.reason(), c.message()});
    if (conds.size() > 1) std::cout << "\n" << alignColumns(conds);
  }
  if (r.health() == "healthy") return kExitOk;
  if (r.health() == "starting") return kExitStarting;
  return kExitFailed;
}

int cmdVersion(const Globals& g) {
  Json out = Json::object().set("client", nodeagent::kVersion);
  auto stub = connect(g);
  grpc::ClientContext ctx;
  setDeadline(ctx, g);
  nodeagent::v1::GetVersionResponse r;
  auto s = stub->GetVersion(&ctx, {}, &r);
  if (!s.ok()) {
    std::cout << render(out, g.format);
    return unreachable(g, s);
  }
  out.set("daemon", r.version()).set("git_commit", r.git_commit()).set("build_type", r.build_type());
  std::cout << render(out, g.format);
  return kExitOk;
}

int cmdConfigShow(const Globals& g) {
  auto stub = connect(g);
  grpc::ClientContext ctx;
  setDeadline(ctx, g);
  nodeagent::v1::GetConfigResponse r;
  auto s = stub->GetConfig(&ctx, {}, &r);
  if (!s.ok()) return unreachable(g, s);
  Json config = toJson(r.config());
  if (g.format == OutputFormat::kJson) {
    std::cout << Json::object().set("source", r.source()).set("config", config).dump(2) << "\n";
  } else {
    // The config is YAML; a table of it would be less readable than the YAML itself.
    std::cout << "# source: " << r.source() << "\n" << config.toYaml();
  }
  return kExitOk;
}

// Draws streamed progress on a terminal: an event with "lines" redraws that block in place;
// an event with "text" prints one line.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool tty) : tty_(tty) {}
  void show(const Json& ev) {
    if (ev.get("lines").isArray()) {
      if (!tty_) return;  // a pipe gets the final result only
      std::string out;
      if (drawn_ > 0) out += "\033[" + std::to_string(drawn_) + "F";
      for (const auto& l : ev.get("lines").asArray()) out += "\033[2K" + l.asString() + "\n";
      for (size_t i = ev.get("lines").size(); i < drawn_; ++i) out += "\033[2K\n";
      drawn_ = std::max(drawn_, ev.get("lines").size());
      std::fputs(out.c_str(), stderr);
    } else if (ev.get("text").isString()) {
      std::fprintf(stderr, "%s\n", ev.get("text").asString().c_str());
    }
  }

 private:
  bool tty_;
  size_t drawn_ = 0;
};

using Command = nodeagent::v1::Command;

// The word a command's group goes by on the command line.
std::string groupWord(const Command& c) { return c.group().empty() ? c.module() : c.group(); }

int cmdModule(const Globals& g, const Command& spec, const std::vector<std::string>& args,
              const std::map<std::string, std::string>& options, bool dryRun) {
  auto stub = connect(g);
  grpc::ClientContext ctx;
  // Long work (an image pull) shows progress and may take minutes: no deadline unless asked.
  if (!spec.long_running() || g.timeoutGiven) setDeadline(ctx, g);
  nodeagent::v1::CallRequest req;
  req.set_module(spec.module());
  req.set_command(spec.command());
  for (const auto& a : args) req.add_args(a);
  for (const auto& [k, v] : options) (*req.mutable_options())[k] = v;
  req.set_dry_run(dryRun);
  auto reader = stub->Call(&ctx, req);
  nodeagent::v1::CallEvent ev;
  ProgressPrinter progress(::isatty(STDERR_FILENO) && g.format == OutputFormat::kTable);
  std::optional<nodeagent::v1::CallResult> result;
  bool answered = false;  // the daemon is up: it sent something
  while (reader->Read(&ev)) {
    answered = true;
    if (ev.has_progress()) progress.show(toJson(ev.progress()));
    if (ev.has_result()) result = ev.result();
  }
  auto s = reader->Finish();
  if (!s.ok() && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && (answered || spec.long_running())) {
    // Not "unreachable": the daemon took the command and works on; only this wait ended.
    std::fprintf(stderr,
                 "nodeagentctl: %s %s: --timeout %s ran out before the daemon finished; it carries on with it "
                 "(see nodeagentctl %s status)\n",
                 groupWord(spec).c_str(), spec.command().c_str(), g.timeout.c_str(), groupWord(spec).c_str());
    return kExitTimedOut;
  }
  if (!s.ok()) return unreachable(g, s);
  if (!result) {
    std::fprintf(stderr, "nodeagentctl: the daemon ended the call without a result\n");
    return kExitFailed;
  }
  if (result->exit_code() != 0) {
    std::fprintf(stderr, "nodeagentctl: %s %s: %s\n", groupWord(spec).c_str(), spec.command().c_str(),
                 result->message().c_str());
    return result->exit_code();
  }
  Json payload = toJson(result->payload());
  // A payload may carry its own exit code (e.g. some keys failed to apply).
  int rc = static_cast<int>(payload.get("exit_code").asInt(0));
  if (payload.has("exit_code") && g.format == OutputFormat::kTable) {
    Json shown = Json::object();
    for (const auto& [k, v] : payload.asObject())
      if (k != "exit_code") shown.set(k, v);
    payload = shown;
  }
  std::cout << render(payload, g.format);
  return rc;
}

// gRPC reads "unix:rel/path" as a host name: the path must be absolute.
std::string absoluteSocket(const std::string& socket) {
  if (socket.empty() || socket.front() == '/') return socket;
  std::error_code ec;
  auto abs = std::filesystem::absolute(socket, ec);
  return ec ? socket : abs.lexically_normal().string();
}

// The words module commands start with. The daemon lists the commands themselves
// (ListCommands); this list only tells, when the daemon cannot be asked, a module word
// (exit 3, the daemon is unreachable) from a typo (exit 2, usage). daemon_test checks that
// it names every group the daemon lists.
constexpr std::array<std::string_view, 5> kModuleWords = {"node", "sysctl", "conntrack", "ipvs", "images"};

// What the command line says before CLI11 reads it: the first word (the subcommand) and
// the socket and timeout to ask the daemon for its commands with.
struct FirstLook {
  std::string word;
  Globals globals;
};

FirstLook firstLook(int argc, char** argv, Globals g) {
  FirstLook out;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name, std::string& into) {
      if (a == name && i + 1 < argc) return into = argv[++i], true;
      if (a.starts_with(std::string(name) + "=")) return into = std::string(a.substr(name.size() + 1)), true;
      return false;
    };
    std::string ignored;
    if (value("--socket", g.socket) || value("--timeout", g.timeout) || value("--output", ignored) ||
        value("-o", ignored) || a.starts_with("-"))
      continue;
    if (out.word.empty()) out.word = a;
  }
  if (auto d = nodeagent::parseDuration(g.timeout)) g.deadline = *d;
  g.socket = absoluteSocket(g.socket);
  out.globals = g;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  if (const char* env = std::getenv("NODEAGENT_SOCKET"); env && *env) g.socket = env;
  CLI::App app{"nodeagentctl: ask nodeagentd what it is doing\n\n"
               "exit codes: 0 ok/healthy, 1 failed/degraded, 2 usage, 3 daemon unreachable, 4 starting,\n"
               "5 --timeout ran out while the daemon works on the command"};
  app.set_version_flag("--version", std::string("nodeagentctl ") + nodeagent::kVersion);
  app.add_option("--socket", g.socket, "control socket of nodeagentd ($NODEAGENT_SOCKET)")->capture_default_str();
  app.add_option("-o,--output", g.output, "output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  auto* timeoutOpt = app.add_option("--timeout", g.timeout,
                                    "how long to wait for an answer (long commands such as images pull wait "
                                    "until done unless this is given)")
                         ->capture_default_str();
  app.require_subcommand(1);

  int rc = kExitUsage;
  auto finishGlobals = [&]() -> bool {
    g.format = g.output == "json" ? OutputFormat::kJson : g.output == "yaml" ? OutputFormat::kYaml : OutputFormat::kTable;
    auto d = nodeagent::parseDuration(g.timeout);
    if (!d) {
      std::fprintf(stderr, "nodeagentctl: --timeout: %s\n", d.error().message().c_str());
      return false;
    }
    g.deadline = *d;
    g.timeoutGiven = timeoutOpt->count() > 0;
    g.socket = absoluteSocket(g.socket);
    return true;
  };

  app.add_subcommand("status", "overall and per-module health (exit 0 only when healthy)")
      ->fallthrough()
      ->callback([&] { rc = finishGlobals() ? cmdStatus(g) : kExitUsage; });
  app.add_subcommand("version", "client and daemon versions")
      ->fallthrough()
      ->callback([&] { rc = finishGlobals() ? cmdVersion(g) : kExitUsage; });
  auto* config = app.add_subcommand("config", "the daemon's configuration")->fallthrough()->require_subcommand(1);
  config->add_subcommand("show", "the effective config the daemon runs with")
      ->fallthrough()
      ->callback([&] { rc = finishGlobals() ? cmdConfigShow(g) : kExitUsage; });

  // Module commands: the daemon lists the commands its modules answer. Not asked for the
  // built-in words, which work (and report) without them; without a daemon, a module word
  // is reported as the daemon being unreachable, any other word as a usage error.
  std::vector<Command> commands;
  if (auto look = firstLook(argc, argv, g); look.word != "status" && look.word != "version" && look.word != "config") {
    auto stub = connect(look.globals);
    grpc::ClientContext ctx;
    setDeadline(ctx, look.globals);
    nodeagent::v1::ListCommandsResponse listed;
    auto s = stub->ListCommands(&ctx, {}, &listed);
    if (s.ok())
      commands.assign(listed.commands().begin(), listed.commands().end());
    else if (std::ranges::find(kModuleWords, look.word) != kModuleWords.end())
      return unreachable(look.globals, s);
  }
  struct Bound {
    std::vector<std::string> args;
    std::map<std::string, std::string> values;
    std::map<std::string, bool> flags;
    bool dryRun = false;
  };
  std::map<std::string, CLI::App*> groups;
  std::vector<std::unique_ptr<Bound>> bound;
  for (const auto& spec : commands) {
    std::string word = groupWord(spec);
    auto& group = groups[word];
    if (!group) group = app.add_subcommand(word, word + " commands")->fallthrough()->require_subcommand(1);
    auto* cmd = group->add_subcommand(spec.command(), spec.help())->fallthrough();
    auto b = std::make_unique<Bound>();
    for (const auto& a : spec.args()) {
      bool many = a.size() > 3 && a.ends_with("...");
      auto* opt = cmd->add_option(many ? a.substr(0, a.size() - 3) : a, b->args, a);
      opt->required();
      if (!many) opt->expected(1);
    }
    for (const auto& o : spec.options()) {
      if (o.flag())
        cmd->add_flag("--" + o.name(), b->flags[o.name()], o.help());
      else
        cmd->add_option("--" + o.name(), b->values[o.name()], o.help());
    }
    if (spec.mutating()) cmd->add_flag("--dry-run", b->dryRun, "show what would change, change nothing");
    Bound* raw = b.get();
    const Command* sp = &spec;
    cmd->callback([&, raw, sp, cmd] {
      if (!finishGlobals()) return;
      std::map<std::string, std::string> options;
      for (const auto& o : sp->options()) {
        if (o.flag() && raw->flags[o.name()]) options[o.name()] = "true";
        if (!o.flag() && cmd->count("--" + o.name()) > 0) options[o.name()] = raw->values[o.name()];
      }
      rc = cmdModule(g, *sp, raw->args, options, raw->dryRun);
    });
    bound.push_back(std::move(b));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  return rc;
}
