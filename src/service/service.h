// The vault's use cases under policy: lawful basis, enrolment, search, erasure, access export,
// retention, opt-out, audit and keys. Every use case checks the actor's role, applies purpose
// limitation and writes its audit entry in the same transaction as its effect. It uses the
// face module only through FacePipeline (create/analyze) and Calibration.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "face/calibration.h"
#include "face/pipeline.h"
#include "index/index.h"
#include "vault/audit.h"
#include "vault/vault.h"

namespace fv::service {

// admin: everything; enroller: bases, enrolment, opt-outs; investigator: search;
// auditor (data-protection officer): erasure, basis withdrawal (it erases), export, expiry,
// opt-out checks, the audit log.
bool is_known_role(const std::string& role);
bool role_may(const std::string& role, const std::string& action);

struct Actor {
  std::string name;
  std::string role = "admin";
};

inline const std::vector<std::string> kBasisKinds = {"consent", "legal-obligation", "public-task", "law-enforcement"};

struct BasisRequest {
  std::string subject_ref;
  std::string kind;       // one of kBasisKinds (underscores accepted)
  std::string reference;  // consent form id, warrant number, statute
  std::vector<std::string> purposes;
  std::optional<std::string> expires;  // date or timestamp (UTC)
};

struct BasisResult {
  int64_t basis_id = 0;
  std::string subject_uid;
  bool subject_created = false;
  std::string retention_until;
  std::string audit_hash;
};

struct Provenance {
  std::string supplied_by;         // default: the actor
  std::string method = "file";     // how it reached us: file, manifest, camera, ...
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
  Provenance provenance;
};

// The pipeline's work on one enrolment image, done before any transaction (and in parallel
// in the batch form). Holds the template: wipe() it once committed.
struct PreparedFace {
  std::string sha256;
  std::string format;
  std::vector<uint8_t> image;  // the bytes, kept only when keep_image
  size_t image_bytes = 0;
  face::Face face;
  int face_index = 0;
  int faces_in_image = 0;
  void wipe();
};

struct EnrollResult {
  std::string subject_ref, subject_uid;
  int64_t face_id = 0, image_id = 0;
  std::string sha256;
  face::Box box;
  int face_index = 0;
  std::string retention_until;
  std::string audit_hash;
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

struct VerifyResult {
  double similarity = -1;  // best over the subject's eligible templates
  double threshold = 0;    // decision threshold at max_fmr
  double max_fmr = 0;
  std::optional<double> fmr;  // calibrated false-match rate of the similarity
  bool same = false;
  std::string audit_hash;
};

struct SearchFace {
  face::Box box;
  bool quality_ok = false;
  std::vector<Candidate> candidates;
};

struct SearchRequest {
  SearchRequest() = default;
  SearchRequest(std::string purpose_, std::string case_, int top = 0)
      : purpose(std::move(purpose_)), case_ref(std::move(case_)), top_k(top) {}
  std::string purpose, case_ref;
  int top_k = 0;                  // 0: the config default (investigation: 50)
  std::optional<double> max_fmr;  // default and upper bound: config search_max_fmr (a request only tightens it)
  std::string mode = "threshold"; // one of kSearchModes
  std::optional<double> max_fpir; // identification mode (default 0.01)
};

struct SearchResult {
  std::vector<SearchFace> faces;
  std::string mode;
  int64_t eligible_subjects = 0;  // subjects whose basis covers the purpose
  int64_t eligible_templates = 0; // their templates: the gallery size FPIR refers to
  double threshold = 0, max_fmr = 0;
  std::string calibration;
  std::string audit_hash;
};

struct EraseReceipt {
  std::string subject_ref, subject_uid, reason;
  std::string erased_at;
  int64_t faces = 0, images = 0, kept_images = 0, bases = 0;
  bool key_destroyed = false;
  bool wiped = false;  // WAL checkpointed and freed pages overwritten
  std::string wipe_error;  // why not (the wipe stays pending: the next open of the vault finishes it)
  int64_t index_removed = 0;  // templates physically removed from the in-memory search index
  int64_t audit_seq = 0;
  std::string audit_hash;
  nlohmann::json to_json() const;
};

struct ExpireReport {
  std::string as_of;
  std::vector<EraseReceipt> erased;
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

struct ServiceOptions {
  // A pipeline owned by the caller (tests load the models once), used instead of building one.
  face::FacePipeline* shared_pipeline = nullptr;
  // Builds pipelines (tests share one). Default: FacePipeline::create with the vault's models.
  std::function<Result<std::unique_ptr<face::FacePipeline>>()> pipeline_factory;
  std::function<std::string()> clock;  // default: vault::utc_now
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> open(const std::filesystem::path& dir, Actor actor, ServiceOptions options = {});

