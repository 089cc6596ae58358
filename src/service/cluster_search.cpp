// ClusterService's search: checked and audited once in the meta vault, scanned on every shard
// with the purpose filter inside each shard's index, merged, and calibrated on the eligible
// templates of all shards together (FPIR depends on the gallery's size, not a shard's).
//
// A shard this node hosts is searched in process; any other is asked over NATS request/reply
// (cluster/rpc.h), where one live replica of the shard answers for its queue group. One round:
// the operating point depends on the eligible total (identification's threshold rises with
// it), which no shard knows, so every shard returns its count and its best `top` candidates
// at the loosest point (the threshold for a gallery of one). The node sums the counts, sets
// the operating point on the total and keeps the candidates at or above it. A shard's best
// `top` above the loose threshold, cut at the final one, are its best `top` above the final
// one: the answer is the one a round of counting first would give, one round trip sooner.
#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "cluster/rpc.h"
#include "service/cluster_service.h"
#include "service/photo.h"
#include "service/service_impl.h"
#include "service/shard_search_wire.h"

namespace fv::service {

namespace {

struct ShardHit {
  Candidate candidate;
  int shard = 0;
};

}  // namespace

Result<ShardAnswer> ClusterService::search_on(int s, const std::string& purpose, const SearchPlan& plan,
                                             const std::vector<const face::FaceTemplate*>& probes) {
  FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
  ShardAnswer a;
  // Read before the vault is: what the search reads below is at least this state (the replica
  // applies through its own connection meanwhile), so an exclusion after it covers every
  // candidate this search could return from an older state (record_search).
  a.searched_seq = static_cast<int64_t>(node_.shard(s)->replica->applied());
  auto& m = *svc->impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.load_gallery());
  FV_ASSIGN_OR_RETURN(auto eligible, m.eligible_subjects(purpose));
  a.count = {static_cast<int64_t>(eligible->subjects.size()), m.gallery->eligible_templates(*eligible)};
  a.faces.resize(probes.size());
  for (size_t i = 0; i < probes.size(); ++i) {
    if (!probes[i]) continue;
    FV_ASSIGN_OR_RETURN(a.faces[i], m.scan(plan, *probes[i], *eligible));
  }
  return a;
}

// What another node asks of a shard this node hosts. The replica first applies what its stream
// holds: an erasure or withdrawal acknowledged through another node is never searched past.
Result<vault::Bytes> ClusterService::serve_shard_search(int s, std::span<const uint8_t> request) {
  FV_ASSIGN_OR_RETURN(ShardSearchRequest req, decode_shard_request(request));
  FV_RETURN_IF_ERROR(fresh(s));
  std::vector<const face::FaceTemplate*> ps;
  for (const auto& p : req.probes) ps.push_back(&p);
  FV_ASSIGN_OR_RETURN(ShardAnswer a, search_on(s, req.purpose, req.plan, ps));
  return encode_shard_answer(a);
}

