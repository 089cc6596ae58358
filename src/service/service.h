// The vault's use cases under policy: lawful basis, enrollment, search and verification,
// erasure and withdrawal, access export, retention, opt-out, keys and audit. Every use case
// takes the acting caller (Actor) as an argument, checks its role against the policy table
// (policy.h), applies purpose limitation and writes its audit entry in the same transaction as
// its effect; a refusal is audited too, and a use case whose audit entry cannot be written
// fails (counted in stats().audit_write_failures).
//
// Service is a facade, like LevelDB's DBImpl over its mechanisms: the in-memory search
// gallery (gallery.h), photo analysis with wiping in one place (photo.h), the pipeline pool
// (pipeline_pool.h) and the typed catalog of the vault (vault/catalog.h) each live in their
// own file; the use cases are grouped by capability in basis.cpp, enrollment.cpp, search.cpp,
// erasure.cpp, export.cpp, optout.cpp and admin.cpp.
//
// Thread safety: every method may be called from several threads at once. Photo analysis runs
// on a pool of face pipelines outside any lock; the vault and the gallery are entered under
// one mutex for the short part of a request (the scan, the commit, the audit entry). API-key
// authentication, denials at the door and the gauges use a second connection of their own so
// that they never wait behind a long search.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "face/calibration.h"
#include "face/compare.h"
#include "face/pipeline.h"
#include "index/vector_index.h"
#include "service/policy.h"
#include "vault/api_keys.h"
#include "vault/audit.h"
#include "vault/vault.h"

