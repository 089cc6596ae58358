#include "service/service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "image/decode.h"
#include "vault/timeutil.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::service {

using vault::AuditEntry;
using vault::Bytes;
using vault::SecretKey;
using vault::Stmt;
using vault::Txn;

namespace {

const std::map<std::string, std::set<std::string>> kPolicy = {
    {"basis_add", {"admin", "enroller"}},
    // Withdrawal erases what the basis covered (the whole subject when no other basis is in
    // force): only the roles that may erase may withdraw.
    {"basis_withdraw", {"admin", "auditor"}},
    {"enroll", {"admin", "enroller"}},
    {"search", {"admin", "investigator"}},
    {"erase", {"admin", "auditor"}},
    {"export", {"admin", "auditor"}},
    {"expire", {"admin", "auditor"}},
    {"optout_add", {"admin", "enroller", "auditor"}},
    {"optout_check", {"admin", "auditor"}},
    {"audit_show", {"admin", "auditor"}},
    {"audit_verify", {"admin", "auditor"}},
    {"key_rotate", {"admin"}},
};

Status refused(const std::string& m) { return failed_precondition(m); }

bool valid_token(const std::string& s, size_t max = 64) {
  if (s.empty() || s.size() > max || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("._:/-", c)) return false;
  return true;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

// Free text that is stored and shown: UTF-8 without control characters, at most `max` bytes.
bool valid_text(const std::string& s, size_t max) {
  if (s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return valid_utf8(s);
}

bool valid_ref(const std::string& s) { return !s.empty() && valid_text(s, 200); }

// Which index a template lives in: templates of different models never compare.
std::string model_key(const std::string& model_id, int version) { return model_id + "/" + std::to_string(version); }
std::string optout_ad(const std::string& uid, const std::string& model_id, int version) {
  return "facevault/optout/" + uid + "/" + model_id + "/" + std::to_string(version);
}

// Zeroes, when its scope ends (early returns included), what the analysis of a photo leaves
// in memory: the photo's bytes, its decoded pixels and the template of every face found.
struct WipeOnExit {
  std::vector<uint8_t>* bytes = nullptr;
  cv::Mat* pixels = nullptr;
  std::vector<face::Face>* faces = nullptr;
  ~WipeOnExit() {
    if (bytes) vault::wipe(*bytes);
    if (pixels && pixels->data && pixels->isContinuous()) vault::wipe(pixels->data, pixels->total() * pixels->elemSize());
    if (faces)
      for (auto& f : *faces)
        if (f.face_template) vault::wipe(f.face_template->values);
  }
};

// A probe photo decoded and analysed. Its pixels and every face's template are wiped when it
// goes (on every exit, refusals included); the photo bytes as soon as they are decoded.
struct AnalysedPhoto {
  cv::Mat rgb;
  std::vector<face::Face> faces;
  ~AnalysedPhoto() { WipeOnExit wipe{nullptr, &rgb, &faces}; }
};

Result<std::unique_ptr<AnalysedPhoto>> analyse_photo(face::FacePipeline& pipeline, std::vector<uint8_t>& bytes) {
  auto img = image::decode_image(bytes);
  vault::wipe(bytes);
  if (!img.is_ok()) return img.status();
  auto photo = std::make_unique<AnalysedPhoto>();
  photo->rgb = std::move(img->rgb);
  FV_ASSIGN_OR_RETURN(photo->faces, pipeline.analyze(photo->rgb, true));
  return photo;
}

Result<face::FaceTemplate> open_template(const SecretKey& key, const Bytes& sealed, const std::string& ad,
                                         const std::string& model_id, int version) {
  auto plain = vault::open_sealed(key, sealed, ad);
  if (!plain.is_ok()) return corrupt_data("a stored template does not decrypt: " + plain.status().message());
  face::FaceTemplate t{model_id, version, std::vector<float>(plain->size() / sizeof(float))};
  std::memcpy(t.values.data(), plain->data(), t.values.size() * sizeof(float));
  vault::wipe(*plain);
  return t;
}

// A search request may tighten the vault's false-match-rate limit (config search_max_fmr),
// never loosen it: `--max-fmr 1` must not turn a search into a list of everyone eligible.
SearchRequest within_limits(const SearchRequest& req, double config_max_fmr) {
  SearchRequest r = req;
  const double asked = req.max_fmr.value_or(config_max_fmr);
  r.max_fmr = asked > 0 && asked < config_max_fmr ? asked : config_max_fmr;
  return r;
}

json box_json(const face::Box& b) {
  return json::array({std::round(b.x1 * 10) / 10, std::round(b.y1 * 10) / 10, std::round(b.width() * 10) / 10,
                      std::round(b.height() * 10) / 10});
}

json quality_json(const face::Quality& q) {
  return {{"acceptable", q.acceptable}, {"inter_eye_px", q.inter_eye_px}, {"sharpness", q.sharpness},
          {"yaw_deg", q.yaw_deg},       {"roll_deg", q.roll_deg},         {"reasons", q.reasons}};
}

}  // namespace

bool is_known_role(const std::string& role) {
  return role == "admin" || role == "enroller" || role == "investigator" || role == "auditor";
}

bool role_may(const std::string& role, const std::string& action) {
  auto it = kPolicy.find(action);
  return it != kPolicy.end() && it->second.count(role) > 0;
}

void PreparedFace::wipe() {
  if (face.face_template) vault::wipe(face.face_template->values);
  vault::wipe(image);
}

json EraseReceipt::to_json() const {
  return {{"receipt", "erasure"},
          {"subject", subject_ref},
          {"subject_id", subject_uid},
          {"reason", reason},
          {"erased_at", erased_at},
          {"erased", {{"templates", faces}, {"source_images", images}, {"kept_images", kept_images},
                      {"lawful_bases", bases}, {"subject_key", key_destroyed}}},
          {"free_pages_wiped", wiped},
          {"wipe_pending", !wiped && !audit_hash.empty()},
          {"search_index_removed", index_removed},
          {"audit_seq", audit_seq},
          {"audit_hash", audit_hash}};
}

Result<int> choose_enrollment_face(const std::vector<face::Face>& faces, int face_index) {
  if (faces.empty()) return refused("no face found in the photo");
  auto reasons = [](const face::Face& f) {
    std::string r;
    for (auto& x : f.quality.reasons) r += (r.empty() ? "" : "; ") + x;
    return r.empty() ? std::string("below the enrolment quality thresholds") : r;
  };
  if (face_index >= 0) {
    if (face_index >= static_cast<int>(faces.size()))
      return invalid_argument("face index " + std::to_string(face_index) + " out of range: the photo has " +
                              std::to_string(faces.size()) + " face(s)");
    if (!faces[face_index].quality.acceptable)
      return refused("face " + std::to_string(face_index) + " is not good enough to enrol: " + reasons(faces[face_index]));
    return face_index;
  }
  std::vector<int> ok;
  for (size_t i = 0; i < faces.size(); ++i)
    if (faces[i].quality.acceptable) ok.push_back(static_cast<int>(i));
  if (ok.size() == 1) return ok[0];
  if (ok.empty()) {
    if (faces.size() == 1) return refused("the face is not good enough to enrol: " + reasons(faces[0]));
    return refused("none of the " + std::to_string(faces.size()) + " faces is good enough to enrol");
  }
  return refused("ambiguous photo: " + std::to_string(ok.size()) +
                 " faces could be enrolled; choose one with --face INDEX (0-based, best detection first)");
}

Result<std::unique_ptr<Service>> Service::open(const fs::path& dir, Actor actor, ServiceOptions options) {
  if (!is_known_role(actor.role))
    return invalid_argument("unknown role '" + actor.role + "' (admin, enroller, investigator, auditor)");
  if (actor.name.empty()) return invalid_argument("an actor name is required");
  if (!valid_ref(actor.name)) return invalid_argument("the actor name must be 1-200 printable UTF-8 characters");
  std::unique_ptr<Service> s(new Service());
  FV_ASSIGN_OR_RETURN(s->vault_, vault::Vault::open(dir));
  s->actor_ = std::move(actor);
  s->options_ = std::move(options);
  return s;
}

std::string Service::now() const { return options_.clock ? options_.clock() : vault::utc_now(); }

AuditEntry Service::entry(const std::string& action) const {
  AuditEntry e;
  e.ts = now();
  e.actor = actor_.name;
  e.role = actor_.role;
  e.action = action;
  return e;
}

Result<std::string> Service::audit_now(AuditEntry e) {
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(vault_->db()));
  FV_ASSIGN_OR_RETURN(std::string h, vault::append_audit(vault_->db(), e));
  FV_RETURN_IF_ERROR(txn.commit());
  return h;
}

Status Service::authorize(const std::string& action, const std::string& purpose, const std::string& case_ref) {
  if (role_may(actor_.role, action)) return Status::ok();
  AuditEntry e = entry(action);
  e.outcome = "denied";
  e.purpose = purpose;
  e.case_ref = case_ref;
  e.details = {{"reason", "role " + actor_.role + " may not " + action}};
  (void)audit_now(e);
  return refused("role '" + actor_.role + "' may not " + action);
}

Result<face::FacePipeline*> Service::pipeline() {
  if (options_.shared_pipeline) return options_.shared_pipeline;
  if (!pipeline_) {
    if (options_.pipeline_factory) {
      FV_ASSIGN_OR_RETURN(pipeline_, options_.pipeline_factory());
    } else {
      face::PipelineOptions po;
      po.detector = vault_->config().detector;
      po.landmarker = vault_->config().landmarker;
      po.embedder = vault_->config().embedder;
      FV_ASSIGN_OR_RETURN(pipeline_, face::FacePipeline::create(nn::ModelStore(), po));
    }
  }
  return pipeline_.get();
}

const face::Calibration* Service::calibration() {
  if (!calibration_tried_) {
    calibration_tried_ = true;
    auto c = face::Calibration::builtin(face::builtin_embedder_model_id(vault_->config().embedder));
    if (c.is_ok()) calibration_ = std::move(*c);
  }
  return calibration_ ? &*calibration_ : nullptr;
}

double Service::optout_threshold() {
  const auto* c = calibration();
  return c ? c->threshold_at(vault_->config().optout_fmr) : vault_->config().optout_fallback_threshold;
}

double Service::search_threshold(double max_fmr) {
  const auto* c = calibration();
  if (!c) return vault_->config().search_fallback_threshold;
  return max_fmr >= 1.0 ? -1.0 : c->threshold_at(max_fmr);
}

Result<std::optional<Service::SubjectRow>> Service::find_subject(const std::string& ref_or_uid) {
  FV_ASSIGN_OR_RETURN(Stmt s, vault_->db().prepare(
      "SELECT id, uid, ref, created_at, retention_until FROM subject WHERE ref=?1 UNION ALL "
      "SELECT id, uid, ref, created_at, retention_until FROM subject WHERE uid=?1 AND ref<>?1 LIMIT 1"));
  s.bind(1, ref_or_uid);
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<SubjectRow>();
  return std::optional<SubjectRow>(SubjectRow{s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4)});
}

