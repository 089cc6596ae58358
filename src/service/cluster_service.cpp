// ClusterService: opening the node's services, finding a subject's shard, and the use cases
// routed to one shard or to the meta vault. The search's fan-out is in cluster_search.cpp.
#include "service/cluster_service.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "cluster/envelope.h"
#include "face/compare.h"
#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "service/photo.h"
#include "service/pipeline_pool.h"
#include "service/service_impl.h"
#include "service/shard_call_wire.h"

namespace fv::service {

namespace {

// Ids the client sees carry their shard: local × kIdShards + shard (kMaxShards fits).
constexpr int64_t kIdShards = cluster::kMaxShards;
int64_t global_id(int64_t local, int shard) { return local * kIdShards + shard; }
std::pair<int64_t, int> split_id(int64_t global) {
  return {global / kIdShards, static_cast<int>(global % kIdShards)};
}

// Who the audit log names when a node settles erasures no request is waiting for.
const Actor kErasureSettler{"cluster:erasure-settlement", Role::kAdmin};

}  // namespace

template <typename T>
Result<T> ClusterService::forwarded(int s, ShardCall call, Result<T> (*decode)(std::span<const uint8_t>)) {
  auto reply = forward(s, call);
  vault::wipe(call.image);  // a photo
  FV_ASSIGN_OR_RETURN(auto bytes, std::move(reply));
  return decode(bytes);
}

bool ClusterService::is_uid(const std::string& s) {
  return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

Result<std::unique_ptr<ClusterService>> ClusterService::open(cluster::ClusterNode& node, ServiceOptions options,
                                                             ClusterServiceOptions copt) {
  std::unique_ptr<ClusterService> cs(new ClusterService(node, copt));
  const char* master_hex = std::getenv(vault::kMasterKeyEnv);
  if (!master_hex) return failed_precondition(std::string("cluster mode needs the cluster master key in ") + vault::kMasterKeyEnv);
  FV_ASSIGN_OR_RETURN(const auto master, vault::SecretKey::from_hex(master_hex));
  cs->master_ = master;
  const vault::SecretKey dir_key = cluster::stream_key(master, cluster::kRefsBucket);
  cs->directory_secret_.assign(dir_key.data(), dir_key.data() + vault::SecretKey::kSize);

  const int catch_up_ms = copt.catch_up_ms;
  ServiceOptions mo = options;
  mo.commit_interceptor = node.meta().writer;
  mo.catch_up = [&node, catch_up_ms] { return node.meta().replica->catch_up(catch_up_ms); };
  FV_ASSIGN_OR_RETURN(cs->meta_, Service::open(node.meta().dir, mo));
  // Every vault's service analyzes photos on the meta service's pool.
  cs->pool_ = cs->meta_->impl_->pool;
  cs->shard_options_ = options;
  cs->shard_options_.shared_pool = cs->pool_;
  cs->owned_shards_.resize(static_cast<size_t>(node.config().shards));
  cs->answering_.assign(static_cast<size_t>(node.config().shards), 0);
  cs->serving_ = std::make_unique<std::atomic<Service*>[]>(static_cast<size_t>(node.config().shards));
  for (int s = 0; s < node.config().shards; ++s) cs->serving_[s].store(nullptr);
  // `cluster init` creates the directory; a cluster made before it had one gets it here. Nodes
  // starting together may find JetStream busy for a moment: a few bounded retries.
  for (int attempt = 1;; ++attempt) {
    auto refs = cluster::KvBucket::open(node.connection(), cluster::kRefsBucket);
    if (!refs.is_ok() && refs.status().code() == StatusCode::kNotFound)
      refs = cluster::KvBucket::open_or_create(node.connection(), cluster::kRefsBucket, node.config().replicas);
    if (refs.is_ok()) {
      cs->refs_.emplace(std::move(*refs));
      break;
    }
    if (attempt >= 10) return Status(refs.status().code(), "open the reference directory: " + refs.status().message());
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
  }
  cs->evictor_ = std::make_unique<GalleryEvictor>([self = cs.get()](int s) { self->evict_stale_gallery(s); });
  for (int s : node.hosted_shards()) FV_RETURN_IF_ERROR(cs->serve_shard(s));
  // Erasures applied while no service ran here, or whose meta write failed: their subjects
  // leave the open review cases now. What fails waits for the next erasure or retention run.
  (void)cs->settle_in_meta(kErasureSettler);
  if (copt.rebalance_ms > 0 && !node.meta_only()) cs->rebalancer_ = std::thread([self = cs.get()] { self->rebalance_loop(); });
  return cs;
}

ClusterService::~ClusterService() {
  {
    std::lock_guard<std::mutex> l(rebalance_mu_);
    stopping_ = true;
  }
  rebalance_cv_.notify_all();
  if (rebalancer_.joinable()) rebalancer_.join();
  shard_servers_.clear();  // no request handled once the services start to close
  // The replicas outlive this service: they stop calling it before the evictor stops.
  for (const auto& [replica, listener] : listeners_) replica->remove_on_applied(listener);
  if (evictor_) evictor_->stop();
  vault::wipe(directory_secret_);
}

void ClusterService::evict_stale_gallery(int s) {
  Service* svc = shard_service(s);
  if (!svc) return;
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  if (!m.gallery->loaded()) return;
  auto generation = m.catalog().generation(vault::Generation::kGallery);
  // Reloaded since the deletion (a search ran meanwhile): it holds none of the deleted rows.
  if (generation.is_ok() && *generation == m.gallery->generation()) return;
  m.gallery->drop();
}

const vault::VaultConfig& ClusterService::config() const { return meta_->config(); }
std::string ClusterService::now() const { return meta_->now(); }

Service* ClusterService::shard_service(int s) {
  if (s < 0 || s >= node_.config().shards) return nullptr;
  return serving_[s].load();
}

Status ClusterService::fresh(int s) {
  if (!copt_.fresh_reads) return Status::ok();
  auto* hosted = s < 0 ? &node_.meta() : node_.shard(s);
  if (!hosted) return shard(s).status();
  const Status st = hosted->replica->catch_up(copt_.catch_up_ms);
  if (st.is_ok()) return st;
  return unavailable((s < 0 ? std::string("the meta stream") : "shard " + std::to_string(s)) +
                     ": this node's replica could not confirm it applied its stream's latest changes (" +
                     st.message() + ")");
}

std::vector<Status> ClusterService::fresh_each(const std::vector<int>& shards) {
  // Each asks its stream's leader for the last sequence (a round trip): asked together, the
  // wait is one round trip, not one per hosted shard.
  std::vector<std::future<Status>> others;
  for (size_t j = 1; j < shards.size(); ++j)
    others.push_back(std::async(std::launch::async, [this, s = shards[j]] { return fresh(s); }));
  std::vector<Status> out;
  if (!shards.empty()) out.push_back(fresh(shards.front()));
  for (auto& f : others) out.push_back(f.get());
  return out;
}

Result<Service*> ClusterService::shard(int s) {
  if (auto* svc = shard_service(s)) return svc;
  return unavailable("shard " + std::to_string(s) + " is not served on node " + node_.name());
}

// ---------------------------------------------------------------- where a subject lives

std::string ClusterService::directory_key(const std::string& ref) const {
  // A keyed hash: whoever reads the bucket cannot test a guessed reference against it.
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(ref.data()), ref.size(),
                     directory_secret_.data(), directory_secret_.size());
  static const char* hex = "0123456789abcdef";
  std::string k = "r.";
  for (unsigned char c : h) {
    k += hex[c >> 4];
    k += hex[c & 15];
  }
  return k;
}

Result<std::optional<ClusterService::Located>> ClusterService::locate(const std::string& subject) {
  FV_ASSIGN_OR_RETURN(const Placement p, place(subject));
  return locate(subject, p);
}

Result<std::optional<ClusterService::Located>> ClusterService::locate(const std::string& subject, const Placement& p) {
  // A reference first, then a vault id, as one vault's find_subject does (a reference may
  // look like an id).
  if (p.directory_uid) {
    FV_ASSIGN_OR_RETURN(auto by_ref, locate_uid(*p.directory_uid));
    if (by_ref) return by_ref;
  }
  return locate_uid(subject);
}

namespace {

// The reference directory through a NATS leader election (~6 s): a few bounded retries, and
// errors that do not name the key (a keyed hash of the reference).
template <typename F>
auto with_directory_retries(F&& f) -> decltype(f()) {
  for (int attempt = 1;; ++attempt) {
    auto r = f();
    if (r.is_ok() || r.status().code() != StatusCode::kUnavailable) return r;
    if (attempt >= 5) return unavailable("the reference directory (JetStream KV fv-refs) did not answer; nothing was written");
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
  }
}

}  // namespace

Result<std::optional<std::string>> ClusterService::directory_get(const std::string& key) {
  return with_directory_retries([&] { return refs_->get(key); });
}

Result<std::optional<ClusterService::Located>> ClusterService::locate_uid(const std::string& uid) {
  if (!is_uid(uid)) return std::optional<Located>();
  Located at{cluster::shard_of(uid, node_.config().shards), uid};
  FV_ASSIGN_OR_RETURN(Service * svc, shard(at.shard));
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_ASSIGN_OR_RETURN(auto row, m.catalog().find_subject(uid));
  if (!row || row->uid != uid) return std::optional<Located>();
  return std::optional<Located>(at);
}

Result<std::string> ClusterService::claim_reference(const std::string& ref) {
  const std::string key = directory_key(ref);
  const std::string fresh = vault::random_hex(8);
  auto created = with_directory_retries([&] { return refs_->create(key, fresh); });
  if (created.is_ok()) return fresh;
  if (created.status().code() != StatusCode::kAlreadyExists && created.status().code() != StatusCode::kUnavailable)
    return created.status();
  // Claimed before (by another node, or by this create whose answer was lost): its uid.
  FV_ASSIGN_OR_RETURN(auto v, directory_get(key));
  if (!v) return unavailable("the reference directory did not answer; nothing was written");
  return *v;
}

// ---------------------------------------------------------------- subjects (one shard each)

Result<BasisResult> ClusterService::add_basis(const Actor& actor, const BasisRequest& req) {
  FV_RETURN_IF_ERROR(check_basis_add(actor, req));
  FV_ASSIGN_OR_RETURN(const std::string uid, claim_reference(req.subject_ref));
  const int s = cluster::shard_of(uid, node_.config().shards);
  if (!shard_service(s)) {
    // The replica takes the uid claimed here: it need not ask the directory again.
    return forwarded(s, {.op = "add_basis", .actor = actor, .basis = req, .subject = uid}, decode_basis_result);
  }
  return add_basis_claimed(actor, req, uid, s);
}

Status ClusterService::check_basis_add(const Actor& actor, const BasisRequest& req) {
  if (!valid_ref(req.subject_ref)) return invalid_argument("a subject reference is required (1-200 printable UTF-8 characters)");
  // The role check first: a caller who may not add a basis claims no reference.
  auto& m = *meta_->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  return m.authorize(actor, Action::kBasisAdd);
}

Result<BasisResult> ClusterService::add_basis_claimed(const Actor& actor, const BasisRequest& req, const std::string& uid,
                                                      int s) {
  FV_ASSIGN_OR_RETURN(auto r, write_on(s, [&](Service& svc) {
    std::lock_guard<std::mutex> l(svc.impl_->mu);
    return svc.impl_->add_basis(actor, req, uid);
  }));
  r.basis_id = global_id(r.basis_id, s);
  return r;
}

Result<EraseReceipt> ClusterService::withdraw_basis(const Actor& actor, int64_t basis_id) {
  const auto split = split_id(basis_id);
  // An id no shard can hold is asked of shard 0 as id 0: the role check, then "no such basis".
  const bool valid = basis_id > 0 && split.second < node_.config().shards;
  const int s = valid ? split.second : 0;
  const int64_t local = valid ? split.first : 0;
  if (!shard_service(s)) {
    return forwarded(s, {.op = "withdraw_basis", .actor = actor, .id = basis_id}, decode_erase_receipt);
  }
  FV_ASSIGN_OR_RETURN(auto r, write_on(s, [&](Service& svc) { return svc.withdraw_basis(actor, local); }));
  if (!r.key_destroyed) {
    FV_RETURN_IF_ERROR(finish_cluster_basis_erasure(actor, s, local, false, r));
    return r;
  }
  FV_RETURN_IF_ERROR(finish_cluster_erasure(actor, s, r));
  return r;
}

Status ClusterService::finish_cluster_basis_erasure(const Actor& actor, int s, int64_t local_basis_id, bool retention,
                                                    EraseReceipt& r) {
  const std::string how = retention ? "expired" : "withdrawn";
  // The subject stays. The stream messages that hold the basis's rows go (their copies would
  // stay readable under the subject's live key), and the subject leaves the open cases whose
  // purpose no basis of theirs in force covers any more (as one vault does).
  r.basis_id = global_id(local_basis_id, s);
  auto erased = node_.shard(s)->writer->erase_messages_of_basis(r.subject_uid, local_basis_id);
  if (!erased.is_ok())
    return Status(erased.status().code(),
                  "the lawful basis is " + how + " and its rows are erased in every replica's vault, but its messages are "
                  "not yet erased from the shard's stream (" + erased.status().message() + "); every node hosting the "
                  "shard completes that at its next start, erasure or retention run "
                  "(ClusterNode::sweep_pending_erasures): no receipt until then");
  r.stream_messages_erased = *erased;
  FV_ASSIGN_OR_RETURN(r.replicas, replicas_at(s, node_.shard(s)->replica->applied()));
  auto w = withdrawn_purposes(s, r.subject_uid, local_basis_id);
  auto left = w.is_ok() ? exclude_from_review_in_meta(actor, r.subject_uid, w->kept, w->dropped, w->seq,
                                                     retention ? "retention" : "withdrawal")
                        : Result<int64_t>(w.status());
  if (!left.is_ok())
    return Status(left.status().code(),
                  "the lawful basis is " + how + " and its rows are erased in every replica's vault, but the subject's "
                  "candidacies for the purposes it no longer covers are not yet out of the open review cases (" +
                  left.status().message() + "); the next erasure, retention run or start of a node hosting the shard "
                  "completes that");
  r.review_candidates_removed += *left;
  (void)node_.shard(s)->replica->mark_withdrawal_settled_in_meta(local_basis_id);
  return Status::ok();
}

std::optional<int> ClusterService::unhosted_enrollment_shard(const EnrollRequest& req, const Placement& p) {
  // The subject's shard when the subject exists; else the basis's (an id carries its shard),
  // which refuses an unknown subject as one vault does.
  if (p.away) return p.away;
  if (p.directory_uid) return std::nullopt;  // the subject's shard is hosted here
  const int s = split_id(req.basis_id).second;
  if (req.basis_id <= 0 || s >= node_.config().shards || shard_service(s)) return std::nullopt;
  return s;
}

Result<std::pair<int, EnrollRequest>> ClusterService::enrollment_shard(const Actor& actor, const EnrollRequest& req,
                                                                       const Placement& p) {
  const auto [local, s] = split_id(req.basis_id);
  const bool valid = req.basis_id > 0 && s < node_.config().shards;
  EnrollRequest r = req;
  r.basis_id = valid ? local : 0;
  FV_ASSIGN_OR_RETURN(auto at, locate(req.subject_ref, p));
  // An unknown subject: the basis's shard (any shard) refuses it as one vault does, audited.
  if (!at) return std::make_pair(valid ? s : 0, r);
  if (valid && at->shard == s) return std::make_pair(s, r);
  // A basis of another shard is another subject's (or none): refused on the subject's shard.
  Status why = not_found("no lawful basis " + std::to_string(req.basis_id));
  if (valid) {
    FV_ASSIGN_OR_RETURN(Service * other, shard(s));
    auto& o = *other->impl_;
    std::lock_guard<std::mutex> l(o.mu);
    FV_ASSIGN_OR_RETURN(auto owner, o.catalog().basis_owner(local));
    if (owner) why = failed_precondition("lawful basis " + std::to_string(req.basis_id) + " belongs to another subject");
  }
  FV_ASSIGN_OR_RETURN(Service * svc, shard(at->shard));
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kEnroll, req.purpose.value_or("")));  // denied before refused
  return m.audit_enroll_refusal(actor, req, why);
}

