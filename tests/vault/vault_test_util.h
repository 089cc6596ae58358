// Helpers for the vault and service tests: temporary vaults, synthetic templates, the actors
// of each role, the byte scan that proves erasure (no 16-byte window of a secret left in any
// file of the vault directory), and the one place that reaches the vault's rows directly.
#pragma once

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "service/service.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/testing.h"
#include "vault/timeutil.h"

namespace fv::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fv-vault-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline face::FaceTemplate random_template(std::mt19937& rng, const std::string& model = "faceplugin-mobilefacenet-512") {
  std::normal_distribution<float> n(0.f, 1.f);
  face::FaceTemplate t{model, 1, std::vector<float>(512)};
  double s = 0;
  for (auto& v : t.values) { v = n(rng); s += v * v; }
  for (auto& v : t.values) v = static_cast<float>(v / std::sqrt(s));
  return t;
}

// Another "photo" of the same synthetic person: similarity ≈ 1 / sqrt(1 + noise²).
inline face::FaceTemplate near_template(const face::FaceTemplate& base, std::mt19937& rng, float noise = 0.5f) {
  std::normal_distribution<float> n(0.f, noise / std::sqrt(512.f));
  face::FaceTemplate t = base;
  double s = 0;
  for (auto& v : t.values) { v += n(rng); s += v * v; }
  for (auto& v : t.values) v = static_cast<float>(v / std::sqrt(s));
  return t;
}

inline std::vector<uint8_t> file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Files of `dir` holding any 16-byte window of `secret`. Windows with fewer than 6 distinct
// byte values (runs of zeros, padding) are skipped: they occur in any file by chance.
inline std::vector<std::string> files_holding(const std::filesystem::path& dir, std::span<const uint8_t> secret) {
  constexpr size_t W = 16;
  std::unordered_set<std::string> windows;
  for (size_t i = 0; i + W <= secret.size(); ++i) {
    std::string w(reinterpret_cast<const char*>(secret.data() + i), W);
    std::unordered_set<char> distinct(w.begin(), w.end());
    if (distinct.size() >= 6) windows.insert(std::move(w));
  }
  std::vector<std::string> hits;
  if (windows.empty()) return hits;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto bytes = file_bytes(e.path());
    for (size_t i = 0; i + W <= bytes.size(); ++i) {
      if (windows.count(std::string(reinterpret_cast<const char*>(bytes.data() + i), W))) {
        hits.push_back(e.path().filename().string() + "@" + std::to_string(i));
        break;
      }
    }
  }
  return hits;
}

inline std::span<const uint8_t> float_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

// Every column of every audit entry, as one text: to prove that something is nowhere in the log.
inline std::string audit_table_text(vault::Db& db) {
  std::string all;
  auto s = db.prepare(
      "SELECT seq || '|' || ts || '|' || actor || '|' || role || '|' || action || '|' || outcome || '|' || purpose || "
      "'|' || case_ref || '|' || subjects || '|' || details || '|' || prev_hash || '|' || hash FROM audit ORDER BY seq");
  EXPECT_TRUE(s.is_ok());
  if (!s.is_ok()) return all;
  while (*s->step()) all += s->text(0) + "\n";
  return all;
}

// One caller of each role (use cases take the actor as an argument).
inline const service::Actor kAdmin{"tester", service::Role::kAdmin};
inline const service::Actor kEnroller{"eve", service::Role::kEnroller};
inline const service::Actor kInvestigator{"ivan", service::Role::kInvestigator};
inline const service::Actor kAuditor{"dora", service::Role::kAuditor};

// The vault's own SQLite connection, for tests that count rows, read stored blobs or tamper
// with them: no use case does either. The only place in the tests that reaches past the
// catalog.
inline vault::Db& raw_db(vault::Vault& v) { return vault::testing::raw_db(v); }
inline vault::Db& raw_db(service::Service& s) { return raw_db(s.vault_for_testing()); }

// A service over `dir` with a settable clock.
struct Clock {
  std::string now = vault::utc_now();
  std::function<std::string()> fn() { return [this] { return now; }; }
};

inline std::unique_ptr<service::Service> open_service(const std::filesystem::path& dir, Clock* clock = nullptr,
                                                      face::FacePipeline* pipeline = nullptr) {
  service::ServiceOptions o;
  if (clock) o.clock = clock->fn();
  o.shared_pipeline = pipeline;
  auto s = service::Service::open(dir, o);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

// An enrollment that keeps a "photo" of arbitrary bytes with a synthetic template, without the
// models: one enroll_template transaction (policy, audit, gallery) that stores the photo sealed
// and bound to its row, so erasure, export and the row binding can be tested on it.
inline Result<service::EnrollResult> enroll_kept_photo(service::Service& s, const service::Actor& actor,
                                                       service::EnrollRequest req, const std::vector<uint8_t>& photo,
                                                       const face::FaceTemplate& t, const std::string& format = "png") {
  req.keep_image = true;
  service::TemplateOrigin origin;
  origin.image_sha256 = vault::sha256_hex(photo);
  origin.format = format;
  origin.kept_image = photo;
  return s.enroll_template(actor, req, t, std::move(origin));
}

}  // namespace fv::test