  vault::Vault& vault() { return *vault_; }
  const Actor& actor() const { return actor_; }
  void set_actor(Actor a) { actor_ = std::move(a); }
  std::string now() const;

  // Lawful basis. Creates the subject (and its data key) when the reference is new.
  Result<BasisResult> add_basis(const BasisRequest& req);
  // Withdrawal erases what the basis covered; when no other basis is in force (withdrawn or
  // expired ones do not count), the whole subject. Auditor or admin only; a basis is
  // withdrawn once (a second withdrawal is refused and keeps the first date).
  Result<EraseReceipt> withdraw_basis(int64_t basis_id);

  // Enrolment: image bytes → one acceptable face → quality gate → opt-out check → sealed
  // template + provenance + audit, all or nothing.
  Result<PreparedFace> prepare(face::FacePipeline& pipeline, std::vector<uint8_t> bytes, int face_index,
                               bool keep_image) const;
  Result<EnrollResult> enroll(const EnrollRequest& req, std::vector<uint8_t> image_bytes);
  Result<EnrollResult> commit_enrollment(const EnrollRequest& req, PreparedFace& prepared);
  // Synthetic or pre-computed templates (benchmarks, crash tests); same policy and records.
  Result<EnrollResult> enroll_template(const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                       const std::string& image_sha256 = std::string(64, '0'));

  struct BatchRow {
    std::string image, subject_ref, provenance;
    int64_t basis_id = 0;
    int line = 0;
  };
  // CSV: image,subject,basis[,provenance] (header row optional). Paths relative to the file.
  static Result<std::vector<BatchRow>> read_manifest(const std::filesystem::path& csv);
  // The same from the manifest's text; `csv` names it in errors and relative image paths are
  // taken relative to its folder (fuzzed on its own: fuzz/manifest_fuzzer.cpp).
  static Result<std::vector<BatchRow>> parse_manifest(std::string_view text, const std::filesystem::path& csv);
  // Runs the pipeline on `threads` workers and commits in manifest order; on_row for each.
  Status enroll_batch(const std::vector<BatchRow>& rows, int threads, bool keep_image, const std::string& method,
                      const std::function<void(const BatchRow&, const Result<EnrollResult>&)>& on_row,
                      const std::function<void(size_t done, size_t total)>& progress = {});

  // Search: refuses without purpose and case; the purpose filter runs inside the scan.
  Result<SearchResult> search(const SearchRequest& req, std::vector<uint8_t> image_bytes);
  // The same for probes already embedded (one SearchFace per template; boxes left empty).
  Result<SearchResult> search_templates(const SearchRequest& req, const std::vector<face::FaceTemplate>& probes);
  // 1:1 verification of a probe template against one enrolled subject, under the same policy
  // as a search (role, purpose, case; only templates whose basis covers the purpose count).
  // An unknown subject and one not enrolled for the purpose give the same answer.
  Result<VerifyResult> verify_subject(const SearchRequest& req, const std::string& subject_ref,
                                      const face::FaceTemplate& probe);

  // Once the erasure is committed its receipt is returned, also when the wipe of freed pages
  // fails (wiped = false, wipe_error says why; the next open of the vault finishes it).
  Result<EraseReceipt> erase(const std::string& subject, const std::string& reason = "erasure request");
  // Everything held about a subject; kept images are written to images_dir when given.
  Result<nlohmann::json> export_subject(const std::string& subject, bool include_templates,
                                        const std::optional<std::filesystem::path>& images_dir);
  // Erases the subjects due at `as_of` (default now); a future `as_of` needs dry_run.
  Result<ExpireReport> expire(const std::optional<std::string>& as_of, bool dry_run);

  Result<OptoutResult> optout_add(std::vector<uint8_t> image_bytes, int face_index = -1);
  Result<OptoutResult> optout_add_template(const face::FaceTemplate& tmpl);
  Result<std::vector<OptoutMatch>> optout_check();
  // Opt-outs that are compared with nothing: a template is compared only with templates of
  // the same embedder model and version, so after a model change the registry's entries no
  // longer block enrolment. They must be taken again (new photo) with the current model.
  // optout_check() audits this number; `optout check` warns about it.
  Result<int64_t> incomparable_optouts();

  Result<vault::AuditVerifyReport> audit_verify();
  Result<std::vector<vault::AuditEntry>> audit_show(const std::optional<std::string>& since,
                                                    const std::optional<std::string>& subject, size_t limit = 0);

  Result<vault::Vault::RotateReport> rotate_key(const std::function<void()>& after_commit = {});

  // Thresholds in use (calibrated when the embedder has a table).
  double optout_threshold();
  double search_threshold(double max_fmr);
  const face::Calibration* calibration();

