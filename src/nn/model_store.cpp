#include "nn/model_store.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <sodium.h>

namespace fv::nn {

extern const char* const kModelsLockText;  // generated from models.lock by CMake

const std::vector<LockedFile>& locked_files() {
  static const std::vector<LockedFile> files = [] {
    std::vector<LockedFile> out;
    std::istringstream in(kModelsLockText);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      LockedFile f;
      if (fields >> f.package >> f.path >> f.sha256) out.push_back(f);
    }
    return out;
  }();
  return files;
}

std::filesystem::path ModelStore::default_dir() {
  if (const char* d = std::getenv("FACEVAULT_MODEL_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "facevault/models";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/root") / ".cache/facevault/models";
}

Result<std::string> sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path.string());
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(buf.data()),
                              static_cast<unsigned long long>(in.gcount()));
  }
  if (in.bad()) return io_error("read error on " + path.string());
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, digest);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

Result<std::filesystem::path> ModelStore::locate(const std::string& package, const std::string& path) const {
  for (const auto& f : locked_files()) {
    if (f.package != package || f.path != path) continue;
    auto full = dir_ / package / path;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(full, ec)) {
      return failed_precondition("model " + package + "/" + path + " is not in " + dir_.string() +
                                 "; run `make models` (scripts/fetch-models.sh) once");
    }
    auto sha = sha256_file(full);
    if (!sha.is_ok()) return sha.status();
    if (*sha != f.sha256) {
      return corrupt_data("model " + full.string() + " has sha256 " + *sha + ", models.lock pins " + f.sha256 +
                          "; delete it and run `make models`");
    }
    return full;
  }
  return not_found("model " + package + "/" + path + " is not listed in models.lock");
}

}  // namespace fv::nn
