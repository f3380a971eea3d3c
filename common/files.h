// Small file helpers: whole-file read and atomic replace (temp file + fsync + rename).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "common/fd.h"
#include "common/result.h"

namespace nodeagent {

[[nodiscard]] Result<std::string> readFile(const std::string& path);
// Reads a regular file of at most `maxBytes`: a directory, a device, a FIFO or a larger
// file is an error naming the path (user input: a config, never a kernel file).
[[nodiscard]] Result<std::string> readRegularFile(const std::string& path, size_t maxBytes);
// Opens it for reading with the same checks (for a reader that streams it).
[[nodiscard]] Result<Fd> openRegularFile(const std::string& path, size_t maxBytes);

// Writes `content` to `path` so that readers see either the old or the new file, never a
// partial one: a temp file in the same directory, fsync, rename, fsync of the directory.
[[nodiscard]] Result<void> writeFileAtomic(const std::string& path, std::string_view content,
                                           mode_t mode = 0644);

// mkdir -p with the given mode for the directories it creates.
[[nodiscard]] Result<void> makeDirs(const std::string& path, mode_t mode = 0755);

bool pathExists(const std::string& path);

// The gid of a local group: a number, or a name looked up in `groupFile` with fgetgrent.
// Deliberately not getgrnam: NSS modules (systemd, sss, ldap) would be loaded into the
// daemon for one lookup and may wait on a network directory at boot, while a node-local
// socket group is a local group (systemd-sysusers creates it from the shipped file).
std::optional<gid_t> localGroupId(const std::string& nameOrId, const std::string& groupFile = "/etc/group");

}  // namespace nodeagent
