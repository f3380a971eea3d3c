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

// Reads to the end; more than `maxBytes` is an error (a file that grew after a size check).
static Result<std::string> readAll(int fd, const std::string& path, size_t maxBytes) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failErrno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > maxBytes) return failInvalid(path + ": larger than the limit of " + std::to_string(maxBytes) + " bytes");
  }
  return out;
}

Result<std::string> readFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failErrno("open " + path);
  return readAll(fd.get(), path, std::string().max_size());
}

Result<Fd> openRegularFile(const std::string& path, size_t maxBytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return failErrno("open " + path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return failErrno("stat " + path);
  if (S_ISDIR(st.st_mode)) return failErrno(EISDIR, path);
  if (!S_ISREG(st.st_mode)) return failInvalid(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > maxBytes)
    return failInvalid(path + ": larger than the limit of " + std::to_string(maxBytes) + " bytes");
  return fd;
}

Result<std::string> readRegularFile(const std::string& path, size_t maxBytes) {
  auto fd = openRegularFile(path, maxBytes);
  if (!fd) return fail(fd.error());
  return readAll(fd->get(), path, maxBytes);
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
