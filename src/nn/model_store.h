// ModelStore: where the pinned model files live and proof that they are the ones we pinned.
// Files are fetched at setup (scripts/fetch-models.sh), never at run time.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::nn {

struct LockedFile {
  std::string package;  // npm name@version
  std::string path;     // path inside the package
  std::string sha256;   // lower-case hex
};

// The entries of models.lock, compiled into the binary.
const std::vector<LockedFile>& locked_files();

class ModelStore {
 public:
  // dir: FACEVAULT_MODEL_DIR, else $XDG_CACHE_HOME/facevault/models, else ~/.cache/facevault/models.
  static std::filesystem::path default_dir();
  explicit ModelStore(std::filesystem::path dir = default_dir()) : dir_(std::move(dir)) {}

  const std::filesystem::path& dir() const { return dir_; }
  // Path of a locked file after checking it exists and its sha256 matches models.lock.
  Result<std::filesystem::path> locate(const std::string& package, const std::string& path) const;

 private:
  std::filesystem::path dir_;
};

// sha256 of a file's bytes, lower-case hex.
Result<std::string> sha256_file(const std::filesystem::path& path);

}  // namespace fv::nn
