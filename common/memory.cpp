#include "common/memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace nodeagent {

namespace {

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool candidate = false;  // file-backed, not writable
  size_t rssKb = 0;
  size_t anonKb = 0;
};

// One VMA header line of smaps: "start-end perms offset dev inode   path".
bool parseHeader(const char* line, Mapping& m) {
  char perms[8] = {};
  unsigned long long start = 0, end = 0, inode = 0;
  int pathAt = 0;
  if (std::sscanf(line, "%llx-%llx %7s %*s %*s %llu %n", &start, &end, perms, &inode, &pathAt) < 4) return false;
  m = Mapping{};
  m.start = static_cast<uintptr_t>(start);
  m.end = static_cast<uintptr_t>(end);
  const char* path = line + pathAt;
  m.candidate = inode != 0 && path[0] == '/' && perms[1] == '-' && perms[3] == 'p';
  return true;
}

}  // namespace

Result<ReleasedMemory> releaseIdleMemory(const std::string& smapsPath) {
  FILE* f = std::fopen(smapsPath.c_str(), "re");
  if (!f) return failErrno("open " + smapsPath);
  // Read everything first: advising while reading would change the file under us.
  std::vector<Mapping> maps;
  char* line = nullptr;
  size_t cap = 0;
  bool inMapping = false;
  while (::getline(&line, &cap, f) > 0) {
    // Header lines start with the lower-case hex start address; field lines with a
    // capitalised name ("Rss:", "Anonymous:", "VmFlags:").
    bool header = (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
    if (header) {
      Mapping m;
      inMapping = parseHeader(line, m);
      if (inMapping) maps.push_back(m);
      continue;
    }
    if (!inMapping) continue;
    unsigned long kb = 0;
    if (std::sscanf(line, "Rss: %lu kB", &kb) == 1) maps.back().rssKb = kb;
    else if (std::sscanf(line, "Anonymous: %lu kB", &kb) == 1) maps.back().anonKb = kb;
  }
  std::free(line);
  std::fclose(f);

  ReleasedMemory out;
  for (const Mapping& m : maps) {
    if (!m.candidate || m.anonKb != 0 || m.rssKb == 0) continue;
    if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) != 0) continue;
    out.mappedBytes += m.rssKb * 1024;
    out.mappings++;
  }
  out.heapTrimmed = ::malloc_trim(0) != 0;
  return out;
}

}  // namespace nodeagent
