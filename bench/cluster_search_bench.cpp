// Search on a cluster against one vault at the same total gallery (issue 17, docs/cluster.md,
// docs/benchmarks.md). Everything on loopback, in one process plus the nats-servers it starts
// (tests/support/nats_servers.h: stopped by pid, store dirs under this run's temp dir, removed
// at the end).
//
//   1. A cluster: 3 nats-servers, `init_cluster(conn, S, R)`, 3 ClusterNodes started twice (so
//      that each hosts its share of the shards: hosting follows the members registered at
//      start), a ClusterService on each.
//   2. N subjects enrolled through the nodes in turn (add_basis + enroll_template of a synthetic
//      512-D template) from T writer threads: the production write path, a subject's use cases
//      forwarded to a replica of its shard when the node does not host it, each write acked
//      once JetStream stored it and min(2, R) replicas applied it; enrollments/s.
//   3. Q probes, each a gallery template plus noise (so each has its mate in the gallery),
//      searched through node 0 (investigation mode, top 10, one client thread): p50/p99. Every
//      search is audited in the meta stream (a replicated write), as in production.
//   4. One vault (a Service) holding the same N templates, filled with synchronous=OFF (the
//      fill is not what is measured), the same probes: p50/p99; the top 10 compared.
//
//   cluster_search_bench --gallery N [--queries Q] [--shards S] [--replicas R] [--threads T] [--keep DIR] [--json]
//   cluster_search_bench --reuse DIR [--queries Q] [--json]
//
// --keep DIR leaves the NATS stores, the node vaults and the single vault in DIR (with
// bench-run.json saying what they hold); --reuse DIR starts the servers and nodes on them again
// and only searches: at 1 M the fill takes hours and the searches minutes.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "service/cluster_service.h"
#include "service/service.h"
#include "support/nats_servers.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/testing.h"
#include "vault/vault.h"

namespace fs = std::filesystem;
using namespace fv;
using namespace fv::bench;
using nlohmann::json;

namespace {

const std::string kMasterHex(64, '3');  // fixed test keys, as tests/cluster does
const std::string kSigningHex(64, '9');
const service::Actor kAdmin{"bench", service::Role::kAdmin};
const service::Actor kInvestigator{"bench", service::Role::kInvestigator};
const std::vector<std::string> kNodes = {"a", "b", "c"};

face::FaceTemplate gallery_template(size_t i) {
  std::mt19937 rng(static_cast<uint32_t>(1000003u + i));
  return random_template(rng);
}

std::string ref_of(size_t i) { return "s" + std::to_string(i); }

// A new photo of gallery subject `mate`: its template plus noise (cosine ≈ 0.8), unit norm.
face::FaceTemplate probe_of(size_t mate, std::mt19937& rng) {
  face::FaceTemplate t = gallery_template(mate);
  std::normal_distribution<float> n(0.f, 0.03f);
  double s = 0;
  for (auto& v : t.values) { v += n(rng); s += double(v) * v; }
  for (auto& v : t.values) v = static_cast<float>(v / std::sqrt(s));
  return t;
}

service::BasisRequest consent(const std::string& ref) {
  return {ref, service::BasisKind::kConsent, "bench", {"access-control"}, std::nullopt};
}

// One subject through `api`; a write that found NATS unavailable for a moment (an election) or
// lost a race is tried again, a few times.
template <class Api>
void enroll_subject(Api& api, size_t i) {
  const std::string ref = ref_of(i);
  const auto t = gallery_template(i);
  for (int attempt = 1;; ++attempt) {
    auto b = api.add_basis(kAdmin, consent(ref));
    Status st = b.status();
    if (b.is_ok()) {
      auto e = api.enroll_template(kAdmin, service::EnrollRequest(ref, b->basis_id), t);
      if (e.is_ok()) return;
      st = e.status();
    }
    const bool again = st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kAborted;
    if (!again || attempt >= 5) die("enrollment of " + ref, st);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
}

struct SearchFigures {
  std::vector<double> ms;
  std::vector<std::vector<service::Candidate>> top;  // per probe
  int mate_first = 0;
  json to_json() const {
    return {{"searches", ms.size()}, {"p50_ms", pct(ms, .5)}, {"p99_ms", pct(ms, .99)},
            {"mean_ms", ms.empty() ? 0.0 : std::accumulate(ms.begin(), ms.end(), 0.0) / double(ms.size())},
            {"mate_first", mate_first}};
  }
};

template <class Api>
SearchFigures search_phase(Api& api, const std::vector<face::FaceTemplate>& probes, const std::vector<size_t>& mates,
                           int warmup) {
  service::SearchRequest req("access-control", "bench-search", 10);
  req.mode = "investigation";
  for (int i = 0; i < warmup; ++i) must(api.search_templates(kInvestigator, req, {probes[size_t(i) % probes.size()]}), "warm-up search");
  SearchFigures f;
  for (size_t q = 0; q < probes.size(); ++q) {
    const auto t0 = Clock::now();
    auto r = must(api.search_templates(kInvestigator, req, {probes[q]}), "search");
    f.ms.push_back(ms(t0, Clock::now()));
    auto c = r.faces.empty() ? std::vector<service::Candidate>{} : r.faces[0].candidates;
    if (!c.empty() && c[0].subject_ref == ref_of(mates[q])) ++f.mate_first;
    f.top.push_back(std::move(c));
  }
  return f;
}

// Same references in the same order, scores within 1e-5.
int same_top10(const SearchFigures& a, const SearchFigures& b) {
  int same = 0;
  for (size_t q = 0; q < a.top.size() && q < b.top.size(); ++q) {
    bool eq = a.top[q].size() == b.top[q].size();
    for (size_t k = 0; eq && k < a.top[q].size(); ++k)
      eq = a.top[q][k].subject_ref == b.top[q][k].subject_ref &&
           std::abs(a.top[q][k].similarity - b.top[q][k].similarity) < 1e-5;
    same += eq ? 1 : 0;
  }
  return same;
}

struct Options {
  size_t n = 0, queries = 500;
  int shards = 16, replicas = 1, threads = 16;
  bool as_json = false;
  fs::path keep;   // --keep DIR: the run's data stays in DIR (for --reuse)
  fs::path reuse;  // --reuse DIR: start on what a --keep run left, skip the fill
};

// What a kept run left in its directory, so that a later --reuse searches the same gallery.
const char* kRunFile = "bench-run.json";

json read_run(const fs::path& dir) {
  std::ifstream in(dir / kRunFile);
  if (!in) die("--reuse " + dir.string(), not_found("no " + std::string(kRunFile) + " there: not a --keep run's directory"));
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("gallery")) die("--reuse " + dir.string(), invalid_argument(std::string(kRunFile) + " is not a run record"));
  return j;
}

void write_run(const fs::path& dir, const json& j) {
  std::ofstream out(dir / kRunFile);
  out << j.dump(2) << "\n";
  if (!out.flush()) die("--keep " + dir.string(), internal_error("cannot write " + std::string(kRunFile)));
}

// The NATS root a kept run left: the one fv_nats_* directory in `dir`.
fs::path nats_root_in(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("fv_nats_", 0) == 0) return e.path();
  die("--reuse " + dir.string(), not_found("no fv_nats_* store directory there"));
  return {};
}

