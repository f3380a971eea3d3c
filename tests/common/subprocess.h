// Runs a program to completion for tests that drive the real binaries (nodeagentd,
// nodeagentctl): exit code, stdout and stderr, captured through files in `dir`.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/files.h"

namespace nodeagent::testing {

struct RunResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// In `cwd` when given; as user `uid` (and its own group only) when not negative.
inline RunResult run(const std::vector<std::string>& argv, const std::string& dir, const std::string& cwd = "",
                     int uid = -1) {
  std::string outPath = dir + "/cmd.out", errPath = dir + "/cmd.err";
  pid_t pid = fork();
  if (pid == 0) {
    // The output files are opened before any change of user (the test's dir is root's).
    int o = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    if (uid >= 0 && (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(uid)) != 0 ||
                     ::setuid(static_cast<uid_t>(uid)) != 0))
      _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = readFile(outPath).value_or("");
  r.err = readFile(errPath).value_or("");
  return r;
}

}  // namespace nodeagent::testing
