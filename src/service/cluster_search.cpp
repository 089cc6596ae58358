// ClusterService's search: checked and audited once in the meta vault, scanned on every shard
// with the purpose filter inside each shard's index, merged, and calibrated on the eligible
// templates of all shards together (FPIR depends on the gallery's size, not a shard's).
#include <algorithm>

#include "service/cluster_service.h"
#include "service/photo.h"
#include "service/service_impl.h"

namespace fv::service {

namespace {

struct ShardHit {
  Candidate candidate;
  int shard = 0;
};

}  // namespace

// The faces of `res` get their candidates; `probes[i]` is face i's template (null: none).
Status ClusterService::fan_out(const Actor& actor, const SearchRequest& req, const CitedAuthorisation& auth,
                               const std::vector<const face::FaceTemplate*>& probes, SearchProbe& probe,
                               SearchResult& res) {
  const int shards = node_.config().shards;
  std::vector<Service*> svcs;
  for (int s = 0; s < shards; ++s) {
    FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
    svcs.push_back(svc);
  }
  // A replica answers only once it has applied everything its stream held when the search
  // began: an erasure or withdrawal acknowledged through another node is never searched past.
  for (int s = 0; s < shards; ++s) FV_RETURN_IF_ERROR(fresh(s));
  // Pass 1: how many subjects and templates each shard has eligible for the purpose.
  int64_t subjects = 0, templates = 0;
  for (Service* svc : svcs) {
    auto& m = *svc->impl_;
    std::lock_guard<std::mutex> l(m.mu);
    FV_RETURN_IF_ERROR(m.load_gallery());
    FV_ASSIGN_OR_RETURN(auto eligible, m.eligible_subjects(req.purpose));
    subjects += static_cast<int64_t>(eligible->subjects.size());
    templates += m.gallery->eligible_templates(*eligible);
  }
  SearchPlan plan;
  {
    auto& meta = *meta_->impl_;
    FV_RETURN_IF_ERROR(meta.plan_search_for(req, subjects, templates, res, plan));
  }
  // Pass 2: each shard's best `plan.top` per face, at the cluster's operating point.
  std::vector<std::vector<ShardHit>> hits(probes.size());
  for (int s = 0; s < shards; ++s) {
    auto& m = *svcs[static_cast<size_t>(s)]->impl_;
    std::lock_guard<std::mutex> l(m.mu);
    FV_RETURN_IF_ERROR(m.load_gallery());
    FV_ASSIGN_OR_RETURN(auto eligible, m.eligible_subjects(req.purpose));
    for (size_t i = 0; i < probes.size(); ++i) {
      if (!probes[i]) continue;
      FV_ASSIGN_OR_RETURN(auto found, m.scan(plan, *probes[i], *eligible));
      for (auto& c : found) hits[i].push_back({std::move(c), s});
    }
  }
  for (size_t i = 0; i < probes.size(); ++i) {
    auto& h = hits[i];
    std::stable_sort(h.begin(), h.end(), [](const ShardHit& a, const ShardHit& b) {
      return a.candidate.similarity > b.candidate.similarity;
    });
    if (h.size() > plan.top) h.resize(plan.top);
    probe.subject_ids.emplace_back(h.size(), 0);
    for (auto& x : h) res.faces[i].candidates.push_back(std::move(x.candidate));
  }
  probe.foreign_subjects = true;
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