std::unique_ptr<test::NatsTestCluster> start_nats(const Options& o, const fs::path& work) {
  auto nats = o.reuse.empty() ? std::make_unique<test::NatsTestCluster>(3, work)
                              : test::NatsTestCluster::on_existing(3, nats_root_in(work));
  if (!nats->wait_ready(60000)) die("nats", unavailable("the NATS cluster was not ready in 60 s"));
  return nats;
}

// N subjects through the nodes in turn from T writer threads; the figures go to out.
void fill_cluster(const Options& o, std::vector<std::unique_ptr<service::ClusterService>>& svcs, json& out) {
  const size_t n = o.n;
  std::fprintf(stderr, "cluster: %zu enrollments through 3 nodes, %d threads, %d shards R%d\n", n, o.threads, o.shards, o.replicas);
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<double> enroll_ms;
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t)
    pool.emplace_back([&] {
      std::vector<double> mine;
      for (size_t i = next++; i < n; i = next++) {
        const auto a = Clock::now();
        enroll_subject(*svcs[i % svcs.size()], i);
        mine.push_back(ms(a, Clock::now()));
        if ((i + 1) % 50000 == 0)
          std::fprintf(stderr, "  %zu / %zu (%.0f/s)\n", i + 1, n, double(i + 1) / secs(t0, Clock::now()));
      }
      std::lock_guard l(mu);
      enroll_ms.insert(enroll_ms.end(), mine.begin(), mine.end());
    });
  for (auto& th : pool) th.join();
  out["cluster_enrollment"] = {{"seconds", secs(t0, Clock::now())},
                               {"per_s", double(n) / secs(t0, Clock::now())},
                               {"p50_ms", pct(enroll_ms, .5)},
                               {"p99_ms", pct(enroll_ms, .99)}};
}

