// Load test of `facevault serve` on loopback: mixed search and enrollment traffic over real HTTP
// against a gallery of N synthetic templates (default 100,000) plus the sample characters
// enrolled from their photos. Bounded in time (--seconds, default 120) and in count
// (--max-requests); stops by itself. Only ever connects to 127.0.0.1.
//
//   server_load_bench [--gallery 100000] [--seconds 120] [--clients 4] [--enroll-share 0.1]
//                     [--work DIR] [--samples DIR] [--max-requests 1000000]
//
// The gallery is built once in --work (kept between runs; delete the folder to rebuild).
// Prints throughput, p50/p99 per request kind and the error count, then one JSON line.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "server/server.h"
#include "service/service.h"
#include "vault/crypto.h"
#include "vault/testing.h"

namespace fs = std::filesystem;
using namespace fv;
using namespace fv::bench;
using nlohmann::json;

namespace {

const service::Actor kAdmin{"load-bench", service::Role::kAdmin};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  int gallery = 100000, clients = 4;
  double seconds = 120, enroll_share = 0.1;
  long max_requests = 1000000;
  fs::path work = fs::temp_directory_path() / "facevault-load";
  fs::path samples = fs::path(FACEVAULT_SOURCE_DIR) / ".." / "shared" / "data" / "samples" / "face-api-js" / "images";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--gallery") gallery = std::stoi(next());
    else if (a == "--seconds") seconds = std::stod(next());
    else if (a == "--clients") clients = std::stoi(next());
    else if (a == "--enroll-share") enroll_share = std::stod(next());
    else if (a == "--max-requests") max_requests = std::stol(next());
    else if (a == "--work") work = next();
    else if (a == "--samples") samples = next();
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 1; }
  }
  seconds = std::clamp(seconds, 1.0, 600.0);  // bounded, whatever is asked
  if (!vault::ensure_sodium().is_ok()) return 2;
  unsetenv(vault::kMasterKeyEnv);

  // Sample characters: the first photos are enrolled, the last one of each is a probe.
  std::vector<std::pair<std::string, std::vector<fs::path>>> people;
  for (auto& d : fs::directory_iterator(samples)) {
    if (!d.is_directory()) continue;
    std::vector<fs::path> ph;
    for (auto& f : fs::directory_iterator(d.path()))
      if (f.path().extension() == ".png" || f.path().extension() == ".jpg") ph.push_back(f.path());
    std::sort(ph.begin(), ph.end());
    if (ph.size() >= 3) people.push_back({d.path().filename().string(), ph});
  }
  std::sort(people.begin(), people.end());
  if (people.empty()) { std::fprintf(stderr, "no sample photos in %s\n", samples.c_str()); return 2; }

  const fs::path dir = work / ("vault-" + std::to_string(gallery));
  const auto t_build = Clock::now();
  if (!fs::exists(dir / "ready")) {
    fs::remove_all(dir);
    fs::create_directories(work);
    if (auto st = vault::Vault::init(dir); !st.is_ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
    auto svc = service::Service::open(dir);
    if (!svc.is_ok()) { std::fprintf(stderr, "%s\n", svc.status().to_string().c_str()); return 2; }
    // Building the gallery is not what is measured: no fsync per commit while filling it.
    auto& db = vault::testing::raw_db((*svc)->vault_for_testing());
    (void)db.exec("PRAGMA synchronous=OFF");
    std::mt19937 rng(7);
    for (int i = 0; i < gallery; ++i) {
      const std::string ref = "synthetic-" + std::to_string(i);
      auto b = (*svc)->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "load-bench", {"access-control"}, std::nullopt});
      if (!b.is_ok()) { std::fprintf(stderr, "%s\n", b.status().to_string().c_str()); return 2; }
      auto e = (*svc)->enroll_template(kAdmin, service::EnrollRequest(ref, b->basis_id), random_template(rng));
      if (!e.is_ok()) { std::fprintf(stderr, "%s\n", e.status().to_string().c_str()); return 2; }
      if ((i + 1) % 10000 == 0) std::fprintf(stderr, "  gallery: %d / %d\n", i + 1, gallery);
    }
    for (auto& [name, ph] : people) {
      auto b = (*svc)->add_basis(kAdmin, {name, service::BasisKind::kConsent, "load-bench", {"access-control"}, std::nullopt});
      if (!b.is_ok()) return 2;
      for (size_t k = 0; k + 1 < ph.size(); ++k) {
        auto bytes = slurp(ph[k]);
        (void)(*svc)->enroll(kAdmin, service::EnrollRequest(name, b->basis_id), std::vector<uint8_t>(bytes.begin(), bytes.end()));
      }
    }
    (void)db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    std::ofstream(dir / "ready") << "ok\n";
    std::printf("built a gallery of %d synthetic + %zu sample subjects in %.1f s\n", gallery, people.size(),
                secs(t_build, Clock::now()));
  }

  // Keys, and the subjects the enrollment traffic adds photos to.
  std::string inv_key, enr_key;
  std::vector<std::pair<std::string, int64_t>> enroll_targets;
  {
    auto svc = service::Service::open(dir);
    if (!svc.is_ok()) return 2;
    auto inv = (*svc)->create_api_key(kAdmin, service::Role::kInvestigator, {"access-control"}, "load bench");
    auto enr = (*svc)->create_api_key(kAdmin, service::Role::kEnroller, {}, "load bench");
    if (!inv.is_ok() || !enr.is_ok()) return 2;
    inv_key = inv->secret;
    enr_key = enr->secret;
  }
  server::ServerOptions o;
  o.vault_dir = dir;
  o.host = "127.0.0.1";  // loopback only
  o.port = 0;
  o.rate_per_s = 0;
  o.access_log = false;
  o.http_threads = std::max(8, clients * 2);
  auto srv = server::Server::create(o);
  if (!srv.is_ok()) { std::fprintf(stderr, "%s\n", srv.status().to_string().c_str()); return 2; }
  if (!(*srv)->start().is_ok()) return 2;
  const int port = (*srv)->port();
  {
    httplib::Client c("127.0.0.1", port);
    for (size_t i = 0; i < people.size(); ++i) {
      const std::string ref = "load-enroll-" + std::to_string(i) + "-" + vault::random_hex(3);
      json body = {{"kind", "consent"}, {"reference", "load-bench"}, {"purposes", {"access-control"}}};
      auto r = c.Post(("/v1/subjects/" + ref + "/bases").c_str(), {{"Authorization", "Bearer " + enr_key}}, body.dump(),
                      "application/json");
      if (!r || r->status != 201) { std::fprintf(stderr, "cannot create enrollment subjects\n"); return 2; }
      enroll_targets.push_back({ref, json::parse(r->body)["id"].get<int64_t>()});
    }
    // One warm-up search so the first measured one does not pay for loading the gallery.
    auto probe = slurp(people[0].second.back());
    httplib::MultipartFormDataItems items = {{"image", probe, "p.png", "image/png"}, {"purpose", "access-control", "", ""},
                                             {"case", "LOAD-WARMUP", "", ""}};
    const auto t0 = Clock::now();
    auto r = c.Post("/v1/search", {{"Authorization", "Bearer " + inv_key}}, items);
    std::printf("warm-up search (loads the gallery): %.2f s, status %d\n", secs(t0, Clock::now()), r ? r->status : -1);
  }
  std::vector<std::string> probes, enroll_photos;
  for (auto& [name, ph] : people) {
    probes.push_back(slurp(ph.back()));
    enroll_photos.push_back(slurp(ph.front()));
  }

  struct Sample { bool enroll; double s; bool ok; };
  std::mutex mu;
  std::vector<Sample> samples_out;
  std::atomic<long> issued{0};
  std::atomic<int> errors{0};
  std::string first_error;
  const auto t_start = Clock::now();
  const auto deadline = t_start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(120);
      c.set_keep_alive(true);
      std::mt19937 rng(100 + t);
      std::uniform_real_distribution<double> u(0, 1);
      std::vector<Sample> mine;
      for (long n = 0; Clock::now() < deadline && (n = issued.fetch_add(1)) < max_requests;) {
        const bool enroll = u(rng) < enroll_share;
        const size_t k = rng() % people.size();
        httplib::Result r{nullptr, httplib::Error::Unknown};
        const auto t0 = Clock::now();
        if (enroll) {
          auto& [ref, basis] = enroll_targets[k];
          httplib::MultipartFormDataItems items = {{"image", enroll_photos[k], "e.png", "image/png"},
                                                   {"basis", std::to_string(basis), "", ""}};
          r = c.Post(("/v1/subjects/" + ref + "/faces").c_str(), {{"Authorization", "Bearer " + enr_key}}, items);
        } else {
          httplib::MultipartFormDataItems items = {{"image", probes[k], "p.png", "image/png"},
                                                   {"purpose", "access-control", "", ""},
                                                   {"case", "LOAD-" + std::to_string(t), "", ""}, {"top", "5", "", ""}};
          r = c.Post("/v1/search", {{"Authorization", "Bearer " + inv_key}}, items);
        }
        const double dt = secs(t0, Clock::now());
        bool ok = r && r->status == (enroll ? 201 : 200);
        if (ok && !enroll) {
          // A correct answer, not just a 200: the probe's own person is the top candidate.
          auto j = json::parse(r->body, nullptr, false);
          ok = !j.is_discarded() && !j["faces"].empty() && !j["faces"][0]["candidates"].empty() &&
               j["faces"][0]["candidates"][0]["subject"] == people[k].first;
        }
        if (!ok) {
          ++errors;
          std::lock_guard<std::mutex> l(mu);
          if (first_error.empty())
            first_error = r ? std::to_string(r->status) + " " + r->body.substr(0, 300) : "connection: " + httplib::to_string(r.error());
        }
        mine.push_back({enroll, dt, ok});
      }
      std::lock_guard<std::mutex> l(mu);
      samples_out.insert(samples_out.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) th.join();
  const double wall = secs(t_start, Clock::now());
  (*srv)->stop();

  std::vector<double> all, s_lat, e_lat;
  for (auto& s : samples_out) {
    all.push_back(s.s);
    (s.enroll ? e_lat : s_lat).push_back(s.s);
  }
  json out = {{"gallery_synthetic", gallery},
              {"sample_subjects", people.size()},
              {"clients", clients},
              {"seconds", wall},
              {"requests", all.size()},
              {"throughput_rps", all.size() / wall},
              {"searches", s_lat.size()},
              {"enrollments", e_lat.size()},
              {"search_p50_ms", pct(s_lat, 0.5) * 1e3},
              {"search_p99_ms", pct(s_lat, 0.99) * 1e3},
              {"enroll_p50_ms", pct(e_lat, 0.5) * 1e3},
              {"enroll_p99_ms", pct(e_lat, 0.99) * 1e3},
              {"all_p50_ms", pct(all, 0.5) * 1e3},
              {"all_p99_ms", pct(all, 0.99) * 1e3},
              {"errors", errors.load()}};
  std::printf("%zu requests in %.1f s = %.1f req/s with %d clients; searches %zu (p50 %.0f ms, p99 %.0f ms), "
              "enrollments %zu (p50 %.0f ms, p99 %.0f ms); errors %d\n",
              all.size(), wall, all.size() / wall, clients, s_lat.size(), pct(s_lat, 0.5) * 1e3, pct(s_lat, 0.99) * 1e3,
              e_lat.size(), pct(e_lat, 0.5) * 1e3, pct(e_lat, 0.99) * 1e3, errors.load());
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  std::printf("%s\n", out.dump().c_str());
  return errors.load() == 0 ? 0 : 1;
}
