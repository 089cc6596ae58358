// Search and verification against the vault: 1:N (search, search_templates) and 1:1 of a
// probe against one enrolled subject (verify_subject), under purpose limitation.
#include <algorithm>
#include <cmath>
#include <set>

#include "service/service_impl.h"

namespace fv::service {

using vault::AuditEntry;
using nlohmann::json;

namespace {

size_t top_of(const SearchRequest& req, int config_default) {
  return static_cast<size_t>(req.top_k > 0 ? req.top_k : req.mode == "investigation" ? 50 : config_default);
}

}  // namespace

// A search request may tighten the vault's false-match-rate limit (config search_max_fmr),
// never loosen it: `--max-fmr 1` must not turn a search into a list of everyone eligible.
SearchRequest within_search_limits(const SearchRequest& req, double config_max_fmr) {
  SearchRequest r = req;
  const double asked = req.max_fmr.value_or(config_max_fmr);
  r.max_fmr = asked > 0 && asked < config_max_fmr ? asked : config_max_fmr;
  return r;
}

Result<std::shared_ptr<Gallery::Eligibility>> Service::Impl::eligible_subjects(const std::string& purpose) {
  // Subjects whose lawful basis covers the purpose now, within retention: the filter the scan
  // applies to every gallery entry, so K eligible candidates come back whoever else is near.
  // Purpose limitation is per template: only templates collected under a basis that is in
  // force and covers the purpose are searchable (`bases`), and their subjects are the eligible
  // ones. A subject with a second basis for another purpose does not make a template collected
  // under the first searchable for the second. Cached per purpose (a search must not cost a
  // pass over every basis) while the vault's eligibility generation is unchanged (bumped by
  // triggers, by any process) and the clock is before the earliest expiry among them.
  FV_ASSIGN_OR_RETURN(const int64_t generation, catalog().generation(vault::Generation::kEligibility));
  const std::string t = now();
  if (auto cached = gallery->cached_eligibility(purpose, generation, t)) return cached;
  auto e = std::make_shared<Gallery::Eligibility>();
  e->generation = generation;
  e->computed_at = t;
  auto earlier = [&](const std::string& when) {
    if (!when.empty() && (e->valid_until.empty() || when < e->valid_until)) e->valid_until = when;
  };
  FV_ASSIGN_OR_RETURN(auto rows, catalog().eligible_bases(purpose, t));
  for (auto& r : rows) {
    e->bases.insert(r.basis_id);
    e->subjects.insert(r.subject_id);
    if (r.expires_at) earlier(*r.expires_at);
    earlier(r.retention_until);
  }
  gallery->remember_eligibility(purpose, e);
  return e;
}

Status Service::Impl::check_search(const Actor& actor, const SearchRequest& req, AuditVia via) {
  FV_RETURN_IF_ERROR(authorize(actor, Action::kSearch, req.purpose, req.case_ref, via));
  if (std::find(kSearchModes.begin(), kSearchModes.end(), req.mode) == kSearchModes.end())
    return invalid_argument("unknown search mode '" + req.mode + "' (threshold, identification, investigation)");
  AuditEntry e = entry(actor, Action::kSearch);
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  if (req.purpose.empty() || req.case_ref.empty() || !valid_token(req.purpose) || !valid_ref(req.case_ref))
    return refuse(std::move(e), "refused", {{"reason", "a search needs a purpose and a case reference"}},
                  invalid_argument("a search needs a purpose (--purpose) and a case reference (--case)"), via);
  // A credential limited to some purposes (an API key's scope).
  if (req.allowed_purposes &&
      std::find(req.allowed_purposes->begin(), req.allowed_purposes->end(), req.purpose) == req.allowed_purposes->end()) {
    std::string allowed;
    for (auto& p : *req.allowed_purposes) allowed += (allowed.empty() ? "" : ", ") + p;
    return refuse(std::move(e), "denied", {{"reason", "purpose not allowed for this API key"}},
                  permission_denied("this API key may not search for the purpose '" + req.purpose + "' (allowed: " +
                                    (allowed.empty() ? "none" : allowed) + ")"), via);
  }
  return Status::ok();
}

// The operating point of a search: threshold by FMR (default), by FPIR for the number of
// eligible templates (identification), or none (investigation: the top k for review).
Status Service::Impl::plan_search(const SearchRequest& req, Gallery::Eligibility& eligible, SearchResult& res,
                                  SearchPlan& plan) {
  return plan_search_for(req, static_cast<int64_t>(eligible.subjects.size()), gallery->eligible_templates(eligible), res,
                         plan);
}

Status Service::Impl::plan_search_for(const SearchRequest& req, int64_t subjects, int64_t templates,
                                      SearchResult& res, SearchPlan& plan) {
  res.purpose = req.purpose;
  res.case_ref = req.case_ref;
  res.mode = req.mode;
  res.max_fmr = req.max_fmr.value_or(config().search_max_fmr);
  res.calibration = calibration() ? calibration()->source() : "none (no calibration table for this model)";
  res.eligible_subjects = subjects;
  res.eligible_templates = templates;
  if (req.mode == "investigation") {
    res.threshold = -1.0;
    res.max_fmr = 1.0;
  } else if (req.mode == "identification") {
    const double fpir = req.max_fpir.value_or(0.01);
    if (!(fpir > 0 && fpir < 1)) return invalid_argument("max_fpir must be in (0, 1)");
    // FPIR(N) = 1 − (1 − FMR)^N  ⇒  FMR = 1 − (1 − FPIR)^(1/N).
    const double n = static_cast<double>(std::max<int64_t>(1, templates));
    res.max_fmr = -std::expm1(std::log1p(-fpir) / n);
    res.threshold = search_threshold(res.max_fmr);
  } else {
    res.threshold = search_threshold(res.max_fmr);
  }
  plan.threshold = res.threshold;
  plan.templates = templates;
  plan.top = top_of(req, config().search_default_top);
  return Status::ok();
}

Result<std::vector<Candidate>> Service::Impl::scan(const SearchPlan& plan, const face::FaceTemplate& probe,
                                                   const Gallery::Eligibility& eligible,
                                                   std::vector<int64_t>* subject_ids) {
  // Purpose limitation inside the index: a face of a subject outside `eligible` never takes
  // a place in the candidate list, so k eligible candidates come back whoever else is near.
  index::FunctionFilter filter([&](index::Id face) {
    const auto* o = gallery->owner(face);
    return o && eligible.bases.count(o->basis_id) > 0;
  });
  FV_ASSIGN_OR_RETURN(auto best, gallery->search(probe, plan.top, plan.threshold, &filter, rebuild_hook()));
  std::vector<std::pair<int64_t, Candidate>> found;
  for (auto& [sid, b] : best) {
    const auto* info = gallery->subject(sid);
    if (!info) continue;
    Candidate c{info->ref, info->uid, b.similarity, std::nullopt, std::nullopt};
    if (const auto* cal = calibration()) {
      c.fmr = cal->fmr_at(b.similarity);
      c.fpir = cal->fpir_at(b.similarity, static_cast<size_t>(std::max<int64_t>(1, plan.templates)));
    }
    found.emplace_back(sid, std::move(c));
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.second.similarity > b.second.similarity; });
  if (found.size() > plan.top) found.resize(plan.top);
  std::vector<Candidate> out;
  for (auto& [sid, c] : found) {
    if (subject_ids) subject_ids->push_back(sid);
    out.push_back(std::move(c));
  }
  return out;
}

