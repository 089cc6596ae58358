// Use cases on photos alone, no vault data: 1:1 of two photos and face detection. Each is
// audited (who looked at faces, and what came of it), never with a template or a score.
#include <cstdio>

#include "face/compare.h"
#include "face/liveness.h"
#include "nn/model_store.h"
#include "service/service_impl.h"

namespace fv::service {

using vault::AuditEntry;

Result<face::LivenessChecker*> Service::Impl::liveness_checker() {
  std::lock_guard<std::mutex> lock(liveness_mu);
  if (!liveness_model) {
    auto made = face::MiniFasNetLiveness::create(nn::ModelStore());
    // The model missing or damaged is the server's fault, not the request's.
    if (!made.is_ok()) return unavailable("the liveness check is not available: " + made.status().message());
    liveness_model = std::move(made).value();
  }
  return liveness_model.get();
}

Result<PhotoComparison> Service::verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b,
                                               double fmr, bool liveness) {
  Impl& m = *impl_;
  Upload upload_a(std::move(a), m.options.on_wipe), upload_b(std::move(b), m.options.on_wipe);
  // Before the photo is analyzed, without the lock (a denial is audited through the second
  // connection).
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kVerify, "", "", Impl::AuditVia::kAux));
  PhotoOptions probe_options;
  if (liveness) { FV_ASSIGN_OR_RETURN(probe_options.liveness, m.liveness_checker()); }
  FV_ASSIGN_OR_RETURN(auto pa, Photo::analyze(*m.pool, std::move(upload_a), probe_options, m.options.on_wipe));
  std::optional<LivenessCheck> live;
  if (liveness && pa->liveness()) {
    // Photo a is the probe (the face presented to the camera); b is the reference it is
    // compared with, e.g. an ID photo, which is a photo of a photo by nature and never checked.
    live = LivenessCheck{pa->liveness()->live, m.config().liveness_threshold, false};
    live->live = live->score >= live->threshold;
    if (!live->live) {
      char why[160];
      std::snprintf(why, sizeof why, "presentation attack suspected in photo a (liveness score %.4f < threshold %.2f)",
                    live->score, live->threshold);
      // The audit says what happened, never the score (no biometric measurement is logged).
      return m.refuse(m.entry(actor, Action::kVerify), "refused", {{"reason", "presentation attack suspected"}},
                      failed_precondition(why), Impl::AuditVia::kAux);
    }
  }
  FV_ASSIGN_OR_RETURN(auto pb, Photo::analyze(*m.pool, std::move(upload_b), PhotoOptions{}, m.options.on_wipe));
  const int ka = face::verification_face(pa->faces()), kb = face::verification_face(pb->faces());
  if (ka < 0 || kb < 0) {
    AuditEntry e = m.entry(actor, Action::kVerify);
    e.outcome = "refused";
    e.details = {{"reason", "no face found"}};
    FV_RETURN_IF_ERROR(m.audit_aux(e).status());
    return failed_precondition(std::string("no face found in photo ") + (ka < 0 ? "a" : "b"));
  }
  PhotoComparison r;
  r.liveness = live;
  const auto& ta = *pa->faces()[ka].face_template;
  r.comparison = face::compare(ta, *pb->faces()[kb].face_template, m.calibration(), fmr);
  r.box_a = pa->faces()[ka].detection.box;
  r.box_b = pb->faces()[kb].detection.box;
  r.faces_a = pa->faces().size();
  r.faces_b = pb->faces().size();
  r.model = ta.model_id;
  AuditEntry e = m.entry(actor, Action::kVerify);
  e.details = {{"faces_a", r.faces_a}, {"faces_b", r.faces_b}, {"same", r.comparison.same}};
  if (live) e.details["liveness_checked"] = true;
  FV_ASSIGN_OR_RETURN(r.audit_hash, m.audit_aux(e));
  return r;
}

Result<Detection> Service::detect(const Actor& actor, std::vector<uint8_t> image_bytes) {
  Impl& m = *impl_;
  Upload upload(std::move(image_bytes), m.options.on_wipe);
  // Before the photo is analyzed, without the lock (a denial is audited through the second
  // connection).
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kDetect, "", "", Impl::AuditVia::kAux));
  PhotoOptions po;
  po.embed = false;  // faces and quality only: no template is computed
  FV_ASSIGN_OR_RETURN(auto photo, Photo::analyze(*m.pool, std::move(upload), po, m.options.on_wipe));
  Detection d;
  d.width = photo->width();
  d.height = photo->height();
  d.format = photo->format();
  d.faces = photo->faces();
  auto choice = choose_enrollment_face(d.faces, -1);
  if (choice.is_ok()) d.enrollable_face = *choice;
  else d.enrollable_reason = choice.status().message();
  AuditEntry e = m.entry(actor, Action::kDetect);
  e.details = {{"faces", d.faces.size()}};
  FV_ASSIGN_OR_RETURN(d.audit_hash, m.audit_aux(e));
  return d;
}

}  // namespace fv::service
