#include "common/files.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "common/fd.h"

namespace nodeagent {

Result<std::string> readFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failErrno("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

static Result<void> writeAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("write " + what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> writeFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  std::filesystem::path target(path);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  std::string tmpl = dir + "/." + target.filename().string() + ".XXXXXX";
  Fd fd(::mkstemp(tmpl.data()));
  if (!fd) return failErrno("create temp file for " + path);
  auto cleanup = [&] { ::unlink(tmpl.c_str()); };
  if (::fchmod(fd.get(), mode) != 0) {
    cleanup();
    return failErrno("chmod " + tmpl);
  }
  if (auto r = writeAll(fd.get(), content, tmpl); !r) {
    cleanup();
    return r;
  }
  if (::fsync(fd.get()) != 0) {
    cleanup();
    return failErrno("fsync " + tmpl);
  }
  fd.reset();
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    cleanup();
    return failErrno("rename " + tmpl + " to " + path);
  }
  Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd) ::fsync(dirFd.get());  // best effort: the rename is already visible
  return {};
}

Result<void> makeDirs(const std::string& path, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return {};
  std::filesystem::path p(path);
  std::filesystem::path cur;
  for (const auto& part : p) {
    cur /= part;
    if (cur.empty() || std::filesystem::is_directory(cur, ec)) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return failErrno("mkdir " + cur.string());
  }
  return {};
}

bool pathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::optional<gid_t> localGroupId(const std::string& nameOrId, const std::string& groupFile) {
  if (nameOrId.empty()) return std::nullopt;
  if (nameOrId.find_first_not_of("0123456789") == std::string::npos && nameOrId.size() < 10)
    return static_cast<gid_t>(std::stoul(nameOrId));
  FILE* f = std::fopen(groupFile.c_str(), "re");
  if (!f) return std::nullopt;
  std::optional<gid_t> gid;
  while (struct group* g = ::fgetgrent(f)) {
    if (nameOrId == g->gr_name) {
      gid = g->gr_gid;
      break;
    }
  }
  std::fclose(f);
  return gid;
}

}  // namespace nodeagent
