// Enrollment: a photo (or a pre-computed template) → one acceptable face → the lawful basis
// and opt-out checks → sealed template + provenance + audit entry, all in one transaction;
// the search gallery takes the new template online when it is current. The batch form
// analyzes photos on several pipelines and commits in manifest order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <thread>

#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using nlohmann::json;
using vault::AuditEntry;

namespace {

// How a face row stores its box and quality (the access export shows them).
json box_json(const face::Box& b) {
  return json::array({std::round(b.x1 * 10) / 10, std::round(b.y1 * 10) / 10, std::round(b.width() * 10) / 10,
                      std::round(b.height() * 10) / 10});
}

json quality_json(const face::Quality& q) {
  return {{"acceptable", q.acceptable}, {"inter_eye_px", q.inter_eye_px}, {"sharpness", q.sharpness},
          {"yaw_deg", q.yaw_deg},       {"roll_deg", q.roll_deg},         {"reasons", q.reasons}};
}

// A photo analyzed for enrollment and the face chosen in it (its template is wiped with it).
struct PreparedPhoto {
  std::unique_ptr<Photo> photo;
  int face_index = 0;
  const face::Face& face() const { return photo->faces()[face_index]; }
};

Result<PreparedPhoto> prepare(PipelinePool& pool, Upload upload, int face_index, bool keep_image, bool keep_reference,
                              const WipeHook& on_wipe) {
  PhotoOptions po;
  po.keep_bytes = keep_image;
  po.hash = true;
  po.crops = keep_reference;
  PreparedPhoto p;
  FV_ASSIGN_OR_RETURN(p.photo, Photo::analyze(pool, std::move(upload), po, on_wipe));
  FV_ASSIGN_OR_RETURN(p.face_index, choose_enrollment_face(p.photo->faces(), face_index));
  if (!p.face().face_template) return internal_error("the pipeline returned no template");
  return p;
}

Service::Impl::TemplateSource source_of(const PreparedPhoto& p) {
  Service::Impl::TemplateSource src;
  src.sha256 = p.photo->sha256();
  src.format = p.photo->format();
  src.image_bytes = p.photo->byte_count();
  src.keep = p.photo->kept_bytes();
  src.face = &p.face();
  src.face_index = p.face_index;
  src.crop = p.photo->crop(static_cast<size_t>(p.face_index));
  return src;
}

}  // namespace

Status Service::Impl::audit_enroll_refusal(const Actor& actor, const EnrollRequest& req, const Status& why,
                                           const json& extra) {
  AuditEntry e = entry(actor, Action::kEnroll);
  e.purpose = req.purpose.value_or("");
  json details = {{"basis_id", req.basis_id}, {"reason", why.message()}};
  for (auto& [k, v] : extra.items()) details[k] = v;
  return refuse(std::move(e), "refused", details, why);
}