// The faces of `res` get their candidates; `probes[i]` is face i's template (null: none).
Status ClusterService::fan_out(const Actor& actor, const SearchRequest& req, const CitedAuthorisation& auth,
                               const std::vector<const face::FaceTemplate*>& probes, SearchProbe& probe,
                               SearchResult& res) {
  const int shards = node_.config().shards;
  std::vector<int> local, remote;
  for (int s = 0; s < shards; ++s) (shard_service(s) ? local : remote).push_back(s);
  std::set<int> missing;
  // A shard that cannot answer fails the search, unless the caller asked for partial results:
  // then it is left out and named in the result and in the audit entry.
  auto unanswered = [&](int s, const Status& st) -> Status {
    const Status named(st.code(), "shard " + std::to_string(s) + ": " + st.message());
    if (st.code() != StatusCode::kUnavailable || !req.allow_partial) return named;
    missing.insert(s);
    return Status::ok();
  };
  // Remote calls go out first and run while the hosted shards are searched here; a node that
  // hosts every shard asks nobody (no thread, no encoding).
  using Replies = std::vector<Result<vault::Bytes>>;
  auto ask = [&](const std::vector<int>& to, auto&& body) {
    if (to.empty()) return std::async(std::launch::deferred, [] { return Replies(); });
    std::vector<cluster::RpcCall> calls;
    const vault::Bytes b = body();
    for (int s : to) calls.push_back({cluster::shard_rpc_subject(s, "search"), b});
    return std::async(std::launch::async, [this, calls = std::move(calls)] {
      auto r = cluster::rpc_scatter(node_.connection(), master_, calls, copt_.shard_timeout_ms);
      // Nothing could be sent (NATS unreachable): every remote shard is unanswered.
      if (!r.is_ok()) return Replies(calls.size(), r.status());
      Replies out;
      for (auto& reply : *r) out.push_back(std::move(reply.result));
      return out;
    });
  };

  // The loosest operating point: the threshold for a gallery of one template (the others do
  // not depend on the gallery's size), each shard's best `top` above it.
  SearchPlan loose;
  {
    SearchResult scratch;
    FV_RETURN_IF_ERROR(meta_->impl_->plan_search_for(req, 1, 1, scratch, loose));
  }
  const size_t sent = static_cast<size_t>(std::count_if(probes.begin(), probes.end(), [](const auto* p) { return p != nullptr; }));
  auto answered = ask(remote, [&] { return encode_search_request(req.purpose, loose, probes); });
  std::map<int, ShardAnswer> per_shard;
  const std::vector<Status> current = fresh_each(local);
  for (size_t j = 0; j < local.size(); ++j) {
    const int s = local[j];
    auto a = current[j].is_ok() ? search_on(s, req.purpose, loose, probes) : Result<ShardAnswer>(current[j]);
    if (!a.is_ok()) {
      FV_RETURN_IF_ERROR(unanswered(s, a.status()));
      continue;
    }
    per_shard[s] = std::move(*a);
  }
  auto answers = answered.get();
  for (size_t j = 0; j < remote.size(); ++j) {
    auto a = answers[j].is_ok() ? decode_shard_answer(*answers[j], sent) : Result<ShardAnswer>(answers[j].status());
    if (!a.is_ok()) {
      FV_RETURN_IF_ERROR(unanswered(remote[j], a.status()));
      continue;
    }
    // Back from the probes sent to the faces they belong to.
    ShardFaces faces(probes.size());
    for (size_t i = 0, k = 0; i < probes.size(); ++i)
      if (probes[i]) faces[i] = std::move(a->faces[k++]);
    a->faces = std::move(faces);
    per_shard[remote[j]] = std::move(*a);
  }
  int64_t subjects = 0, templates = 0;
  for (const auto& [s, a] : per_shard) {
    subjects += a.count.subjects;
    templates += a.count.templates;
  }
  SearchPlan plan;
  auto& meta = *meta_->impl_;
  FV_RETURN_IF_ERROR(meta.plan_search_for(req, subjects, templates, res, plan));
  const auto* cal = meta.calibration();

  // Merged in shard order, so equal scores rank the same whichever node searched.
  // Cut at the operating point of the whole gallery (Gallery::search keeps scores at or above
  // its threshold), each candidate's FPIR for the whole gallery's size.
  std::vector<std::vector<ShardHit>> hits(probes.size());
  for (auto& [s, a] : per_shard)
    for (size_t i = 0; i < a.faces.size(); ++i)
      for (auto& c : a.faces[i]) {
        if (c.similarity < plan.threshold) continue;
        if (cal && c.fpir) c.fpir = cal->fpir_at(c.similarity, static_cast<size_t>(std::max<int64_t>(1, plan.templates)));
        hits[i].push_back({std::move(c), s});
      }
  for (size_t i = 0; i < probes.size(); ++i) {
    auto& h = hits[i];
    std::stable_sort(h.begin(), h.end(), [](const ShardHit& a, const ShardHit& b) {
      return a.candidate.similarity > b.candidate.similarity;
    });
    if (h.size() > plan.top) h.resize(plan.top);
    probe.subject_ids.emplace_back(h.size(), 0);
    probe.searched_seqs.emplace_back();
    for (auto& x : h) {
      probe.searched_seqs.back().push_back(per_shard[x.shard].searched_seq);
      res.faces[i].candidates.push_back(std::move(x.candidate));
    }
  }
  res.shards_missing.assign(missing.begin(), missing.end());
  probe.foreign_subjects = true;
  if (before_record_) before_record_();
  // One audit entry and one review case, in the meta vault; redone if another node's meta
  // write got there first.
  auto recorded = write_on(-1, [&](Service& meta) -> Result<bool> {
    auto& mm = *meta.impl_;
    std::lock_guard<std::mutex> l(mm.mu);
    FV_RETURN_IF_ERROR(mm.record_search(actor, req, auth, probe, res));
    return true;
  });
  return recorded.status();
}

Result<SearchResult> ClusterService::search_templates(const Actor& actor, const SearchRequest& req_in,
                                                      const std::vector<face::FaceTemplate>& probes) {
  auto& meta = *meta_->impl_;
  const SearchRequest req = within_search_limits(req_in, meta.config().search_max_fmr);
  CitedAuthorisation auth;
  {
    std::lock_guard<std::mutex> l(meta.mu);
    FV_RETURN_IF_ERROR(meta.check_search(actor, req));
    FV_ASSIGN_OR_RETURN(auth, meta.check_authorisation(actor, req, Service::Impl::AuditVia::kMain));
  }
  SearchResult res;
  std::vector<const face::FaceTemplate*> ps;
  SearchProbe probe;  // no photo: no hash, no crop
  for (const auto& p : probes) {
    SearchFace sf;
    sf.quality_ok = true;
    res.faces.push_back(std::move(sf));
    ps.push_back(&p);
  }
  FV_RETURN_IF_ERROR(fan_out(actor, req, auth, ps, probe, res));
  return res;
}

Result<SearchResult> ClusterService::search(const Actor& actor, const SearchRequest& req_in,
                                            std::vector<uint8_t> image_bytes) {
  auto& meta = *meta_->impl_;
  Upload upload(std::move(image_bytes), meta.options.on_wipe);
  const SearchRequest req = within_search_limits(req_in, meta.config().search_max_fmr);
  // Checked before the photo is analyzed, without the lock (a refusal is audited through the
  // meta vault's second connection).
  FV_RETURN_IF_ERROR(meta.check_search(actor, req, Service::Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth, meta.check_authorisation(actor, req, Service::Impl::AuditVia::kAux));
  PhotoOptions po;
  po.hash = true;   // the review case records which photo was searched
  po.crops = true;  // and keeps its faces for the reviewers (sealed; destroyed at closure)
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*pool_, std::move(upload), po, meta.options.on_wipe));
  SearchResult res;
  std::vector<const face::FaceTemplate*> ps;
  SearchProbe probe;
  probe.sha256 = photo->sha256();
  for (size_t i = 0; i < photo->faces().size(); ++i) {
    const auto& f = photo->faces()[i];
    SearchFace sf;
    sf.box = f.detection.box;
    sf.quality_ok = f.quality.acceptable;
    res.faces.push_back(std::move(sf));
    probe.crops.push_back(photo->crop(i));
    ps.push_back(f.face_template ? &*f.face_template : nullptr);
  }
  FV_RETURN_IF_ERROR(fan_out(actor, req, auth, ps, probe, res));
  return res;
}

}  // namespace fv::service