namespace fv::service {

struct BasisRequest {
  std::string subject_ref;
  BasisKind kind = BasisKind::kConsent;
  std::string reference;  // consent form id, warrant number, statute
  std::vector<std::string> purposes;
  std::optional<std::string> expires;  // date or timestamp (UTC)
};

struct BasisResult {
  int64_t basis_id = 0;
  std::string subject_ref, subject_uid;
  bool subject_created = false;
  std::string retention_until;
  std::string audit_hash;
};

struct Provenance {
  std::string supplied_by;         // default: the actor
  std::string method = "file";     // how it reached us: file, manifest, http, camera, ...
  std::string source;              // free description (default: the file name)
};

struct EnrollRequest {
  EnrollRequest() = default;
  EnrollRequest(std::string ref, int64_t basis, std::optional<std::string> purpose_ = std::nullopt)
      : subject_ref(std::move(ref)), basis_id(basis), purpose(std::move(purpose_)) {}
  std::string subject_ref;
  int64_t basis_id = 0;
  std::optional<std::string> purpose;  // when given, the basis must cover it
  int face_index = -1;                 // which face when the photo has several acceptable ones
  bool keep_image = false;
  // Keep a sealed aligned crop of the face for reviewers to compare (review cases); nullopt:
  // the vault's oversight.keep_reference_crops.
  std::optional<bool> keep_reference;
  Provenance provenance;
};

struct EnrollResult {
  std::string subject_ref, subject_uid;
  int64_t face_id = 0, image_id = 0;
  std::string sha256;
  face::Box box;
  int face_index = 0;
  std::string retention_until;
  bool reference_kept = false;
  std::string audit_hash;
};

// What a pre-computed template was taken from (Service::enroll_template).
struct TemplateOrigin {
  std::string image_sha256 = std::string(64, '0');
  std::string format = "synthetic";
  std::vector<uint8_t> kept_image;  // wiped once stored
};

struct Candidate {
  std::string subject_ref, subject_uid;
  double similarity = 0;
  std::optional<double> fmr;   // calibrated false-match rate of this score (absent without a table)
  std::optional<double> fpir;  // false-positive identification rate of this score for the gallery searched
};

// How a search chooses its candidates (NIST FRTE distinguishes the two uses):
//   threshold       candidates above a false-match rate (config search_max_fmr): the default;
//   identification  candidates above the score whose FPIR, for the number of templates
//                   searched, is max_fpir (default 1 %): "is this person enrolled?";
//   investigation   the top_k best (default 50) whatever their score, for human review.
inline const std::vector<std::string> kSearchModes = {"threshold", "identification", "investigation"};

struct SearchRequest {
  SearchRequest() = default;
  SearchRequest(std::string purpose_, std::string case_, int top = 0)
      : purpose(std::move(purpose_)), case_ref(std::move(case_)), top_k(top) {}
  std::string purpose, case_ref;
  int top_k = 0;                  // 0: the config default (investigation: 50)
  std::optional<double> max_fmr;  // default and upper bound: config search_max_fmr (a request only tightens it)
  std::string mode = "threshold"; // one of kSearchModes
  std::optional<double> max_fpir; // identification mode (default 0.01)
  // Purposes the caller's credential is limited to (an API key's scope); nullopt: no limit.
  // A purpose outside them is refused with kPermissionDenied and audited as "denied".
  std::optional<std::vector<std::string>> allowed_purposes;
  // The authorisation the search cites (its id, "au_…"); required when the purpose is in the
  // vault's oversight.authorisation_required.
  std::optional<std::string> authorisation;
};

struct SearchFace {
  face::Box box;
  bool quality_ok = false;
  std::vector<Candidate> candidates;
};

struct SearchResult {
  std::vector<SearchFace> faces;
  std::string purpose, case_ref, mode;
  int64_t eligible_subjects = 0;  // subjects whose basis covers the purpose
  int64_t eligible_templates = 0; // their templates: the gallery size FPIR refers to
  double threshold = 0, max_fmr = 0;
  std::string calibration;
  // The review case the search opened: its candidates are for two-person review and none is
  // a confirmed identification until reviewers confirm it (Service::review_decide).
  std::string review_case;
  std::optional<std::string> authorisation;  // cited
  bool authorisation_pending = false;        // cited while pending: unusable if it lapses
  std::string audit_hash;
};

struct VerifyResult {  // a photo against one enrolled subject
  std::string subject_ref;
  face::Box box;              // the probe face compared
  double similarity = -1;     // best over the subject's eligible templates
  double threshold = 0;       // decision threshold at max_fmr
  double max_fmr = 0;
  std::optional<double> fmr;  // calibrated false-match rate of the similarity
  bool same = false;
  std::string audit_hash;
};

// The presentation-attack check of a verification's probe (photo a), when asked for.
struct LivenessCheck {
  double score = 0;      // P(live) of the probe's compared face (face/liveness.h)
  double threshold = 0;  // VaultConfig::liveness_threshold
  bool live = false;     // score >= threshold; a probe that is not live is refused, never returned
};

struct PhotoComparison {  // two photos, no vault data
  face::Comparison comparison;
  std::optional<LivenessCheck> liveness;  // only when the request asked for the check
  face::Box box_a, box_b;
  size_t faces_a = 0, faces_b = 0;
  std::string model;
  std::string audit_hash;
};

struct Detection {  // faces and their quality, no template kept
  int width = 0, height = 0;
  std::string format;
  std::vector<face::Face> faces;       // templates never filled
  std::optional<int> enrollable_face;  // the face enrollment would take, if any
  std::string enrollable_reason;       // why none otherwise
  std::string audit_hash;
};

struct EraseReceipt {
  std::string subject_ref, subject_uid, reason;
  std::string erased_at;
  int64_t faces = 0, images = 0, kept_images = 0, bases = 0;
  int64_t reference_crops = 0;            // reviewers' reference crops of the subject's faces
  int64_t review_candidates_removed = 0;  // the subject's candidacies in open review cases
  bool key_destroyed = false;
  bool wiped = false;  // WAL checkpointed and freed pages overwritten
  std::string wipe_error;  // why not (the wipe stays pending: the next open of the vault finishes it)
  int64_t index_removed = 0;  // templates physically removed from the in-memory search index
  int64_t audit_seq = 0;
  std::string audit_hash;
};

struct LapseReport {  // pending authorisations whose deadline passed without a grant
  std::vector<std::string> lapsed;  // their ids
  int64_t cases_marked_unusable = 0;
  int64_t probe_crops_destroyed = 0;  // cases whose probe crops aged out (oversight.probe_crop_days)
};

struct ExpireReport {
  std::string as_of;
  bool dry_run = false;
  std::vector<EraseReceipt> erased;
  LapseReport oversight;  // lapsed authorisations and aged-out probe crops (not in a dry run)
  std::string audit_hash;
};

struct OptoutMatch {
  std::string subject_ref, subject_uid, optout_uid;
  double similarity = 0;
};

struct OptoutResult {
  std::string optout_uid;
  // How many enrolled subjects the new entry matches. Only the number: adding an opt-out is
  // not a search (no purpose, no case, open to enrollers), so who they are is listed only by
  // optout_check (auditor/admin). The number and their vault ids are in the audit entry.
  int64_t enrolled_match_count = 0;
  std::string audit_hash;
};

struct OptoutCheck {
  std::vector<OptoutMatch> matches;
  double threshold = 0;
  int64_t incomparable_optouts = 0;  // see Service::optout_check
  std::string audit_hash;
};

struct AuditFilter {
  std::optional<std::string> since;    // date or timestamp
  std::optional<std::string> subject;  // reference or vault id
  std::optional<std::string> action, outcome, actor;
  size_t limit = 0;            // at most this many entries returned (0: all)
  bool newest_first = false;
};

struct AuditPage {
  std::vector<vault::AuditEntry> entries;  // at most `limit`, in the order asked for
  size_t matched = 0;                      // entries that pass every filter
  size_t total = 0;                        // entries since/for the subject, before the other filters
};

// ---- human oversight: review cases (reviews.cpp), authorisations (authorisations.cpp), the
// transparency report (report.cpp). EU AI Act Art 14(5), 12(3)(d), 26(6), 26(10).

enum class ReviewVerdict { kConfirm, kReject, kInconclusive };
const char* review_verdict_name(ReviewVerdict v);  // confirm, reject, inconclusive
std::optional<ReviewVerdict> parse_review_verdict(std::string_view name);

struct ReviewDecision {
  int64_t candidate_id = 0;
  std::string reviewer, reviewer_role, decision, reason, decided_at;
  bool reference_available = false;  // an enrolled reference crop existed to compare with
  std::string audit_hash;            // of the decision's audit entry (when just recorded)
};

struct ReviewCandidate {
  int64_t id = 0;
  int face_index = 0, rank = 0;
  std::string subject_ref, subject_uid;  // ref empty once the subject was erased
  double similarity = 0;
  std::optional<double> fmr, fpir;
  // pending: fewer than the required decisions; confirmed: at least reviewers_required
  // confirmations and no other decision; rejected: only rejections; inconclusive: no
  // confirmation, not only rejections; disputed: confirmations and other decisions.
  std::string status;
  int decisions_recorded = 0;
  // Absent when the caller may not see them yet: a reviewer sees the decisions on a
  // candidate only after recording their own (independent review); auditors and admins see
  // them; the searcher once the case is closed.
  std::optional<std::vector<ReviewDecision>> decisions;
  bool reference_available = false;
  bool decided_by_caller = false;
};

struct ReviewCase {
  std::string id;  // "rv_…"
  std::string opened_at, searcher, purpose, case_ref, mode, probe_sha256, status;  // status: open | closed
  std::optional<std::string> closed_at, authorisation, unusable;
  int64_t search_audit_seq = 0;
  std::vector<int> probe_faces;  // faces whose probe crop is kept (for the review page)
  std::vector<ReviewCandidate> candidates;
};

// The purposes a caller's credential is limited to (an API key's scope), as for a search:
// cases of other purposes are not listed, and reading or deciding one is refused.
using PurposeScope = std::optional<std::vector<std::string>>;

struct ReviewListFilter {
  std::optional<std::string> status;  // open | closed
  bool awaiting_caller = false;       // open cases with a candidate the caller may still decide
  size_t limit = 100;
  PurposeScope allowed_purposes;
};

struct ReviewDecisionRequest {
  int64_t candidate_id = 0;
  ReviewVerdict verdict = ReviewVerdict::kInconclusive;
  std::string reason;  // free text, 1-2000 bytes
  PurposeScope allowed_purposes;
};

struct ReviewImage {  // a JPEG for the review page
  std::vector<uint8_t> jpeg;
};

struct AuthorisationRequest {
  std::string authority, reference;  // issuing authority, its reference
  std::vector<std::string> purposes;
  std::string valid_from, valid_until;  // dates or timestamps (UTC)
  bool pending = false;                 // requested, not yet granted (Art 26(10): within 48 h)
  std::optional<std::string> deadline;  // pending: default now + oversight.authorisation_pending_hours
  std::string note;
};

struct Authorisation {
  std::string id;  // "au_…"
  std::string authority, reference;
  std::vector<std::string> purposes;
  std::string valid_from, valid_until, status, requested_at;  // granted | pending | refused | lapsed
  std::optional<std::string> deadline, decided_at, decided_by;
  std::string recorded_by, note;
  int64_t cases_citing = 0;
  std::string audit_hash;
};

struct BatchRow {
  std::string image, subject_ref, provenance;
  int64_t basis_id = 0;
  int line = 0;
};
// CSV: image,subject,basis[,provenance] (header row optional). Paths relative to the file.
Result<std::vector<BatchRow>> read_manifest(const std::filesystem::path& csv);
// The same from the manifest's text; `csv` names it in errors and relative image paths are
// taken relative to its folder (fuzzed on its own: fuzz/manifest_fuzzer.cpp).
Result<std::vector<BatchRow>> parse_manifest(std::string_view text, const std::filesystem::path& csv);

// Creates a vault in `dir` (vault::Vault::init) and writes its first audit entry, "init", by
// `actor` (an admin, named by 1-200 printable UTF-8 characters): the one way every adapter
// creates a vault, so that the log always starts with who made it.
Status init_vault(const std::filesystem::path& dir, const vault::VaultConfig& config, const Actor& actor);

// The face to enroll from a photo: the only acceptable one, or `face_index` when given;
// otherwise a reason (no face, not good enough, ambiguous).
Result<int> choose_enrollment_face(const std::vector<face::Face>& faces, int face_index);

struct ServiceStats {
  // In the vault; absent when the database does not answer (the counters below are still
  // given: they matter most then).
  std::optional<int64_t> templates, subjects;
  size_t pipelines = 0;
  uint64_t audit_write_failures = 0;    // use cases failed because their audit entry could not be written
  std::string calibration;
};

// What the service wiped, reported to ServiceOptions::on_wipe (tests prove every path wipes).
// kFaceCrops: the aligned face crops (JPEG) a photo keeps for review cases and reference crops.
enum class WipeKind { kUploadedBytes, kDecodedPixels, kFaceTemplates, kFaceCrops };

struct ServiceOptions {
  // A pipeline owned by the caller (tests load the models once), used instead of a pool.
  face::FacePipeline* shared_pipeline = nullptr;
  // Builds pipelines. Default: FacePipeline::create with the vault's models.
  std::function<Result<std::unique_ptr<face::FacePipeline>>()> pipeline_factory;
  int pipelines = 1;  // pool size: photos analyzed at once
  std::function<std::string()> clock;  // default: vault::utc_now
  // Called after each wipe of photo bytes, decoded pixels or templates, with what was wiped
  // and how many bytes (all zero by then). Tests count them; null in production.
  std::function<void(WipeKind, size_t bytes)> on_wipe;
  // Cluster mode (docs/cluster.md): the vault's transactions go through this interceptor — a
  // shard's writer replicates them through its stream — instead of committing locally. The
  // use cases run unchanged; null on a single node.
  std::shared_ptr<vault::CommitInterceptor> commit_interceptor;
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> open(const std::filesystem::path& dir, ServiceOptions options = {});
  ~Service();