// ---------------------------------------------------------------- lawful basis

Result<BasisResult> Service::add_basis(const BasisRequest& req_in) {
  BasisRequest req = req_in;
  std::replace(req.kind.begin(), req.kind.end(), '_', '-');
  if (req.kind == "law-enforcement-authorisation" || req.kind == "law-enforcement-authorization") req.kind = "law-enforcement";
  FV_RETURN_IF_ERROR(authorize("basis_add"));
  if (!valid_ref(req.subject_ref)) return invalid_argument("a subject reference is required (1-200 printable UTF-8 characters)");
  if (std::find(kBasisKinds.begin(), kBasisKinds.end(), req.kind) == kBasisKinds.end())
    return invalid_argument("unknown basis kind '" + req_in.kind +
                            "' (consent, legal-obligation, public-task, law-enforcement)");
  if (!valid_ref(req.reference)) return invalid_argument("a basis reference is required (consent form id, warrant number, ...; 1-200 printable UTF-8 characters)");
  if (req.purposes.empty()) return invalid_argument("a basis must name at least one purpose");
  for (auto& p : req.purposes)
    if (!valid_token(p)) return invalid_argument("invalid purpose '" + p + "' (letters, digits, . _ : / -)");
  const std::string t = now();
  std::optional<std::string> expires;
  if (req.expires) {
    FV_ASSIGN_OR_RETURN(std::string e, vault::parse_time(*req.expires, true));
    if (e <= t) return invalid_argument("the basis would already have expired (" + e + ")");
    expires = e;
  }
  auto& db = vault_->db();
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
  BasisResult res;
  FV_ASSIGN_OR_RETURN(auto subj, find_subject(req.subject_ref));
  int64_t sid;
  if (subj && subj->ref == req.subject_ref) {
    sid = subj->id;
    res.subject_uid = subj->uid;
    res.retention_until = subj->retention_until;
  } else {
    res.subject_uid = vault::random_hex(8);
    res.retention_until = vault::add_days(t, vault_->config().default_retention_days);
    FV_ASSIGN_OR_RETURN(Stmt ins, db.prepare("INSERT INTO subject(uid, ref, created_at, retention_until) VALUES(?,?,?,?)"));
    ins.bind_all(res.subject_uid, req.subject_ref, t, res.retention_until);
    FV_RETURN_IF_ERROR(ins.run());
    sid = db.last_insert_rowid();
    FV_ASSIGN_OR_RETURN(SecretKey k, vault_->create_subject_key(sid));
    (void)k;
    res.subject_created = true;
  }
  FV_ASSIGN_OR_RETURN(Stmt b, db.prepare(
      "INSERT INTO lawful_basis(subject_id, kind, reference, granted_at, expires_at, recorded_by) VALUES(?,?,?,?,?,?)"));
  b.bind_all(sid, req.kind, req.reference, t, expires, actor_.name);
  FV_RETURN_IF_ERROR(b.run());
  res.basis_id = db.last_insert_rowid();
  std::set<std::string> uniq(req.purposes.begin(), req.purposes.end());
  for (auto& p : uniq) {
    FV_ASSIGN_OR_RETURN(Stmt bp, db.prepare("INSERT INTO basis_purpose(basis_id, purpose) VALUES(?,?)"));
    bp.bind_all(res.basis_id, p);
    FV_RETURN_IF_ERROR(bp.run());
  }
  AuditEntry e = entry("basis_add");
  e.subjects = {res.subject_uid};
  e.details = {{"basis_id", res.basis_id}, {"kind", req.kind}, {"purposes", std::vector<std::string>(uniq.begin(), uniq.end())},
               {"subject_created", res.subject_created}};
  if (expires) e.details["expires_at"] = *expires;
  FV_ASSIGN_OR_RETURN(res.audit_hash, vault::append_audit(db, e));
  FV_RETURN_IF_ERROR(txn.commit());
  return res;
}

Result<EraseReceipt> Service::erase_in_txn(const SubjectRow& s, const std::string& reason) {
  auto& db = vault_->db();
  EraseReceipt r;
  r.subject_ref = s.ref;
  r.subject_uid = s.uid;
  r.reason = reason;
  r.erased_at = now();
  auto count = [&](const std::string& sql) -> Result<int64_t> {
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(sql));
    q.bind(1, s.id);
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    return row ? q.i64(0) : 0;
  };
  FV_ASSIGN_OR_RETURN(r.faces, count("SELECT count(*) FROM face WHERE subject_id=?"));
  FV_ASSIGN_OR_RETURN(r.images, count("SELECT count(*) FROM source_image WHERE subject_id=?"));
  FV_ASSIGN_OR_RETURN(r.kept_images, count("SELECT count(*) FROM source_image WHERE subject_id=? AND image IS NOT NULL"));
  FV_ASSIGN_OR_RETURN(r.bases, count("SELECT count(*) FROM lawful_basis WHERE subject_id=?"));
  FV_ASSIGN_OR_RETURN(int64_t keys, count("SELECT count(*) FROM subject_key WHERE subject_id=?"));
  for (const char* sql : {"DELETE FROM face WHERE subject_id=?", "DELETE FROM source_image WHERE subject_id=?",
                          "DELETE FROM basis_purpose WHERE basis_id IN (SELECT id FROM lawful_basis WHERE subject_id=?)",
                          "DELETE FROM lawful_basis WHERE subject_id=?", "DELETE FROM subject_key WHERE subject_id=?",
                          "DELETE FROM subject WHERE id=?"}) {
    FV_ASSIGN_OR_RETURN(Stmt d, db.prepare(sql));
    d.bind(1, s.id);
    FV_RETURN_IF_ERROR(d.run());
  }
  r.key_destroyed = keys > 0;
  FV_RETURN_IF_ERROR(vault_->mark_wipe_pending());
  AuditEntry e = entry("erase");
  e.subjects = {s.uid};
  e.details = {{"reason", reason}, {"templates", r.faces}, {"source_images", r.images}, {"kept_images", r.kept_images},
               {"lawful_bases", r.bases}, {"subject_key", r.key_destroyed}};
  FV_ASSIGN_OR_RETURN(r.audit_hash, vault::append_audit(db, e));
  r.audit_seq = e.seq;
  return r;
}

Result<EraseReceipt> Service::withdraw_basis(int64_t basis_id) {
  FV_RETURN_IF_ERROR(authorize("basis_withdraw"));
  auto& db = vault_->db();
  EraseReceipt r;
  int64_t sid = 0;
  {
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
        "SELECT s.id, s.uid, s.ref, s.created_at, s.retention_until, b.withdrawn_at FROM lawful_basis b "
        "JOIN subject s ON s.id=b.subject_id WHERE b.id=?"));
    q.bind(1, basis_id);
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) return not_found("no lawful basis " + std::to_string(basis_id));
    SubjectRow s{q.i64(0), q.text(1), q.text(2), q.text(3), q.text(4)};
    sid = s.id;
    if (!q.is_null(5))
      return failed_precondition("lawful basis " + std::to_string(basis_id) + " was already withdrawn on " + q.text(5));
    // The subject stays only if another basis is in force (neither withdrawn nor expired).
    FV_ASSIGN_OR_RETURN(Stmt others, db.prepare(
        "SELECT count(*) FROM lawful_basis WHERE subject_id=? AND id<>? AND withdrawn_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > ?)"));
    others.bind_all(s.id, basis_id, now());
    FV_ASSIGN_OR_RETURN(bool orow, others.step());
    const int64_t remaining = orow ? others.i64(0) : 0;
    if (remaining == 0) {
      FV_ASSIGN_OR_RETURN(r, erase_in_txn(s, "consent withdrawn (basis " + std::to_string(basis_id) + ")"));
    } else {
      r.subject_ref = s.ref;
      r.subject_uid = s.uid;
      r.reason = "basis " + std::to_string(basis_id) + " withdrawn";
      r.erased_at = now();
      auto del = [&](const std::string& cnt, const std::string& sql, int64_t& out) -> Status {
        FV_ASSIGN_OR_RETURN(Stmt c, db.prepare(cnt));
        c.bind(1, basis_id);
        FV_ASSIGN_OR_RETURN(bool crow, c.step());
        out = crow ? c.i64(0) : 0;
        FV_ASSIGN_OR_RETURN(Stmt d, db.prepare(sql));
        d.bind(1, basis_id);
        return d.run();
      };
      FV_RETURN_IF_ERROR(del("SELECT count(*) FROM face WHERE basis_id=?", "DELETE FROM face WHERE basis_id=?", r.faces));
      FV_RETURN_IF_ERROR(del("SELECT count(*) FROM source_image WHERE basis_id=? AND image IS NOT NULL",
                             "SELECT 1 WHERE ?", r.kept_images));
      FV_RETURN_IF_ERROR(del("SELECT count(*) FROM source_image WHERE basis_id=?",
                             "DELETE FROM source_image WHERE basis_id=?", r.images));
      FV_ASSIGN_OR_RETURN(Stmt w, db.prepare("UPDATE lawful_basis SET withdrawn_at=? WHERE id=?"));
      w.bind_all(r.erased_at, basis_id);
      FV_RETURN_IF_ERROR(w.run());
      FV_RETURN_IF_ERROR(vault_->mark_wipe_pending());
      r.bases = 0;
      AuditEntry e = entry("basis_withdraw");
      e.subjects = {s.uid};
      e.details = {{"basis_id", basis_id}, {"templates", r.faces}, {"source_images", r.images},
                   {"kept_images", r.kept_images}, {"subject_erased", false}};
      FV_ASSIGN_OR_RETURN(r.audit_hash, vault::append_audit(db, e));
      r.audit_seq = e.seq;
    }
    FV_RETURN_IF_ERROR(txn.commit());
  }
  // Out of the index at once; the subject's remaining templates come back with the next load.
  auto forgotten = forget_subject(sid);
  drop_gallery();
  r.index_removed = forgotten.is_ok() ? static_cast<int64_t>(*forgotten) : 0;
  Status w = vault_->wipe_free_space();
  r.wiped = w.is_ok();
  if (!w.is_ok()) r.wipe_error = w.message();
  return r;
}

