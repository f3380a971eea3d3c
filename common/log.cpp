#include "common/log.h"

#include <spdlog/sinks/base_sink.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "common/json.h"

namespace nodeagent::log {

namespace {

// syslog priorities as sd-daemon(3) prefixes expect them.
int journalPriority(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::critical: return 2;
    case spdlog::level::err: return 3;
    case spdlog::level::warn: return 4;
    case spdlog::level::info: return 6;
    default: return 7;
  }
}

std::string isoTime(spdlog::log_clock::time_point tp) {
  auto t = spdlog::log_clock::to_time_t(tp);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count() % 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  return std::string(buf) + frac;
}

class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void setFormat(Format f) {
    std::lock_guard lock(mutex_);
    format_ = f;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    std::string name(msg.logger_name.data(), msg.logger_name.size());
    std::string line;
    switch (format_) {
      case Format::kText: {
        auto lv = spdlog::level::to_string_view(msg.level);
        line = isoTime(msg.time) + " " + std::string(lv.data(), lv.size());
        line.append(line.size() < 29 ? 29 - line.size() : 1, ' ');
        line += "[" + name + "] " + text + "\n";
        break;
      }
      case Format::kJson: {
        auto lv = spdlog::level::to_string_view(msg.level);
        line = "{\"time\":\"" + isoTime(msg.time) + "\",\"level\":\"" + std::string(lv.data(), lv.size()) +
               "\",\"logger\":" + jsonQuote(name) + ",\"msg\":" + jsonQuote(text) + "}\n";
        break;
      }
      case Format::kJournal:
        line = "<" + std::to_string(journalPriority(msg.level)) + ">[" + name + "] " + text + "\n";
        break;
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  Format format_ = Format::kText;
};

struct Registry {
  std::mutex mu;
  std::shared_ptr<StderrSink> sink = std::make_shared<StderrSink>();
  spdlog::level::level_enum level = spdlog::level::info;
};

Registry& registry() {
  static Registry r;
  return r;
}

bool stderrIsJournal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  unsigned long dev = 0, ino = 0;
  if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

Result<Format> parseFormat(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  if (name == "journal") return Format::kJournal;
  if (name == "auto") return stderrIsJournal() ? Format::kJournal : Format::kText;
  return failInvalid("unknown log format \"" + std::string(name) + "\" (text, json, journal, auto)");
}

Result<spdlog::level::level_enum> parseLevel(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn" || name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return failInvalid("unknown log level \"" + std::string(name) + "\" (trace, debug, info, warn, error)");
}

void setup(Format format, spdlog::level::level_enum level) {
  auto& r = registry();
  r.sink->setFormat(format);
  setLevel(level);
}

void setLevel(spdlog::level::level_enum level) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  r.level = level;
  spdlog::apply_all([level](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
}

std::shared_ptr<spdlog::logger> get(const std::string& name) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, r.sink);
  logger->set_level(r.level);
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace nodeagent::log