Status Service::Impl::record_search(const Actor& actor, const SearchRequest& req, const CitedAuthorisation& auth,
                                    const SearchProbe& probe, SearchResult& res) {
  FV_ASSIGN_OR_RETURN(vault::Txn txn, catalog().begin());
  // A cluster's shards were searched before this transaction: a candidate erased or withdrawn
  // since (an exclusion at a later sequence of its shard) is withheld, from the case and from
  // the result. Inside the transaction, so that an exclusion is either seen here or written
  // after this case, and then takes the candidate out of it (exclude_from_review).
  // Filtered into copies: `res` changes only once this transaction committed, so that a redo
  // (a cluster's write_on, after another node's meta write won) starts from the same result.
  std::vector<std::vector<int64_t>> subject_ids = probe.subject_ids;
  std::vector<std::vector<Candidate>> candidates;
  for (const auto& f : res.faces) candidates.push_back(f.candidates);
  int64_t withheld = 0;
  for (size_t fi = 0; fi < probe.searched_seqs.size() && fi < candidates.size(); ++fi) {
    auto& cands = candidates[fi];
    const auto& seqs = probe.searched_seqs[fi];
    if (seqs.size() != cands.size() || fi >= subject_ids.size() || subject_ids[fi].size() != cands.size())
      return internal_error("the search's candidates and their shards' sequences differ");
    std::vector<Candidate> kept;
    std::vector<int64_t> kept_ids;
    for (size_t k = 0; k < cands.size(); ++k) {
      FV_ASSIGN_OR_RETURN(const int64_t excluded_at, catalog().review_exclusion_seq(cands[k].subject_uid, req.purpose));
      if (excluded_at > seqs[k]) {
        ++withheld;
        continue;
      }
      kept.push_back(std::move(cands[k]));
      kept_ids.push_back(subject_ids[fi][k]);
    }
    cands = std::move(kept);
    subject_ids[fi] = std::move(kept_ids);
  }
  json per_face = json::array();
  std::set<std::string> all;
  for (const auto& cands : candidates) {
    json ids = json::array();
    for (const auto& c : cands) {
      ids.push_back(c.subject_uid);
      all.insert(c.subject_uid);
    }
    per_face.push_back(ids);
  }
  const std::string case_uid = "rv_" + vault::random_hex(8);
  AuditEntry e = entry(actor, Action::kSearch);
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  e.subjects.assign(all.begin(), all.end());
  e.details = {{"faces", res.faces.size()}, {"candidates", per_face},
               {"top", req.top_k > 0 ? req.top_k : req.mode == "investigation" ? 50 : config().search_default_top},
               {"eligible_subjects", res.eligible_subjects}, {"max_fmr", res.max_fmr}, {"threshold", res.threshold}, {"mode", res.mode},
               {"review_case", case_uid}, {"authorisation_pending", auth.pending}};
  if (auth.id) e.details["authorisation"] = auth.uid;
  if (withheld > 0) e.details["candidates_withheld"] = withheld;  // erased or withdrawn meanwhile
  if (!res.shards_missing.empty()) {  // the record says what was not searched
    e.details["partial"] = true;
    e.details["shards_missing"] = res.shards_missing;
  }

  vault::NewReviewCase rc;
  rc.uid = case_uid;
  rc.opened_at = e.ts;
  rc.searcher = actor.name;
  rc.searcher_role = role_name(actor.role);
  rc.purpose = req.purpose;
  rc.case_ref = req.case_ref;
  rc.mode = res.mode;
  rc.probe_sha256 = probe.sha256;
  rc.authorisation_id = auth.id;
  for (size_t fi = 0; fi < candidates.size(); ++fi) {
    const auto& cands = candidates[fi];
    if (fi >= subject_ids.size() || subject_ids[fi].size() != cands.size())
      return internal_error("the search's candidates and their subject ids differ");
    for (size_t k = 0; k < cands.size(); ++k)
      rc.candidates.push_back({static_cast<int>(fi), static_cast<int>(k + 1),
                               probe.foreign_subjects ? std::nullopt : std::optional<int64_t>(subject_ids[fi][k]),
                               cands[k].subject_uid, cands[k].similarity, cands[k].fmr, cands[k].fpir});
  }
  // Nothing to review: the case is a record of the search only, opened closed, with no crop.
  if (rc.candidates.empty()) rc.closed_at = rc.opened_at;

  if (!rc.candidates.empty()) {
    // The probe faces a reviewer compares (only those with candidates), under a key of the
    // case's own that is destroyed when it closes.
    std::optional<vault::SecretKey> key;
    for (size_t fi = 0; fi < candidates.size() && fi < probe.crops.size(); ++fi) {
      if (!probe.crops[fi] || candidates[fi].empty()) continue;
      if (!key) {
        FV_ASSIGN_OR_RETURN(auto made, vault->create_case_key(case_uid));
        key = std::move(made.first);
        rc.wrapped_probe_key = std::move(made.second);
        rc.probe_master_key_id = vault->master_key_id();
      }
      rc.sealed_probe_crops.emplace_back(static_cast<int>(fi),
                                         vault::seal(*key, *probe.crops[fi], vault::probe_ad(case_uid, static_cast<int>(fi))));
    }
  }
  // The authorisation was checked before the photo was analysed; if it was refused, or its
  // deadline passed, meanwhile, the search stands but its case is unusable from the start.
  std::string unusable;
  if (auth.id) {
    FV_ASSIGN_OR_RETURN(auto a, catalog().find_authorisation(auth.uid));
    unusable = a ? authorisation_unusable(*a, req.purpose, now()) : "authorisation " + auth.uid + " is gone";
    if (!unusable.empty()) e.details["authorisation_unusable"] = unusable;
  }
  FV_ASSIGN_OR_RETURN(res.audit_hash, audit_in_txn(e));
  rc.search_audit_seq = e.seq;
  FV_RETURN_IF_ERROR(catalog().insert_review_case(rc).status());
  if (!unusable.empty()) FV_RETURN_IF_ERROR(catalog().mark_cases_unusable(*auth.id, unusable));
  FV_RETURN_IF_ERROR(txn.commit());
  for (size_t fi = 0; fi < candidates.size(); ++fi) res.faces[fi].candidates = std::move(candidates[fi]);
  res.review_case = case_uid;
  if (auth.id) res.authorisation = auth.uid;
  res.authorisation_pending = auth.pending;
  return Status::ok();
}