Result<EnrollResult> Service::Impl::commit_template(const Actor& actor, const EnrollRequest& req,
                                                    const face::FaceTemplate& tmpl, const TemplateSource& src) {
  for (const std::string* f : {&req.provenance.supplied_by, &req.provenance.method, &req.provenance.source})
    if (!valid_text(*f, 1000))
      return invalid_argument("provenance (supplied by, method, source) must be printable UTF-8 text of at most 1000 bytes");
  auto& cat = catalog();
  const std::string t = now();
  // Refusals are audited in their own transaction after the enrollment's is released. The
  // audited reason never holds an external reference (the log is append-only: it could not
  // be erased); the status, for the caller only, may.
  auto refused = [&](const std::string& reason, const std::vector<std::string>& subjects, const json& extra,
                     Status shown) -> Status {
    AuditEntry e = entry(actor, Action::kEnroll);
    e.purpose = req.purpose.value_or("");
    e.subjects = subjects;
    json details = {{"basis_id", req.basis_id}, {"reason", reason}};
    for (auto& [k, v] : extra.items()) details[k] = v;
    return refuse(std::move(e), "refused", details, std::move(shown));
  };
  EnrollResult res;
  res.subject_ref = req.subject_ref;
  res.sha256 = src.sha256;
  res.face_index = src.face_index;
  if (src.face) res.box = src.face->detection.box;
  {
    FV_ASSIGN_OR_RETURN(auto subj, cat.find_subject(req.subject_ref));
    if (!subj || subj->ref != req.subject_ref)
      return refused("unknown subject: record a lawful basis first (facevault basis add)", {}, json::object(),
                     not_found("no subject '" + req.subject_ref + "': record a lawful basis first (facevault basis add)"));
  }
  FV_ASSIGN_OR_RETURN(vault::Txn txn, cat.begin());
  FV_ASSIGN_OR_RETURN(auto subj, cat.find_subject(req.subject_ref));
  if (!subj || subj->ref != req.subject_ref) return not_found("subject '" + req.subject_ref + "' was erased meanwhile");
  res.subject_uid = subj->uid;
  FV_ASSIGN_OR_RETURN(auto basis, cat.basis_for_enrollment(req.basis_id));
  const std::string id = std::to_string(req.basis_id);
  Status why = Status::ok();
  if (!basis) why = not_found("no lawful basis " + id);
  else if (basis->subject_id != subj->id) why = failed_precondition("lawful basis " + id + " belongs to another subject");
  else if (basis->withdrawn_at) why = failed_precondition("lawful basis " + id + " was withdrawn on " + *basis->withdrawn_at);
  else if (basis->expires_at && *basis->expires_at <= t) why = failed_precondition("lawful basis " + id + " expired on " + *basis->expires_at);
  if (why.is_ok() && req.purpose) {
    FV_ASSIGN_OR_RETURN(bool covers, cat.basis_covers(req.basis_id, *req.purpose));
    if (!covers) why = failed_precondition("lawful basis " + id + " does not cover the purpose '" + *req.purpose + "'");
  }
  if (!why.is_ok()) {
    (void)txn.commit();  // nothing written yet: just release the write lock (a rollback does as well)
    return refused(why.message(), {subj->uid}, json::object(), why);
  }
  // The opt-out registry, inside the transaction (its write lock keeps an opt-out from being
  // added between this check and the insert). Only opt-outs of the template's own model are
  // compared: see optout_check's incomparable count.
  {
    FV_ASSIGN_OR_RETURN(auto matches, match_optouts(tmpl));
    if (!matches.empty()) {
      (void)txn.commit();  // nothing written yet: just release the write lock (a rollback does as well)
      const std::string reason = "this face matches an entry of the opt-out registry (do-not-enroll list)";
      return refused(reason, {}, {{"optout", matches[0].optout_uid}}, failed_precondition(reason));
    }
  }
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, vault->subject_key(subj->id));
  FV_RETURN_IF_ERROR(vault->check_master_key_current());
  vault::NewSourceImage img{subj->id, req.basis_id, src.sha256, static_cast<int64_t>(src.image_bytes), src.format,
                            req.provenance.supplied_by.empty() ? actor.name : req.provenance.supplied_by,
                            req.provenance.method, req.provenance.source, t};
  FV_ASSIGN_OR_RETURN(res.image_id, cat.insert_source_image(img));
  // Sealed once the row ids are known: the associated data binds each blob to its own row.
  if (src.keep)
    FV_RETURN_IF_ERROR(cat.seal_source_image(res.image_id, vault::seal(key, *src.keep, vault::image_ad(subj->id, res.image_id))));
  vault::NewFace nf{subj->id, res.image_id, req.basis_id, tmpl.model_id, tmpl.model_version,
                    static_cast<int64_t>(tmpl.values.size()), src.face ? box_json(src.face->detection.box).dump() : "[]",
                    src.face ? quality_json(src.face->quality).dump() : "{}", t};
  FV_ASSIGN_OR_RETURN(res.face_id, cat.insert_face(nf));
  FV_RETURN_IF_ERROR(cat.seal_face(res.face_id, vault::seal(key, vault::as_bytes(tmpl.values),
                                                            vault::face_ad(subj->id, res.face_id, tmpl.model_id,
                                                                           tmpl.model_version))));
  // The reviewers' reference crop (opt-in per vault or per enrollment): sealed with the
  // subject key and bound to its face, so it goes with the face and with the subject.
  if (req.keep_reference.value_or(config().keep_reference_crops) && src.crop) {
    FV_RETURN_IF_ERROR(cat.insert_reference_crop(
        res.face_id, subj->id, vault::seal(key, *src.crop, vault::reference_ad(subj->id, res.face_id))));
    res.reference_kept = true;
  }
  // Retention is renewed by enrollment, but never beyond the basis' own expiry.
  std::string renewed = vault::add_days(t, config().default_retention_days);
  if (basis->expires_at && *basis->expires_at < renewed) renewed = *basis->expires_at;
  res.retention_until = std::max(renewed, subj->retention_until);
  FV_RETURN_IF_ERROR(cat.set_retention(subj->id, res.retention_until));
  // A subject whose retention had ended by this service's clock is eligible again: the vault's
  // trigger judges "ended" by the real clock, so this process forgets its own cache too.
  if (subj->retention_until <= t) gallery->forget_eligibility();
  AuditEntry e = entry(actor, Action::kEnroll);
  e.purpose = req.purpose.value_or("");
  e.subjects = {subj->uid};
  e.details = {{"basis_id", req.basis_id}, {"face_id", res.face_id}, {"image_id", res.image_id},
               {"image_kept", src.keep != nullptr}, {"reference_kept", res.reference_kept}, {"model", tmpl.model_id}};
  FV_ASSIGN_OR_RETURN(res.audit_hash, audit_in_txn(e));
  // Our one face row bumped the generation by one; if nobody else changed the templates since
  // the index was built, the online add keeps it current without a rebuild.
  FV_ASSIGN_OR_RETURN(const int64_t generation, cat.generation(vault::Generation::kGallery));
  FV_RETURN_IF_ERROR(txn.commit());
  gallery->add_enrolled(generation, FaceIdentity{res.face_id, subj->id, req.basis_id, subj->uid, subj->ref}, tmpl);
  return res;
}

