// The face-api.js sample photos of ../shared/data (one folder per character, <name><n>.png),
// shared by the server test binaries.
#pragma once

#include <filesystem>
#include <string>

#include "support/paths.h"
#include "vault/vault_test_util.h"

namespace fv::test::sample_photos {

inline std::filesystem::path samples() { return data_dir() / "samples" / "face-api-js" / "images"; }
inline std::filesystem::path photo(const std::string& who, int n) {
  return samples() / who / (who + std::to_string(n) + ".png");
}
inline std::string file_text(const std::filesystem::path& p) {
  auto b = file_bytes(p);
  return std::string(b.begin(), b.end());
}

}  // namespace fv::test::sample_photos