Result<EnrollResult> ClusterService::enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes) {
  struct Wipe {
    std::vector<uint8_t>& b;
    ~Wipe() { vault::wipe(b); }
  } wipe{image_bytes};
  FV_ASSIGN_OR_RETURN(const Placement placed, place(req.subject_ref));
  const auto away = unhosted_enrollment_shard(req, placed);
  if (away) {
    return forwarded(*away, {.op = "enroll", .actor = actor, .enroll = req, .image = image_bytes}, decode_enroll_result);
  }
  FV_ASSIGN_OR_RETURN(auto routed, enrollment_shard(actor, req, placed));
  const int s = routed.first;
  const EnrollRequest& r = routed.second;
  // A redo (a race lost to another node) analyzes the photo again: each attempt gets a copy.
  FV_ASSIGN_OR_RETURN(auto e, write_on(s, [&](Service& svc) { return svc.enroll(actor, r, image_bytes); }));
  e.face_id = global_id(e.face_id, s);
  e.image_id = global_id(e.image_id, s);
  return e;
}

Result<EnrollResult> ClusterService::enroll_template(const Actor& actor, const EnrollRequest& req,
                                                     const face::FaceTemplate& tmpl, TemplateOrigin origin) {
  FV_ASSIGN_OR_RETURN(const Placement placed, place(req.subject_ref));
  const auto away = unhosted_enrollment_shard(req, placed);
  if (away) {  // what the template came from goes along, with the image to keep if any
    return forwarded(*away,
                     {.op = "enroll_template", .actor = actor, .enroll = req, .tmpl = tmpl, .origin_sha256 = origin.image_sha256,
                      .origin_format = origin.format, .image = std::move(origin.kept_image)},
                     decode_enroll_result);
  }
  FV_ASSIGN_OR_RETURN(auto routed, enrollment_shard(actor, req, placed));
  const int s = routed.first;
  const EnrollRequest& r = routed.second;
  FV_ASSIGN_OR_RETURN(auto e, write_on(s, [&](Service& svc) { return svc.enroll_template(actor, r, tmpl, origin); }));
  vault::wipe(origin.kept_image);
  e.face_id = global_id(e.face_id, s);
  e.image_id = global_id(e.image_id, s);
  return e;
}

