// Cluster mode benchmark (issue 17, docs/cluster.md, docs/benchmarks.md): what replication
// costs a write, and how fast a new replica catches up. Everything on loopback, in one process
// plus the nats-servers it starts (tests/support/nats_servers.h: stopped by pid, store dirs
// under this run's temp dir, removed at the end).
//
//   1. anchor: Service::enroll_template on a plain single-node vault (no interceptor): one
//      writer, each enrollment a new subject (add_basis + enroll_template), N synthetic
//      512-D templates; latency per enrollment (both calls) and enrollments/s.
//   2. the same through a 3-node cluster: 3 nats-servers, `init_cluster(conn, 1, 3)` (one
//      shard, so every subject lives in the vault the service runs on), 3 ClusterNodes, the
//      Service on node 0's shard-0 vault with the shard's writer as its commit interceptor
//      (a write returns once JetStream stored it on a quorum and 2 replicas applied it into
//      their fsynced vaults).
//   3. catch-up: a 4th node (a name chosen among the holders of shard 0 by rendezvous hashing)
//      starts on an empty dir and applies the whole stream; the time from ClusterNode::start
//      until its replica of shard 0 has applied the stream's last sequence.
//      When --catchup-n exceeds the templates written in step 2, the stream is filled first
//      (untimed) through the node's own write path (a ShardReplica, an AppliedWatch and a
//      ShardWriter on a loader vault, as ClusterNode::host builds them) with the three nodes
//      stopped, the writer waiting for JetStream's quorum and its own replica's apply only
//      (replicas_to_wait 0), and the loader's vault in /dev/shm: the same messages as any
//      writer's, built faster.
//      Then a bare ShardReplica replays the same stream into an empty vault twice: one vault
//      transaction per message (the anchor) and batches of what the client holds (the default).
//   4. NATS request/reply round trip (natsConnection_Request against a queue subscriber), the
//      per-shard overhead of a fan-out search: to a responder on the same server and on
//      another server of the cluster (one route hop each way), the latter also with a
//      responder connection that sets SendAsap (nats.c 3.4 otherwise delays a publish 1 ms).
//   5. diagnostics: the disk's fsync latency before and after; the anchor again after the
//      cluster's writes; 2 writer threads on the one Service; where a replicated commit's time
//      goes (a decorator around the writer, the apply announcements); JetStream's own publish
//      to a scratch R3 stream and its delivery to a StreamReader (the floor under a write).
//
//   cluster_bench [--n N] [--catchup-n N] [--rtt-n N] [--warmup N] [--json]
//   --json: the figures as JSON on stdout (the table then goes to stderr).
#include <fcntl.h>
#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "cluster/applied_watch.h"
#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/shard_map.h"
#include "cluster/shard_replica.h"
#include "cluster/shard_writer.h"
#include "cluster/stream.h"
#include "service/service.h"
#include "support/nats_servers.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/vault.h"

namespace fs = std::filesystem;
using namespace fv;
using nlohmann::json;
using namespace fv::bench;

namespace {

const std::string kMasterHex(64, '3');   // fixed test keys, as tests/cluster does
const std::string kSigningHex(64, '9');
const service::Actor kAdmin{"bench", service::Role::kAdmin};

// The disk's fsync latency in this sitting: 200 × (pwrite 4 KB in place + fsync). Every commit
// of the anchor and every applied message of a replica pays one (SQLite WAL, synchronous=FULL).
json fsync_probe(const fs::path& dir) {
  const fs::path f = dir / "fsync-probe";
  const int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return json{{"error", "cannot open " + f.string()}};
  std::vector<char> page(4096, 'x');
  std::vector<double> lat;
  for (int i = 0; i < 200; ++i) {
    if (::pwrite(fd, page.data(), page.size(), (i % 16) * 4096) != static_cast<ssize_t>(page.size())) break;
    const auto a = Clock::now();
    if (::fsync(fd) != 0) break;
    lat.push_back(ms(a, Clock::now()));
  }
  ::close(fd);
  std::error_code ec;
  fs::remove(f, ec);
  return {{"fsyncs", lat.size()}, {"p50_ms", pct(lat, .5)}, {"p99_ms", pct(lat, .99)}};
}

struct WriteFigures {
  int n = 0;
  double seconds = 0;
  std::vector<double> total_ms, basis_ms, enroll_ms;
  json to_json() const {
    return {{"enrollments", n},
            {"seconds", seconds},
            {"per_s", n / seconds},
            {"p50_ms", pct(total_ms, .5)},
            {"p99_ms", pct(total_ms, .99)},
            {"max_ms", pct(total_ms, 1.)},
            {"add_basis_p50_ms", pct(basis_ms, .5)},
            {"enroll_template_p50_ms", pct(enroll_ms, .5)}};
  }
};

// One subject = add_basis + enroll_template, as in tests/cluster/node_test.cpp.
void enroll_one(service::Service& svc, const std::string& ref, std::mt19937& rng, WriteFigures* f) {
  const auto tmpl = random_template(rng);
  const auto t0 = Clock::now();
  auto b = svc.add_basis(kAdmin, {ref, service::BasisKind::kConsent, "bench", {"access-control"}, std::nullopt});
  if (!b.is_ok()) die("add_basis " + ref, b.status());
  const auto t1 = Clock::now();
  auto e = svc.enroll_template(kAdmin, service::EnrollRequest(ref, b->basis_id), tmpl);
  if (!e.is_ok()) die("enroll_template " + ref, e.status());
  const auto t2 = Clock::now();
  if (f) {
    f->basis_ms.push_back(ms(t0, t1));
    f->enroll_ms.push_back(ms(t1, t2));
    f->total_ms.push_back(ms(t0, t2));
  }
}

WriteFigures write_phase(service::Service& svc, const std::string& prefix, int warmup, int n, uint64_t seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < warmup; ++i) enroll_one(svc, prefix + "-warm-" + std::to_string(i), rng, nullptr);
  WriteFigures f;
  f.n = n;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    enroll_one(svc, prefix + "-" + std::to_string(i), rng, &f);
    if ((i + 1) % 1000 == 0) std::fprintf(stderr, "  %s: %d / %d\n", prefix.c_str(), i + 1, n);
  }
  f.seconds = secs(t0, Clock::now());
  return f;
}