Result<SearchResult> Service::search_templates(const Actor& actor, const SearchRequest& req_in,
                                               const std::vector<face::FaceTemplate>& probes) {
  Impl& m = *impl_;
  const SearchRequest req = within_search_limits(req_in, m.config().search_max_fmr);
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.check_search(actor, req));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth, m.check_authorisation(actor, req, Impl::AuditVia::kMain));
  FV_RETURN_IF_ERROR(m.load_gallery());
  SearchResult res;
  SearchPlan plan;
  FV_ASSIGN_OR_RETURN(auto eligible, m.eligible_subjects(req.purpose));
  FV_RETURN_IF_ERROR(m.plan_search(req, *eligible, res, plan));
  Impl::SearchProbe probe;  // no photo: no hash, no crop
  for (auto& p : probes) {
    SearchFace sf;
    sf.quality_ok = true;
    probe.subject_ids.emplace_back();
    FV_ASSIGN_OR_RETURN(sf.candidates, m.scan(plan, p, *eligible, &probe.subject_ids.back()));
    res.faces.push_back(std::move(sf));
  }
  FV_RETURN_IF_ERROR(m.record_search(actor, req, auth, probe, res));
  return res;
}

Result<SearchResult> Service::search(const Actor& actor, const SearchRequest& req_in, std::vector<uint8_t> image_bytes) {
  Impl& m = *impl_;
  Upload upload(std::move(image_bytes), m.options.on_wipe);
  const SearchRequest req = within_search_limits(req_in, m.config().search_max_fmr);
  // Checked before the photo is analyzed, without the lock (a refusal is audited through the
  // second connection).
  FV_RETURN_IF_ERROR(m.check_search(actor, req, Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth, m.check_authorisation(actor, req, Impl::AuditVia::kAux));
  PhotoOptions po;
  po.hash = true;   // the review case records which photo was searched
  po.crops = true;  // and keeps its faces for the reviewers (sealed; destroyed at closure)
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*m.pool, std::move(upload), po, m.options.on_wipe));
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.load_gallery());
  SearchResult res;
  SearchPlan plan;
  FV_ASSIGN_OR_RETURN(auto eligible, m.eligible_subjects(req.purpose));
  FV_RETURN_IF_ERROR(m.plan_search(req, *eligible, res, plan));
  Impl::SearchProbe probe;
  probe.sha256 = photo->sha256();
  for (size_t i = 0; i < photo->faces().size(); ++i) {
    const auto& f = photo->faces()[i];
    SearchFace sf;
    sf.box = f.detection.box;
    sf.quality_ok = f.quality.acceptable;
    probe.subject_ids.emplace_back();
    probe.crops.push_back(photo->crop(i));
    if (f.face_template) {
      FV_ASSIGN_OR_RETURN(sf.candidates, m.scan(plan, *f.face_template, *eligible, &probe.subject_ids.back()));
    }
    res.faces.push_back(std::move(sf));
  }
  FV_RETURN_IF_ERROR(m.record_search(actor, req, auth, probe, res));
  return res;
}