Result<VerifyResult> ClusterService::verify_subject(const Actor& actor, const SearchRequest& req_in,
                                                    const std::string& subject_ref, std::vector<uint8_t> image_bytes) {
  // The search policy and the cited authorisation are the meta vault's (authorisations live
  // there); the comparison runs on the subject's shard.
  FV_ASSIGN_OR_RETURN(const Placement placed, place(subject_ref));
  if (placed.away) {
    return forwarded(
        *placed.away, {.op = "verify_subject", .actor = actor, .subject = subject_ref, .search = req_in, .image = std::move(image_bytes)},
        decode_verify_result);
  }
  auto& meta = *meta_->impl_;
  Upload upload(std::move(image_bytes), meta.options.on_wipe);
  const SearchRequest req = within_search_limits(req_in, meta.config().search_max_fmr);
  FV_RETURN_IF_ERROR(meta.check_search(actor, req, Service::Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth,
                      meta.check_authorisation(actor, req, Service::Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*pool_, std::move(upload), PhotoOptions{}, meta.options.on_wipe));
  const int k = face::verification_face(photo->faces());
  if (k < 0)
    return meta.refuse(meta.entry(actor, "verify"), "refused", {{"reason", "no face found"}},
                       failed_precondition("no face found in photo a"), Service::Impl::AuditVia::kAux);
  FV_ASSIGN_OR_RETURN(auto at, locate(subject_ref, placed));
  // Unknown and not enrolled for the purpose answer alike (the shard's service words it).
  const int s = at ? at->shard : cluster::shard_of(vault::random_hex(8), node_.config().shards);
  FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
  FV_RETURN_IF_ERROR(fresh(s));  // as a search: nothing erased or withdrawn elsewhere is compared with
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_ASSIGN_OR_RETURN(VerifyResult r, m.verify_locked(actor, req, subject_ref,
                                                      *photo->faces()[static_cast<size_t>(k)].face_template, auth));
  r.box = photo->faces()[static_cast<size_t>(k)].detection.box;
  return r;
}

Result<EraseReceipt> ClusterService::erase(const Actor& actor, const std::string& subject, const std::string& reason) {
  FV_ASSIGN_OR_RETURN(const Placement placed, place(subject));
  if (placed.away) {
    return forwarded(*placed.away, {.op = "erase", .actor = actor, .subject = subject, .reason = reason}, decode_erase_receipt);
  }
  FV_ASSIGN_OR_RETURN(auto at, locate(subject, placed));
  if (!at) return meta_->erase(actor, subject, reason);  // refused there, as on one vault (audited)
  FV_ASSIGN_OR_RETURN(auto r, write_on(at->shard, [&](Service& svc) { return svc.erase(actor, at->uid, reason); }));
  FV_RETURN_IF_ERROR(finish_cluster_erasure(actor, at->shard, r));
  return r;
}

Result<int64_t> ClusterService::exclude_from_review_in_meta(const Actor& actor, const std::string& subject_uid,
                                                            const std::vector<std::string>& purposes_kept,
                                                            const std::vector<std::string>& purposes_excluded,
                                                            int64_t shard_seq, const std::string& cause) {
  return write_on(-1, [&](Service& meta) -> Result<int64_t> {
    auto& mm = *meta.impl_;
    std::lock_guard<std::mutex> l(mm.mu);
    FV_ASSIGN_OR_RETURN(vault::Txn txn, mm.catalog().begin());
    FV_ASSIGN_OR_RETURN(const int64_t n,
                        mm.exclude_from_review(actor, subject_uid, purposes_kept, purposes_excluded, shard_seq, cause));
    FV_RETURN_IF_ERROR(txn.commit());
    return n;
  });
}

Result<ClusterService::WithdrawnPurposes> ClusterService::withdrawn_purposes(int s, const std::string& uid,
                                                                            int64_t local_basis_id) {
  auto& replica = *node_.shard(s)->replica;
  FV_RETURN_IF_ERROR(replica.catch_up(copt_.catch_up_ms));
  WithdrawnPurposes w;
  w.seq = static_cast<int64_t>(replica.applied());  // at or after the withdrawal's own message
  FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_ASSIGN_OR_RETURN(auto subject, m.catalog().find_subject(uid));
  if (subject) {
    FV_ASSIGN_OR_RETURN(w.kept, m.catalog().purposes_in_force(subject->id, m.now()));
  }
  FV_ASSIGN_OR_RETURN(const auto covered, m.catalog().basis_purposes(local_basis_id));
  for (const auto& p : covered)
    if (std::find(w.kept.begin(), w.kept.end(), p) == w.kept.end()) w.dropped.push_back(p);
  return w;
}

Status ClusterService::settle_in_meta(const Actor& actor) {
  Status first;
  auto keep_first = [&first](const Status& st, const std::string& what) {
    if (!st.is_ok() && first.is_ok()) first = Status(st.code(), what + ": " + st.message());
  };
  for (int s = 0; s < node_.config().shards; ++s) {
    auto* hosted = node_.shard(s);
    if (hosted == nullptr) continue;
    auto erasures = hosted->replica->erasures_unsettled_in_meta();
    keep_first(erasures.status(), "the erasures to settle on shard " + std::to_string(s));
    // Each from the sequence of its own erasure message: the same on every replica, so a node
    // settling one already settled writes nothing.
    if (erasures.is_ok())
      for (const auto& [uid, seq] : *erasures) {
        auto left = exclude_from_review_in_meta(actor, uid, {}, {""}, seq, "erasure");
        keep_first(left.is_ok() ? hosted->replica->mark_erasure_settled_in_meta(uid) : left.status(),
                   "taking erased subject " + uid + " out of open review cases");
      }
    // A withdrawal only leaves the cases here: its exclusion (for searches recording while it
    // was written) would need the withdrawal's own sequence, which the basis row does not keep.
    auto withdrawals = hosted->replica->withdrawals_unsettled_in_meta();
    keep_first(withdrawals.status(), "the withdrawals to settle on shard " + std::to_string(s));
    if (withdrawals.is_ok())
      for (const auto& [basis_id, uid, lapsed] : *withdrawals) {
        auto w = withdrawn_purposes(s, uid, basis_id);
        auto left = w.is_ok() ? exclude_from_review_in_meta(actor, uid, w->kept, {}, 0, lapsed ? "retention" : "withdrawal")
                              : Result<int64_t>(w.status());
        keep_first(left.is_ok() ? hosted->replica->mark_withdrawal_settled_in_meta(basis_id) : left.status(),
                   "taking subject " + uid + " out of the open review cases of a withdrawn basis");
      }
  }
  return first;
}

Result<int64_t> ClusterService::erasure_seq(int s, const std::string& uid) {
  auto& replica = *node_.shard(s)->replica;
  FV_ASSIGN_OR_RETURN(const auto seq, replica.erasure_seq(uid));
  if (seq) return *seq;
  // Not applied here yet: the stream's current sequence is at or after it.
  FV_RETURN_IF_ERROR(replica.catch_up(copt_.catch_up_ms));
  return static_cast<int64_t>(replica.applied());
}

Status ClusterService::finish_cluster_erasure(const Actor& actor, int s, EraseReceipt& r) {
  auto* hosted = node_.shard(s);
  const uint64_t applied = hosted->replica->applied();
  auto erased = hosted->writer->erase_messages_of_subject(r.subject_uid);
  if (!erased.is_ok())
    return Status(erased.status().code(),
                  "the subject is erased from every replica's vault, but not yet its earlier messages from the shard's "
                  "stream (" + erased.status().message() + "); every node completes that at its next start "
                  "(ClusterNode::sweep_pending_erasures): no receipt until then");
  r.stream_messages_erased = *erased;
  // The reference directory forgets the reference, so that it no longer leads to the erased
  // uid and a new subject under it gets a new one. Best effort (the vaults and the stream are
  // erased already): a failure leaves a keyed hash naming a uid that no vault holds. Before the
  // meta write, which may fail: the erased uid is never handed out again meanwhile.
  if (!r.subject_ref.empty())
    (void)with_directory_retries([&]() -> Result<bool> {
      FV_RETURN_IF_ERROR(refs_->purge(directory_key(r.subject_ref)));
      return true;
    });
  // The subject leaves the open review cases, which live in the meta vault (where candidates
  // carry its uid only), from the sequence of its erasure message on. Before the receipt: a
  // receipt means no open case holds it, and no search recording later puts it in one.
  auto seq = erasure_seq(s, r.subject_uid);
  auto left = seq.is_ok() ? exclude_from_review_in_meta(actor, r.subject_uid, {}, {""}, *seq, "erasure")
                          : Result<int64_t>(seq.status());
  if (!left.is_ok())
    return Status(left.status().code(),
                  "the subject is erased from every replica's vault and the shard's stream, but not yet from the open "
                  "review cases (" + left.status().message() + "); the next erasure, retention run or start of a node "
                  "hosting the shard completes that: no receipt until then");
  r.review_candidates_removed += *left;
  (void)hosted->replica->mark_erasure_settled_in_meta(r.subject_uid);
  // Erasures another attempt left undone (a node that died between applying an erasure and
  // erasing its messages, or before its meta write): completed now. One query per shard when
  // there are none; what fails stays pending for the next erasure, retention run or start.
  (void)node_.sweep_pending_erasures();
  (void)settle_in_meta(kErasureSettler);
  FV_ASSIGN_OR_RETURN(r.replicas, replicas_at(s, applied));
  return Status::ok();
}

Result<std::vector<std::string>> ClusterService::replicas_at(int s, uint64_t applied) {
  FV_ASSIGN_OR_RETURN(const auto members, cluster::read_members(node_.connection()));
  std::vector<std::string> names;
  for (const auto& m : members) names.push_back(m.name);
  const int want = std::max<int>(1, static_cast<int>(cluster::replicas_of(s, names, node_.config().replicas).size()));
  auto* hosted = node_.shard(s);
  auto all = hosted->watch->wait(applied, want, copt_.receipt_wait_ms);
  if (all.is_ok()) return *all;
  std::vector<std::string> some;
  for (const auto& [name, seq] : hosted->watch->positions())
    if (seq >= applied) some.push_back(name);
  return some;
}

Result<ExpireReport> ClusterService::expire(const Actor& actor, const std::optional<std::string>& as_of, bool dry_run) {
  FV_ASSIGN_OR_RETURN(ExpireReport report, meta_->expire(actor, as_of, dry_run));  // oversight; no subject there
  // The retention run also completes stream erasures left undone (see finish_cluster_erasure);
  // what still fails stays pending for the next run.
  if (!dry_run) {
    (void)node_.sweep_pending_erasures();
    (void)settle_in_meta(kErasureSettler);
  }
  for (int s = 0; s < node_.config().shards; ++s) {
    auto part = expire_on(s, actor, report.as_of, dry_run);
    if (!part.is_ok() && part.status().code() == StatusCode::kAborted) {
      // Another node wrote to the shard meanwhile (its own retention run, say): this run
      // goes on with the other shards and says so.
      report.deferred_shards.push_back(s);
      continue;
    }
    if (!part.is_ok()) {
      // One shard that cannot run (its nodes unreachable, say) does not hold up the others.
      report.failed_shards.emplace_back(s, part.status().to_string());
      continue;
    }
    for (auto& r : part->erased) report.erased.push_back(std::move(r));
    for (auto& r : part->bases_lapsed) report.bases_lapsed.push_back(std::move(r));
    for (auto& f : part->failed_shards) report.failed_shards.push_back(std::move(f));
  }
  return report;
}

Result<ExpireReport> ClusterService::expire_on(int s, const Actor& actor, const std::string& as_of, bool dry_run) {
  if (!shard_service(s))
    return forwarded(s, {.op = "expire", .actor = actor, .as_of = as_of, .dry_run = dry_run}, decode_expire_report);
  // Not redone on a lost race: expiry commits subject by subject, and a redo would lose the
  // receipts of those already erased. Who is still due is erased at the next run.
  FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
  FV_ASSIGN_OR_RETURN(auto part, svc->expire(actor, as_of, dry_run));
  // Each erasure committed in the vaults is finished (stream, directory, review cases) whatever
  // another's finishing does; what fails is completed by the next run or start (the sweep).
  Status first;
  for (auto& r : part.erased) {
    const Status st = dry_run ? Status::ok() : finish_cluster_erasure(actor, s, r);
    if (!st.is_ok()) r.completion_error = st.to_string();
    if (!st.is_ok() && first.is_ok()) first = st;
  }
  for (auto& r : part.bases_lapsed) {
    const int64_t local = r.basis_id.value_or(0);
    const Status st = dry_run ? Status::ok() : finish_cluster_basis_erasure(actor, s, local, true, r);
    r.basis_id = global_id(local, s);
    if (!st.is_ok()) r.completion_error = st.to_string();
    if (!st.is_ok() && first.is_ok()) first = st;
  }
  if (!first.is_ok()) part.failed_shards.emplace_back(s, first.to_string());
  return part;
}

Result<nlohmann::json> ClusterService::export_subject(const Actor& actor, const std::string& subject,
                                                      bool include_templates,
                                                      const std::optional<std::filesystem::path>& images_dir) {
  FV_ASSIGN_OR_RETURN(const Placement placed, place(subject));
  if (placed.away) {
    if (images_dir)
      return unavailable("shard " + std::to_string(*placed.away) + " is not hosted on node " + node_.name() +
                         ": an export that writes the subject's images to a folder runs on a node hosting it");
    return forwarded(*placed.away, {.op = "export_subject", .actor = actor, .subject = subject, .include_templates = include_templates},
                     decode_json_result);
  }
  FV_ASSIGN_OR_RETURN(auto at, locate(subject, placed));
  if (at && copt_.fresh_reads) {
    // What another node changed (an erasure, a decision) is in the export: the subject's shard
    // and the meta vault first apply what their streams hold, then the subject is found again.
    FV_RETURN_IF_ERROR(fresh(at->shard));
    FV_RETURN_IF_ERROR(fresh(-1));
    FV_ASSIGN_OR_RETURN(at, locate(subject));
  }
  if (!at) return meta_->export_subject(actor, subject, include_templates, images_dir);  // refused there, audited
  FV_ASSIGN_OR_RETURN(Service * svc, shard(at->shard));
  FV_ASSIGN_OR_RETURN(nlohmann::json x, svc->export_subject(actor, at->uid, include_templates, images_dir));
  // The ids a client may act on are the cluster's (local × 1024 + shard), as everywhere else.
  const int s = at->shard;
  auto global = [s](nlohmann::json& v) {
    if (v.is_number_integer()) v = global_id(v.get<int64_t>(), s);
  };
  for (const char* list : {"lawful_bases", "source_images", "templates"}) {
    if (!x.contains(list) || !x[list].is_array()) continue;
    for (auto& item : x[list])
      for (const char* field : {"id", "basis_id", "image_id"})
        if (item.contains(field)) global(item[field]);
  }
  if (x.contains("reference_crops") && x["reference_crops"].contains("crops"))
    for (auto& c : x["reference_crops"]["crops"])
      if (c.contains("face_id")) global(c["face_id"]);
  // What the meta vault holds about the subject: its candidacies in review cases, and the
  // entries of the meta chain naming it (searches that returned it, decisions about it).
  auto& meta = *meta_->impl_;
  std::lock_guard<std::mutex> l(meta.mu);
  FV_ASSIGN_OR_RETURN(auto candidacies, meta.catalog().review_candidates_of_uid(at->uid));
  FV_RETURN_IF_ERROR(meta.export_reviews(actor, candidacies, x));
  vault::AuditQuery q;
  q.subject = at->uid;
  FV_ASSIGN_OR_RETURN(auto entries, meta.catalog().read_audit(q));
  FV_RETURN_IF_ERROR(meta.redact_hidden_decisions(actor, entries));
  nlohmann::json audit = x.contains("audit") && x["audit"].is_array() ? x["audit"] : nlohmann::json::array();
  for (auto& a : export_audit(entries, at->uid)) audit.push_back(std::move(a));
  std::stable_sort(audit.begin(), audit.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.value("ts", std::string()) < b.value("ts", std::string());
  });
  x["audit"] = std::move(audit);
  return x;
}

