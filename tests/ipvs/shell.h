// Runs a shell command and returns its standard output (tests read back kernel state with
// independent tools: ipvsadm, nft).
#pragma once

#include <cstdio>
#include <string>

namespace nodeagent::testing {

inline std::string shellOutput(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

}  // namespace nodeagent::testing
