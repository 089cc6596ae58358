// Where tests find shared data and models; tests that need what is absent skip with a reason.
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "nn/model_store.h"

namespace fv::test {

// ../shared next to the checkout (FACEVAULT_SHARED overrides).
inline std::filesystem::path shared_dir() {
  if (const char* s = std::getenv("FACEVAULT_SHARED"); s && *s) return s;
  return std::filesystem::path(FACEVAULT_SOURCE_DIR) / ".." / "shared";
}
inline std::filesystem::path golden_dir() { return shared_dir() / "golden"; }
inline std::filesystem::path data_dir() { return shared_dir() / "data"; }

inline bool models_present() {
  nn::ModelStore store;
  for (const auto& f : nn::locked_files()) {
    if (!std::filesystem::exists(store.dir() / f.package / f.path)) return false;
  }
  return true;
}

}  // namespace fv::test

#define FV_REQUIRE_MODELS()                                                                       \
  do {                                                                                            \
    if (!::fv::test::models_present()) GTEST_SKIP() << "models not fetched: run `make models`";   \
  } while (0)

#define FV_REQUIRE_PATH(p)                                                                        \
  do {                                                                                            \
    if (!std::filesystem::exists(p))                                                              \
      GTEST_SKIP() << (p).string() << " is absent: see README (Test data) for how to get it";     \
  } while (0)