// ---------------------------------------------------------------- the opt-out registry

// Every shard keeps the whole registry: an enrollment on a shard checks it there, in the
// transaction that would store the template. An entry goes to every shard under one uid, a
// keyed hash of its template, so the same opt-out sent again completes what a failure left
// undone instead of adding a second entry.
Result<OptoutResult> ClusterService::optout_everywhere(const Actor& actor, const face::FaceTemplate& tmpl) {
  unsigned char h[8];
  crypto_generichash_state st;
  crypto_generichash_init(&st, directory_secret_.data(), directory_secret_.size(), sizeof h);
  static const char domain[] = "facevault optout";
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain), sizeof domain);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(tmpl.values.data()),
                            tmpl.values.size() * sizeof(float));
  crypto_generichash_final(&st, h, sizeof h);
  static const char* hex = "0123456789abcdef";
  OptoutResult total;
  for (unsigned char c : h) {
    total.optout_uid += hex[c >> 4];
    total.optout_uid += hex[c & 15];
  }
  // Every shard is asked, whatever another answers: a shard that failed is named, and the same
  // face sent again completes the entry (the same uid, which shards holding it add nothing for).
  Status first;
  std::string failed;
  int failures = 0;
  for (int s = 0; s < node_.config().shards; ++s) {
    auto part = optout_on(s, actor, tmpl, total.optout_uid);
    if (!part.is_ok()) {
      if (first.is_ok()) first = part.status();
      failed += (failed.empty() ? "" : ", ") + std::to_string(s);
      ++failures;
      continue;
    }
    total.enrolled_match_count += part->enrolled_match_count;
    if (!part->audit_hash.empty()) total.audit_hash = part->audit_hash;
  }
  if (failures == node_.config().shards) return first;  // recorded nowhere: the first failure as it is
  if (!first.is_ok())
    return Status(first.code(), "the opt-out is recorded on every shard but " + failed + " (" + first.message() +
                                    "): send the same photo again to complete it; enrollment of the face is refused "
                                    "only on the shards that hold it until then");
  return total;
}

