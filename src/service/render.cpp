#include "service/render.h"

#include <cmath>

using nlohmann::json;

namespace fv::service::render {
namespace {

double round_to(double v, double inverse_step) { return std::round(v * inverse_step) / inverse_step; }
double px(double v) { return round_to(v, 10); }           // pixels: 0.1 px
double similarity(double v) { return round_to(v, 1e4); }  // similarities and scores: 4 decimals
json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json quality(const face::Quality& q) {
  return {{"acceptable", q.acceptable},
          {"reasons", q.reasons},
          {"box_height_px", px(q.box_height_px)},
          {"inter_eye_px", px(q.inter_eye_px)},
          {"sharpness", px(q.sharpness)},
          {"yaw_deg", round_to(q.yaw_deg, 10)},
          {"roll_deg", round_to(q.roll_deg, 10)},
          {"pitch_ratio", round_to(q.pitch_ratio, 1000)}};
}

}  // namespace

json box(const face::Box& b) { return json::array({px(b.x1), px(b.y1), px(b.width()), px(b.height())}); }

json face(const face::Face& f, bool with_template) {
  json kp = json::array();
  for (const auto& p : f.landmarks.five) kp.push_back({px(p.x), px(p.y)});
  json j = {{"box", box(f.detection.box)},
            {"score", similarity(f.detection.score)},
            {"keypoints", kp},
            {"quality", quality(f.quality)}};
  if (with_template && f.face_template) {
    j["model"] = f.face_template->model_id;
    j["template"] = f.face_template->values;
  }
  return j;
}

json basis(const BasisResult& r) {
  // "id" and "basis" both name the new basis: the HTTP API has said "id", the CLI "basis".
  return {{"id", r.basis_id},
          {"basis", r.basis_id},
          {"subject", r.subject_ref},
          {"subject_id", r.subject_uid},
          {"subject_created", r.subject_created},
          {"retention_until", r.retention_until},
          {"audit_hash", r.audit_hash}};
}

json enrollment(const EnrollResult& r) {
  return {{"subject", r.subject_ref}, {"subject_id", r.subject_uid},         {"face_id", r.face_id},
          {"image_id", r.image_id},   {"face", r.face_index},                {"box", box(r.box)},
          {"sha256", r.sha256},       {"retention_until", r.retention_until}, {"reference_kept", r.reference_kept},
          {"audit_hash", r.audit_hash}};
}

json search(const SearchResult& r) {
  json faces = json::array();
  for (const auto& f : r.faces) {
    json cands = json::array();
    // A search's candidates are never confirmed: only reviewers confirm (Service::review_decide).
    for (const auto& c : f.candidates)
      cands.push_back({{"subject", c.subject_ref}, {"similarity", similarity(c.similarity)}, {"fmr", optional_number(c.fmr)},
                       {"confirmed", false}});
    faces.push_back({{"box", box(f.box)}, {"quality_ok", f.quality_ok}, {"candidates", cands}});
  }
  std::string notice = "candidates for human review, not an identification";
  if (!r.review_case.empty())
    notice += ": none is confirmed until reviewers confirm it in review case " + r.review_case;
  if (!r.shards_missing.empty())
    notice += "; PARTIAL: " + std::to_string(r.shards_missing.size()) + " shard(s) of the gallery did not answer and were not searched";
  return {{"faces", faces},
          {"purpose", r.purpose},
          {"case", r.case_ref},
          {"eligible_subjects", r.eligible_subjects},
          {"max_fmr", r.max_fmr},
          {"threshold", r.threshold},
          {"calibration", r.calibration},
          {"review_case", r.review_case},
          {"authorisation", r.authorisation ? json(*r.authorisation) : json(nullptr)},
          {"authorisation_pending", r.authorisation_pending},
          {"audit_hash", r.audit_hash},
          {"partial", !r.shards_missing.empty()},
          {"shards_missing", r.shards_missing},
          {"notice", notice}};
}

json verify_subject(const VerifyResult& r) {
  return {{"subject", r.subject_ref},
          {"similarity", similarity(r.similarity)},
          {"same", r.same},
          {"threshold", r.threshold},
          {"threshold_fmr", r.max_fmr},
          {"score_fmr", optional_number(r.fmr)},
          {"box_a", box(r.box)},
          {"audit_hash", r.audit_hash},
          {"notice", "a similarity for human review, not an identification"}};
}

json verify_photos(const PhotoComparison& r) {
  const auto& c = r.comparison;
  json j = {{"similarity", similarity(c.similarity)},
            {"faces_a", r.faces_a},
            {"faces_b", r.faces_b},
            {"box_a", box(r.box_a)},
            {"box_b", box(r.box_b)},
            {"model", r.model}};
  // The decision needs the model's calibration table; without one only the similarity is given.
  if (c.threshold) {
    j["same"] = c.same;
    j["threshold"] = *c.threshold;
    j["threshold_fmr"] = c.threshold_fmr;
    j["score_fmr"] = optional_number(c.score_fmr);
    j["calibration"] = c.calibration;
  }
  // Only when the request asked for the check: without it the result is as it always was.
  if (r.liveness) {
    j["liveness"] = {{"checked", true},
                     {"score", r.liveness->score},
                     {"threshold", r.liveness->threshold},
                     {"live", r.liveness->live}};
  }
  j["audit_hash"] = r.audit_hash;
  return j;
}

json detection(const Detection& d) {
  json faces = json::array();
  for (const auto& f : d.faces) faces.push_back(face(f, false));
  json j = {{"width", d.width}, {"height", d.height}, {"format", d.format}, {"faces", faces}};
  if (d.enrollable_face) {
    j["enrollable_face"] = *d.enrollable_face;
  } else {
    j["enrollable_face"] = nullptr;
    j["enrollable_reason"] = d.enrollable_reason;
  }
  j["audit_hash"] = d.audit_hash;
  return j;
}

json erase_receipt(const EraseReceipt& r) {
  json j = {{"receipt", "erasure"},
          {"subject", r.subject_ref},
          {"subject_id", r.subject_uid},
          {"reason", r.reason},
          {"erased_at", r.erased_at},
          {"erased", {{"templates", r.faces}, {"source_images", r.images}, {"kept_images", r.kept_images},
                      {"lawful_bases", r.bases}, {"subject_key", r.key_destroyed}, {"reference_crops", r.reference_crops},
                      {"review_candidates", r.review_candidates_removed}}},
          {"free_pages_wiped", r.wiped},
          {"wipe_pending", !r.wiped && !r.audit_hash.empty()},
          {"search_index_removed", r.index_removed},
          {"audit_seq", r.audit_seq},
          {"audit_hash", r.audit_hash}};
  if (r.basis_id) {
    j["basis_id"] = *r.basis_id;
    j["subject_erased"] = false;
  }
  if (!r.completion_error.empty()) j["incomplete"] = r.completion_error;
  if (!r.replicas.empty()) {
    j["replicas"] = r.replicas;
    j["stream_messages_erased"] = r.stream_messages_erased;
  }
  return j;
}

json expire_report(const ExpireReport& r) {
  json erased = json::array(), lapsed = json::array();
  for (const auto& e : r.erased) erased.push_back(erase_receipt(e));
  for (const auto& e : r.bases_lapsed) lapsed.push_back(erase_receipt(e));
  json j = {{"as_of", r.as_of}, {"dry_run", r.dry_run}, {"erased", erased}, {"bases_lapsed", lapsed},
            {"oversight", lapse_report(r.oversight)}, {"audit_hash", r.audit_hash}};
  if (!r.deferred_shards.empty()) j["deferred_shards"] = r.deferred_shards;
  if (!r.failed_shards.empty()) {
    json f = json::array();
    for (const auto& [s, why] : r.failed_shards) f.push_back({{"shard", s}, {"error", why}});
    j["failed_shards"] = f;
  }
  return j;
}

json optout(const OptoutResult& r) {
  return {{"optout", r.optout_uid}, {"enrolled_match_count", r.enrolled_match_count}, {"audit_hash", r.audit_hash}};
}

json optout_check(const OptoutCheck& r) {
  json m = json::array();
  for (const auto& x : r.matches)
    m.push_back({{"subject", x.subject_ref}, {"subject_id", x.subject_uid}, {"optout", x.optout_uid}, {"similarity", x.similarity}});
  return {{"matches", m}, {"threshold", r.threshold}, {"incomparable_optouts", r.incomparable_optouts},
          {"audit_hash", r.audit_hash}};
}

json audit_page(const AuditPage& p) {
  json entries = json::array();
  for (const auto& e : p.entries) entries.push_back(e.to_json());
  return {{"entries", entries}, {"matched", p.matched}, {"total", p.total}};
}

json rotate_report(const vault::Vault::RotateReport& r) {
  // new_key_hex is never rendered: a caller that must store it prints it on its own.
  return {{"old_key_id", r.old_key_id}, {"new_key_id", r.new_key_id}, {"subject_keys", r.subject_keys},
          {"optout_key", r.optout_key}};
}

}  // namespace fv::service::render