SearchFigures cluster_run(const Options& o, const fs::path& work, const std::vector<face::FaceTemplate>& probes,
                          const std::vector<size_t>& mates, json& out) {
  const bool reuse = !o.reuse.empty();
  auto nats = start_nats(o, work);
  auto conn = must(cluster::NatsConnection::connect({nats->urls(), "bench"}), "connect");
  if (!reuse) must(cluster::init_cluster(*conn, o.shards, o.replicas), "cluster init");
  // Started twice on a new cluster, so that each node hosts its share of the shards: hosting
  // follows the members registered at start. A reused cluster has its members.
  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  for (int round = 0; round < (reuse ? 1 : 2); ++round) {
    nodes.clear();
    for (const auto& name : kNodes) {
      cluster::NodeOptions no;
      no.servers = nats->urls();
      no.name = name;
      no.dir = work / "nodes" / name;
      nodes.push_back(must(cluster::ClusterNode::start(no), "start node " + name));
    }
  }
  std::vector<std::unique_ptr<service::ClusterService>> svcs;
  json hosting = json::object();
  for (auto& node : nodes) {
    svcs.push_back(must(service::ClusterService::open(*node, {}), "open cluster service"));
    int hosted = 0;
    for (int s = 0; s < o.shards; ++s) hosted += node->shard(s) != nullptr ? 1 : 0;
    hosting[node->name()] = hosted;
  }
  out["shards_hosted"] = hosting;

  if (!reuse) fill_cluster(o, svcs, out);
  const auto t1 = Clock::now();
  for (auto& node : nodes) must(node->catch_up(600000), "catch-up of " + node->name());
  out["then_all_caught_up_s"] = secs(t1, Clock::now());
  json store = json::array(), vaults = json::array();
  for (int i = 0; i < 3; ++i) store.push_back(tree_bytes(nats->store_dir(i)) / 1e6);
  for (const auto& name : kNodes) vaults.push_back(tree_bytes(work / "nodes" / name) / 1e6);
  out["nats_store_mb"] = store;
  out["node_vaults_mb"] = vaults;

  // As `serve` does before it listens: the pipelines and every hosted shard's gallery.
  const auto t2 = Clock::now();
  for (auto& svc : svcs) must(svc->warm_up(), "warm up a node");
  out["warm_up_s"] = secs(t2, Clock::now());
  std::fprintf(stderr, "cluster: warmed up in %.1f s; %zu searches through node a\n", out["warm_up_s"].get<double>(), probes.size());
  SearchFigures f = search_phase(*svcs[0], probes, mates, 5);
  out["cluster_search"] = f.to_json();
  out["cluster_search"]["eligible_templates"] = o.n;
  std::fprintf(stderr, "cluster: %s\n", out["cluster_search"].dump().c_str());
  svcs.clear();  // services before the nodes whose writers they hold
  nodes.clear();
  conn.reset();
  return f;
}