// ---------------------------------------------------------------- enrolment

Result<PreparedFace> Service::prepare(face::FacePipeline& pipeline, std::vector<uint8_t> bytes, int face_index,
                                      bool keep_image) const {
  PreparedFace p;
  // The decoded pixels and the faces are held here, declared before wipe_on_exit so they
  // outlive it: pointing the wiper at `img` and `faces` (declared later, destroyed first) made
  // its destructor read dead objects (ASan stack-use-after-scope, found by fuzz/http_fuzzer on
  // POST /v1/subjects/{ref}/faces; fuzz/regressions/http/).
  cv::Mat pixels;
  std::vector<face::Face> found;
  WipeOnExit wipe_on_exit{&bytes};  // a refused photo too (kept bytes are moved out first)
  p.sha256 = vault::sha256_hex(bytes);
  p.image_bytes = bytes.size();
  auto img = image::decode_image(bytes);
  if (!img.is_ok()) return img.status();
  pixels = img->rgb;  // shares the buffer
  wipe_on_exit.pixels = &pixels;
  p.format = img->format;
  auto analysed = pipeline.analyze(img->rgb, true);
  if (!analysed.is_ok()) return analysed.status();
  found = std::move(analysed).value();
  wipe_on_exit.faces = &found;
  std::vector<face::Face>* const faces = &found;
  FV_ASSIGN_OR_RETURN(int k, choose_enrollment_face(*faces, face_index));
  p.faces_in_image = static_cast<int>(faces->size());
  p.face_index = k;
  p.face = std::move((*faces)[k]);
  for (auto& f : *faces)
    if (f.face_template) vault::wipe(f.face_template->values);
  if (!p.face.face_template) return internal_error("the pipeline returned no template");
  if (keep_image) p.image = std::move(bytes);
  else vault::wipe(bytes);
  return p;
}

Result<EnrollResult> Service::enroll(const EnrollRequest& req, std::vector<uint8_t> image_bytes) {
  FV_RETURN_IF_ERROR(authorize("enroll", req.purpose.value_or("")));
  FV_ASSIGN_OR_RETURN(face::FacePipeline * p, pipeline());
  auto prepared = prepare(*p, std::move(image_bytes), req.face_index, req.keep_image);
  if (!prepared.is_ok()) {
    AuditEntry e = entry("enroll");
    e.outcome = "refused";
    e.purpose = req.purpose.value_or("");
    e.details = {{"basis_id", req.basis_id}, {"reason", prepared.status().message()}};
    (void)audit_now(e);
    return prepared.status();
  }
  auto r = commit_enrollment(req, *prepared);
  prepared->wipe();
  return r;
}

Result<EnrollResult> Service::commit_enrollment(const EnrollRequest& req, PreparedFace& p) {
  return commit_template(req, *p.face.face_template, p.sha256, p.format, p.image_bytes,
                         req.keep_image ? &p.image : nullptr, &p.face, p.face_index);
}

Result<EnrollResult> Service::enroll_template(const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                              const std::string& sha256) {
  return commit_template(req, tmpl, sha256, "synthetic", 0, nullptr, nullptr, 0);
}

Result<EnrollResult> Service::commit_template(const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                              const std::string& sha256, const std::string& format, size_t image_bytes,
                                              const std::vector<uint8_t>* keep, const face::Face* face, int face_index) {
  FV_RETURN_IF_ERROR(authorize("enroll", req.purpose.value_or("")));
  for (const std::string* f : {&req.provenance.supplied_by, &req.provenance.method, &req.provenance.source})
    if (!valid_text(*f, 1000))
      return invalid_argument("provenance (supplied by, method, source) must be printable UTF-8 text of at most 1000 bytes");
  auto& db = vault_->db();
  const std::string t = now();
  // Refusals are audited in their own transaction after the enrolment's is rolled back. The
  // audited reason never holds an external reference (the log is append-only: it could not
  // be erased); `shown`, for the caller only, may.
  auto refuse = [&](const std::string& reason, const std::vector<std::string>& subjects, json extra,
                    const std::string& shown = "") -> Status {
    AuditEntry e = entry("enroll");
    e.outcome = "refused";
    e.purpose = req.purpose.value_or("");
    e.subjects = subjects;
    e.details = {{"basis_id", req.basis_id}, {"reason", reason}};
    for (auto& [k, v] : extra.items()) e.details[k] = v;
    (void)audit_now(e);
    return refused(shown.empty() ? reason : shown);
  };
  EnrollResult res;
  res.subject_ref = req.subject_ref;
  res.sha256 = sha256;
  res.face_index = face_index;
  if (face) res.box = face->detection.box;
  {
    FV_ASSIGN_OR_RETURN(auto subj, find_subject(req.subject_ref));
    if (!subj || subj->ref != req.subject_ref)
      return refuse("unknown subject: record a lawful basis first (facevault basis add)", {}, json::object(),
                    "no subject '" + req.subject_ref + "': record a lawful basis first (facevault basis add)");
  }
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
  FV_ASSIGN_OR_RETURN(auto subj, find_subject(req.subject_ref));
  if (!subj || subj->ref != req.subject_ref) return refused("subject '" + req.subject_ref + "' was erased meanwhile");
  res.subject_uid = subj->uid;
  FV_ASSIGN_OR_RETURN(Stmt bq, db.prepare(
      "SELECT subject_id, kind, expires_at, withdrawn_at FROM lawful_basis WHERE id=?"));
  bq.bind(1, req.basis_id);
  FV_ASSIGN_OR_RETURN(bool brow, bq.step());
  std::string why;
  std::optional<std::string> basis_expires;
  if (!brow) why = "no lawful basis " + std::to_string(req.basis_id);
  else if (bq.i64(0) != subj->id) why = "lawful basis " + std::to_string(req.basis_id) + " belongs to another subject";
  else if (!bq.is_null(3)) why = "lawful basis " + std::to_string(req.basis_id) + " was withdrawn on " + bq.text(3);
  else if (!bq.is_null(2) && bq.text(2) <= t) why = "lawful basis " + std::to_string(req.basis_id) + " expired on " + bq.text(2);
  if (brow) basis_expires = bq.opt_text(2);
  if (why.empty() && req.purpose) {
    FV_ASSIGN_OR_RETURN(Stmt pq, db.prepare("SELECT 1 FROM basis_purpose WHERE basis_id=? AND purpose=?"));
    pq.bind_all(req.basis_id, *req.purpose);
    FV_ASSIGN_OR_RETURN(bool prow, pq.step());
    if (!prow) why = "lawful basis " + std::to_string(req.basis_id) + " does not cover the purpose '" + *req.purpose + "'";
  }
  if (!why.empty()) {
    auto st = txn.commit();  // nothing written yet: just release the write lock
    (void)st;
    return refuse(why, {subj->uid}, json::object());
  }
  // The opt-out registry, inside the transaction (its write lock keeps an opt-out from being
  // added between this check and the insert). Only opt-outs of the template's own model are
  // compared: see incomparable_optouts().
  {
    FV_ASSIGN_OR_RETURN(auto matches, match_optouts(tmpl));
    if (!matches.empty()) {
      auto st = txn.commit();  // nothing written yet: just release the write lock
      (void)st;
      return refuse("this face matches an entry of the opt-out registry (do-not-enrol list)", {},
                    {{"optout", matches[0].optout_uid}});
    }
  }
  FV_ASSIGN_OR_RETURN(SecretKey key, vault_->subject_key(subj->id));
  FV_RETURN_IF_ERROR(vault_->check_master_key_current());
  FV_ASSIGN_OR_RETURN(Stmt ii, db.prepare(
      "INSERT INTO source_image(subject_id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image)"
      " VALUES(?,?,?,?,?,?,?,?,?,?)"));
  ii.bind_all(subj->id, req.basis_id, sha256, static_cast<int64_t>(image_bytes), format,
              req.provenance.supplied_by.empty() ? actor_.name : req.provenance.supplied_by, req.provenance.method,
              req.provenance.source, t);
  ii.bind_null(10);
  FV_RETURN_IF_ERROR(ii.run());
  res.image_id = db.last_insert_rowid();
  // Sealed once the row ids are known: the associated data binds each blob to its own row.
  if (keep) {
    FV_ASSIGN_OR_RETURN(Stmt ki, db.prepare("UPDATE source_image SET image=? WHERE id=?"));
    ki.bind_all(vault::seal(key, *keep, vault::image_ad(subj->id, res.image_id)), res.image_id);
    FV_RETURN_IF_ERROR(ki.run());
  }
  FV_ASSIGN_OR_RETURN(Stmt fi, db.prepare(
      "INSERT INTO face(subject_id, image_id, basis_id, model_id, model_version, dim, template, box, quality, created_at)"
      " VALUES(?,?,?,?,?,?,X'',?,?,?)"));
  fi.bind_all(subj->id, res.image_id, req.basis_id, tmpl.model_id, tmpl.model_version,
              static_cast<int64_t>(tmpl.values.size()), face ? box_json(face->detection.box).dump() : "[]",
              face ? quality_json(face->quality).dump() : "{}", t);
  FV_RETURN_IF_ERROR(fi.run());
  res.face_id = db.last_insert_rowid();
  {
    FV_ASSIGN_OR_RETURN(Stmt ft, db.prepare("UPDATE face SET template=? WHERE id=?"));
    ft.bind_all(vault::seal(key, vault::as_bytes(tmpl.values),
                            vault::face_ad(subj->id, res.face_id, tmpl.model_id, tmpl.model_version)),
                res.face_id);
    FV_RETURN_IF_ERROR(ft.run());
  }
  // Retention is renewed by enrolment, but never beyond the basis' own expiry.
  std::string renewed = vault::add_days(t, vault_->config().default_retention_days);
  if (basis_expires && *basis_expires < renewed) renewed = *basis_expires;
  res.retention_until = std::max(renewed, subj->retention_until);
  FV_ASSIGN_OR_RETURN(Stmt ru, db.prepare("UPDATE subject SET retention_until=? WHERE id=?"));
  ru.bind_all(res.retention_until, subj->id);
  FV_RETURN_IF_ERROR(ru.run());
  // A subject whose retention had ended by this service's clock is eligible again: the vault's
  // trigger judges "ended" by the real clock, so this process forgets its own cache too.
  if (subj->retention_until <= t) eligibility_.clear();
  AuditEntry e = entry("enroll");
  e.purpose = req.purpose.value_or("");
  e.subjects = {subj->uid};
  e.details = {{"basis_id", req.basis_id}, {"face_id", res.face_id}, {"image_id", res.image_id},
               {"image_kept", keep != nullptr}, {"model", tmpl.model_id}};
  FV_ASSIGN_OR_RETURN(res.audit_hash, vault::append_audit(db, e));
  // Our one face row bumped the generation by one; if nobody else changed the templates since
  // the index was built, the online add below keeps it current without a rebuild.
  FV_ASSIGN_OR_RETURN(const int64_t generation, read_generation("gallery_generation"));
  const bool index_current = gallery_loaded_ && generation == gallery_generation_ + 1;
  FV_RETURN_IF_ERROR(txn.commit());
  if (gallery_loaded_ && !index_current) drop_gallery();
  // Online add: the loaded index takes the new template now (a failure drops the index, which
  // the next search rebuilds from the vault).
  if (gallery_loaded_) {
    gallery_generation_ = generation;
    const std::string mk = model_key(tmpl.model_id, tmpl.model_version);
    auto ix = indexes_.find(mk);
    Status added = Status::ok();
    if (ix == indexes_.end()) {
      index::IndexOptions o;
      o.kind = vault_->config().index_kind == "ivf" ? "exact" : vault_->config().index_kind;  // an IVF needs a training set
      o.threads = vault_->config().search_threads;
      // A graph keeps its re-rank copy on disk, sealed, as load_gallery's indexes do.
      o.graph.store_path = vault_->paths().dir / ("search-index-" + std::to_string(::getpid()) + "-new-" + std::to_string(indexes_.size()) + ".rerank");
      auto b = index::build_index(o, tmpl.values.size(), std::vector<index::Id>{res.face_id}, tmpl.values);
      if (b.is_ok()) indexes_[mk] = std::move(b).value();
      else added = b.status();
    } else {
      added = ix->second->add(std::vector<index::Id>{res.face_id}, tmpl.values);
    }
    if (added.is_ok()) {
      face_owner_[res.face_id] = {subj->id, mk, req.basis_id};
      auto& info = subjects_[subj->id];
      info.uid = subj->uid;
      info.ref = subj->ref;
      info.faces.push_back(res.face_id);
      max_faces_per_subject_ = std::max(max_faces_per_subject_, info.faces.size());
      ++gallery_version_;
    } else {
      drop_gallery();
    }
  }
  return res;
}

