// sd_notify glue: readiness, status line, watchdog pings and stop notice for systemd.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace nodeagent::systemd {

// Sends one notification ("READY=1", "STATUS=...", ...). No-op without NOTIFY_SOCKET.
// Returns false when systemd (or the test's socket) could not be told.
bool notify(const std::string& state);

// The watchdog interval from WATCHDOG_USEC when the watchdog is on for this process.
std::optional<std::chrono::microseconds> watchdogInterval();

}  // namespace nodeagent::systemd