Result<VerifyResult> Service::Impl::verify_locked(const Actor& actor, const SearchRequest& req,
                                                  const std::string& subject_ref, const face::FaceTemplate& probe,
                                                  const CitedAuthorisation& auth) {
  FV_RETURN_IF_ERROR(load_gallery());
  FV_ASSIGN_OR_RETURN(auto eligible, eligible_subjects(req.purpose));
  FV_ASSIGN_OR_RETURN(auto subj, catalog().find_subject(subject_ref));
  AuditEntry e = entry(actor, "verify_subject");
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  if (!subj || subj->ref != subject_ref || !eligible->subjects.count(subj->id))
    return refuse(std::move(e), "refused", {{"reason", "no subject enrolled for this purpose under that reference"}},
                  not_found("no subject enrolled for the purpose '" + req.purpose + "' under that reference"));
  VerifyResult r;
  r.subject_ref = subject_ref;
  r.max_fmr = req.max_fmr.value_or(config().search_max_fmr);
  r.threshold = search_threshold(r.max_fmr);
  const int64_t sid = subj->id;
  index::FunctionFilter filter([&](index::Id face) {
    const auto* o = gallery->owner(face);
    return o && o->subject_id == sid && eligible->bases.count(o->basis_id) > 0;
  });
  FV_ASSIGN_OR_RETURN(auto best, gallery->search(probe, 1, -2.0, &filter, rebuild_hook()));
  if (auto it = best.find(sid); it != best.end()) r.similarity = it->second.similarity;
  if (const auto* cal = calibration()) r.fmr = cal->fmr_at(r.similarity);
  r.same = r.similarity >= r.threshold;
  e.subjects = {subj->uid};
  e.details = {{"same", r.same}, {"max_fmr", r.max_fmr}, {"threshold", r.threshold}};
  if (auth.id) {
    e.details["authorisation"] = auth.uid;
    e.details["authorisation_pending"] = auth.pending;
  }
  FV_ASSIGN_OR_RETURN(r.audit_hash, audit_now(e));
  return r;
}

