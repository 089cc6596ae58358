// ClusterService: the use cases over the shards of a cluster (docs/cluster.md), the same
// service::Api a single vault offers, so the HTTP server, the CLI and the Python module serve
// a cluster node unchanged.
//
// It composes ordinary Services, one per vault the node hosts, each with its stream's writer
// as commit interceptor (their transactions are replicated, not committed locally):
//   - the meta vault holds what is cluster-wide: API keys, authorisations, the audit of
//     searches and their review cases, events and denials at the door;
//   - a shard vault holds its subjects: bases, templates, photos, their erasure and export.
// A subject is found through the reference directory, a JetStream KV bucket (`fv-refs`)
// mapping a keyed hash of the reference to the subject's vault id, whose hash is its shard;
// creating a subject claims its reference there first, so two nodes cannot create one
// reference on two shards. Ids the client sees (bases, faces, images) carry their shard:
// id = local id × 1024 + shard.
//
// A search fans out to every shard: each applies the purpose filter inside its own scan, the
// node merges the top k, and the operating point (FPIR) is computed on the eligible templates
// of all shards together. The search is audited once, in the meta vault, with its review case.
// A shard the node does not host is searched by one of its replicas over NATS request/reply
// (a queue group per shard, cluster/rpc.h); one that does not answer within shard_timeout_ms
// fails the search, or is left out and named when the request allows partial results.
//
// A write that loses a race with another node's (kAborted) is redone after its shard caught up.
// A use case on one subject whose shard the node does not host (a basis, an enrollment, a
// withdrawal, an erasure, an export, a 1:1 verification) is forwarded whole to one of the
// shard's replicas, which runs it as its own (cluster_forward.cpp).
#pragma once

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cluster/kv.h"
#include "cluster/node.h"
#include "cluster/rpc.h"
#include "service/api.h"
#include "service/gallery_evictor.h"
#include "service/service.h"

namespace fv::service {

class PipelinePool;
struct CitedAuthorisation;
struct SearchProbe;
struct SearchPlan;
struct ShardAnswer;
struct ShardAudit;
struct ShardCall;

struct ClusterServiceOptions {
  int write_attempts = 12;       // a write that lost a race (kAborted) is redone this often in all
  int catch_up_ms = 10000;       // how long a shard may take to catch up before a use case runs again
  int receipt_wait_ms = 10000;   // how long an erasure waits for every replica of its shard to confirm
  // Searches, 1:1 verifications and access exports first apply everything the streams they
  // read hold (one stream info request each): nothing erased, withdrawn or decided through
  // another node is missed.
  bool fresh_reads = true;
  // How long a search waits for a shard this node does not host.
  int shard_timeout_ms = 10000;
  // How long a use case forwarded to a node hosting the subject's shard may take (a write
  // rides out a leader election there).
  int forward_timeout_ms = 60000;
  // How often hosting follows the member list (ClusterNode::rebalance): a shard gained is
  // served here once its replica applied its stream; 0: never (hosting stays as at start).
  int rebalance_ms = 5000;
  // A shard's audit chain read for another node goes in pages of about this much JSON: one
  // NATS message carries 1 MB unless the servers' max_payload says more.
  size_t audit_page_bytes = 256 << 10;
};

class ClusterService final : public Api {
 public:
  // `node` must outlive the service. Opens a Service on the node's meta vault and on each
  // hosted shard's vault, sharing one pool of face pipelines (options.pipelines of them).
  static Result<std::unique_ptr<ClusterService>> open(cluster::ClusterNode& node, ServiceOptions options,
                                                      ClusterServiceOptions copt = {});
  ~ClusterService() override;

  const vault::VaultConfig& config() const override;
  std::string now() const override;

  Result<BasisResult> add_basis(const Actor& actor, const BasisRequest& req) override;
  Result<EraseReceipt> withdraw_basis(const Actor& actor, int64_t basis_id) override;
  Result<EnrollResult> enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes) override;
  Result<EnrollResult> enroll_template(const Actor& actor, const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                       TemplateOrigin origin = {});