// Where a replicated commit's time goes: a decorator around the shard's writer that times each
// commit (ShardWriter: patchset, seal, rollback, publish, local apply, wait for announcements)
// and notes the stream sequence it reached, and a subscriber of the apply announcements
// (`fv.applied.<stream>`, what the writer waits for) noting when each node's first reached
// each sequence.
class TimedInterceptor : public vault::CommitInterceptor {
 public:
  TimedInterceptor(std::shared_ptr<vault::CommitInterceptor> inner, cluster::ShardReplica& local)
      : inner_(std::move(inner)), local_(local) {}
  struct Commit {
    Clock::time_point start, end;
    uint64_t seq = 0;
  };
  Result<std::unique_ptr<vault::PendingCommit>> begin(vault::Db& db) override {
    FV_ASSIGN_OR_RETURN(auto p, inner_->begin(db));
    return std::unique_ptr<vault::PendingCommit>(new Pending(*this, std::move(p)));
  }
  std::vector<Commit> commits;  // the service calls commit under its own lock: one at a time

 private:
  class Pending : public vault::PendingCommit {
   public:
    Pending(TimedInterceptor& t, std::unique_ptr<vault::PendingCommit> p) : t_(t), p_(std::move(p)) {}
    Status commit(vault::Db& db) override {
      Commit c;
      c.start = Clock::now();
      Status st = p_->commit(db);
      c.end = Clock::now();
      c.seq = t_.local_.applied();
      if (st.is_ok()) t_.commits.push_back(c);
      return st;
    }

   private:
    TimedInterceptor& t_;
    std::unique_ptr<vault::PendingCommit> p_;
  };
  std::shared_ptr<vault::CommitInterceptor> inner_;
  cluster::ShardReplica& local_;
};