Result<VerifyResult> Service::verify_subject_template(const Actor& actor, const SearchRequest& req_in,
                                                      const std::string& subject_ref, const face::FaceTemplate& probe) {
  Impl& m = *impl_;
  const SearchRequest req = within_search_limits(req_in, m.config().search_max_fmr);
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.check_search(actor, req));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth, m.check_authorisation(actor, req, Impl::AuditVia::kMain));
  return m.verify_locked(actor, req, subject_ref, probe, auth);
}

Result<VerifyResult> Service::verify_subject(const Actor& actor, const SearchRequest& req_in, const std::string& subject_ref,
                                             std::vector<uint8_t> image_bytes) {
  Impl& m = *impl_;
  Upload upload(std::move(image_bytes), m.options.on_wipe);
  const SearchRequest req = within_search_limits(req_in, m.config().search_max_fmr);
  // Checked before the photo is analyzed, without the lock (a refusal is audited through the
  // second connection).
  FV_RETURN_IF_ERROR(m.check_search(actor, req, Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(const CitedAuthorisation auth, m.check_authorisation(actor, req, Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*m.pool, std::move(upload), PhotoOptions{}, m.options.on_wipe));
  const int k = face::verification_face(photo->faces());
  std::lock_guard<std::mutex> l(m.mu);
  if (k < 0)
    return m.refuse(m.entry(actor, "verify"), "refused", {{"reason", "no face found"}},
                    failed_precondition("no face found in photo a"));
  FV_ASSIGN_OR_RETURN(VerifyResult r, m.verify_locked(actor, req, subject_ref, *photo->faces()[k].face_template, auth));
  r.box = photo->faces()[k].detection.box;
  return r;
}

}  // namespace fv::service