Result<std::vector<Service::BatchRow>> Service::read_manifest(const fs::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) return not_found("cannot open manifest " + csv.string());
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return io_error("read error on manifest " + csv.string());
  return parse_manifest(text, csv);
}

Result<std::vector<Service::BatchRow>> Service::parse_manifest(std::string_view text, const fs::path& csv) {
  std::vector<BatchRow> rows;
  int line_no = 0;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    // Simple CSV: fields separated by commas, optionally in double quotes ("" for a quote).
    std::vector<std::string> f;
    std::string cur;
    bool q = false;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (q) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') { cur += '"'; ++i; }
        else if (c == '"') q = false;
        else cur += c;
      } else if (c == '"') q = true;
      else if (c == ',') { f.push_back(cur); cur.clear(); }
      else cur += c;
    }
    f.push_back(cur);
    if (rows.empty() && line_no == 1 && !f.empty() && (f[0] == "image" || f[0] == "path")) continue;  // header
    if (f.size() < 3) return invalid_argument(csv.string() + ":" + std::to_string(line_no) + ": expected image,subject,basis[,provenance]");
    BatchRow r;
    r.line = line_no;
    r.image = f[0];
    if (!r.image.empty() && fs::path(r.image).is_relative()) r.image = (csv.parent_path() / r.image).string();
    r.subject_ref = f[1];
    try {
      size_t used = 0;
      r.basis_id = std::stoll(f[2], &used);
      if (used != f[2].size()) throw std::invalid_argument("x");
    } catch (...) {
      return invalid_argument(csv.string() + ":" + std::to_string(line_no) + ": basis id '" + f[2] + "' is not a number");
    }
    if (f.size() > 3) r.provenance = f[3];
    rows.push_back(std::move(r));
  }
  return rows;
}

Status Service::enroll_batch(const std::vector<BatchRow>& rows, int threads, bool keep_image, const std::string& method,
                             const std::function<void(const BatchRow&, const Result<EnrollResult>&)>& on_row,
                             const std::function<void(size_t, size_t)>& progress) {
  FV_RETURN_IF_ERROR(authorize("enroll"));
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, rows.size()))));
  std::vector<std::unique_ptr<face::FacePipeline>> pipelines;
  for (int i = 0; i < threads; ++i) {
    if (i == 0) {
      FV_ASSIGN_OR_RETURN(face::FacePipeline * p, pipeline());
      (void)p;
      continue;
    }
    if (options_.pipeline_factory) {
      FV_ASSIGN_OR_RETURN(auto p, options_.pipeline_factory());
      pipelines.push_back(std::move(p));
    } else {
      face::PipelineOptions po;
      po.detector = vault_->config().detector;
      po.landmarker = vault_->config().landmarker;
      po.embedder = vault_->config().embedder;
      FV_ASSIGN_OR_RETURN(auto p, face::FacePipeline::create(nn::ModelStore(), po));
      pipelines.push_back(std::move(p));
    }
  }
  std::vector<std::optional<Result<PreparedFace>>> done(rows.size());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  size_t committed = 0;
  auto work = [&](face::FacePipeline* p) {
    for (size_t i; (i = next.fetch_add(1)) < rows.size();) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return i < committed + 16 * static_cast<size_t>(threads); });
      }
      Result<PreparedFace> r = not_found("x");
      std::ifstream in(rows[i].image, std::ios::binary);
      if (!in) {
        // No path in the message: it is audited (the caller reports the row with its path).
        r = not_found("cannot open the image file");
      } else {
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        r = prepare(*p, std::move(bytes), -1, keep_image);
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        done[i].emplace(std::move(r));
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> workers;
  workers.emplace_back(work, options_.shared_pipeline ? options_.shared_pipeline : pipeline_.get());
  for (auto& p : pipelines) workers.emplace_back(work, p.get());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::optional<Result<PreparedFace>> r;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done[i].has_value(); });
      r = std::move(done[i]);
      done[i].reset();
    }
    EnrollRequest req;
    req.subject_ref = rows[i].subject_ref;
    req.basis_id = rows[i].basis_id;
    req.keep_image = keep_image;
    req.provenance.method = method;
    req.provenance.source = rows[i].provenance.empty() ? fs::path(rows[i].image).filename().string() : rows[i].provenance;
    if (!(*r).is_ok()) {
      AuditEntry e = entry("enroll");
      e.outcome = "refused";
      e.details = {{"basis_id", req.basis_id}, {"reason", (*r).status().message()}, {"manifest_line", rows[i].line}};
      (void)audit_now(e);
      on_row(rows[i], Result<EnrollResult>((*r).status()));
    } else {
      auto res = commit_enrollment(req, (*r).value());
      (*r).value().wipe();
      on_row(rows[i], res);
    }
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

// ---------------------------------------------------------------- search