Result<OptoutResult> ClusterService::optout_on(int s, const Actor& actor, const face::FaceTemplate& tmpl,
                                              const std::string& optout_uid) {
  if (!shard_service(s)) {
    return forwarded(s, {.op = "optout_shard", .actor = actor, .tmpl = tmpl, .subject = optout_uid}, decode_optout_result);
  }
  return write_on(s, [&](Service& svc) -> Result<OptoutResult> {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    return m.add_optout(actor, tmpl, optout_uid);
  });
}

Result<OptoutCheck> ClusterService::optout_check_on(int s, const Actor& actor) {
  if (auto* svc = shard_service(s)) return svc->optout_check(actor);
  return forwarded(s, {.op = "optout_check", .actor = actor}, decode_optout_check);
}

Result<OptoutResult> ClusterService::optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index) {
  auto& meta = *meta_->impl_;
  Upload upload(std::move(image_bytes), meta.options.on_wipe);
  FV_RETURN_IF_ERROR(meta.authorize(actor, Action::kOptoutAdd, "", "", Service::Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*pool_, std::move(upload), PhotoOptions{}, meta.options.on_wipe));
  FV_ASSIGN_OR_RETURN(const int k, choose_optout_face(photo->faces(), face_index));
  return optout_everywhere(actor, *photo->faces()[static_cast<size_t>(k)].face_template);
}

