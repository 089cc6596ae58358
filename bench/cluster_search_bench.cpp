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
//   cluster_search_bench --gallery N [--queries Q] [--shards S] [--replicas R] [--threads T] [--json]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

int run(size_t n, size_t queries, int shards, int replicas, int threads, bool as_json) {
  must(vault::ensure_sodium(), "libsodium");
  ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
  ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
  std::string tmpl = (fs::temp_directory_path() / "fv-cluster-search-bench-XXXXXX").string();
  const fs::path work = mkdtemp(tmpl.data());
  json out = {{"gallery", n}, {"queries", queries}, {"shards", shards}, {"replicas", replicas}, {"writer_threads", threads}};

  std::mt19937 prng(17);
  std::vector<face::FaceTemplate> probes;
  std::vector<size_t> mates;
  for (size_t q = 0; q < queries; ++q) {
    mates.push_back(std::uniform_int_distribution<size_t>(0, n - 1)(prng));
    probes.push_back(probe_of(mates.back(), prng));
  }
  SearchFigures cluster_f;
  {
    test::NatsTestCluster nats(3, work);
    if (!nats.wait_ready(60000)) die("nats", unavailable("the NATS cluster was not ready in 60 s"));
    auto conn = must(cluster::NatsConnection::connect({nats.urls(), "bench"}), "connect");
    must(cluster::init_cluster(*conn, shards, replicas), "cluster init");
    std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
    for (int round = 0; round < 2; ++round) {
      nodes.clear();
      for (const auto& name : kNodes) {
        cluster::NodeOptions o;
        o.servers = nats.urls();
        o.name = name;
        o.dir = work / "nodes" / name;
        nodes.push_back(must(cluster::ClusterNode::start(o), "start node " + name));
      }
    }
    std::vector<std::unique_ptr<service::ClusterService>> svcs;
    json hosting = json::object();
    for (auto& node : nodes) {
      svcs.push_back(must(service::ClusterService::open(*node, {}), "open cluster service"));
      int hosted = 0;
      for (int s = 0; s < shards; ++s) hosted += node->shard(s) != nullptr ? 1 : 0;
      hosting[node->name()] = hosted;
    }
    out["shards_hosted"] = hosting;

    std::fprintf(stderr, "cluster: %zu enrollments through 3 nodes, %d threads, %d shards R%d\n", n, threads, shards, replicas);
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::vector<double> enroll_ms;
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
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
    const auto t1 = Clock::now();
    for (auto& node : nodes) must(node->catch_up(600000), "catch-up of " + node->name());
    const auto t2 = Clock::now();
    out["cluster_enrollment"] = {{"seconds", secs(t0, t1)},
                                 {"per_s", double(n) / secs(t0, t1)},
                                 {"p50_ms", pct(enroll_ms, .5)},
                                 {"p99_ms", pct(enroll_ms, .99)},
                                 {"then_all_caught_up_s", secs(t1, t2)}};
    json store = json::array(), vaults = json::array();
    for (int i = 0; i < 3; ++i) store.push_back(tree_bytes(nats.store_dir(i)) / 1e6);
    for (const auto& name : kNodes) vaults.push_back(tree_bytes(work / "nodes" / name) / 1e6);
    out["nats_store_mb"] = store;
    out["node_vaults_mb"] = vaults;

    // As `serve` does before it listens: the pipelines and every hosted shard's gallery.
    for (auto& svc : svcs) must(svc->warm_up(), "warm up a node");
    std::fprintf(stderr, "cluster: %zu searches through node a\n", queries);
    cluster_f = search_phase(*svcs[0], probes, mates, 5);
    out["cluster_search"] = cluster_f.to_json();
    out["cluster_search"]["eligible_templates"] = n;
    svcs.clear();  // services before the nodes whose writers they hold
    nodes.clear();
    conn.reset();
  }
  {
    std::fprintf(stderr, "single vault: %zu enrollments (synchronous=OFF, untimed)\n", n);
    const fs::path dir = work / "single";
    must(vault::Vault::init(dir), "init single vault");
    const auto t0 = Clock::now();
    {
      auto svc = must(service::Service::open(dir), "open single vault");
      auto& db = vault::testing::raw_db(svc->vault_for_testing());
      must(db.exec("PRAGMA synchronous=OFF"), "synchronous=OFF");
      for (size_t i = 0; i < n; ++i) {
        enroll_subject(*svc, i);
        if ((i + 1) % 100000 == 0) std::fprintf(stderr, "  %zu / %zu\n", i + 1, n);
      }
      must(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
    }
    out["single_fill_s"] = secs(t0, Clock::now());
    auto svc = must(service::Service::open(dir), "open single vault");
    std::fprintf(stderr, "single vault: %zu searches\n", queries);
    const SearchFigures f = search_phase(*svc, probes, mates, 5);
    out["single_search"] = f.to_json();
    out["same_top10"] = same_top10(cluster_f, f);
    out["ratio_p50"] = pct(cluster_f.ms, .5) / pct(f.ms, .5);
    out["ratio_p99"] = pct(cluster_f.ms, .99) / pct(f.ms, .99);
  }
  std::error_code ec;
  fs::remove_all(work, ec);

  if (as_json) std::printf("%s\n", out.dump(2).c_str());
  FILE* o = as_json ? stderr : stdout;
  const auto& ce = out["cluster_enrollment"];
  std::fprintf(o, "gallery %zu templates; %zu probes (each with its mate), investigation top 10\n", n, queries);
  std::fprintf(o, "enrollment through 3 nodes (%d shards R%d, %d threads): %.0f/s (p50 %.1f ms, p99 %.1f ms), all caught up %.1f s later\n",
               shards, replicas, threads, ce["per_s"].get<double>(), ce["p50_ms"].get<double>(), ce["p99_ms"].get<double>(),
               ce["then_all_caught_up_s"].get<double>());
  for (const char* k : {"single_search", "cluster_search"}) {
    const auto& s = out[k];
    std::fprintf(o, "%-15s p50 %7.2f ms  p99 %7.2f ms  mean %7.2f ms  mate first %d / %zu\n", k, s["p50_ms"].get<double>(),
                 s["p99_ms"].get<double>(), s["mean_ms"].get<double>(), s["mate_first"].get<int>(), queries);
  }
  std::fprintf(o, "cluster / single: p50 %.2fx, p99 %.2fx; same top 10 (refs and scores) for %d of %zu probes\n",
               out["ratio_p50"].get<double>(), out["ratio_p99"].get<double>(), out["same_top10"].get<int>(), queries);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 0, queries = 500;
  int shards = 16, replicas = 1, threads = 16;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--gallery" && i + 1 < argc) n = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--queries" && i + 1 < argc) queries = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--shards" && i + 1 < argc) shards = std::atoi(argv[++i]);
    else if (a == "--replicas" && i + 1 < argc) replicas = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--json") as_json = true;
    else {
      std::fprintf(stderr, "usage: cluster_search_bench --gallery N [--queries Q] [--shards S] [--replicas R] [--threads T] [--json]\n");
      return 1;
    }
  }
  if (n < 1 || queries < 1 || shards < 1 || replicas < 1 || replicas > 3 || threads < 1) {
    std::fprintf(stderr, "cluster_search_bench: --gallery ≥ 1, --queries ≥ 1, --shards ≥ 1, --replicas 1–3, --threads ≥ 1\n");
    return 1;
  }
  return run(n, queries, shards, replicas, threads, as_json);
}