// Erasure: the subject's templates leave the index physically (index::VectorIndex::remove
// overwrites them before it returns) — the erase path waits for this, there is no tombstone.
Result<size_t> Service::forget_subject(int64_t subject_id) {
  auto it = subjects_.find(subject_id);
  if (it == subjects_.end()) return size_t(0);
  std::map<std::string, std::vector<index::Id>> by_model;
  for (int64_t f : it->second.faces) {
    auto o = face_owner_.find(f);
    if (o == face_owner_.end()) continue;
    by_model[o->second.model_key].push_back(f);
    face_owner_.erase(o);
  }
  subjects_.erase(it);
  ++gallery_version_;
  size_t removed = 0;
  for (auto& [key, ids] : by_model) {
    auto ix = indexes_.find(key);
    if (ix == indexes_.end()) continue;
    auto r = ix->second->remove(ids);
    if (!r.is_ok()) {
      drop_gallery();  // never keep an index that may still hold the subject
      return r.status();
    }
    removed += *r;
  }
  return removed;
}

void Service::drop_gallery() {
  indexes_.clear();  // index buffers zero themselves when freed
  face_owner_.clear();
  subjects_.clear();
  max_faces_per_subject_ = 1;
  gallery_loaded_ = false;
  ++gallery_version_;
}

size_t Service::gallery_size() const {
  size_t n = 0;
  for (auto& [k, ix] : indexes_) n += ix->size();
  return n;
}

const index::VectorIndex* Service::search_index(const std::string& model_id, int model_version) const {
  auto it = indexes_.find(model_key(model_id, model_version));
  return it == indexes_.end() ? nullptr : it->second.get();
}

// Rebuilds the index from the vault (the persistence choice of docs/index.md: no second copy
// of the templates on disk; the vault is decrypted once per process).
namespace {
// Templates decrypted before they go into the index together: the first chunk of a model is
// an IVF's training sample (its cap, max(65536, 16·nlist), is 256 k at 16 M templates).
constexpr size_t kLoadFirstChunk = 262144, kLoadChunk = 65536;
}  // namespace

Result<int64_t> Service::read_generation(const char* key) {
  // Kept by triggers in the vault (schema 5 and 6), so they count every process's changes.
  FV_ASSIGN_OR_RETURN(Stmt g, vault_->db().prepare("SELECT CAST(value AS INTEGER) FROM meta WHERE key=?"));
  g.bind(1, std::string(key));
  FV_ASSIGN_OR_RETURN(bool row, g.step());
  if (!row) return corrupt_data(std::string("the vault has no ") + key);  // open() migrates: it always has
  return g.i64(0);
}

Status Service::load_gallery() {
  // Another process may have enrolled or erased since the index was built: then rebuild.
  FV_ASSIGN_OR_RETURN(const int64_t generation, read_generation("gallery_generation"));
  if (gallery_loaded_ && generation == gallery_generation_) return Status::ok();
  drop_gallery();
  gallery_generation_ = generation;
  // How many templates each model has decides its index kind before the first one is read:
  // the templates stream into the index in chunks, so a 10 M gallery never exists as floats
  // in memory all at once (20 GB at 512-D), only the index's compact copy.
  std::map<std::string, size_t> totals;
  {
    FV_ASSIGN_OR_RETURN(Stmt c, vault_->db().prepare("SELECT model_id, model_version, count(*) FROM face GROUP BY 1, 2"));
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, c.step());
      if (!row) break;
      totals[model_key(c.text(0), static_cast<int>(c.i64(1)))] = static_cast<size_t>(c.i64(2));
    }
  }
  index::IndexOptions o;
  o.kind = vault_->config().index_kind;
  o.ann_min_size = static_cast<size_t>(vault_->config().index_ann_min_size);
  o.threads = vault_->config().search_threads;
  FV_ASSIGN_OR_RETURN(Stmt s, vault_->db().prepare(
      "SELECT f.id, f.subject_id, s.uid, s.ref, f.model_id, f.model_version, f.template, k.wrapped, f.basis_id FROM face f "
      "JOIN subject s ON s.id=f.subject_id JOIN subject_key k ON k.subject_id=f.subject_id ORDER BY f.subject_id, f.id"));
  struct Pending {
    size_t dim = 0;
    std::vector<index::Id> ids;
    std::vector<float> values;
  };
  std::map<std::string, Pending> pending;
  struct Wipe {
    std::map<std::string, Pending>& p;
    ~Wipe() {
      for (auto& [k, v] : p) vault::wipe(v.values);
    }
  } wipe_on_exit{pending};
  size_t nth = 0;
  // Moves one model's pending chunk into its index (building it from the first chunk, which
  // is also an IVF's training sample) and wipes the floats.
  auto kind_for = [&](const std::string& mk) {
    return o.kind != "auto" ? o.kind : totals[mk] >= o.ann_min_size ? "ivf" : "exact";
  };
  auto flush = [&](const std::string& mk, Pending& p) -> Status {
    if (p.ids.empty()) return Status::ok();
    auto ix = indexes_.find(mk);
    Status st = Status::ok();
    if (ix == indexes_.end()) {
      index::IndexOptions mo = o;
      mo.kind = kind_for(mk);
      mo.ivf.expected_size = std::max(totals[mk], p.ids.size());
      // An IVF keeps its full-precision re-rank copy on disk, each record sealed under a key
      // that lives only in this process (the file is unreadable once the process ends, and
      // removed with the index); an exact index ignores it.
      mo.ivf.store_path = vault_->paths().dir / ("search-index-" + std::to_string(::getpid()) + "-" + std::to_string(nth++) + ".rerank");
      mo.graph.store_path = mo.ivf.store_path;
      auto built = index::build_index(mo, p.dim, p.ids, p.values);
      if (built.is_ok()) indexes_[mk] = std::move(built).value();
      else st = built.status();
    } else {
      st = ix->second->add(p.ids, p.values);
    }
    vault::wipe(p.values);
    p.values.clear();
    p.ids.clear();
    return st;
  };
  auto fail = [&](Status st) {
    drop_gallery();
    return st;
  };
  int64_t key_owner = -1;
  SecretKey key;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    const int64_t face_id = s.i64(0), subject_id = s.i64(1);
    if (subject_id != key_owner) {
      auto k = vault_->subject_key_from_wrapped(subject_id, s.blob(7));
      if (!k.is_ok()) return fail(k.status());
      key = std::move(k).value();
      key_owner = subject_id;
    }
    const std::string model = s.text(4);
    const int version = static_cast<int>(s.i64(5));
    auto opened = open_template(key, s.blob(6), vault::face_ad(subject_id, face_id, model, version), model, version);
    if (!opened.is_ok()) return fail(opened.status());
    auto t = std::move(opened).value();
    const std::string mk = model_key(model, version);
    Pending& p = pending[mk];
    if (p.dim == 0) p.dim = t.values.size();
    if (t.values.size() != p.dim || p.dim == 0) {
      vault::wipe(t.values);
      return fail(corrupt_data("face " + std::to_string(face_id) + ": template dimension differs from the model's"));
    }
    p.ids.push_back(face_id);
    p.values.insert(p.values.end(), t.values.begin(), t.values.end());
    vault::wipe(t.values);
    face_owner_[face_id] = {subject_id, mk, s.i64(8)};
    auto& info = subjects_[subject_id];
    if (info.uid.empty()) {
      info.uid = s.text(2);
      info.ref = s.text(3);
    }
    info.faces.push_back(face_id);
    max_faces_per_subject_ = std::max(max_faces_per_subject_, info.faces.size());
    // The first chunk of a model trains an IVF: as large as its training sample can be.
    const size_t chunk = !indexes_.count(mk) && kind_for(mk) == "ivf" ? kLoadFirstChunk : kLoadChunk;
    if (p.ids.size() >= chunk)
      if (Status st = flush(mk, p); !st.is_ok()) return fail(st);
  }
  for (auto& [mk, p] : pending)
    if (Status st = flush(mk, p); !st.is_ok()) return fail(st);
  for (auto& [mk, ix] : indexes_)
    if (auto* ivf = dynamic_cast<index::IvfIndex*>(ix.get())) ivf->shrink();
    else if (auto* graph = dynamic_cast<index::GraphIndex*>(ix.get())) graph->shrink();
  ++gallery_version_;
  gallery_loaded_ = true;
  return Status::ok();
}

// Up to k_subjects subjects (SIZE_MAX: every one) scoring >= threshold, best face each:
// subject id → (similarity, face id). Subjects have several faces, so the index is asked
// for k × (most faces any subject has), which always covers k distinct subjects; a search
// for everyone above a threshold widens until the list ends below it.
Result<std::map<int64_t, std::pair<double, int64_t>>> Service::search_gallery(const face::FaceTemplate& probe, size_t k_subjects,
                                                                              double threshold, const index::IdFilter* filter) {
  std::map<int64_t, std::pair<double, int64_t>> best;
  auto ix = indexes_.find(model_key(probe.model_id, probe.model_version));
  if (ix == indexes_.end() || ix->second->size() == 0 || probe.values.size() != ix->second->dim()) return best;
  size_t n = ix->second->size();
  const bool range = k_subjects == SIZE_MAX;
  size_t want = range ? 64 : std::min(n, k_subjects * max_faces_per_subject_);
  bool rebuilt = false;
  for (;;) {
    auto found = ix->second->search(probe.values, want, filter);
    if (!found.is_ok() && !rebuilt &&
        (found.status().code() == StatusCode::kCorruptData || found.status().code() == StatusCode::kIoError)) {
      // An IVF re-ranks from a scratch file in the vault directory; if that file was damaged
      // or cut (a disk error, a stray hand), every later search of this process would fail.
      // The index is a cache of the vault: rebuild it from the vault once and search again
      // (tests/fault/index_corruption_test.cpp).
      rebuilt = true;
      drop_gallery();
      FV_RETURN_IF_ERROR(load_gallery());
      ix = indexes_.find(model_key(probe.model_id, probe.model_version));
      if (ix == indexes_.end() || ix->second->size() == 0 || probe.values.size() != ix->second->dim()) return best;
      n = ix->second->size();
      want = range ? 64 : std::min(n, k_subjects * max_faces_per_subject_);
      continue;
    }
    if (!found.is_ok()) return found.status();
    auto& r = *found;
    best.clear();
    for (size_t i = 0; i < r.ids.size(); ++i) {
      if (r.scores[i] < threshold) break;
      auto o = face_owner_.find(r.ids[i]);
      if (o == face_owner_.end()) continue;
      auto& b = best[o->second.subject_id];
      if (b.second == 0 || r.scores[i] > b.first) b = {r.scores[i], r.ids[i]};
    }
    const bool exhausted = r.ids.size() < want || want >= n;
    if (!range || exhausted || r.scores.back() < threshold) break;
    want = std::min(n, want * 4);
  }
  return best;
}

