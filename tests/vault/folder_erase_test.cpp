// vault::erase_folder: every file under the folder is overwritten in place before the folder
// goes (seen through a hard link kept outside it), symlinks are not followed, and a folder
// that does not exist is fine.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "vault/folder_erase.h"

namespace fv {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

class FolderEraseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fv-folder-erase-XXXXXX").string();
    root_ = fs::path(mkdtemp(tmpl.data()));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path root_;
};

TEST_F(FolderEraseTest, OverwritesEveryFileInPlaceThenRemovesTheFolder) {
  const fs::path dir = root_ / "shard";
  const std::string secret(200000, 'S');  // more than one 64 KiB block of zeros
  write(dir / "vault.db", secret);
  write(dir / "nested" / "vault.db-wal", "wal bytes");
  write(dir / "empty", "");
  // Hard links outside the folder see the same inodes after the folder's names are gone.
  fs::create_hard_link(dir / "vault.db", root_ / "db-link");
  fs::create_hard_link(dir / "nested" / "vault.db-wal", root_ / "wal-link");
  // A symlink to a file outside: the link goes, the file it names is not touched.
  write(root_ / "outside", "keep me");
  fs::create_symlink(root_ / "outside", dir / "link-out");

  ASSERT_TRUE(vault::erase_folder(dir).is_ok());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(read(root_ / "db-link"), std::string(secret.size(), '\0'));
  EXPECT_EQ(read(root_ / "wal-link"), std::string(9, '\0'));
  EXPECT_EQ(read(root_ / "outside"), "keep me");
}

TEST_F(FolderEraseTest, AFolderThatDoesNotExistIsFine) {
  EXPECT_TRUE(vault::erase_folder(root_ / "never-made").is_ok());
}

}  // namespace
}  // namespace fv
