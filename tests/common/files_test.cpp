#include "common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

namespace nodeagent {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-files-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FilesTest, AtomicWriteReplacesContentAndMode) {
  std::string p = dir_ + "/f.conf";
  ASSERT_TRUE(writeFileAtomic(p, "one\n"));
  ASSERT_TRUE(writeFileAtomic(p, "two\n", 0600));
  EXPECT_EQ(*readFile(p), "two\n");
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temp files are left beside it.
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, AtomicWriteIntoMissingDirectoryFailsWithPath) {
  auto r = writeFileAtomic(dir_ + "/missing/f", "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(dir_ + "/missing"), std::string::npos);
  EXPECT_EQ(r.error().errnoValue(), ENOENT);
}

TEST_F(FilesTest, MakeDirsCreatesNestedDirectories) {
  ASSERT_TRUE(makeDirs(dir_ + "/a/b/c"));
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/a/b/c"));
  ASSERT_TRUE(makeDirs(dir_ + "/a/b/c"));  // idempotent
}

TEST_F(FilesTest, ReadMissingFileNamesIt) {
  auto r = readFile(dir_ + "/nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "open " + dir_ + "/nope: No such file or directory");
}

TEST_F(FilesTest, LocalGroupIdReadsTheGroupFileOrANumber) {
  ASSERT_TRUE(writeFileAtomic(dir_ + "/group", "root:x:0:\nadm:x:4:syslog\nnodeagent:x:998:\n"));
  EXPECT_EQ(localGroupId("nodeagent", dir_ + "/group"), std::optional<gid_t>(998));
  EXPECT_EQ(localGroupId("adm", dir_ + "/group"), std::optional<gid_t>(4));
  EXPECT_EQ(localGroupId("1234", dir_ + "/group"), std::optional<gid_t>(1234));
  EXPECT_EQ(localGroupId("missing", dir_ + "/group"), std::nullopt);
  EXPECT_EQ(localGroupId("node", dir_ + "/group"), std::nullopt);  // no prefix match
  EXPECT_EQ(localGroupId("nodeagent", dir_ + "/no-such-file"), std::nullopt);
}

}  // namespace
}  // namespace nodeagent