Result<std::shared_ptr<Service::Eligibility>> Service::eligible_subjects(const std::string& purpose) {
  // Subjects whose lawful basis covers the purpose now, within retention: the filter the scan
  // applies to every gallery entry, so K eligible candidates come back whoever else is near.
  // Purpose limitation is per template: only templates collected under a basis that is in
  // force and covers the purpose are searchable (`bases`), and their subjects are the eligible
  // ones. A subject with a second basis for another purpose does not make a template collected
  // under the first searchable for the second.
  FV_ASSIGN_OR_RETURN(const int64_t generation, read_generation("eligibility_generation"));
  const std::string t = now();
  if (auto it = eligibility_.find(purpose); it != eligibility_.end()) {
    const Eligibility& c = *it->second;
    // A clock that went back (tests set it) could make an expired basis current again.
    if (c.generation == generation && t >= c.computed_at && (c.valid_until.empty() || t < c.valid_until))
      return it->second;
  }
  auto e = std::make_shared<Eligibility>();
  e->generation = generation;
  e->computed_at = t;
  FV_ASSIGN_OR_RETURN(Stmt s, vault_->db().prepare(
      "SELECT b.id, b.subject_id, b.expires_at, s.retention_until FROM basis_purpose p JOIN lawful_basis b ON b.id=p.basis_id "
      "JOIN subject s ON s.id=b.subject_id WHERE p.purpose=?1 AND b.withdrawn_at IS NULL "
      "AND (b.expires_at IS NULL OR b.expires_at > ?2) AND s.retention_until > ?2"));
  s.bind_all(purpose, t);
  auto earlier = [&](const std::string& when) {
    if (!when.empty() && (e->valid_until.empty() || when < e->valid_until)) e->valid_until = when;
  };
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    e->bases.insert(s.i64(0));
    e->subjects.insert(s.i64(1));
    if (!s.is_null(2)) earlier(s.text(2));
    earlier(s.text(3));
  }
  if (eligibility_.size() >= 64) eligibility_.clear();  // purposes are few; bound it anyway
  eligibility_[purpose] = e;
  return e;
}

Result<std::vector<Candidate>> Service::scan(const SearchRequest& req, const face::FaceTemplate& probe,
                                             const Eligibility& eligible) {
  const size_t k = static_cast<size_t>(req.top_k > 0 ? req.top_k
                                       : req.mode == "investigation" ? 50 : vault_->config().search_default_top);
  const double threshold = search_plan_threshold_;
  // Purpose limitation inside the index: a face of a subject outside `eligible` never takes
  // a place in the candidate list, so k eligible candidates come back whoever else is near.
  index::FunctionFilter filter([&](index::Id face) {
    auto o = face_owner_.find(face);
    return o != face_owner_.end() && eligible.bases.count(o->second.basis_id) > 0;
  });
  FV_ASSIGN_OR_RETURN(auto best, search_gallery(probe, k, threshold, &filter));
  std::vector<Candidate> out;
  for (auto& [sid, b] : best) {
    const auto& info = subjects_.at(sid);
    Candidate c{info.ref, info.uid, b.first, std::nullopt, std::nullopt};
    if (const auto* cal = calibration()) {
      c.fmr = cal->fmr_at(b.first);
      c.fpir = cal->fpir_at(b.first, static_cast<size_t>(std::max<int64_t>(1, search_plan_templates_)));
    }
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.similarity > b.similarity; });
  if (out.size() > k) out.resize(k);
  return out;
}

// The operating point of a search: threshold by FMR (default), by FPIR for the number of
// eligible templates (identification), or none (investigation: the top k for review).
Status Service::plan_search(const SearchRequest& req, Eligibility& eligible, SearchResult& res) {
  res.mode = req.mode;
  res.max_fmr = req.max_fmr.value_or(vault_->config().search_max_fmr);
  res.calibration = calibration() ? calibration()->source() : "none (no calibration table for this model)";
  res.eligible_subjects = static_cast<int64_t>(eligible.subjects.size());
  if (eligible.templates_at != gallery_version_) {
    eligible.templates = 0;
    for (int64_t sid : eligible.subjects)
      if (auto it = subjects_.find(sid); it != subjects_.end()) eligible.templates += static_cast<int64_t>(it->second.faces.size());
    eligible.templates_at = gallery_version_;
  }
  const int64_t templates = eligible.templates;
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
  search_plan_threshold_ = res.threshold;
  search_plan_templates_ = templates;
  return Status::ok();
}

Status Service::check_search(const SearchRequest& req) {
  FV_RETURN_IF_ERROR(authorize("search", req.purpose, req.case_ref));
  if (std::find(kSearchModes.begin(), kSearchModes.end(), req.mode) == kSearchModes.end())
    return invalid_argument("unknown search mode '" + req.mode + "' (threshold, identification, investigation)");
  if (!req.purpose.empty() && !req.case_ref.empty() && valid_token(req.purpose) && valid_ref(req.case_ref))
    return Status::ok();
  AuditEntry e = entry("search");
  e.outcome = "refused";
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  e.details = {{"reason", "a search needs a purpose and a case reference"}};
  (void)audit_now(e);
  return refused("a search needs a purpose (--purpose) and a case reference (--case)");
}

Result<std::string> Service::audit_search(const SearchRequest& req, const SearchResult& res) {
  json per_face = json::array();
  std::set<std::string> all;
  for (auto& f : res.faces) {
    json ids = json::array();
    for (auto& c : f.candidates) {
      ids.push_back(c.subject_uid);
      all.insert(c.subject_uid);
    }
    per_face.push_back(ids);
  }
  AuditEntry e = entry("search");
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  e.subjects.assign(all.begin(), all.end());
  e.details = {{"faces", res.faces.size()}, {"candidates", per_face},
               {"top", req.top_k > 0 ? req.top_k : req.mode == "investigation" ? 50 : vault_->config().search_default_top},
               {"eligible_subjects", res.eligible_subjects}, {"max_fmr", res.max_fmr}, {"threshold", res.threshold}, {"mode", res.mode}};
  return audit_now(e);
}

Result<SearchResult> Service::search_templates(const SearchRequest& req_in, const std::vector<face::FaceTemplate>& probes) {
  const SearchRequest req = within_limits(req_in, vault_->config().search_max_fmr);
  FV_RETURN_IF_ERROR(check_search(req));
  FV_RETURN_IF_ERROR(load_gallery());
  SearchResult res;
  FV_ASSIGN_OR_RETURN(auto eligible, eligible_subjects(req.purpose));
  FV_RETURN_IF_ERROR(plan_search(req, *eligible, res));
  for (auto& p : probes) {
    SearchFace sf;
    sf.quality_ok = true;
    FV_ASSIGN_OR_RETURN(sf.candidates, scan(req, p, *eligible));
    res.faces.push_back(std::move(sf));
  }
  FV_ASSIGN_OR_RETURN(res.audit_hash, audit_search(req, res));
  return res;
}

Result<VerifyResult> Service::verify_subject(const SearchRequest& req_in, const std::string& subject_ref,
                                             const face::FaceTemplate& probe) {
  const SearchRequest req = within_limits(req_in, vault_->config().search_max_fmr);
  FV_RETURN_IF_ERROR(check_search(req));
  FV_RETURN_IF_ERROR(load_gallery());
  FV_ASSIGN_OR_RETURN(auto eligible, eligible_subjects(req.purpose));
  FV_ASSIGN_OR_RETURN(auto subj, find_subject(subject_ref));
  AuditEntry e = entry("verify_subject");
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  if (!subj || subj->ref != subject_ref || !eligible->subjects.count(subj->id)) {
    e.outcome = "refused";
    e.details = {{"reason", "no subject enrolled for this purpose under that reference"}};
    (void)audit_now(e);
    return not_found("no subject enrolled for the purpose '" + req.purpose + "' under that reference");
  }
  VerifyResult r;
  r.max_fmr = req.max_fmr.value_or(vault_->config().search_max_fmr);
  r.threshold = search_threshold(r.max_fmr);
  const int64_t sid = subj->id;
  index::FunctionFilter filter([&](index::Id face) {
    auto o = face_owner_.find(face);
    return o != face_owner_.end() && o->second.subject_id == sid && eligible->bases.count(o->second.basis_id) > 0;
  });
  FV_ASSIGN_OR_RETURN(auto best, search_gallery(probe, 1, -2.0, &filter));
  if (auto it = best.find(sid); it != best.end()) r.similarity = it->second.first;
  if (const auto* cal = calibration()) r.fmr = cal->fmr_at(r.similarity);
  r.same = r.similarity >= r.threshold;
  e.subjects = {subj->uid};
  e.details = {{"same", r.same}, {"max_fmr", r.max_fmr}, {"threshold", r.threshold}};
  FV_ASSIGN_OR_RETURN(r.audit_hash, audit_now(e));
  return r;
}

