// Logging: spdlog with one named logger per module, all writing to one stderr sink.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nodeagent::log {

enum class Format {
  kText,     // "2026-11-21T10:00:00.123 info  [sysctl] message"
  kJson,     // one JSON object per line
  kJournal,  // "<6>[sysctl] message": sd-daemon priority prefixes, journald adds the time
};

// "auto" picks journal when stderr is connected to the journal (JOURNAL_STREAM), else text.
[[nodiscard]] Result<Format> parseFormat(std::string_view name);
[[nodiscard]] Result<spdlog::level::level_enum> parseLevel(std::string_view name);

// Sets format and level for every logger, existing and future.
void setup(Format format, spdlog::level::level_enum level);
void setLevel(spdlog::level::level_enum level);

// The named logger for a module ("agent", "sysctl", "ipvs", ...), created on first use.
std::shared_ptr<spdlog::logger> get(const std::string& name);

}  // namespace nodeagent::log