// The anchor: one vault with the same N templates, filled untimed with synchronous=OFF. A kept
// run's single vault is searched again by --reuse.
SearchFigures single_run(const Options& o, const fs::path& work, const std::vector<face::FaceTemplate>& probes,
                         const std::vector<size_t>& mates, json& run_record, json& out) {
  const fs::path dir = work / "single";
  if (!run_record.is_object() || !run_record.value("single_filled", false)) {
    std::fprintf(stderr, "single vault: %zu enrollments (synchronous=OFF, untimed)\n", o.n);
    std::error_code ec;
    fs::remove_all(dir, ec);
    must(vault::Vault::init(dir), "init single vault");
    const auto t0 = Clock::now();
    {
      auto svc = must(service::Service::open(dir), "open single vault");
      auto& db = vault::testing::raw_db(svc->vault_for_testing());
      must(db.exec("PRAGMA synchronous=OFF"), "synchronous=OFF");
      for (size_t i = 0; i < o.n; ++i) {
        enroll_subject(*svc, i);
        if ((i + 1) % 100000 == 0) std::fprintf(stderr, "  %zu / %zu\n", i + 1, o.n);
      }
      must(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
    }
    out["single_fill_s"] = secs(t0, Clock::now());
    run_record["single_filled"] = true;
    if (!o.keep.empty() || !o.reuse.empty()) write_run(work, run_record);
  }
  auto svc = must(service::Service::open(dir), "open single vault");
  must(svc->warm_up(), "warm up the single vault");
  std::fprintf(stderr, "single vault: %zu searches\n", probes.size());
  return search_phase(*svc, probes, mates, 5);
}

int run(Options o) {
  must(vault::ensure_sodium(), "libsodium");
  ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
  ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
  fs::path work;
  json run_record;
  if (!o.reuse.empty()) {
    work = o.reuse;
    run_record = read_run(work);
    o.n = run_record["gallery"].get<size_t>();
    o.shards = run_record["shards"].get<int>();
    o.replicas = run_record["replicas"].get<int>();
  } else if (!o.keep.empty()) {
    work = o.keep;
    if (fs::exists(work) && !fs::is_empty(work)) die("--keep " + work.string(), invalid_argument("the directory is not empty"));
    fs::create_directories(work);
    ::setenv("FV_KEEP_NATS_DIRS", "1", 1);
  } else {
    std::string tmpl = (fs::temp_directory_path() / "fv-cluster-search-bench-XXXXXX").string();
    work = mkdtemp(tmpl.data());
  }
  const size_t n = o.n, queries = o.queries;
  json out = {{"gallery", n}, {"queries", queries}, {"shards", o.shards}, {"replicas", o.replicas},
              {"writer_threads", o.threads}, {"reused", !o.reuse.empty()}};

  std::mt19937 prng(17);
  std::vector<face::FaceTemplate> probes;
  std::vector<size_t> mates;
  for (size_t q = 0; q < queries; ++q) {
    mates.push_back(std::uniform_int_distribution<size_t>(0, n - 1)(prng));
    probes.push_back(probe_of(mates.back(), prng));
  }
  const SearchFigures cluster_f = cluster_run(o, work, probes, mates, out);
  if (!o.keep.empty()) {
    run_record = {{"gallery", n}, {"shards", o.shards}, {"replicas", o.replicas}};
    write_run(work, run_record);
  }
  const SearchFigures f = single_run(o, work, probes, mates, run_record, out);
  out["single_search"] = f.to_json();
  out["same_top10"] = same_top10(cluster_f, f);
  out["ratio_p50"] = pct(cluster_f.ms, .5) / pct(f.ms, .5);
  out["ratio_p99"] = pct(cluster_f.ms, .99) / pct(f.ms, .99);
  if (o.keep.empty() && o.reuse.empty()) {
    std::error_code ec;
    fs::remove_all(work, ec);
  }

  if (o.as_json) std::printf("%s\n", out.dump(2).c_str());
  FILE* of = o.as_json ? stderr : stdout;
  std::fprintf(of, "gallery %zu templates; %zu probes (each with its mate), investigation top 10\n", n, queries);
  if (out.contains("cluster_enrollment")) {
    const auto& ce = out["cluster_enrollment"];
    std::fprintf(of, "enrollment through 3 nodes (%d shards R%d, %d threads): %.0f/s (p50 %.1f ms, p99 %.1f ms), all caught up %.1f s later\n",
                 o.shards, o.replicas, o.threads, ce["per_s"].get<double>(), ce["p50_ms"].get<double>(), ce["p99_ms"].get<double>(),
                 out["then_all_caught_up_s"].get<double>());
  } else {
    std::fprintf(of, "gallery reused from %s (%d shards R%d)\n", o.reuse.c_str(), o.shards, o.replicas);
  }
  for (const char* k : {"single_search", "cluster_search"}) {
    const auto& s = out[k];
    std::fprintf(of, "%-15s p50 %7.2f ms  p99 %7.2f ms  mean %7.2f ms  mate first %d / %zu\n", k, s["p50_ms"].get<double>(),
                 s["p99_ms"].get<double>(), s["mean_ms"].get<double>(), s["mate_first"].get<int>(), queries);
  }
  std::fprintf(of, "cluster / single: p50 %.2fx, p99 %.2fx; same top 10 (refs and scores) for %d of %zu probes\n",
               out["ratio_p50"].get<double>(), out["ratio_p99"].get<double>(), out["same_top10"].get<int>(), queries);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* usage =
      "usage: cluster_search_bench --gallery N [--queries Q] [--shards S] [--replicas R] [--threads T] [--keep DIR] [--json]\n"
      "       cluster_search_bench --reuse DIR [--queries Q] [--json]\n";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--gallery" && i + 1 < argc) o.n = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--queries" && i + 1 < argc) o.queries = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--shards" && i + 1 < argc) o.shards = std::atoi(argv[++i]);
    else if (a == "--replicas" && i + 1 < argc) o.replicas = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) o.threads = std::atoi(argv[++i]);
    else if (a == "--keep" && i + 1 < argc) o.keep = argv[++i];
    else if (a == "--reuse" && i + 1 < argc) o.reuse = argv[++i];
    else if (a == "--json") o.as_json = true;
    else {
      std::fprintf(stderr, "%s", usage);
      return 1;
    }
  }
  const bool ok = o.reuse.empty() ? o.n >= 1 && o.shards >= 1 && o.replicas >= 1 && o.replicas <= 3 && o.threads >= 1
                                  : o.n == 0 && o.keep.empty();
  if (!ok || o.queries < 1) {
    std::fprintf(stderr, "%scluster_search_bench: --gallery ≥ 1, --queries ≥ 1, --shards ≥ 1, --replicas 1–3, --threads ≥ 1;"
                 " --reuse takes the gallery and shards from its directory, and no --keep\n", usage);
    return 1;
  }
  return run(o);
}
