#include "systemd/notify.h"

#include <systemd/sd-daemon.h>

namespace nodeagent::systemd {

bool notify(const std::string& state) { return sd_notify(0, state.c_str()) > 0; }

std::optional<std::chrono::microseconds> watchdogInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
  return std::nullopt;
}

}  // namespace nodeagent::systemd