Result<OptoutResult> ClusterService::optout_add_template(const Actor& actor, const face::FaceTemplate& tmpl) {
  {
    auto& meta = *meta_->impl_;
    std::lock_guard<std::mutex> l(meta.mu);
    FV_RETURN_IF_ERROR(meta.authorize(actor, Action::kOptoutAdd));
  }
  return optout_everywhere(actor, tmpl);
}

Result<OptoutCheck> ClusterService::optout_check(const Actor& actor) {
  // Each shard matches the registry against its own subjects; the matches are their union.
  OptoutCheck all;
  bool first = true;
  for (int s = 0; s < node_.config().shards; ++s) {
    FV_ASSIGN_OR_RETURN(auto part, optout_check_on(s, actor));
    all.threshold = part.threshold;
    for (auto& m : part.matches) all.matches.push_back(std::move(m));
    // An entry is compared with nothing only if no shard holds a template of its model.
    all.incomparable_optouts = first ? part.incomparable_optouts : std::min(all.incomparable_optouts, part.incomparable_optouts);
    all.audit_hash = part.audit_hash;
    first = false;
  }
  std::sort(all.matches.begin(), all.matches.end(), [](const auto& a, const auto& b) { return a.similarity > b.similarity; });
  return all;
}

// ---------------------------------------------------------------- review cases (meta vault)

