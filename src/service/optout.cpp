// The opt-out registry (do-not-enroll list): entries are sealed templates; enrollment is
// refused for a face that matches one, and optout_check lists the enrolled subjects that do.
#include <algorithm>
#include <set>

#include "face/registry.h"
#include "service/service_impl.h"

namespace fv::service {

using vault::AuditEntry;

Result<std::vector<OptoutMatch>> Service::Impl::match_optouts(const face::FaceTemplate& t) {
  std::vector<OptoutMatch> out;
  FV_ASSIGN_OR_RETURN(int64_t n, catalog().optout_count());
  if (n == 0) return out;
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, vault->optout_key(false));
  const double thr = optout_threshold();
  FV_RETURN_IF_ERROR(catalog().for_each_optout([&](const vault::OptoutRow& row) -> Status {
    if (row.model_id != t.model_id || row.model_version != t.model_version) return Status::ok();
    FV_ASSIGN_OR_RETURN(auto o, open_template(key, row.sealed_template, optout_ad(row.uid, row.model_id, row.model_version),
                                              row.model_id, row.model_version));
    const double sim = face::similarity(t, o);
    vault::wipe(o.values);
    if (sim >= thr) out.push_back({"", "", row.uid, sim});
    return Status::ok();
  }));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.similarity > b.similarity; });
  return out;
}

Result<int64_t> Service::Impl::incomparable_optouts() {
  // Not of the vault's embedder, or of a model version that no enrolled template has.
  return catalog().incomparable_optouts(face::builtin_embedder_model_id(config().embedder));
}

Result<OptoutResult> Service::Impl::add_optout(const Actor& actor, const face::FaceTemplate& tmpl,
                                               const std::optional<std::string>& uid) {
  Impl& m = *this;
  OptoutResult res;
  res.optout_uid = uid ? *uid : vault::random_hex(8);
  // Everything below reads inside the write transaction: on a cluster shard, a replica may
  // apply another node's enrollment at any moment before it, and a match counted on an older
  // state than the one committed would be missed for good.
  FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
  if (uid) {
    // The same entry sent again (a retry, or another shard's part of it) adds nothing.
    FV_ASSIGN_OR_RETURN(const bool present, m.catalog().has_optout(*uid));
    if (present) return res;
  }
  // Enrolled subjects the new entry matches, whatever their purpose (the registry protects
  // against enrollment as such): counted and audited here, listed only by optout_check.
  FV_RETURN_IF_ERROR(m.load_gallery());
  const double thr = m.optout_threshold();
  std::set<std::string> matched;
  {
    // A range search through the index (no purpose filter).
    FV_ASSIGN_OR_RETURN(auto best, m.gallery->search(tmpl, SIZE_MAX, thr, nullptr, m.rebuild_hook()));
    for (auto& [sid, b] : best)
      if (const auto* info = m.gallery->subject(sid)) matched.insert(info->uid);
  }
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->optout_key(true));
  vault::NewOptout o{res.optout_uid, tmpl.model_id, tmpl.model_version,
                     vault::seal(key, vault::as_bytes(tmpl.values), optout_ad(res.optout_uid, tmpl.model_id, tmpl.model_version)),
                     m.now()};
  FV_RETURN_IF_ERROR(m.catalog().insert_optout(o));
  AuditEntry e = m.entry(actor, Action::kOptoutAdd);
  e.subjects.assign(matched.begin(), matched.end());
  e.details = {{"optout", res.optout_uid}, {"enrolled_matches", matched.size()}};
  FV_ASSIGN_OR_RETURN(res.audit_hash, m.audit_in_txn(e));
  FV_RETURN_IF_ERROR(txn.commit());
  res.enrolled_match_count = static_cast<int64_t>(matched.size());
  return res;
}

Result<int> choose_optout_face(const std::vector<face::Face>& faces, int face_index) {
  // An opt-out is accepted from a lower-quality photo than an enrollment: refusing someone's
  // request not to be enrolled because their photo is blurry would defeat its purpose.
  int k = face_index;
  if (faces.empty()) return failed_precondition("no face found in the photo");
  if (k < 0) {
    if (faces.size() > 1)
      return failed_precondition("the photo has " + std::to_string(faces.size()) + " faces; choose one with --face INDEX");
    k = 0;
  } else if (k >= static_cast<int>(faces.size())) {
    return invalid_argument("face index out of range: the photo has " + std::to_string(faces.size()) + " face(s)");
  }
  if (!faces[static_cast<size_t>(k)].face_template) return internal_error("the pipeline returned no template");
  return k;
}

Result<OptoutResult> Service::optout_add_template(const Actor& actor, const face::FaceTemplate& tmpl) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kOptoutAdd));
  return m.add_optout(actor, tmpl, std::nullopt);
}

Result<OptoutResult> Service::optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index) {
  Impl& m = *impl_;
  Upload upload(std::move(image_bytes), m.options.on_wipe);
  // Before the photo is analyzed, without the lock (a denial is audited through the second
  // connection).
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kOptoutAdd, "", "", Impl::AuditVia::kAux));
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*m.pool, std::move(upload), PhotoOptions{}, m.options.on_wipe));
  FV_ASSIGN_OR_RETURN(const int k, choose_optout_face(photo->faces(), face_index));
  std::lock_guard<std::mutex> l(m.mu);
  return m.add_optout(actor, *photo->faces()[static_cast<size_t>(k)].face_template, std::nullopt);
}

Result<OptoutCheck> Service::optout_check(const Actor& actor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kOptoutCheck));
  OptoutCheck res;
  res.threshold = m.optout_threshold();
  FV_ASSIGN_OR_RETURN(int64_t n, m.catalog().optout_count());
  if (n > 0) {
    FV_RETURN_IF_ERROR(m.load_gallery());
    FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->optout_key(false));
    // The registry is read whole first: a rebuild of the gallery mid-scan reads the vault too.
    std::vector<vault::OptoutRow> rows;
    FV_RETURN_IF_ERROR(m.catalog().for_each_optout([&](const vault::OptoutRow& r) {
      rows.push_back(r);
      return Status::ok();
    }));
    for (auto& row : rows) {
      FV_ASSIGN_OR_RETURN(auto o, open_template(key, row.sealed_template, optout_ad(row.uid, row.model_id, row.model_version),
                                                row.model_id, row.model_version));
      auto best = m.gallery->search(o, SIZE_MAX, res.threshold, nullptr, m.rebuild_hook());
      vault::wipe(o.values);
      if (!best.is_ok()) return best.status();
      for (auto& [sid, b] : *best)
        if (const auto* info = m.gallery->subject(sid)) res.matches.push_back({info->ref, info->uid, row.uid, b.similarity});
    }
  }
  FV_ASSIGN_OR_RETURN(res.incomparable_optouts, m.incomparable_optouts());
  AuditEntry e = m.entry(actor, Action::kOptoutCheck);
  for (auto& mt : res.matches) e.subjects.push_back(mt.subject_uid);
  e.details = {{"optouts", n}, {"matches", res.matches.size()}, {"incomparable_optouts", res.incomparable_optouts}};
  FV_ASSIGN_OR_RETURN(res.audit_hash, m.audit_now(e));
  return res;
}

}  // namespace fv::service