Result<SearchResult> Service::search(const SearchRequest& req_in, std::vector<uint8_t> image_bytes) {
  const SearchRequest req = within_limits(req_in, vault_->config().search_max_fmr);
  FV_RETURN_IF_ERROR(check_search(req));
  FV_ASSIGN_OR_RETURN(face::FacePipeline * p, pipeline());
  FV_ASSIGN_OR_RETURN(auto photo, analyse_photo(*p, image_bytes));
  auto& faces = photo->faces;
  FV_RETURN_IF_ERROR(load_gallery());
  SearchResult res;
  FV_ASSIGN_OR_RETURN(auto eligible, eligible_subjects(req.purpose));
  FV_RETURN_IF_ERROR(plan_search(req, *eligible, res));
  for (auto& f : faces) {
    SearchFace sf;
    sf.box = f.detection.box;
    sf.quality_ok = f.quality.acceptable;
    if (f.face_template) {
      FV_ASSIGN_OR_RETURN(sf.candidates, scan(req, *f.face_template, *eligible));
      vault::wipe(f.face_template->values);
    }
    res.faces.push_back(std::move(sf));
  }
  FV_ASSIGN_OR_RETURN(res.audit_hash, audit_search(req, res));
  return res;
}

// ---------------------------------------------------------------- erasure, export, expiry

Result<EraseReceipt> Service::erase(const std::string& subject, const std::string& reason) {
  FV_RETURN_IF_ERROR(authorize("erase"));
  EraseReceipt r;
  int64_t sid = 0;
  {
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(vault_->db()));
    FV_ASSIGN_OR_RETURN(auto s, find_subject(subject));
    if (!s) return not_found("no subject '" + subject + "' in the vault (already erased?)");
    sid = s->id;
    FV_ASSIGN_OR_RETURN(r, erase_in_txn(*s, reason));
    FV_RETURN_IF_ERROR(txn.commit());
  }
  // Physical removal from the search index before the receipt is issued.
  auto forgotten = forget_subject(sid);
  if (!forgotten.is_ok()) return failed_precondition("subject erased (audit " + r.audit_hash + ") but the search index failed: " +
                                                      forgotten.status().message() + "; it was dropped and is rebuilt from the vault");
  r.index_removed = static_cast<int64_t>(*forgotten);
  // The erasure is committed: its receipt is returned whatever the wipe does. A wipe that
  // fails stays pending and is finished by the next open of the vault.
  Status w = vault_->wipe_free_space();
  r.wiped = w.is_ok();
  if (!w.is_ok()) r.wipe_error = w.message();
  return r;
}

Result<json> Service::export_subject(const std::string& subject, bool include_templates,
                                     const std::optional<fs::path>& images_dir) {
  FV_RETURN_IF_ERROR(authorize("export"));
  auto& db = vault_->db();
  FV_ASSIGN_OR_RETURN(auto s, find_subject(subject));
  if (!s) return not_found("no subject '" + subject + "' in the vault");
  json j;
  j["subject"] = {{"reference", s->ref}, {"id", s->uid}, {"created_at", s->created_at}, {"retention_until", s->retention_until}};
  json bases = json::array();
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
        "SELECT id, kind, reference, granted_at, expires_at, withdrawn_at, recorded_by, "
        "(SELECT json_group_array(purpose) FROM basis_purpose WHERE basis_id=lawful_basis.id) "
        "FROM lawful_basis WHERE subject_id=? ORDER BY id"));
    q.bind(1, s->id);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      bases.push_back({{"id", q.i64(0)}, {"kind", q.text(1)}, {"reference", q.text(2)}, {"granted_at", q.text(3)},
                       {"expires_at", q.is_null(4) ? json(nullptr) : json(q.text(4))},
                       {"withdrawn_at", q.is_null(5) ? json(nullptr) : json(q.text(5))},
                       {"recorded_by", q.text(6)}, {"purposes", json::parse(q.text(7))}});
    }
  }
  j["lawful_bases"] = bases;
  FV_ASSIGN_OR_RETURN(SecretKey key, vault_->subject_key(s->id));
  json images = json::array();
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
        "SELECT id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image FROM source_image "
        "WHERE subject_id=? ORDER BY id"));
    q.bind(1, s->id);
    if (images_dir) {
      // Decrypted photos: a private folder (0700) when we create it, private files (0600).
      std::error_code ec;
      if (!fs::exists(*images_dir, ec)) {
        if (images_dir->has_parent_path()) fs::create_directories(images_dir->parent_path(), ec);
        if (ec || (::mkdir(images_dir->c_str(), 0700) != 0 && errno != EEXIST))
          return io_error("cannot create " + images_dir->string() + ": " + (ec ? ec.message() : std::strerror(errno)));
      }
    }
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      json im = {{"id", q.i64(0)}, {"basis_id", q.i64(1)}, {"sha256", q.text(2)}, {"bytes", q.i64(3)},
                 {"format", q.text(4)}, {"provenance", {{"supplied_by", q.text(5)}, {"method", q.text(6)},
                                                        {"source", q.text(7)}, {"received_at", q.text(8)}}},
                 {"kept", !q.is_null(9)}};
      if (!q.is_null(9) && images_dir) {
        FV_ASSIGN_OR_RETURN(Bytes plain, vault::open_sealed(key, q.blob(9), vault::image_ad(s->id, q.i64(0))));
        const fs::path out = *images_dir / ("image-" + std::to_string(q.i64(0)) + "." + (q.text(4).empty() ? "bin" : q.text(4)));
        const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        bool written = fd >= 0 && ::fchmod(fd, 0600) == 0;  // an existing file keeps its mode otherwise
        for (size_t off = 0; written && off < plain.size();) {
          const ssize_t n = ::write(fd, plain.data() + off, plain.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) written = false;
          else off += static_cast<size_t>(n);
        }
        if (fd >= 0 && ::close(fd) != 0) written = false;
        vault::wipe(plain);
        if (!written) return io_error("cannot write " + out.string());
        im["file"] = out.string();
      }
      images.push_back(im);
    }
  }
  j["source_images"] = images;
  json faces = json::array();
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
        "SELECT id, image_id, basis_id, model_id, model_version, dim, box, quality, created_at, template FROM face "
        "WHERE subject_id=? ORDER BY id"));
    q.bind(1, s->id);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      json f = {{"id", q.i64(0)}, {"image_id", q.is_null(1) ? json(nullptr) : json(q.i64(1))}, {"basis_id", q.i64(2)},
                {"model", q.text(3)}, {"model_version", q.i64(4)}, {"dim", q.i64(5)},
                {"box", json::parse(q.text(6), nullptr, false)}, {"quality", json::parse(q.text(7), nullptr, false)},
                {"created_at", q.text(8)}, {"template", "held encrypted (pass --with-templates for the values)"}};
      if (include_templates) {
        FV_ASSIGN_OR_RETURN(auto t, open_template(key, q.blob(9),
                                                  vault::face_ad(s->id, q.i64(0), q.text(3), static_cast<int>(q.i64(4))),
                                                  q.text(3), static_cast<int>(q.i64(4))));
        f["template"] = t.values;
        vault::wipe(t.values);
      }
      faces.push_back(f);
    }
  }
  j["templates"] = faces;
  vault::AuditQuery aq;
  aq.subject = s->uid;
  FV_ASSIGN_OR_RETURN(auto entries, vault::read_audit(db, aq));
  json audit = json::array();
  for (auto& e : entries) {
    json a = e.to_json();
    // Another subject's ids are not this subject's data: keep only theirs.
    a["subjects"] = json::array({s->uid});
    if (e.action == "search" && a["details"].contains("candidates")) {
      json mine = json::array();
      for (size_t fi = 0; fi < a["details"]["candidates"].size(); ++fi) {
        const auto& ids = a["details"]["candidates"][fi];
        for (size_t rank = 0; rank < ids.size(); ++rank)
          if (ids[rank] == s->uid) mine.push_back({{"face", fi}, {"rank", rank + 1}});
      }
      a["details"]["candidates"] = mine;
      a["details"]["returned_as_candidate"] = !mine.empty();
    }
    audit.push_back(a);
  }
  j["audit"] = audit;
  j["exported_at"] = now();
  AuditEntry e = entry("export");
  e.subjects = {s->uid};
  e.details = {{"templates_included", include_templates}, {"images_written", images_dir.has_value()}};
  FV_ASSIGN_OR_RETURN(std::string h, audit_now(e));
  j["audit_hash"] = h;
  return j;
}

Result<ExpireReport> Service::expire(const std::optional<std::string>& as_of_in, bool dry_run) {
  FV_RETURN_IF_ERROR(authorize("expire"));
  ExpireReport rep;
  const std::string t = now();
  if (as_of_in) {
    FV_ASSIGN_OR_RETURN(rep.as_of, vault::parse_time(*as_of_in));
    // A date in the future would erase, today, subjects that are not due: only a dry run
    // may look ahead.
    if (rep.as_of > t && !dry_run)
      return invalid_argument("--as-of " + rep.as_of + " is in the future: only a dry run (--dry-run) may look ahead");
  } else {
    rep.as_of = t;
  }
  auto& db = vault_->db();
  // Due: retention passed, or no basis left that is in force (all withdrawn or expired).
  std::vector<std::pair<SubjectRow, std::string>> due;
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
        "SELECT id, uid, ref, created_at, retention_until, CASE WHEN retention_until <= ?1 THEN 'retention period ended' "
        "ELSE 'no lawful basis in force' END FROM subject s WHERE retention_until <= ?1 OR NOT EXISTS ("
        "SELECT 1 FROM lawful_basis b WHERE b.subject_id=s.id AND b.withdrawn_at IS NULL "
        "AND (b.expires_at IS NULL OR b.expires_at > ?1)) ORDER BY id"));
    q.bind(1, rep.as_of);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      due.push_back({SubjectRow{q.i64(0), q.text(1), q.text(2), q.text(3), q.text(4)}, q.text(5)});
    }
  }
  for (auto& [s, why] : due) {
    if (dry_run) {
      EraseReceipt r;
      r.subject_ref = s.ref;
      r.subject_uid = s.uid;
      r.reason = why;
      rep.erased.push_back(r);
      continue;
    }
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
    FV_ASSIGN_OR_RETURN(EraseReceipt r, erase_in_txn(s, why));
    FV_RETURN_IF_ERROR(txn.commit());
    auto forgotten = forget_subject(s.id);
    r.index_removed = forgotten.is_ok() ? static_cast<int64_t>(*forgotten) : 0;
    rep.erased.push_back(r);
  }
  AuditEntry e = entry("expire");
  for (auto& r : rep.erased) e.subjects.push_back(r.subject_uid);
  e.details = {{"as_of", rep.as_of}, {"erased", dry_run ? 0 : rep.erased.size()}, {"dry_run", dry_run},
               {"due", rep.erased.size()}};
  FV_ASSIGN_OR_RETURN(rep.audit_hash, audit_now(e));
  if (!dry_run && !rep.erased.empty()) {
    Status w = vault_->wipe_free_space();
    for (auto& r : rep.erased) {
      r.wiped = w.is_ok();
      if (!w.is_ok()) r.wipe_error = w.message();
    }
  }
  return rep;
}