  const vault::VaultConfig& config() const;
  const vault::VaultPaths& paths() const;
  std::string now() const;

  // ---- lawful basis (basis.cpp)
  // Creates the subject (and its data key) when the reference is new.
  Result<BasisResult> add_basis(const Actor& actor, const BasisRequest& req);
  // Withdrawal erases what the basis covered; when no other basis is in force (withdrawn or
  // expired ones do not count), the whole subject. A basis is withdrawn once (a second
  // withdrawal is kAlreadyExists and keeps the first date).
  Result<EraseReceipt> withdraw_basis(const Actor& actor, int64_t basis_id);

  // ---- enrollment (enrollment.cpp)
  // Image bytes → one acceptable face → quality gate → opt-out check → sealed template +
  // provenance + audit, all or nothing. The bytes, pixels and templates are wiped on every path.
  Result<EnrollResult> enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes);
  // Synthetic or pre-computed templates (benchmarks, crash tests); same policy and records,
  // one transaction. With req.keep_image, origin.kept_image is stored sealed as the source
  // photo (the erasure, export and crash tests keep a photo beside a synthetic template).
  Result<EnrollResult> enroll_template(const Actor& actor, const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                       TemplateOrigin origin = {});
  // Runs the pipeline on `threads` workers and commits in manifest order; on_row for each.
  Status enroll_batch(const Actor& actor, const std::vector<BatchRow>& rows, int threads, bool keep_image,
                      const std::string& method,
                      const std::function<void(const BatchRow&, const Result<EnrollResult>&)>& on_row,
                      const std::function<void(size_t done, size_t total)>& progress = {});