class AnnouncementLog {
 public:
  AnnouncementLog(cluster::NatsConnection& conn, const std::string& stream) {
    if (natsConnection_Subscribe(&sub_, conn.raw(), cluster::applied_subject(stream).c_str(), &AnnouncementLog::on, this) != NATS_OK)
      die("announcements", internal_error("cannot subscribe"));
  }
  ~AnnouncementLog() {
    (void)natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
  // When `node` first announced `seq` or later (nullopt: never).
  std::optional<Clock::time_point> reached(const std::string& node, uint64_t seq) {
    std::lock_guard lk(mu_);
    auto& v = log_[node];
    auto it = std::lower_bound(v.begin(), v.end(), seq, [](const auto& e, uint64_t s) { return e.first < s; });
    if (it == v.end()) return std::nullopt;
    return it->second;
  }

 private:
  static void on(natsConnection*, natsSubscription*, natsMsg* msg, void* self_) {
    auto* self = static_cast<AnnouncementLog*>(self_);
    const auto now = Clock::now();
    const std::string body(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    const auto space = body.rfind(' ');
    if (space == std::string::npos) return;
    const uint64_t seq = std::strtoull(body.c_str() + space + 1, nullptr, 10);
    std::lock_guard lk(self->mu_);
    auto& v = self->log_[body.substr(0, space)];
    if (v.empty() || seq > v.back().first) v.emplace_back(seq, now);  // ascending: first arrival of each
  }
  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::vector<std::pair<uint64_t, Clock::time_point>>> log_;
};

// Per commit: when the k-th node (k = 1, 2, 3) had announced the commit's sequence, the
// commit's whole duration, and the service's time outside the commit.
json commit_breakdown(const TimedInterceptor& t, AnnouncementLog& log, const std::vector<std::string>& nodes,
                      const WriteFigures& f) {
  std::vector<double> commit_ms;
  std::vector<std::vector<double>> kth(nodes.size());
  for (const auto& c : t.commits) {
    commit_ms.push_back(ms(c.start, c.end));
    std::vector<double> at;
    for (const auto& n : nodes)
      if (auto r = log.reached(n, c.seq)) at.push_back(ms(c.start, *r));
    std::sort(at.begin(), at.end());
    for (size_t k = 0; k < at.size(); ++k) kth[k].push_back(at[k]);
  }
  // Two commits per enrollment (basis, template): what the service spends outside them.
  std::vector<double> outside;
  for (size_t i = 0; i < f.total_ms.size() && 2 * i + 1 < commit_ms.size(); ++i) {
    const size_t base = commit_ms.size() - 2 * f.total_ms.size();  // the timed ones are the last
    outside.push_back(f.total_ms[i] - commit_ms[base + 2 * i] - commit_ms[base + 2 * i + 1]);
  }
  json j = {{"commits", commit_ms.size()},
            {"commit_p50_ms", pct(commit_ms, .5)},
            {"commit_p99_ms", pct(commit_ms, .99)},
            {"outside_commits_per_enrollment_p50_ms", pct(outside, .5)}};
  for (size_t k = 0; k < kth.size(); ++k) {
    j["announced_by_" + std::to_string(k + 1) + "_p50_ms"] = pct(kth[k], .5);
    j["announced_by_" + std::to_string(k + 1) + "_count"] = kth[k].size();
  }
  return j;
}

// The same use case from `threads` writer threads on one Service (a thread-safe facade), for
// throughput only: `per_thread` new subjects each.
double threaded_per_s(service::Service& svc, const std::string& prefix, int threads, int per_thread) {
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < per_thread; ++i)
        enroll_one(svc, prefix + "-t" + std::to_string(t) + "-" + std::to_string(i), rng, nullptr);
    });
  for (auto& th : pool) th.join();
  return threads * per_thread / secs(t0, Clock::now());
}

// Builds the stream up to `total` templates (subjects), untimed in the figures. The node's own
// write path (ClusterNode::host: a ShardReplica on a local vault, an AppliedWatch, a ShardWriter
// as the service's commit interceptor), with one difference: the writer waits for its own
// replica only (replicas_to_wait 1), and the other nodes are stopped. The messages are those
// of any writer; only the wait for a second replica is left out.
// The loader's replica goes on running in `key_holder`: it holds the keys of the subjects it
// wrote, which no message carries (docs/cluster.md), and the replicas measured later fetch them
// from it as any replica catching up does.
// The loader's replica, caught up with the stream. It joins while the nodes still run: a
// replica catching up needs the keys of the subjects (and bases) in the stream, which only the
// replicas holding them hand out (docs/cluster.md, "Subject keys stay out of NATS").
std::unique_ptr<cluster::ShardReplica> open_loader(cluster::NatsConnection& conn, const fs::path& dir,
                                                   const std::string& stream, double& catch_up_seconds) {
  const auto master = must(vault::SecretKey::from_hex(kMasterHex), "master key");
  must(vault::Vault::init(dir), "init loader vault");
  const auto t0 = Clock::now();
  auto replica = must(cluster::ShardReplica::open(conn, dir, master, {stream, "bench-loader"}), "open loader replica");
  must(replica->start(), "start loader replica");
  must(replica->catch_up(600000), "loader catch-up");
  catch_up_seconds = secs(t0, Clock::now());
  return replica;
}

// Fills the stream through the loader's own write path; the loader then holds every key the
// joiner will ask for.
json fill_stream(cluster::NatsConnection& conn, const fs::path& dir, const std::string& stream,
                 const std::string& prefix, int already, int total, cluster::ShardReplica& replica) {
  const auto master = must(vault::SecretKey::from_hex(kMasterHex), "master key");
  auto watch = must(cluster::AppliedWatch::open(conn, stream), "loader watch");
  auto writer = std::make_shared<cluster::ShardWriter>(conn, master, replica, *watch,
                                                       cluster::WriterOptions{stream, prefix, 0, 30000});
  service::ServiceOptions o;
  o.commit_interceptor = writer;
  auto svc = must(service::Service::open(dir, o), "open loader service");
  std::mt19937 rng(7);
  WriteFigures f;
  const auto t1 = Clock::now();
  for (int i = already; i < total; ++i) {
    enroll_one(*svc, "fill-" + std::to_string(i), rng, &f);
    if ((i + 1) % 5000 == 0)
      std::fprintf(stderr, "  fill: %d / %d (%.0f/s)\n", i + 1, total, (i + 1 - already) / secs(t1, Clock::now()));
  }
  const auto t2 = Clock::now();
  svc.reset();
  writer.reset();
  return {{"templates_added", total - already},
          {"seconds", secs(t1, t2)},
          {"per_s", (total - already) / secs(t1, t2)},
          {"p50_ms", pct(f.total_ms, .5)},
          {"p99_ms", pct(f.total_ms, .99)},
          {"stream_last_seq", must(cluster::last_sequence(conn, stream), "last sequence")}};
}

