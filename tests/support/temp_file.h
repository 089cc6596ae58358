// A file with the given content in the temp folder, removed when it goes out of scope.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fv::test {

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    path_ = std::filesystem::temp_directory_path() /
            ("fv_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++) + ".txt");
    std::ofstream out(path_, std::ios::binary);
    out << content;
  }
  ~TempFile() { std::error_code ec; std::filesystem::remove(path_, ec); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

}  // namespace fv::test