  Result<SearchResult> search(const Actor& actor, const SearchRequest& req, std::vector<uint8_t> image_bytes) override;
  Result<SearchResult> search_templates(const Actor& actor, const SearchRequest& req,
                                        const std::vector<face::FaceTemplate>& probes);
  Result<VerifyResult> verify_subject(const Actor& actor, const SearchRequest& req, const std::string& subject_ref,
                                      std::vector<uint8_t> image_bytes) override;
  Result<PhotoComparison> verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b, double fmr,
                                        bool liveness = false) override;
  Result<Detection> detect(const Actor& actor, std::vector<uint8_t> image_bytes) override;

  Result<EraseReceipt> erase(const Actor& actor, const std::string& subject,
                             const std::string& reason = "erasure request") override;
  Result<ExpireReport> expire(const Actor& actor, const std::optional<std::string>& as_of, bool dry_run) override;
  Result<nlohmann::json> export_subject(const Actor& actor, const std::string& subject, bool include_templates,
                                        const std::optional<std::filesystem::path>& images_dir) override;

  Result<OptoutResult> optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index = -1) override;
  Result<OptoutResult> optout_add_template(const Actor& actor, const face::FaceTemplate& tmpl);
  Result<OptoutCheck> optout_check(const Actor& actor) override;

  Result<std::vector<ReviewCase>> review_list(const Actor& actor, const ReviewListFilter& filter) override;
  Result<ReviewCase> review_show(const Actor& actor, const std::string& case_id,
                                 const PurposeScope& scope = std::nullopt) override;
  Result<ReviewDecision> review_decide(const Actor& actor, const std::string& case_id,
                                       const ReviewDecisionRequest& req) override;
  Result<ReviewImage> review_probe_image(const Actor& actor, const std::string& case_id, int face_index,
                                         const PurposeScope& scope = std::nullopt) override;
  Result<ReviewImage> review_reference_image(const Actor& actor, const std::string& case_id, int64_t candidate_id,
                                             const PurposeScope& scope = std::nullopt) override;

  Result<Authorisation> authorisation_add(const Actor& actor, const AuthorisationRequest& req) override;
  Result<Authorisation> authorisation_grant(const Actor& actor, const std::string& id, const std::string& note) override;
  Result<Authorisation> authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note) override;
  Result<std::vector<Authorisation>> authorisation_list(const Actor& actor) override;
  Result<LapseReport> oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of) override;
  Result<nlohmann::json> transparency_report(const Actor& actor, const std::string& from, const std::string& to) override;

  Result<vault::AuditVerifyReport> audit_verify(const Actor& actor) override;
  Result<AuditPage> audit_show(const Actor& actor, const AuditFilter& filter) override;
  Result<vault::AuditCheckpoint> audit_checkpoint(const Actor& actor) override;
  Result<vault::NewApiKey> create_api_key(const Actor& actor, Role role, const std::vector<std::string>& purposes,
                                          const std::string& label) override;
  Status revoke_api_key(const Actor& actor, const std::string& key_id) override;
  Result<std::vector<vault::ApiKey>> list_api_keys(const Actor& actor) override;
  Result<std::pair<Actor, vault::ApiKey>> authenticate_key(const std::string& presented) override;
  Status record_denial(const Actor& actor, Action action, const std::string& reason, const nlohmann::json& details = {},
                       const std::string& purpose = "", const std::string& case_ref = "") override;
  Result<std::string> record_event(const Actor& actor, Action action, const nlohmann::json& details) override;
  Status health() override;
  ServiceStats stats() override;
  Status warm_up() override;

  // Erasures, and withdrawals the subject outlives, that the replicas of this node's shards
  // applied and that the meta vault has not settled (the subject may still be a candidate in
  // its open review cases): settled now. Run after every erasure, by every retention run and
  // when the service opens; one written past this service (a shard's own Service, a node that
  // died before its meta write) is settled by the next of them. Every pending one is tried;
  // the first failure is returned after the others.
  Status settle_in_meta(const Actor& actor);

  // Tests only: runs in every search after the shards answered, before the search is recorded
  // (to erase a candidate in between).
  void set_before_record_for_testing(std::function<void()> f) { before_record_ = std::move(f); }

  // Hosting follows the member list once now (the rebalancing thread runs it every
  // rebalance_ms): ClusterNode::rebalance, then the shards gained are served here once their
  // replicas applied their streams. Returns what the node changed.
  Result<cluster::ClusterNode::HostingChange> rebalance();

  // The service of a shard served here (nullptr otherwise: not hosted, or gained and still
  // catching up) and of the meta vault (tests).
  Service* shard_service(int shard);
  Service& meta_service() { return *meta_; }

 private:
  ClusterService(cluster::ClusterNode& node, ClusterServiceOptions copt) : node_(node), copt_(copt) {}
  // Serves hosted shard s here: its Service, and its replies to other nodes' searches and calls.
  Status serve_shard(int s);
  void rebalance_loop();

  struct Located {  // where a subject lives
    int shard = 0;
    std::string uid;
  };
  // With fresh_reads: this node's replica of shard `s` (-1: the meta stream) applies what its
  // stream holds now; kUnavailable when that cannot be confirmed.
  Status fresh(int s);
  // fresh() of several shards at once; element j is shards[j]'s.
  std::vector<Status> fresh_each(const std::vector<int>& shards);
  // The service of shard `s`, or kUnavailable when this node does not host it.
  Result<Service*> shard(int s);
  // What the reference directory says of a subject named by a reference or a vault id (one
  // read), and the subject's shard when this node does not host it (the use case is then
  // forwarded, cluster_forward.cpp).
  struct Placement {
    std::optional<std::string> directory_uid;
    std::optional<int> away;
  };
  Result<Placement> place(const std::string& subject);
  // The subject named by a reference or a vault id: its shard and uid; nullopt when the
  // cluster has none under that name. The second form uses a placement already read.
  Result<std::optional<Located>> locate(const std::string& subject);
  Result<std::optional<Located>> locate(const std::string& subject, const Placement& p);
  // The shard an enrollment runs on and the request with the basis's local id; a basis of
  // another shard than the subject's is refused there (audited), as one vault refuses it.
  Result<std::pair<int, EnrollRequest>> enrollment_shard(const Actor& actor, const EnrollRequest& req, const Placement& p);
  // The subject with that vault id (never read as a reference): a review case's candidates.
  Result<std::optional<Located>> locate_uid(const std::string& uid);
  // Claims `ref` in the reference directory: the uid it maps to (a new one when unclaimed).
  Result<std::string> claim_reference(const std::string& ref);
  std::string directory_key(const std::string& ref) const;
  Result<std::optional<std::string>> directory_get(const std::string& key);
  // Runs a write on shard `s`, redoing it after a catch-up while it loses races (kAborted).
  template <typename F>
  auto write_on(int s, F&& f) -> decltype(f(std::declval<Service&>()));
  // The search on every shard (cluster_search.cpp): the faces of `res` get their candidates,
  // probes[i] being face i's template (null: none), and the search is recorded in the meta vault.
  Status fan_out(const Actor& actor, const SearchRequest& req, const CitedAuthorisation& auth,
                 const std::vector<const face::FaceTemplate*>& probes, SearchProbe& probe, SearchResult& res);
  // A search on a shard this node hosts: its eligible count and best candidates per probe at
  // `plan`, in one hold of its lock; and the same for another node that asks.
  Result<ShardAnswer> search_on(int s, const std::string& purpose, const SearchPlan& plan,
                                const std::vector<const face::FaceTemplate*>& probes);
  Result<vault::Bytes> serve_shard_search(int s, std::span<const uint8_t> request);
  // Use cases on shards this node does not host (cluster_forward.cpp): the shard an enrollment
  // must run on when it is not hosted here (the subject's, else the basis's); the call sent to
  // one of its replicas; what a replica runs for the node that sent it.
  std::optional<int> unhosted_enrollment_shard(const EnrollRequest& req, const Placement& p);
  Result<vault::Bytes> forward(int s, const ShardCall& call);
  template <typename T>
  Result<T> forwarded(int s, ShardCall call, Result<T> (*decode)(std::span<const uint8_t>));
  Result<vault::Bytes> serve_shard_call(int s, std::span<const uint8_t> request);
  // add_basis in two parts: the checks before the reference is claimed, and the write on
  // shard s (hosted here) of the subject `uid` the reference was claimed for.
  Status check_basis_add(const Actor& actor, const BasisRequest& req);
  Result<BasisResult> add_basis_claimed(const Actor& actor, const BasisRequest& req, const std::string& uid, int s);
  // Per shard, here or forwarded: an opt-out entry written under `optout_uid`, the registry
  // matched against the shard's subjects, a review candidate's reference and whether a
  // reference crop is kept for the purpose (nullopt: the subject is gone).
  Result<OptoutResult> optout_on(int s, const Actor& actor, const face::FaceTemplate& tmpl, const std::string& optout_uid);
  Result<OptoutCheck> optout_check_on(int s, const Actor& actor);
  Result<std::optional<std::pair<std::string, bool>>> candidate_on_shard(const std::string& uid, const std::string& purpose);
  // Per shard, here or forwarded: the entries of its chain that q selects, in q's order (all of
  // them, or the first q.limit), the purposes its bases define and, with `counts`, how many
  // entries q's since/subject and q's filters select (cluster_audit.cpp); its part of a
  // retention run, erasures finished; a candidate's reference crop for the purpose, opened.
  Result<ShardAudit> audit_of_shard(int s, const vault::AuditQuery& q, bool counts = false);
  Result<ExpireReport> expire_on(int s, const Actor& actor, const std::string& as_of, bool dry_run);
  Result<ReviewImage> reference_crop_on_shard(const std::string& uid, const std::string& purpose);
  static bool is_uid(const std::string& s);
  // Per hosted stream: applied and last sequence (the replica lag in /metrics).
  void replication_progress(ServiceStats& st);
  // Fills the references (and whether a reference crop is kept) of a meta case's candidates.
  Status resolve_candidates(ReviewCase& rc);
  // One opt-out entry on every shard (cluster_service.cpp).
  Result<OptoutResult> optout_everywhere(const Actor& actor, const face::FaceTemplate& tmpl);
  // After a subject's erasure was applied on shard `s`: its earlier messages erased from the
  // stream, and the replicas that applied the erasure named in the receipt.
  Status finish_cluster_erasure(const Actor& actor, int s, EraseReceipt& r);
  // After one basis's rows were erased on shard `s` while its subject stays (`retention`: it
  // expired, else it was withdrawn): the stream messages holding them erased, the subject out
  // of the open review cases its remaining bases do not cover, and the receipt's basis id made
  // the cluster's.
  Status finish_cluster_basis_erasure(const Actor& actor, int s, int64_t local_basis_id, bool retention, EraseReceipt& r);
  // The replicas of hosted shard `s` that applied its stream up to `applied`: every one, or
  // those that did within the receipt wait (the write itself waited for two).
  Result<std::vector<std::string>> replicas_at(int s, uint64_t applied);
  // The subject's candidacies leave the meta vault's open review cases (Service::Impl::
  // exclude_from_review, one meta write, redone on lost races); how many went.
  Result<int64_t> exclude_from_review_in_meta(const Actor& actor, const std::string& subject_uid,
                                              const std::vector<std::string>& purposes_kept,
                                              const std::vector<std::string>& purposes_excluded, int64_t shard_seq,
                                              const std::string& cause);
  // After a withdrawal on hosted shard `s`, once its replica here applied what the stream
  // holds: the purposes the bases in force of subject `uid` still cover (none when the subject
  // is gone), those of basis `local_basis_id` they no longer cover, and the sequence applied.
  struct WithdrawnPurposes {
    std::vector<std::string> kept, dropped;
    int64_t seq = 0;
  };
  Result<WithdrawnPurposes> withdrawn_purposes(int s, const std::string& uid, int64_t local_basis_id);
  // The sequence of the message that erased `uid` on hosted shard `s` (this node's replica
  // recorded it), or the stream's current one when the replica has not applied it yet.
  Result<int64_t> erasure_seq(int s, const std::string& uid);
  // Drops served shard `s`'s in-memory gallery unless it was loaded at the vault's current
  // gallery generation (GalleryEvictor's thread, under the shard service's lock).
  void evict_stale_gallery(int s);

  cluster::ClusterNode& node_;
  ClusterServiceOptions copt_;
  std::shared_ptr<PipelinePool> pool_;
  std::unique_ptr<Service> meta_;
  ServiceOptions shard_options_;  // for the services of shards served later
  // Services of the shards served here, by number: owned_shards_ holds them, serving_
  // publishes them to the request threads (set once, never cleared while the service lives).
  std::vector<std::unique_ptr<Service>> owned_shards_;
  std::unique_ptr<std::atomic<Service*>[]> serving_;
  std::vector<char> answering_;  // per shard: its RPC servers are open (serve_shard)
  std::mutex hosting_mu_;  // owned_shards_, answering_, shard_servers_ (serve_shard)
  std::optional<cluster::KvBucket> refs_;
  std::vector<uint8_t> directory_secret_;  // keys the reference directory's hashes
  vault::SecretKey master_;                 // seals what nodes ask each other (cluster/rpc.h)
  // Stopped first, before the services their handlers use.
  std::vector<std::unique_ptr<cluster::RpcServer>> shard_servers_;
  std::function<void()> before_record_;
  std::mutex rebalance_call_mu_;  // rebalance(): ClusterNode::rebalance is not reentrant
  std::mutex rebalance_mu_;       // stopping_, for the rebalancing thread's wait
  std::condition_variable rebalance_cv_;
  bool stopping_ = false;
  std::thread rebalancer_;  // joined first of all
  // Drops a served shard's gallery once its replica applied a deletion of templates written
  // by any node (evict_stale_gallery); fed by the replicas' on_applied, cleared before it stops.
  std::unique_ptr<GalleryEvictor> evictor_;
  std::vector<std::pair<cluster::ShardReplica*, int>> listeners_;  // its on_applied listeners (hosting_mu_)
};

template <typename F>
auto ClusterService::write_on(int s, F&& f) -> decltype(f(std::declval<Service&>())) {
  Service* svc = meta_.get();  // s == -1: the meta vault
  if (s >= 0) {
    FV_ASSIGN_OR_RETURN(svc, shard(s));
  }
  auto* hosted = s < 0 ? &node_.meta() : node_.shard(s);
  for (int attempt = 1;; ++attempt) {
    auto r = f(*svc);
    if (r.is_ok() || r.status().code() != StatusCode::kAborted || attempt >= copt_.write_attempts) return r;
    // Another node wrote to the shard first: apply its write, then redo the use case on the new
    // state, after a random pause (writers that lost together would retry together).
    FV_RETURN_IF_ERROR(hosted->replica->catch_up(copt_.catch_up_ms));
    std::this_thread::sleep_for(std::chrono::microseconds(randombytes_uniform(10000u * static_cast<uint32_t>(attempt))));
  }
}

}  // namespace fv::service
