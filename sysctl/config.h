// The `sysctl:` section of the agent config.
//
//   sysctl:
//     enabled: true
//     profile: large-cluster        # or none
//     drift_mode: enforce           # enforce: re-apply values changed by others; report: only log/count
//     drift_interval: 60s           # how often the kernel is re-read
//     persist: true                 # write sysctl_file so a reboot agrees
//     conntrack:
//       max: 0                      # 0: max(min, max_per_core x CPUs)
//       max_per_core: 32768
//       min: 131072
//       tcp_timeout_established: 86400
//       tcp_timeout_close_wait: 3600
//       fill_warning_percent: 90    # ConntrackPressure condition above this fill level
//     drop: [kernel.panic]          # profile keys not to manage
//     keys:                         # add or override keys
//       net.core.somaxconn: 65535   # short form: the profile's mode for known keys, else exact
//       net.ipv4.tcp_fin_timeout: {value: 30, mode: max, reason: "free sockets sooner"}
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/config_reader.h"
#include "common/json.h"
#include "sysctl/profile.h"

namespace nodeagent::sysctl {

enum class DriftMode { kEnforce, kReport };

struct Config {
  bool enabled = true;
  std::string profile = "large-cluster";
  DriftMode driftMode = DriftMode::kEnforce;
  std::chrono::milliseconds driftInterval{60000};
  bool persist = true;
  ScaleInputs scale;  // conntrack sizing (cpus is filled from the node's facts at run time)
  double fillWarningPercent = 90;
  std::vector<std::string> drop;
  std::vector<KeySpec> keys;  // the user's, source "config"
  // Keys other modules need (source = module name), added by daemon/modules.cpp, never
  // read from YAML. See SysctlModule in sysctl/module.h.
  std::vector<KeySpec> contributed;
};

// Reads the section; every problem is reported with file:line and key path.
void parseConfig(ConfigMap m, Config& c);
Json toJson(const Config& c);

}  // namespace nodeagent::sysctl