  // Templates in the in-memory search index (loaded at the first search; tests look at it).
  size_t gallery_size() const;
  // The index serving a model's templates (null before the first search); tests and the
  // server's metrics look at its kind and statistics.
  const index::VectorIndex* search_index(const std::string& model_id, int model_version) const;

 private:
  Service() = default;
  Status authorize(const std::string& action, const std::string& purpose = "", const std::string& case_ref = "");
  Result<std::string> audit_now(vault::AuditEntry e);  // own transaction
  vault::AuditEntry entry(const std::string& action) const;
  Result<face::FacePipeline*> pipeline();
  Status load_gallery();
  Result<size_t> forget_subject(int64_t subject_id);
  void drop_gallery();
  Result<int64_t> read_generation(const char* key);  // "gallery_generation" | "eligibility_generation"
  Result<std::map<int64_t, std::pair<double, int64_t>>> search_gallery(const face::FaceTemplate& probe, size_t k_subjects,
                                                                       double threshold, const index::IdFilter* filter);
  struct SubjectRow {
    int64_t id = 0;
    std::string uid, ref, created_at, retention_until;
  };
  Result<std::optional<SubjectRow>> find_subject(const std::string& ref_or_uid);
  Status check_search(const SearchRequest& req);
  // Who a search for one purpose may return: the lawful bases in force that cover it and their
  // subjects. Cached per purpose (a search must not cost a pass over every basis): valid while
  // the vault's eligibility_generation is unchanged (bumped by triggers on every basis and
  // basis-purpose change, a deleted subject and a retention that shortens or had ended, by any
  // process) and the clock is before the earliest expiry or retention end among them.
  struct Eligibility {
    std::unordered_set<int64_t> subjects, bases;
    int64_t generation = -1;
    std::string computed_at, valid_until;  // valid_until empty: nothing in it expires
    int64_t templates = 0;                 // the subjects' templates (the N of FPIR) ...
    uint64_t templates_at = ~uint64_t{0};  // ... as of this gallery_version_
  };
  Status plan_search(const SearchRequest& req, Eligibility& eligible, SearchResult& res);
  Result<std::vector<Candidate>> scan(const SearchRequest& req, const face::FaceTemplate& probe, const Eligibility& eligible);
  Result<std::shared_ptr<Eligibility>> eligible_subjects(const std::string& purpose);
  Result<std::string> audit_search(const SearchRequest& req, const SearchResult& res);
  Result<EraseReceipt> erase_in_txn(const SubjectRow& s, const std::string& reason);
  Result<std::vector<OptoutMatch>> match_optouts(const face::FaceTemplate& t, const std::string& only_uid = "");
  Result<EnrollResult> commit_template(const EnrollRequest& req, const face::FaceTemplate& tmpl, const std::string& sha256,
                                       const std::string& format, size_t image_bytes, const std::vector<uint8_t>* keep,
                                       const face::Face* face, int face_index);

  std::unique_ptr<vault::Vault> vault_;
  Actor actor_;
  ServiceOptions options_;
  std::unique_ptr<face::FacePipeline> pipeline_;
  std::optional<face::Calibration> calibration_;
  bool calibration_tried_ = false;

  // The gallery: one index per embedder model (templates of different models never compare),
  // keyed by face id, and who each face belongs to. The index holds the only in-memory copy
  // of the templates (quantised); the vault's float templates are wiped once added.
  struct FaceOwner {
    int64_t subject_id = 0;
    std::string model_key;
    int64_t basis_id = 0;  // the lawful basis the template was collected under
  };
  struct SubjectInfo {
    std::string uid, ref;
    std::vector<int64_t> faces;
  };
  std::map<std::string, std::unique_ptr<index::VectorIndex>> indexes_;  // "model/version"
  std::unordered_map<int64_t, FaceOwner> face_owner_;
  std::unordered_map<int64_t, SubjectInfo> subjects_;
  size_t max_faces_per_subject_ = 1;
  bool gallery_loaded_ = false;
  int64_t gallery_generation_ = -1;    // the vault's gallery_generation the index reflects
  double search_plan_threshold_ = 0;   // set by plan_search for the scans of one request
  std::map<std::string, std::shared_ptr<Eligibility>> eligibility_;  // by purpose
  uint64_t gallery_version_ = 0;       // bumped by every change to subjects_ / face_owner_
  int64_t search_plan_templates_ = 0;
};

// The face to enrol from a photo: the only acceptable one, or `face_index` when given;
// otherwise a reason (no face, not good enough, ambiguous).
Result<int> choose_enrollment_face(const std::vector<face::Face>& faces, int face_index);

}  // namespace fv::service