// The rendezvous winner among a few new names: a node that will hold shard 0.
std::string joining_name(const std::vector<std::string>& members) {
  for (int i = 0; i < 100; ++i) {
    const std::string name = "joiner-" + std::to_string(i);
    auto names = members;
    names.push_back(name);
    const auto holders = cluster::replicas_of(0, names, 3);
    if (std::find(holders.begin(), holders.end(), name) != holders.end()) return name;
  }
  return "";
}

json catch_up_phase(test::NatsTestCluster& nats, cluster::NatsConnection& conn, const fs::path& dir,
                    const std::vector<std::string>& members, int templates) {
  const std::string stream = cluster::shard_stream_name(0);
  const uint64_t last = must(cluster::last_sequence(conn, stream), "last sequence");
  const std::string name = joining_name(members);
  if (name.empty()) die("joining name", internal_error("no candidate name holds shard 0"));
  cluster::NodeOptions o;
  o.servers = nats.urls();
  o.name = name;
  o.dir = dir;
  const auto t0 = Clock::now();
  auto node = must(cluster::ClusterNode::start(o), "start joining node");
  const auto t_started = Clock::now();
  cluster::HostedStream* hs = node->shard(0);
  if (hs == nullptr) die("joining node", internal_error(name + " does not host shard 0"));
  // Bounded: at most an hour, polled every 50 ms; progress every 10 %.
  const auto deadline = t0 + std::chrono::hours(1);
  uint64_t next_report = last / 10;
  json progress = json::array();
  for (;;) {
    const uint64_t at = hs->replica->applied();
    if (at >= last) break;
    must(hs->replica->error(), "joining replica");
    if (Clock::now() > deadline) die("catch-up", unavailable("not done within an hour: at " + std::to_string(at)));
    if (next_report > 0 && at >= next_report) {
      progress.push_back({{"applied", at}, {"seconds", secs(t0, Clock::now())}});
      std::fprintf(stderr, "  catch-up: %llu / %llu in %.1f s\n", static_cast<unsigned long long>(at),
                   static_cast<unsigned long long>(last), secs(t0, Clock::now()));
      next_report += last / 10;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto t1 = Clock::now();
  auto db = must(vault::Db::open(hs->dir / "vault.db", false), "open caught-up vault");
  const int64_t faces = must(db.query_int("SELECT count(*) FROM face"), "count faces");
  const int64_t subjects = must(db.query_int("SELECT count(*) FROM subject"), "count subjects");
  db.close();
  const uintmax_t bytes = tree_bytes(hs->dir);
  node.reset();
  const double s = secs(t0, t1);
  return {{"node", name},
          {"stream_messages", last},
          {"templates", templates},
          {"faces_in_replica", faces},
          {"subjects_in_replica", subjects},
          {"seconds", s},
          {"node_start_seconds", secs(t0, t_started)},
          {"messages_per_s", last / s},
          {"templates_per_s", faces / s},
          {"replica_vault_mb", bytes / 1e6},
          {"progress", progress}};
}

// A bare replica (no node around it, announcing nothing) replaying shard 0's stream into an
// empty vault with at most `max_batch` messages per vault transaction: batching against the
// one-commit-per-message anchor, on the same stream in the same sitting.
json replay_phase(cluster::NatsConnection& conn, const fs::path& dir, size_t max_batch) {
  const std::string stream = cluster::shard_stream_name(0);
  const uint64_t last = must(cluster::last_sequence(conn, stream), "last sequence");
  const auto master = must(vault::SecretKey::from_hex(kMasterHex), "master key");
  must(vault::Vault::init(dir), "init replay vault");
  cluster::ReplicaOptions ro{stream, "bench-replay"};
  ro.announce = false;
  ro.max_batch = max_batch;
  auto replica = must(cluster::ShardReplica::open(conn, dir, master, ro), "open replay replica");
  const auto t0 = Clock::now();
  must(replica->start(), "start replay replica");
  const auto deadline = t0 + std::chrono::hours(1);  // bounded: polled every 20 ms for at most an hour
  while (replica->applied() < last) {
    must(replica->error(), "replay replica");
    if (Clock::now() > deadline) die("replay", unavailable("not done within an hour"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double s = secs(t0, Clock::now());
  replica.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return {{"max_batch", max_batch}, {"stream_messages", last}, {"seconds", s}, {"messages_per_s", last / s}};
}

// The stream's mean message size (JetStream's own count of bytes and messages).
double mean_message_bytes(cluster::NatsConnection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, conn.js(), stream.c_str(), nullptr, nullptr) != NATS_OK) return 0;
  const double b = si->State.Msgs > 0 ? static_cast<double>(si->State.Bytes) / static_cast<double>(si->State.Msgs) : 0;
  jsStreamInfo_Destroy(si);
  return b;
}

// The floor under a replicated write: cluster::publish (msg id, expected last sequence, acked
// once stored on a quorum) of messages of the shard's mean size to a scratch R3 stream; and
// the time from the publish call until a cluster::StreamReader (the ordered consumer a replica
// reads its stream with, on a connection of its own) has the message.
json publish_floor(test::NatsTestCluster& nats, cluster::NatsConnection& conn, int n, size_t bytes) {
  const std::string stream = "fv-bench-publish";
  must(cluster::ensure_stream(conn, {stream, {"fv.benchpublish.>"}, 3}), "create scratch stream");
  auto rconn = must(cluster::NatsConnection::connect({nats.urls(), "bench-reader"}), "connect reader");
  auto reader = must(cluster::StreamReader::open(*rconn, stream, 0), "open reader");
  const std::vector<uint8_t> body(std::max<size_t>(bytes, 1), 0x5a);
  std::vector<double> lat, delivered;
  uint64_t last = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto a = Clock::now();
    const auto ack = must(cluster::publish(conn, "fv.benchpublish.x", body, vault::random_hex(16), last, 30000), "publish");
    lat.push_back(ms(a, Clock::now()));
    last = ack.seq;
    for (int k = 0; k < 100; ++k) {  // bounded: 100 × 100 ms
      auto m = must(reader->next(100), "read");
      if (m.has_value() && m->seq >= ack.seq) break;
    }
    delivered.push_back(ms(a, Clock::now()));
  }
  const double total = secs(t0, Clock::now());
  reader.reset();
  rconn.reset();
  must(cluster::delete_stream(conn, stream), "delete scratch stream");
  return {{"messages", n},
          {"bytes", body.size()},
          {"p50_ms", pct(lat, .5)},
          {"p99_ms", pct(lat, .99)},
          {"delivered_p50_ms", pct(delivered, .5)},
          {"delivered_p99_ms", pct(delivered, .99)},
          {"per_s", n / total}};
}

// A raw connection for the responder: nats.c buffers a publish for its flusher thread, which
// (nats.c 3.4) waits 1 ms before writing; SendAsap writes at once (a request always does).
natsConnection* responder_connection(const std::string& url, bool send_asap) {
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, send_asap);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  if (opts) natsOptions_Destroy(opts);
  if (s != NATS_OK) die("responder connection", unavailable(natsStatus_GetText(s)));
  return nc;
}

// Request/reply on loopback: a 2 KB request (a 512-D float probe) and a 512-byte reply, from a
// requester on server 0 to a queue subscriber on server 0 or on server 1 (a route hop).
json rtt_phase(test::NatsTestCluster& nats, int n) {
  json out = json::object();
  struct Case { const char* name; int server; bool asap; };
  for (const Case c : {Case{"same_server", 0, false}, Case{"across_route", 1, false},
                       Case{"across_route_send_asap", 1, true}}) {
    auto req = must(cluster::NatsConnection::connect({{nats.url(0)}, "bench-requester"}), "connect requester");
    natsConnection* rsp = responder_connection(nats.url(c.server), c.asap);
    natsSubscription* sub = nullptr;
    const std::string subject = "fv.rpc.bench.search.00";
    auto cb = [](natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
      static const std::string reply(512, 'r');
      if (natsMsg_GetReply(msg) != nullptr)
        (void)natsConnection_Publish(nc, natsMsg_GetReply(msg), reply.data(), static_cast<int>(reply.size()));
      natsMsg_Destroy(msg);
    };
    if (natsConnection_QueueSubscribe(&sub, rsp, subject.c_str(), "shard-00", cb, nullptr) != NATS_OK ||
        natsConnection_Flush(rsp) != NATS_OK)
      die("responder", internal_error("cannot subscribe"));
    const std::string body(2048, 'q');
    // Bounded wait until the subscription's interest reached the requester's server (routes).
    bool ready = false;
    for (int i = 0; i < 100 && !ready; ++i) {
      natsMsg* r = nullptr;
      ready = natsConnection_Request(&r, req->raw(), subject.c_str(), body.data(), static_cast<int>(body.size()), 100) == NATS_OK;
      if (r) natsMsg_Destroy(r);
    }
    if (!ready) die("request/reply", unavailable("no reply in 10 s"));
    for (int i = 0; i < 200; ++i) {  // warm-up
      natsMsg* r = nullptr;
      (void)natsConnection_Request(&r, req->raw(), subject.c_str(), body.data(), static_cast<int>(body.size()), 2000);
      if (r) natsMsg_Destroy(r);
    }
    std::vector<double> lat;
    int failures = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      natsMsg* r = nullptr;
      const auto a = Clock::now();
      const natsStatus s = natsConnection_Request(&r, req->raw(), subject.c_str(), body.data(), static_cast<int>(body.size()), 2000);
      const auto b = Clock::now();
      if (r) natsMsg_Destroy(r);
      if (s == NATS_OK) lat.push_back(ms(a, b) * 1e3);
      else ++failures;
    }
    const double total = secs(t0, Clock::now());
    (void)natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(rsp);
    out[c.name] = {{"requests", n},
                   {"responder_send_asap", c.asap},
                   {"failures", failures},
                   {"p50_us", pct(lat, .5)},
                   {"p99_us", pct(lat, .99)},
                   {"per_s", n / total}};
  }
  return out;
}