Result<EnrollResult> Service::enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes) {
  Impl& m = *impl_;
  Upload upload(std::move(image_bytes), m.options.on_wipe);
  // Before the photo is analyzed, without the lock (a denial is audited through the second
  // connection).
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kEnroll, req.purpose.value_or(""), "", Impl::AuditVia::kAux));
  auto prepared = prepare(*m.pool, std::move(upload), req.face_index, req.keep_image,
                         req.keep_reference.value_or(m.config().keep_reference_crops), m.options.on_wipe);
  std::lock_guard<std::mutex> l(m.mu);
  // A pipeline that could not be built is the server's failure, not a refusal of this photo:
  // not written to the append-only log as one.
  if (!prepared.is_ok() && prepared.status().code() == StatusCode::kUnavailable) return prepared.status();
  if (!prepared.is_ok()) return m.audit_enroll_refusal(actor, req, prepared.status());
  return m.commit_template(actor, req, *prepared->face().face_template, source_of(*prepared));
}

Result<EnrollResult> Service::enroll_template(const Actor& actor, const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                              TemplateOrigin origin) {
  Impl& m = *impl_;
  struct WipeKept {
    std::vector<uint8_t>& bytes;
    ~WipeKept() { vault::wipe(bytes); }
  } wipe_kept{origin.kept_image};
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kEnroll, req.purpose.value_or("")));
  Impl::TemplateSource src;
  src.sha256 = origin.image_sha256;
  src.format = origin.format;
  src.image_bytes = origin.kept_image.size();
  if (req.keep_image && !origin.kept_image.empty()) src.keep = &origin.kept_image;
  return m.commit_template(actor, req, tmpl, src);
}

EnrollRequest manifest_request(const BatchRow& row, bool keep_image, const std::string& method) {
  EnrollRequest req;
  req.subject_ref = row.subject_ref;
  req.basis_id = row.basis_id;
  req.keep_image = keep_image;
  req.provenance.method = method;
  req.provenance.source = row.provenance.empty() ? std::filesystem::path(row.image).filename().string() : row.provenance;
  return req;
}

Status Service::enroll_batch(const Actor& actor, const std::vector<BatchRow>& rows, int threads, bool keep_image,
                             const std::string& method,
                             const std::function<void(const BatchRow&, const Result<EnrollResult>&)>& on_row,
                             const std::function<void(size_t, size_t)>& progress) {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> l(m.mu);
    FV_RETURN_IF_ERROR(m.authorize(actor, Action::kEnroll));
  }
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, rows.size()))));
  m.pool->reserve(static_cast<size_t>(threads));
  std::vector<std::optional<Result<PreparedPhoto>>> done(rows.size());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  size_t committed = 0;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < rows.size();) {
      {
        // Analysis runs at most this far ahead of the commits (bounded memory).
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return i < committed + 16 * static_cast<size_t>(threads); });
      }
      Result<PreparedPhoto> r = not_found("cannot open the image file");
      std::ifstream in(rows[i].image, std::ios::binary);
      // No path in the message: it is audited (the caller reports the row with its path).
      if (in) {
        Upload upload(std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()),
                      m.options.on_wipe);
        r = prepare(*m.pool, std::move(upload), -1, keep_image, m.config().keep_reference_crops, m.options.on_wipe);
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        done[i].emplace(std::move(r));
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) workers.emplace_back(work);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::optional<Result<PreparedPhoto>> r;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done[i].has_value(); });
      r = std::move(done[i]);
      done[i].reset();
    }
    const EnrollRequest req = manifest_request(rows[i], keep_image, method);
    Result<EnrollResult> res = internal_error("not committed");
    {
      std::lock_guard<std::mutex> l(m.mu);
      if (!r->is_ok() && r->status().code() == StatusCode::kUnavailable) res = r->status();
      else if (!r->is_ok()) res = m.audit_enroll_refusal(actor, req, r->status(), {{"manifest_line", rows[i].line}});
      else res = m.commit_template(actor, req, *(*r)->face().face_template, source_of(**r));
    }
    r.reset();  // the photo's template and kept bytes are wiped here
    on_row(rows[i], res);
    {
      std::lock_guard<std::mutex> lock(mu);
      committed = i + 1;
    }
    cv.notify_all();
    if (progress) progress(i + 1, rows.size());
  }
  for (auto& w : workers) w.join();
  return Status::ok();
}

}  // namespace fv::service
