#include "common/memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/files.h"

namespace nodeagent {
namespace {

constexpr size_t kPages = 32;

// Resident kB of the mapping that starts at `addr`, from /proc/self/smaps.
long residentKb(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  char start[32];
  std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(addr));
  std::string line;
  bool inIt = false;
  while (std::getline(in, line)) {
    if (line.rfind(start, 0) == 0) inIt = true;
    else if (inIt && line.rfind("Rss:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

class MemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-memory-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    page_ = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    std::string content(kPages * page_, '\0');
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
    ASSERT_TRUE(writeFileAtomic(dir_ + "/data", content));
    fd_ = ::open((dir_ + "/data").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  char* map(int prot) {
    void* p = ::mmap(nullptr, kPages * page_, prot, MAP_PRIVATE, fd_, 0);
    EXPECT_NE(p, MAP_FAILED);
    return static_cast<char*>(p);
  }
  long touch(const char* p) {
    long sum = 0;
    for (size_t i = 0; i < kPages; ++i) sum += p[i * page_];
    return sum;
  }
  std::string dir_;
  size_t page_ = 4096;
  int fd_ = -1;
};

TEST_F(MemoryTest, CleanReadOnlyFileMappingIsUnmappedAndStillReadsTheFile) {
  char* p = map(PROT_READ);
  long before = touch(p);
  ASSERT_GT(residentKb(p), 0);
  auto r = releaseIdleMemory();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GT(r->mappings, 0u);
  EXPECT_GE(r->mappedBytes, kPages * page_);
  EXPECT_EQ(residentKb(p), 0);
  EXPECT_EQ(touch(p), before);  // faulted back from the file
  EXPECT_EQ(p[page_ + 1], static_cast<char>('a' + (page_ + 1) % 26));
  ::munmap(p, kPages * page_);
}

TEST_F(MemoryTest, PrivateCopiesAreNeverDropped) {
  // Written private pages: a writable mapping, and a read-only one that was written and
  // then protected (what the dynamic linker does to RELRO). Both must keep their data.
  char* writable = map(PROT_READ | PROT_WRITE);
  writable[0] = '#';
  char* relro = map(PROT_READ | PROT_WRITE);
  relro[page_] = '!';
  ASSERT_EQ(::mprotect(relro, kPages * page_, PROT_READ), 0);
  touch(relro);
  long relroBefore = residentKb(relro);
  auto r = releaseIdleMemory();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(writable[0], '#');
  EXPECT_EQ(relro[page_], '!');
  EXPECT_EQ(residentKb(relro), relroBefore);
  ::munmap(writable, kPages * page_);
  ::munmap(relro, kPages * page_);
}

TEST_F(MemoryTest, TheProgramKeepsRunningAfterItsOwnCodeIsReleased) {
  // The test binary's text and libraries are released too; running on proves the pages
  // come back from the files.
  auto r = releaseIdleMemory();
  ASSERT_TRUE(r) << r.error().message();
  std::string s = std::to_string(r->mappings);
  EXPECT_FALSE(s.empty());
  auto again = releaseIdleMemory();
  ASSERT_TRUE(again);
}

TEST(MemoryErrors, MissingSmapsNamesThePath) {
  auto r = releaseIdleMemory("/nonexistent/smaps");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("/nonexistent/smaps"), std::string::npos);
}

}  // namespace
}  // namespace nodeagent