  // ---- search and verification (search.cpp)
  // Refuses without purpose and case; the purpose filter runs inside the scan.
  Result<SearchResult> search(const Actor& actor, const SearchRequest& req, std::vector<uint8_t> image_bytes);
  // The same for probes already embedded (one SearchFace per template; boxes left empty).
  Result<SearchResult> search_templates(const Actor& actor, const SearchRequest& req,
                                        const std::vector<face::FaceTemplate>& probes);
  // 1:1 of a photo's largest face against one enrolled subject, under search policy (role,
  // purpose, case; only templates whose basis covers the purpose count). An unknown subject
  // and one not enrolled for the purpose give the same answer (kNotFound).
  Result<VerifyResult> verify_subject(const Actor& actor, const SearchRequest& req, const std::string& subject_ref,
                                      std::vector<uint8_t> image_bytes);
  Result<VerifyResult> verify_subject_template(const Actor& actor, const SearchRequest& req,
                                               const std::string& subject_ref, const face::FaceTemplate& probe);
  // 1:1 of two photos (largest face each, face::verification_face) at a false-match rate.
  // `liveness`: photo a is the probe presented live; its compared face is checked for a
  // presentation attack first and the request refused (kFailedPrecondition, audited
  // "refused") when the check judges it an attack. Off by default: the model is weak
  // (docs/models.md).
  Result<PhotoComparison> verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b, double fmr,
                                        bool liveness = false);
  // Faces, keypoints and quality of a photo, and which face enrollment would take. Audited.
  Result<Detection> detect(const Actor& actor, std::vector<uint8_t> image_bytes);

  // ---- erasure, withdrawal's sibling, and retention (erasure.cpp)
  // Once the erasure is committed its receipt is returned, also when the wipe of freed pages
  // fails (wiped = false, wipe_error says why; the next open of the vault finishes it).
  Result<EraseReceipt> erase(const Actor& actor, const std::string& subject, const std::string& reason = "erasure request");
  // Erases the subjects due at `as_of` (default now); a future `as_of` needs dry_run.
  Result<ExpireReport> expire(const Actor& actor, const std::optional<std::string>& as_of, bool dry_run);

  // ---- access export (export.cpp)
  // Everything held about a subject; kept images are written to images_dir when given.
  Result<nlohmann::json> export_subject(const Actor& actor, const std::string& subject, bool include_templates,
                                        const std::optional<std::filesystem::path>& images_dir);

  // ---- opt-out registry (optout.cpp)
  Result<OptoutResult> optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index = -1);
  Result<OptoutResult> optout_add_template(const Actor& actor, const face::FaceTemplate& tmpl);
  // Enrolled subjects matching an opt-out. Also counts opt-outs that are compared with
  // nothing: a template is compared only with templates of the same embedder model and
  // version, so after a model change the registry's entries no longer block enrollment; they
  // must be taken again (new photo) with the current model.
  Result<OptoutCheck> optout_check(const Actor& actor);

  // ---- human oversight: review cases (reviews.cpp)
  // Cases the caller may see: reviewers, auditors and admins all; an investigator those they opened.
  Result<std::vector<ReviewCase>> review_list(const Actor& actor, const ReviewListFilter& filter);
  Result<ReviewCase> review_show(const Actor& actor, const std::string& case_id, const PurposeScope& scope = std::nullopt);
  // One reviewer's decision on one candidate: audited naming the reviewer; the case closes
  // (and its probe crops are destroyed) once every candidate has the decisions required.
  Result<ReviewDecision> review_decide(const Actor& actor, const std::string& case_id, const ReviewDecisionRequest& req);
  // The probe face of a case, and a candidate's enrolled reference face (kNotFound when none
  // is kept: the page says so). Audited, as a viewing of biometric data.
  Result<ReviewImage> review_probe_image(const Actor& actor, const std::string& case_id, int face_index,
                                         const PurposeScope& scope = std::nullopt);
  Result<ReviewImage> review_reference_image(const Actor& actor, const std::string& case_id, int64_t candidate_id,
                                             const PurposeScope& scope = std::nullopt);

  // ---- human oversight: authorisations (authorisations.cpp)
  Result<Authorisation> authorisation_add(const Actor& actor, const AuthorisationRequest& req);
  Result<Authorisation> authorisation_grant(const Actor& actor, const std::string& id, const std::string& note);
  Result<Authorisation> authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note);
  Result<std::vector<Authorisation>> authorisation_list(const Actor& actor);
  // Lapses the pending authorisations past their deadline (their cases become unusable) and
  // destroys aged-out probe crops; expire() runs it too. Audited.
  Result<LapseReport> oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of);

  // ---- the transparency report (report.cpp): counts from the audit log, no personal data.
  // `from` and `to` are dates or timestamps (UTC; a date `to` includes that day).
  Result<nlohmann::json> transparency_report(const Actor& actor, const std::string& from, const std::string& to);

  // ---- audit and keys (admin.cpp)
  Result<vault::AuditVerifyReport> audit_verify(const Actor& actor);
  Result<AuditPage> audit_show(const Actor& actor, const AuditFilter& filter);
  // Signs the audit chain's head now (role of audit verify: admin, auditor) and returns the
  // checkpoint, to be kept outside the vault (`audit checkpoint --json`). The request is an
  // audit entry ("audit_checkpoint") and the checkpoint signs the head that includes it.
  Result<vault::AuditCheckpoint> audit_checkpoint(const Actor& actor);
  // The chain and every checkpoint, then a checkpoint kept elsewhere (audit_checkpoint.h).
  Result<vault::AuditVerifyReport> audit_verify_against(const Actor& actor, const vault::AuditCheckpoint& external);
  Result<vault::Vault::RotateReport> rotate_key(const Actor& actor, const std::function<void()>& after_commit = {});
  Result<vault::NewApiKey> create_api_key(const Actor& actor, Role role, const std::vector<std::string>& purposes,
                                          const std::string& label);
  Status revoke_api_key(const Actor& actor, const std::string& key_id);
  Result<std::vector<vault::ApiKey>> list_api_keys(const Actor& actor);
  // The caller a presented "fvk_…" key stands for ("key:<id>" and its role), or
  // kUnauthenticated (unknown, malformed, revoked or wrong secret: not told apart, on purpose).
  Result<std::pair<Actor, vault::ApiKey>> authenticate_key(const std::string& presented);
  // A refusal decided by an adapter before any use case ran (a route's role, an upload over
  // the limit): audited as outcome "denied". Fails when the entry cannot be written.
  Status record_denial(const Actor& actor, Action action, const std::string& reason, const nlohmann::json& details = {},
                       const std::string& purpose = "", const std::string& case_ref = "");
  // An event with no use case behind it (sign-in): audited with outcome "ok".
  Result<std::string> record_event(const Actor& actor, Action action, const nlohmann::json& details);

  // ---- thresholds, health and gauges
  double optout_threshold();
  double search_threshold(double max_fmr);
  const face::Calibration* calibration();
  Status health();
  ServiceStats stats();
  // Builds every face pipeline of the pool now (they are otherwise built at the first photo):
  // a server calls it at start so that missing models stop it there. kUnavailable on failure.
  Status warm_up();

  // Templates in the in-memory search index (loaded at the first search; tests look at it).
  size_t gallery_size() const;
  // Tests only: the index serving a model's templates (null before the first search). The
  // pointer is read without the service's lock: use it only while no other thread calls in.
  const index::VectorIndex* search_index(const std::string& model_id, int model_version) const;

  // Tests only: the vault underneath (its catalog, its failure injection).
  vault::Vault& vault_for_testing();

  struct Impl;

 private:
  Service() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fv::service