Status ClusterService::resolve_candidates(ReviewCase& rc) {
  // A case in the meta vault names its candidates by uid: their references and reference
  // crops are on their shards.
  for (auto& k : rc.candidates) {
    if (!k.subject_ref.empty()) continue;
    FV_ASSIGN_OR_RETURN(auto found, candidate_on_shard(k.subject_uid, rc.purpose));
    if (!found) continue;  // erased: shown by uid only, as on one vault
    k.subject_ref = found->first;
    k.reference_available = found->second;
  }
  return Status::ok();
}

Result<std::optional<std::pair<std::string, bool>>> ClusterService::candidate_on_shard(const std::string& uid,
                                                                                     const std::string& purpose) {
  using Found = CandidateOnShard;
  if (!is_uid(uid)) return Found();
  const int s = cluster::shard_of(uid, node_.config().shards);
  if (!shard_service(s)) {
    // A read between nodes, for a use case the caller's node audits.
    const Actor self{"cluster:" + node_.name(), Role::kAuditor};
    return forwarded(s, {.op = "candidate", .actor = self, .subject = uid, .reason = purpose}, decode_candidate);
  }
  FV_ASSIGN_OR_RETURN(auto at, locate_uid(uid));
  if (!at) return Found();
  FV_ASSIGN_OR_RETURN(Service * svc, shard(at->shard));
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_ASSIGN_OR_RETURN(auto row, m.catalog().find_subject(at->uid));
  if (!row) return Found();
  FV_ASSIGN_OR_RETURN(const int64_t crops, m.catalog().count_reference_crops(row->id, purpose));
  return Found(std::make_pair(row->ref, crops > 0));
}

Result<std::vector<ReviewCase>> ClusterService::review_list(const Actor& actor, const ReviewListFilter& filter) {
  FV_ASSIGN_OR_RETURN(auto cases, meta_->review_list(actor, filter));
  for (auto& c : cases) FV_RETURN_IF_ERROR(resolve_candidates(c));
  return cases;
}

Result<ReviewCase> ClusterService::review_show(const Actor& actor, const std::string& case_id, const PurposeScope& scope) {
  FV_ASSIGN_OR_RETURN(auto rc, meta_->review_show(actor, case_id, scope));
  FV_RETURN_IF_ERROR(resolve_candidates(rc));
  return rc;
}

Result<ReviewImage> ClusterService::review_reference_image(const Actor& actor, const std::string& case_id,
                                                           int64_t candidate_id, const PurposeScope& scope) {
  // The case and the caller's right to read it are the meta vault's to check.
  FV_ASSIGN_OR_RETURN(auto rc, meta_->review_show(actor, case_id, scope));
  auto k = std::find_if(rc.candidates.begin(), rc.candidates.end(), [&](const auto& x) { return x.id == candidate_id; });
  if (k == rc.candidates.end()) return not_found("review case " + rc.id + " has no candidate " + std::to_string(candidate_id));
  FV_ASSIGN_OR_RETURN(ReviewImage crop, reference_crop_on_shard(k->subject_uid, rc.purpose));
  vault::Bytes plain = std::move(crop.jpeg);
  // Audited as a viewing of biometric data, in the case's vault.
  auto h = write_on(-1, [&](Service& meta) -> Result<std::string> {
    auto& mm = *meta.impl_;
    std::lock_guard<std::mutex> l(mm.mu);
    vault::AuditEntry e = mm.entry(actor, Action::kReviewRead);
    e.purpose = rc.purpose;
    e.case_ref = rc.case_ref;
    e.subjects = {k->subject_uid};
    e.details = {{"review_case", rc.id}, {"image", "reference"}, {"candidate", k->id}};
    return mm.audit_now(e);
  });
  if (!h.is_ok()) {
    vault::wipe(plain);
    return h.status();
  }
  return ReviewImage{std::move(plain)};
}

Result<ReviewImage> ClusterService::reference_crop_on_shard(const std::string& uid, const std::string& purpose) {
  if (!is_uid(uid)) return not_found("the candidate's subject was erased: no reference face is kept");
  const int s = cluster::shard_of(uid, node_.config().shards);
  if (!shard_service(s)) {
    // A read between nodes, for a use case the caller's node authorised and audits.
    const Actor self{"cluster:" + node_.name(), Role::kAuditor};
    return forwarded(s, {.op = "reference_image", .actor = self, .subject = uid, .reason = purpose}, decode_review_image);
  }
  FV_ASSIGN_OR_RETURN(auto at, locate_uid(uid));
  if (!at) return not_found("the candidate's subject was erased: no reference face is kept");
  FV_ASSIGN_OR_RETURN(Service * svc, shard(at->shard));
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_ASSIGN_OR_RETURN(auto row, m.catalog().find_subject(at->uid));
  if (!row) return not_found("the candidate's subject was erased: no reference face is kept");
  FV_ASSIGN_OR_RETURN(auto crops, m.catalog().reference_crops(row->id, purpose));
  if (crops.empty())
    return not_found("no reference face is kept for this candidate (the vault keeps none unless enrollment asked): "
                     "compare without one");
  const auto& [face_id, sealed] = crops.front();
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->subject_key(row->id));
  auto opened = vault::open_sealed(key, sealed, vault::reference_ad(row->id, face_id));
  if (!opened.is_ok()) return corrupt_data("a reference face does not decrypt");
  return ReviewImage{std::move(*opened)};
}

// ---------------------------------------------------------------- the meta vault

