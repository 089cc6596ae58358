// Vault benchmarks: enrollment throughput (images/s through the whole enroll path: decode,
// detect, landmarks, embed, quality, opt-out check, seal, provenance, audit, commit) with 1
// and 2 pipeline workers on the sample photos; and the cost of erasing one subject from a
// vault of N synthetic subjects (default 100,000), with and without the VACUUM step.
//
//   vault_bench [--subjects N] [--erasures K] [--repeat R] [--samples DIR]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "bench_util.h"
#include "nn/model.h"
#include "service/service.h"
#include "vault/testing.h"
#include "vault/timeutil.h"

namespace fs = std::filesystem;
using namespace fv;
using namespace fv::bench;

namespace {

const service::Actor kAdmin{"bench", service::Role::kAdmin};
const service::Actor kAuditor{"bench", service::Role::kAuditor};

uintmax_t dir_bytes(const fs::path& d) {
  uintmax_t n = 0;
  for (auto& e : fs::directory_iterator(d))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

int enroll_throughput(const fs::path& work, const fs::path& samples, int repeat) {
  std::vector<std::string> people = {"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"};
  nn::set_inner_threads(1);
  for (int threads : {1, 2}) {
    const fs::path dir = work / ("enroll-" + std::to_string(threads));
    if (auto st = vault::Vault::init(dir); !st.is_ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
    service::ServiceOptions options;
    options.pipelines = threads;
    auto svc = service::Service::open(dir, options);
    if (!svc.is_ok()) { std::fprintf(stderr, "%s\n", svc.status().to_string().c_str()); return 2; }
    std::vector<service::BatchRow> rows;
    for (auto& p : people) {
      auto b = (*svc)->add_basis(kAdmin, {p, service::BasisKind::kConsent, "bench", {"access-control"}, std::nullopt});
      for (int r = 0; r < repeat; ++r)
        for (int i = 1; i <= 5; ++i) rows.push_back({(samples / p / (p + std::to_string(i) + ".png")).string(), p, "", b->basis_id, 0});
    }
    // Warm-up: build the pipelines (model load is not enrollment).
    size_t ok = 0;
    auto t0 = Clock::now();
    auto st = (*svc)->enroll_batch(kAdmin, rows, threads, false, "bench",
                                   [&](const auto&, const Result<service::EnrollResult>& r) { ok += r.is_ok(); });
    auto t1 = Clock::now();
    if (!st.is_ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
    std::printf("enrollment, %d thread(s): %zu images (%zu enrolled) in %.2f s = %.1f images/s (includes building %d pipeline(s))\n",
                threads, rows.size(), ok, secs(t0, t1), rows.size() / secs(t0, t1), threads);
    // Second pass on the same service: pipelines already built.
    ok = 0;
    t0 = Clock::now();
    st = (*svc)->enroll_batch(kAdmin, rows, threads, false, "bench",
                              [&](const auto&, const Result<service::EnrollResult>& r) { ok += r.is_ok(); });
    t1 = Clock::now();
    std::printf("enrollment, %d thread(s), warm: %zu images in %.2f s = %.1f images/s\n", threads, rows.size(),
                secs(t0, t1), rows.size() / secs(t0, t1));
  }
  return 0;
}

int erasure_cost(const fs::path& work, int subjects, int erasures) {
  for (bool vacuum : {true, false}) {
    const fs::path dir = work / (vacuum ? "erase-vacuum" : "erase-checkpoint");
    vault::VaultConfig cfg;
    cfg.erase_vacuum = vacuum;
    if (auto st = vault::Vault::init(dir, cfg); !st.is_ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
    std::mt19937 rng(1);
    {
      auto svc = service::Service::open(dir);
      if (!svc.is_ok()) return 2;
      // Building the vault is not what is measured: skip the per-commit fsync while filling it.
      auto& db = vault::testing::raw_db((*svc)->vault_for_testing());
      (void)db.exec("PRAGMA synchronous=OFF");
      auto t0 = Clock::now();
      for (int i = 0; i < subjects; ++i) {
        const std::string ref = "subject-" + std::to_string(i);
        auto b = (*svc)->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "bench", {"access-control"}, std::nullopt});
        if (!b.is_ok()) { std::fprintf(stderr, "%s\n", b.status().to_string().c_str()); return 2; }
        auto e = (*svc)->enroll_template(kAdmin, service::EnrollRequest(ref, b->basis_id), random_template(rng));
        if (!e.is_ok()) { std::fprintf(stderr, "%s\n", e.status().to_string().c_str()); return 2; }
      }
      (void)db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      if (vacuum) std::printf("built a vault of %d subjects in %.1f s\n", subjects, secs(t0, Clock::now()));
    }
    std::printf("vault of %d subjects: %.1f MB on disk\n", subjects, dir_bytes(dir) / 1e6);
    auto svc = service::Service::open(dir);
    if (!svc.is_ok()) return 2;
    std::vector<double> times;
    for (int k = 0; k < erasures; ++k) {
      const std::string ref = "subject-" + std::to_string((k * 7919) % subjects);
      auto t0 = Clock::now();
      auto r = (*svc)->erase(kAuditor, ref);
      auto t1 = Clock::now();
      if (!r.is_ok()) { std::fprintf(stderr, "%s\n", r.status().to_string().c_str()); return 2; }
      times.push_back(secs(t0, t1));
    }
    std::sort(times.begin(), times.end());
    std::printf("erasure (%s): median %.3f s, min %.3f s, max %.3f s over %d erasures\n",
                vacuum ? "delete + WAL checkpoint + VACUUM + checkpoint" : "delete + WAL checkpoint (secure_delete)",
                times[times.size() / 2], times.front(), times.back(), erasures);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int subjects = 100000, erasures = 5, repeat = 2;
  fs::path samples = fs::path(FACEVAULT_SOURCE_DIR) / ".." / "shared" / "data" / "samples" / "face-api-js" / "images";
  bool only_erase = false, only_enrol = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--subjects" && i + 1 < argc) subjects = std::atoi(argv[++i]);
    else if (a == "--erasures" && i + 1 < argc) erasures = std::atoi(argv[++i]);
    else if (a == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else if (a == "--samples" && i + 1 < argc) samples = argv[++i];
    else if (a == "--erase-only") only_erase = true;
    else if (a == "--enroll-only") only_enrol = true;
    else { std::fprintf(stderr, "usage: vault_bench [--subjects N] [--erasures K] [--repeat R] [--samples DIR] [--erase-only|--enroll-only]\n"); return 1; }
  }
  if (vault::ensure_sodium().is_ok() == false) return 2;
  std::string tmpl = (fs::temp_directory_path() / "fv-vault-bench-XXXXXX").string();
  const fs::path work = mkdtemp(tmpl.data());
  int rc = 0;
  if (!only_erase) {
    if (fs::exists(samples)) rc = enroll_throughput(work, samples, repeat);
    else std::printf("enrollment: skipped (%s absent)\n", samples.c_str());
  }
  if (rc == 0 && !only_enrol) rc = erasure_cost(work, subjects, erasures);
  std::error_code ec;
  fs::remove_all(work, ec);
  return rc;
}