// ---------------------------------------------------------------- opt-out

Result<std::vector<OptoutMatch>> Service::match_optouts(const face::FaceTemplate& t, const std::string& only_uid) {
  std::vector<OptoutMatch> out;
  auto& db = vault_->db();
  FV_ASSIGN_OR_RETURN(int64_t n, db.query_int("SELECT count(*) FROM optout"));
  if (n == 0) return out;
  FV_ASSIGN_OR_RETURN(SecretKey key, vault_->optout_key(false));
  const double thr = optout_threshold();
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare("SELECT uid, model_id, model_version, template FROM optout ORDER BY id"));
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    const std::string uid = q.text(0);
    if (!only_uid.empty() && uid != only_uid) continue;
    const int ver = static_cast<int>(q.i64(2));
    if (q.text(1) != t.model_id || ver != t.model_version) continue;
    FV_ASSIGN_OR_RETURN(auto o, open_template(key, q.blob(3), optout_ad(uid, q.text(1), ver), q.text(1), ver));
    const double sim = face::similarity(t, o);
    vault::wipe(o.values);
    if (sim >= thr) out.push_back({"", "", uid, sim});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.similarity > b.similarity; });
  return out;
}

Result<OptoutResult> Service::optout_add(std::vector<uint8_t> image_bytes, int face_index) {
  FV_RETURN_IF_ERROR(authorize("optout_add"));
  FV_ASSIGN_OR_RETURN(face::FacePipeline * p, pipeline());
  FV_ASSIGN_OR_RETURN(auto photo, analyse_photo(*p, image_bytes));
  auto& faces = photo->faces;
  // An opt-out is accepted from a lower-quality photo than an enrolment: refusing someone's
  // request not to be enrolled because their photo is blurry would defeat its purpose.
  int k = face_index;
  if (faces.empty()) return refused("no face found in the photo");
  if (k < 0) {
    if (faces.size() > 1)
      return refused("the photo has " + std::to_string(faces.size()) + " faces; choose one with --face INDEX");
    k = 0;
  } else if (k >= static_cast<int>(faces.size())) {
    return invalid_argument("face index out of range: the photo has " + std::to_string(faces.size()) + " face(s)");
  }
  auto r = optout_add_template(*faces[k].face_template);
  for (auto& f : faces)
    if (f.face_template) vault::wipe(f.face_template->values);
  return r;
}

Result<OptoutResult> Service::optout_add_template(const face::FaceTemplate& tmpl) {
  FV_RETURN_IF_ERROR(authorize("optout_add"));
  auto& db = vault_->db();
  OptoutResult res;
  res.optout_uid = vault::random_hex(8);
  // Enrolled subjects the new entry matches, whatever their purpose (the registry protects
  // against enrolment as such): counted and audited here, listed only by optout_check.
  FV_RETURN_IF_ERROR(load_gallery());
  const double thr = optout_threshold();
  std::set<std::string> matched;
  {
    // A range search through the index (no purpose filter).
    FV_ASSIGN_OR_RETURN(auto best, search_gallery(tmpl, SIZE_MAX, thr, nullptr));
    for (auto& [sid, b] : best) matched.insert(subjects_.at(sid).uid);
  }
  {
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
    FV_ASSIGN_OR_RETURN(SecretKey key, vault_->optout_key(true));
    FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(
        "INSERT INTO optout(uid, model_id, model_version, template, created_at) VALUES(?,?,?,?,?)"));
    s.bind_all(res.optout_uid, tmpl.model_id, tmpl.model_version,
               vault::seal(key, vault::as_bytes(tmpl.values), optout_ad(res.optout_uid, tmpl.model_id, tmpl.model_version)),
               now());
    FV_RETURN_IF_ERROR(s.run());
    AuditEntry e = entry("optout_add");
    e.subjects.assign(matched.begin(), matched.end());
    e.details = {{"optout", res.optout_uid}, {"enrolled_matches", matched.size()}};
    FV_ASSIGN_OR_RETURN(res.audit_hash, vault::append_audit(db, e));
    FV_RETURN_IF_ERROR(txn.commit());
  }
  res.enrolled_match_count = static_cast<int64_t>(matched.size());
  return res;
}

Result<int64_t> Service::incomparable_optouts() {
  // Not of the vault's embedder, or of a model version that no enrolled template has.
  FV_ASSIGN_OR_RETURN(Stmt q, vault_->db().prepare(
      "SELECT count(*) FROM optout o WHERE o.model_id <> ?1 OR (EXISTS (SELECT 1 FROM face) AND NOT EXISTS "
      "(SELECT 1 FROM face f WHERE f.model_id = o.model_id AND f.model_version = o.model_version))"));
  q.bind(1, face::builtin_embedder_model_id(vault_->config().embedder));
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? q.i64(0) : 0;
}

Result<std::vector<OptoutMatch>> Service::optout_check() {
  FV_RETURN_IF_ERROR(authorize("optout_check"));
  std::vector<OptoutMatch> out;
  auto& db = vault_->db();
  FV_ASSIGN_OR_RETURN(int64_t n, db.query_int("SELECT count(*) FROM optout"));
  if (n > 0) {
    FV_RETURN_IF_ERROR(load_gallery());
    FV_ASSIGN_OR_RETURN(SecretKey key, vault_->optout_key(false));
    const double thr = optout_threshold();
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare("SELECT uid, model_id, model_version, template FROM optout ORDER BY id"));
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      const std::string uid = q.text(0);
      const int ver = static_cast<int>(q.i64(2));
      FV_ASSIGN_OR_RETURN(auto o, open_template(key, q.blob(3), optout_ad(uid, q.text(1), ver), q.text(1), ver));
      auto best = search_gallery(o, SIZE_MAX, thr, nullptr);
      vault::wipe(o.values);
      if (!best.is_ok()) return best.status();
      for (auto& [sid, b] : *best) {
        const auto& info = subjects_.at(sid);
        out.push_back({info.ref, info.uid, uid, b.first});
      }
    }
  }
  FV_ASSIGN_OR_RETURN(const int64_t incomparable, incomparable_optouts());
  AuditEntry e = entry("optout_check");
  for (auto& m : out) e.subjects.push_back(m.subject_uid);
  e.details = {{"optouts", n}, {"matches", out.size()}, {"incomparable_optouts", incomparable}};
  FV_ASSIGN_OR_RETURN(std::string h, audit_now(e));
  (void)h;
  return out;
}

// ---------------------------------------------------------------- audit, keys

Result<vault::AuditVerifyReport> Service::audit_verify() {
  FV_RETURN_IF_ERROR(authorize("audit_verify"));
  return vault::verify_audit(vault_->db());
}

Result<std::vector<AuditEntry>> Service::audit_show(const std::optional<std::string>& since,
                                                    const std::optional<std::string>& subject, size_t limit) {
  FV_RETURN_IF_ERROR(authorize("audit_show"));
  vault::AuditQuery q;
  q.limit = limit;
  if (since) {
    FV_ASSIGN_OR_RETURN(auto t, vault::parse_time(*since));
    q.since = t;
  }
  bool known = false;
  if (subject) {
    FV_ASSIGN_OR_RETURN(auto s, find_subject(*subject));
    // An erased subject is only known by the id on its receipt.
    q.subject = s ? s->uid : *subject;
    known = s.has_value();
  }
  FV_ASSIGN_OR_RETURN(auto entries, vault::read_audit(vault_->db(), q));
  AuditEntry e = entry("audit_show");
  // Only a vault id goes into the log: a subject of the vault, or one the log names (an
  // erased subject's id). Anything else may be an external reference: not recorded.
  if (q.subject && (known || !entries.empty())) e.subjects = {*q.subject};
  else if (q.subject) e.details["subject"] = "unknown subject";
  e.details["entries"] = entries.size();
  if (since) e.details["since"] = *q.since;
  FV_ASSIGN_OR_RETURN(std::string h, audit_now(e));
  (void)h;
  return entries;
}

Result<vault::Vault::RotateReport> Service::rotate_key(const std::function<void()>& after_commit) {
  FV_RETURN_IF_ERROR(authorize("key_rotate"));
  return vault_->rotate_master_key(
      [&](const vault::Vault::RotateReport& r) -> Status {
        AuditEntry e = entry("key_rotate");
        e.details = {{"old_key_id", r.old_key_id}, {"new_key_id", r.new_key_id}, {"subject_keys", r.subject_keys},
                     {"optout_key", r.optout_key}};
        auto h = vault::append_audit(vault_->db(), e);
        return h.is_ok() ? Status::ok() : h.status();
      },
      after_commit);
}

}  // namespace fv::service