int run(int n, int catchup_n, int rtt_n, int warmup, bool as_json) {
  std::string tmpl = (fs::temp_directory_path() / "fv-cluster-bench-XXXXXX").string();
  const fs::path work = mkdtemp(tmpl.data());
  json out;
  out["n"] = n;
  out["warmup"] = warmup;
  out["fsync_before"] = fsync_probe(work);
  {
    // 1. Anchor: one node, no interceptor.
    std::fprintf(stderr, "anchor: single-node vault, %d enrollments\n", n);
    const fs::path dir = work / "single";
    must(vault::Vault::init(dir), "init single-node vault");
    auto svc = must(service::Service::open(dir), "open single-node service");
    out["single_node"] = write_phase(*svc, "single", warmup, n, 1).to_json();
    out["single_node"]["two_writers_per_s"] = threaded_per_s(*svc, "single-2w", 2, std::max(1, n / 4));
  }
  {
    // 2. Three nodes, one shard, R3.
    test::NatsTestCluster nats(3, work);
    if (!nats.wait_ready(60000)) die("nats", unavailable("the NATS cluster was not ready in 60 s"));
    auto conn = must(cluster::NatsConnection::connect({nats.urls(), "bench"}), "connect");
    must(cluster::init_cluster(*conn, 1, 3), "cluster init");
    const std::vector<std::string> members = {"a", "b", "c"};
    const std::string stream = cluster::shard_stream_name(0);
    int written = 0;
    // The loader's vault is scratch: in memory (/dev/shm) when there is one, so that its fsyncs
    // do not pace the fill; the stream it writes is the same.
    std::unique_ptr<cluster::ShardReplica> loader;
    double loader_catch_up_seconds = 0;
    fs::path loader_root = work;
    {
      std::string shm = "/dev/shm/fv-cluster-bench-loader-XXXXXX";
      if (catchup_n > 0 && fs::is_directory("/dev/shm") && mkdtemp(shm.data()) != nullptr) loader_root = shm;
    }
    {
      std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
      for (const auto& name : members) {
        cluster::NodeOptions o;
        o.servers = nats.urls();
        o.name = name;
        o.dir = work / "nodes" / name;
        nodes.push_back(must(cluster::ClusterNode::start(o), "start node " + name));
        if (nodes.back()->shard(0) == nullptr) die("node " + name, internal_error("does not host shard 0"));
      }
      AnnouncementLog announcements(nodes[0]->connection(), stream);  // the connection the writer waits on
      auto timed = std::make_shared<TimedInterceptor>(nodes[0]->shard(0)->writer, *nodes[0]->shard(0)->replica);
      service::ServiceOptions so;
      so.commit_interceptor = timed;
      auto svc = must(service::Service::open(nodes[0]->shard(0)->dir, so), "open node service");
      std::fprintf(stderr, "cluster: 3 nodes, 1 shard, R3, %d enrollments\n", n);
      const uint64_t seq0 = must(cluster::last_sequence(*conn, stream), "last sequence");
      auto f = write_phase(*svc, "cluster", warmup, n, 2);
      const uint64_t seq1 = must(cluster::last_sequence(*conn, stream), "last sequence");
      out["commit_breakdown"] = commit_breakdown(*timed, announcements, members, f);
      const int per_thread = std::max(1, n / 4);
      const double two_writers = threaded_per_s(*svc, "cluster-2w", 2, per_thread);
      written = warmup + n + 2 * per_thread;
      json j = f.to_json();
      j["stream_messages_per_enrollment"] = static_cast<double>(seq1 - seq0) / (warmup + n);
      j["two_writers_per_s"] = two_writers;
      j["ratio_to_single_node_p50"] = pct(f.total_ms, .5) / out["single_node"]["p50_ms"].get<double>();
      j["ratio_to_single_node_per_s"] = f.n / f.seconds / out["single_node"]["per_s"].get<double>();
      out["cluster_3_nodes"] = j;
      for (auto& node : nodes) must(node->catch_up(60000), "catch-up of " + node->name());
      if (catchup_n > written) loader = open_loader(*conn, loader_root / "loader", stream, loader_catch_up_seconds);
      svc.reset();
      nodes.clear();  // stopped: the fill and the catch-up run against the servers alone
    }
    {
      // The anchor again, after the cluster's writes (a shared machine: its load drifts).
      std::fprintf(stderr, "anchor again: single-node vault, %d enrollments\n", n);
      const fs::path dir = work / "single-after";
      must(vault::Vault::init(dir), "init single-node vault");
      auto svc = must(service::Service::open(dir), "open single-node service");
      out["single_node_after"] = write_phase(*svc, "single-after", warmup, n, 3).to_json();
      out["cluster_3_nodes"]["ratio_to_single_node_after_p50"] =
          out["cluster_3_nodes"]["p50_ms"].get<double>() / out["single_node_after"]["p50_ms"].get<double>();
    }
    // 3. Catch-up of a new replica.
    if (!loader && loader_root != work) {  // made for a fill that turned out not to be needed
      std::error_code ec;
      fs::remove_all(loader_root, ec);
    }
    fs::path loader_dir;
    if (loader) {
      std::fprintf(stderr, "fill: the stream to %d templates (untimed in the catch-up)\n", catchup_n);
      out["fill"] = fill_stream(*conn, loader_root / "loader", stream, cluster::shard_subject_prefix(0), written,
                                catchup_n, *loader);
      out["fill"]["loader_catch_up_seconds"] = loader_catch_up_seconds;
      out["fill"]["loader_dir"] = loader_root.string();
      loader_dir = loader_root == work ? work / "loader" : loader_root;
    }
    const int templates = std::max(catchup_n, written);
    std::fprintf(stderr, "catch-up: a new node applies %d templates\n", templates);
    out["catch_up"] = catch_up_phase(nats, *conn, work / "nodes" / "joiner", members, templates);
    for (const size_t batch : {size_t{1}, cluster::ReplicaOptions{}.max_batch}) {
      std::fprintf(stderr, "replay: a bare replica, at most %zu messages per transaction\n", batch);
      out["replay"].push_back(replay_phase(*conn, work / "replay", batch));
    }
    loader.reset();
    if (!loader_dir.empty()) {
      std::error_code ec;
      fs::remove_all(loader_dir, ec);
    }
    out["nats_store_mb_per_server"] = tree_bytes(nats.store_dir(0)) / 1e6;
    const double msg_bytes = mean_message_bytes(*conn, stream);
    out["catch_up"]["mean_message_bytes"] = msg_bytes;
    std::fprintf(stderr, "publish floor: %d publishes of %.0f bytes to an R3 stream\n", std::max(n, 200), msg_bytes);
    out["publish_floor"] = publish_floor(nats, *conn, std::max(n, 200), static_cast<size_t>(msg_bytes));
    // 4. Request/reply.
    if (rtt_n > 0) {
      std::fprintf(stderr, "request/reply: %d round trips\n", rtt_n);
      out["request_reply"] = rtt_phase(nats, rtt_n);
    }
    conn.reset();
  }
  out["fsync_after"] = fsync_probe(work);
  std::error_code ec;
  fs::remove_all(work, ec);

  if (as_json) std::printf("%s\n", out.dump(2).c_str());
  // The table: on stdout, or on stderr when stdout carries the JSON.
  FILE* o = as_json ? stderr : stdout;
  const auto& s = out["single_node"];
  const auto& c = out["cluster_3_nodes"];
  std::fprintf(o, "disk: fsync of a 4 KB page p50 %.2f ms before, %.2f ms after the run\n",
               out["fsync_before"].value("p50_ms", 0.0), out["fsync_after"].value("p50_ms", 0.0));
  std::fprintf(o, "%-58s %10s %10s %12s %8s\n", "enrollment (add_basis + enroll_template), 1 writer", "p50 ms", "p99 ms",
              "enroll/s", "ratio");
  std::fprintf(o, "%-58s %10.2f %10.2f %12.1f %8s\n", "single node, no interceptor (anchor)", s["p50_ms"].get<double>(),
              s["p99_ms"].get<double>(), s["per_s"].get<double>(), "1.00");
  const auto& s2 = out["single_node_after"];
  std::fprintf(o, "%-58s %10.2f %10.2f %12.1f %8s\n", "single node again, after the cluster's writes", s2["p50_ms"].get<double>(),
              s2["p99_ms"].get<double>(), s2["per_s"].get<double>(), "");
  std::fprintf(o, "%-58s %10.2f %10.2f %12.1f %7.2fx\n", "3 nodes, 1 shard R3, acked after quorum + 2 replicas",
              c["p50_ms"].get<double>(), c["p99_ms"].get<double>(), c["per_s"].get<double>(),
              c["ratio_to_single_node_p50"].get<double>());
  std::fprintf(o, "  (p50 of the two calls: single %.2f + %.2f ms, cluster %.2f + %.2f ms; %.2f stream messages per enrollment)\n",
              s["add_basis_p50_ms"].get<double>(), s["enroll_template_p50_ms"].get<double>(),
              c["add_basis_p50_ms"].get<double>(), c["enroll_template_p50_ms"].get<double>(),
              c["stream_messages_per_enrollment"].get<double>());
  std::fprintf(o, "  (2 writer threads on the one Service: single %.1f/s, cluster %.1f/s)\n",
              s["two_writers_per_s"].get<double>(), c["two_writers_per_s"].get<double>());
  if (out.contains("fill"))
    std::fprintf(o, "stream filled (writer acked at quorum + its own apply, other nodes stopped): %d templates in %.1f s "
                "(%.0f/s, p50 %.2f ms, p99 %.2f ms)\n",
                out["fill"]["templates_added"].get<int>(), out["fill"]["seconds"].get<double>(),
                out["fill"]["per_s"].get<double>(), out["fill"]["p50_ms"].get<double>(),
                out["fill"]["p99_ms"].get<double>());
  const auto& k = out["catch_up"];
  std::fprintf(o, "catch-up of a new node (%s): %lld templates (%llu messages) in %.1f s = %.0f templates/s, %.0f messages/s; vault %.0f MB\n",
              k["node"].get<std::string>().c_str(), static_cast<long long>(k["faces_in_replica"].get<int64_t>()),
              static_cast<unsigned long long>(k["stream_messages"].get<uint64_t>()), k["seconds"].get<double>(),
              k["templates_per_s"].get<double>(), k["messages_per_s"].get<double>(), k["replica_vault_mb"].get<double>());
  std::fprintf(o, "  (node start %.2f s; applied by elapsed time:", k["node_start_seconds"].get<double>());
  for (const auto& pt : k["progress"]) std::fprintf(o, " %llu@%.1fs", static_cast<unsigned long long>(pt["applied"].get<uint64_t>()),
                                                   pt["seconds"].get<double>());
  std::fprintf(o, ")\n");
  for (const auto& r : out["replay"])
    std::fprintf(o, "replay by a bare replica, at most %zu messages per transaction: %llu messages in %.1f s = %.0f messages/s\n",
                 r["max_batch"].get<size_t>(), static_cast<unsigned long long>(r["stream_messages"].get<uint64_t>()),
                 r["seconds"].get<double>(), r["messages_per_s"].get<double>());
  const auto& cb = out["commit_breakdown"];
  std::fprintf(o, "  (a replicated commit, p50: %.2f ms; its sequence announced by 1 node after %.2f ms, by 2 after %.2f ms, by 3 after %.2f ms;"
               " the service outside its two commits: %.2f ms per enrollment)\n",
               cb["commit_p50_ms"].get<double>(), cb.value("announced_by_1_p50_ms", 0.0), cb.value("announced_by_2_p50_ms", 0.0),
               cb.value("announced_by_3_p50_ms", 0.0), cb["outside_commits_per_enrollment_p50_ms"].get<double>());
  const auto& pf = out["publish_floor"];
  std::fprintf(o, "JetStream publish to an R3 stream (%zu B, msg id + expected last seq, acked at quorum): p50 %.2f ms, p99 %.2f ms;"
              " until a StreamReader has it: p50 %.2f ms, p99 %.2f ms\n",
              pf["bytes"].get<size_t>(), pf["p50_ms"].get<double>(), pf["p99_ms"].get<double>(),
              pf["delivered_p50_ms"].get<double>(), pf["delivered_p99_ms"].get<double>());
  if (out.contains("request_reply")) {
    for (const char* where : {"same_server", "across_route", "across_route_send_asap"}) {
      const auto& r = out["request_reply"][where];
      std::fprintf(o, "request/reply 2 KB -> 512 B, responder %-23s p50 %5.0f us, p99 %5.0f us, %.0f req/s (%d failures)\n",
                  where, r["p50_us"].get<double>(), r["p99_us"].get<double>(), r["per_s"].get<double>(),
                  r["failures"].get<int>());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2000, catchup_n = 0, rtt_n = 5000, warmup = 20;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--n" && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (a == "--catchup-n" && i + 1 < argc) catchup_n = std::atoi(argv[++i]);
    else if (a == "--rtt-n" && i + 1 < argc) rtt_n = std::atoi(argv[++i]);
    else if (a == "--warmup" && i + 1 < argc) warmup = std::atoi(argv[++i]);
    else if (a == "--json") as_json = true;
    else {
      std::fprintf(stderr, "usage: cluster_bench [--n N] [--catchup-n N] [--rtt-n N] [--warmup N] [--json]\n");
      return 1;
    }
  }
  if (n < 1 || catchup_n < 0 || rtt_n < 0 || warmup < 0) {
    std::fprintf(stderr, "cluster_bench: counts must be positive\n");
    return 1;
  }
  if (!vault::ensure_sodium().is_ok()) return 2;
  ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
  ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
  return run(n, catchup_n, rtt_n, warmup, as_json);
}