Result<PhotoComparison> ClusterService::verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b,
                                                      double fmr, bool liveness) {
  return meta_->verify_photos(actor, std::move(a), std::move(b), fmr, liveness);
}
Result<Detection> ClusterService::detect(const Actor& actor, std::vector<uint8_t> image_bytes) {
  return meta_->detect(actor, std::move(image_bytes));
}
Result<ReviewDecision> ClusterService::review_decide(const Actor& actor, const std::string& case_id,
                                                     const ReviewDecisionRequest& req) {
  // The decision records whether the reviewer had a reference crop to compare with; the case is
  // in the meta vault, the crop (if any) on the candidate's shard. Looked up before the
  // decision's transaction; its checks (role, scope, the case's state) stay the meta vault's.
  std::optional<bool> known_reference;
  std::string uid, purpose;
  {
    auto& mm = *meta_->impl_;
    std::lock_guard<std::mutex> l(mm.mu);
    FV_ASSIGN_OR_RETURN(auto c, mm.catalog().find_review_case(case_id));
    if (c) {
      purpose = c->purpose;
      for (const auto& k : c->candidates)
        if (k.id == req.candidate_id) uid = k.subject_uid;
    }
  }
  if (!uid.empty()) {
    FV_ASSIGN_OR_RETURN(auto found, candidate_on_shard(uid, purpose));
    known_reference = found && found->second;  // an erased subject keeps no reference
  }
  return write_on(-1, [&](Service& m) { return m.impl_->review_decide(actor, case_id, req, known_reference); });
}
Result<ReviewImage> ClusterService::review_probe_image(const Actor& actor, const std::string& case_id, int face_index,
                                                       const PurposeScope& scope) {
  return meta_->review_probe_image(actor, case_id, face_index, scope);
}
Result<Authorisation> ClusterService::authorisation_add(const Actor& actor, const AuthorisationRequest& req) {
  return write_on(-1, [&](Service& m) { return m.authorisation_add(actor, req); });
}
Result<Authorisation> ClusterService::authorisation_grant(const Actor& actor, const std::string& id, const std::string& note) {
  return write_on(-1, [&](Service& m) { return m.authorisation_grant(actor, id, note); });
}
Result<Authorisation> ClusterService::authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note) {
  return write_on(-1, [&](Service& m) { return m.authorisation_refuse(actor, id, note); });
}
Result<std::vector<Authorisation>> ClusterService::authorisation_list(const Actor& actor) {
  return meta_->authorisation_list(actor);
}
Result<LapseReport> ClusterService::oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of) {
  return write_on(-1, [&](Service& m) { return m.oversight_sweep(actor, as_of); });
}
Result<vault::AuditCheckpoint> ClusterService::audit_checkpoint(const Actor& actor) {
  return write_on(-1, [&](Service& m) { return m.audit_checkpoint(actor); });
}
Result<vault::NewApiKey> ClusterService::create_api_key(const Actor& actor, Role role,
                                                        const std::vector<std::string>& purposes,
                                                        const std::string& label) {
  return write_on(-1, [&](Service& m) { return m.create_api_key(actor, role, purposes, label); });
}
Status ClusterService::revoke_api_key(const Actor& actor, const std::string& key_id) {
  auto r = write_on(-1, [&](Service& m) -> Result<bool> {
    FV_RETURN_IF_ERROR(m.revoke_api_key(actor, key_id));
    return true;
  });
  return r.status();
}
Result<std::vector<vault::ApiKey>> ClusterService::list_api_keys(const Actor& actor) { return meta_->list_api_keys(actor); }
Result<std::pair<Actor, vault::ApiKey>> ClusterService::authenticate_key(const std::string& presented) {
  // A key revoked through another node is refused here from the revocation's acknowledgement
  // on: the meta replica first applies what its stream holds (and fails closed, 503, when it
  // cannot confirm it did).
  FV_RETURN_IF_ERROR(fresh(-1));
  return meta_->authenticate_key(presented);
}
Status ClusterService::record_denial(const Actor& actor, Action action, const std::string& reason,
                                     const nlohmann::json& details, const std::string& purpose,
                                     const std::string& case_ref) {
  auto r = write_on(-1, [&](Service& m) -> Result<bool> {
    FV_RETURN_IF_ERROR(m.record_denial(actor, action, reason, details, purpose, case_ref));
    return true;
  });
  return r.status();
}
Result<std::string> ClusterService::record_event(const Actor& actor, Action action, const nlohmann::json& details) {
  return write_on(-1, [&](Service& m) { return m.record_event(actor, action, details); });
}

Status ClusterService::health() {
  // A replica that stopped applying its stream (diverged, or its vault failed) makes the node
  // unhealthy: it would serve stale data.
  FV_RETURN_IF_ERROR(node_.meta().replica->error());
  for (int s : node_.hosted_shards()) FV_RETURN_IF_ERROR(node_.shard(s)->replica->error());
  FV_RETURN_IF_ERROR(meta_->health());
  for (int s = 0; s < node_.config().shards; ++s)
    if (Service* svc = shard_service(s)) FV_RETURN_IF_ERROR(svc->health());
  return Status::ok();
}

ServiceStats ClusterService::stats() {
  ServiceStats st = meta_->stats();
  st.templates = 0;
  st.subjects = 0;
  bool counted = true;  // the vault counts are given only when every shard's vault answered
  for (int s = 0; s < node_.config().shards; ++s) {
    Service* svc = shard_service(s);
    if (!svc) continue;
    const ServiceStats part = svc->stats();
    counted = counted && part.templates && part.subjects;
    if (counted) {
      *st.templates += *part.templates;
      *st.subjects += *part.subjects;
    }
    st.templates_in_memory += part.templates_in_memory;
    st.audit_write_failures += part.audit_write_failures;
  }
  if (!counted) {
    st.templates.reset();
    st.subjects.reset();
  }
  replication_progress(st);
  return st;
}

void ClusterService::replication_progress(ServiceStats& st) {
  auto add = [&](cluster::HostedStream& h) {
    ServiceStats::StreamProgress p{h.stream, h.replica->applied(), std::nullopt};
    if (auto last = cluster::last_sequence(node_.connection(), h.stream); last.is_ok()) p.last = *last;
    st.replication.push_back(std::move(p));
  };
  add(node_.meta());
  for (int s : node_.hosted_shards()) add(*node_.shard(s));
}

// The face pipelines, and every hosted shard's gallery: a node loads a gallery on its shard's
// first search otherwise, inside the request, and at ~60,000 templates per shard that outlasts
// the shard timeout of the node that asked (docs/benchmarks.md, "The 1 M run").
Status ClusterService::warm_up() {
  FV_RETURN_IF_ERROR(meta_->warm_up());
  for (int s = 0; s < node_.config().shards; ++s) {
    Service* svc = shard_service(s);
    if (!svc) continue;
    Status st = svc->impl_->warm_gallery();
    if (!st.is_ok()) return Status(st.code(), "loading the gallery of shard " + std::to_string(s) + ": " + st.message());
  }
  return Status::ok();
}

}  // namespace fv::service
