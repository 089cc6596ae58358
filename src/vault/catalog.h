// The typed catalog: every read and write of the vault's rows, named as the domain names them
// (find_subject, insert_face, erase_subject, eligible_bases, ...). Rows are plain structs:
// templates and kept images travel sealed (the caller holds the keys), so the vault needs
// neither OpenCV nor the search index. Transactions are explicit: begin() opens one and the
// operations run inside the caller's, except where a comment says "own transaction".
//
// The implementation is split by table family: catalog_subjects.cpp (subjects, lawful bases,
// eligibility, expiry, erasure), catalog_faces.cpp (source images, faces, the gallery's rows,
// opt-outs, generations) and catalog_audit.cpp (audit chain, API keys, gauges).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vault/api_keys.h"
#include "vault/audit.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"

namespace fv::vault {

struct SubjectRow {
  int64_t id = 0;
  std::string uid, ref, created_at, retention_until;
};

struct NewBasis {
  int64_t subject_id = 0;
  std::string kind, reference, granted_at;
  std::optional<std::string> expires_at;
  std::string recorded_by;
  std::vector<std::string> purposes;  // distinct
};

// What enrollment checks about the basis it is asked to collect under.
struct BasisCheckRow {
  int64_t subject_id = 0;
  std::string kind;
  std::optional<std::string> expires_at, withdrawn_at;
};

// A basis and its subject, as withdrawal needs them.
struct BasisOwnerRow {
  SubjectRow subject;
  std::optional<std::string> withdrawn_at;
};

struct BasisRecord {  // the access export's view of a basis
  int64_t id = 0;
  std::string kind, reference, granted_at;
  std::optional<std::string> expires_at, withdrawn_at;
  std::optional<std::string> lapse_erased_at;  // when a retention run erased what it covered after it expired
  std::string recorded_by;
  std::string purposes_json;  // JSON array of the purposes
};

struct EligibleBasisRow {  // a basis in force that covers a purpose, and its subject
  int64_t basis_id = 0, subject_id = 0;
  std::optional<std::string> expires_at;
  std::string retention_until;
};

struct DueSubject {
  SubjectRow subject;
  std::string reason;  // "retention period ended" | "no lawful basis in force"
};

struct ErasedCounts {  // what an erasure removed
  int64_t faces = 0, images = 0, kept_images = 0, bases = 0, keys = 0;
  int64_t reference_crops = 0;
  // Candidates (and their decisions) removed from open review cases, and those cases' uids
  // (the service closes the ones left with nothing to decide). Candidates of closed cases stay,
  // with their opaque subject uid only.
  int64_t review_candidates = 0;
  std::vector<std::string> open_review_cases;
};

struct LapsedBasisRow {  // an expired basis that still covers rows, of a subject who stays
  int64_t basis_id = 0;
  SubjectRow subject;
  std::string expired_at;
};

struct WithdrawnCounts {  // what the withdrawal (or the lapse) of one basis removed
  int64_t faces = 0, images = 0, kept_images = 0;
};

struct NewSourceImage {
  int64_t subject_id = 0, basis_id = 0;
  std::string sha256;
  int64_t bytes = 0;
  std::string format, supplied_by, method, source, received_at;
};

struct SourceImageRow {
  int64_t id = 0, basis_id = 0;
  std::string sha256;
  int64_t bytes = 0;
  std::string format, supplied_by, method, source, received_at;
  std::optional<Bytes> sealed_image;  // present when the image was kept
};

struct NewFace {
  int64_t subject_id = 0, image_id = 0, basis_id = 0;
  std::string model_id;
  int model_version = 0;
  int64_t dim = 0;
  std::string box_json, quality_json, created_at;
};

struct FaceRow {  // the access export's view of a template
  int64_t id = 0;
  std::optional<int64_t> image_id;
  int64_t basis_id = 0;
  std::string model_id;
  int model_version = 0;
  int64_t dim = 0;
  std::string box_json, quality_json, created_at;
  Bytes sealed_template;
};

// One template as the search gallery loads it, with its subject and the subject's wrapped key
// (rows come ordered by subject, so the key is unwrapped once per subject).
struct GalleryFaceRow {
  int64_t face_id = 0, subject_id = 0, basis_id = 0;
  std::string subject_uid, subject_ref, model_id;
  int model_version = 0;
  Bytes sealed_template, wrapped_key;
};

struct ModelCount {
  std::string model_id;
  int model_version = 0;
  int64_t faces = 0;
};

struct OptoutRow {
  std::string uid, model_id;
  int model_version = 0;
  Bytes sealed_template;
};

struct NewOptout {
  std::string uid, model_id;
  int model_version = 0;
  Bytes sealed_template;
  std::string created_at;
};

// ---- human oversight (catalog_reviews.cpp, catalog_authorisations.cpp)

struct NewReviewCandidate {
  int face_index = 0, rank = 0;
  // Absent when the subject lives in another vault (a cluster's case, kept in its meta vault,
  // names candidates on the shards by uid only).
  std::optional<int64_t> subject_id;
  std::string subject_uid;
  double similarity = 0;
  std::optional<double> fmr, fpir;
};

struct NewReviewCase {
  std::string uid, opened_at, searcher, searcher_role, purpose, case_ref, mode, probe_sha256;
  std::optional<std::string> closed_at;  // opened closed (a search with no candidate)
  std::optional<int64_t> authorisation_id;
  int64_t search_audit_seq = 0;
  std::optional<Bytes> wrapped_probe_key;  // with the master key's id, when probe crops are kept
  std::string probe_master_key_id;
  std::vector<NewReviewCandidate> candidates;
  std::vector<std::pair<int, Bytes>> sealed_probe_crops;  // face index → sealed JPEG
};

struct ReviewDecisionRow {
  int64_t id = 0, candidate_id = 0;
  std::string reviewer, reviewer_role, decision, reason, decided_at;
  bool reference_available = false;
  int64_t audit_seq = 0;
};

struct CitedAuthorisationRow {  // an authorisation as a case cites it
  std::string uid, authority, reference;
};

struct ReviewCandidateRow {
  int64_t id = 0, case_id = 0;
  std::string case_uid, case_status;  // filled by review_candidates_of_subject
  std::optional<std::string> case_unusable;  // idem
  std::optional<CitedAuthorisationRow> case_authorisation;  // idem: what the case's search cited
  int face_index = 0, rank = 0;
  std::optional<int64_t> subject_id;  // absent once the subject was erased
  std::string subject_uid, subject_ref;  // ref empty once erased
  double similarity = 0;
  std::optional<double> fmr, fpir;
  std::vector<ReviewDecisionRow> decisions;
};

struct ReviewCaseRow {
  int64_t id = 0;
  std::string uid, opened_at, searcher, searcher_role, purpose, case_ref, mode, probe_sha256, status;
  std::optional<std::string> closed_at, unusable, authorisation_uid;
  int64_t search_audit_seq = 0;
  std::optional<Bytes> wrapped_probe_key;
  std::vector<int> probe_faces;  // face indexes with a sealed probe crop
  std::vector<ReviewCandidateRow> candidates;
};

struct ReviewCaseQuery {
  std::optional<std::string> status;    // open | closed
  std::optional<std::string> searcher;  // only cases this actor opened
  size_t limit = 100;  // 0: no limit
};

struct AuthorisationRow {
  int64_t id = 0;
  std::string uid, authority, reference;
  std::vector<std::string> purposes;
  std::string valid_from, valid_until, status, requested_at;
  std::optional<std::string> deadline, decided_at, decided_by;
  std::string recorded_by, note;
  int64_t cases_citing = 0;
};

// Counters kept by triggers in the vault (every process's changes count): the gallery's
// changes with every face row inserted or deleted; eligibility's with every basis,
// basis-purpose and subject change that can narrow who a search may return.
enum class Generation { kGallery, kEligibility };

class Catalog {
 public:
  explicit Catalog(Db& db) : db_(&db) {}
  explicit Catalog(Db&& owned);  // a connection of its own (Vault::open_second_connection)
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  Result<Txn> begin() { return Txn::begin(*db_); }

  // ---- subjects and lawful bases (catalog_subjects.cpp)
  // By reference first, else by vault id (uid).
  Result<std::optional<SubjectRow>> find_subject(const std::string& ref_or_uid);
  Result<int64_t> insert_subject(const std::string& uid, const std::string& ref, const std::string& created_at,
                                 const std::string& retention_until);
  Status set_retention(int64_t subject_id, const std::string& until);
  // The basis row and its purposes; returns the basis id.
  Result<int64_t> insert_basis(const NewBasis& b);
  Result<std::optional<BasisOwnerRow>> basis_owner(int64_t basis_id);
  Result<std::optional<BasisCheckRow>> basis_for_enrollment(int64_t basis_id);
  Result<bool> basis_covers(int64_t basis_id, const std::string& purpose);
  // Bases of the subject other than `except` that are in force at `now`.
  Result<int64_t> other_bases_in_force(int64_t subject_id, int64_t except, const std::string& now);
  // Deletes what the basis covered (faces, source images) and marks it withdrawn.
  Result<WithdrawnCounts> withdraw_basis_rows(int64_t basis_id, const std::string& withdrawn_at);
  // Deletes what an expired basis covered (as a withdrawal does) and records when in
  // lapsed_basis_erasure; the basis row stays, expired, for the record.
  Result<WithdrawnCounts> erase_lapsed_basis_rows(int64_t basis_id, const std::string& erased_at);
  // Bases expired at `as_of` that still cover faces, source images or a stream key, of subjects
  // who are not due for expiry themselves (another basis is in force, retention runs); with
  // `only`, that basis alone if it is (checked again inside the erasing transaction).
  Result<std::vector<LapsedBasisRow>> lapsed_bases_holding_rows(const std::string& as_of,
                                                                 std::optional<int64_t> only = std::nullopt);
  // Deletes the subject, its faces, images, bases and key.
  Result<ErasedCounts> erase_subject(int64_t subject_id);
  // The bases in force at `now` that cover `purpose`, of subjects within retention.
  Result<std::vector<EligibleBasisRow>> eligible_bases(const std::string& purpose, const std::string& now);
  // Subjects whose retention ended or who have no basis in force at `as_of`; with `only`, that
  // subject alone if it is (checked again inside the erasing transaction).
  Result<std::vector<DueSubject>> due_for_expiry(const std::string& as_of, std::optional<int64_t> only = std::nullopt);
  Result<std::vector<BasisRecord>> bases_of_subject(int64_t subject_id);

  // ---- images, faces, the gallery, opt-outs (catalog_faces.cpp)
  Result<int64_t> insert_source_image(const NewSourceImage& img);
  // Sealed once the row id is known: the associated data binds the blob to its row.
  Status seal_source_image(int64_t image_id, const Bytes& sealed);
  Result<int64_t> insert_face(const NewFace& f);
  Status seal_face(int64_t face_id, const Bytes& sealed_template);
  Status for_each_source_image(int64_t subject_id, const std::function<Status(const SourceImageRow&)>& fn);
  Status for_each_face(int64_t subject_id, const std::function<Status(const FaceRow&)>& fn);
  Result<std::vector<ModelCount>> faces_by_model();
  // Every template with its subject, ordered by subject then face (streamed, never all at once).
  Status faces_for_gallery(const std::function<Status(const GalleryFaceRow&)>& fn);
  Result<int64_t> generation(Generation g);

  Result<int64_t> optout_count();
  Result<bool> has_optout(const std::string& uid);
  Status for_each_optout(const std::function<Status(const OptoutRow&)>& fn);
  Status insert_optout(const NewOptout& o);
  // Opt-outs compared with nothing: not of `embedder_model_id`, or of a model version no
  // enrolled template has.
  Result<int64_t> incomparable_optouts(const std::string& embedder_model_id);

  // ---- audit, API keys, gauges (catalog_audit.cpp)
  // The vault's audit signing key (Vault sets it on every catalog it opens): every append
  // that brings the chain to a multiple of its interval signs a checkpoint in the same
  // transaction.
  void set_signer(std::shared_ptr<const AuditSigner> signer) { signer_ = std::move(signer); }
  const AuditSigner* signer() const { return signer_.get(); }
  // Inside the caller's transaction; fills seq and the hashes.
  Result<std::string> append_audit(AuditEntry& e);
  // In a transaction of its own.
  Result<std::string> record_audit(AuditEntry& e);
  Result<std::vector<AuditEntry>> read_audit(const AuditQuery& q);
  Result<int64_t> count_audit(const AuditQuery& q);
  // One page of the log from one state of it: how many entries `scope` selects, how many of
  // them `filtered` (scope plus more filters) selects, and those up to its limit.
  struct AuditPageRows {
    std::vector<AuditEntry> entries;
    int64_t total = 0, matched = 0;
  };
  Result<AuditPageRows> read_audit_page(const AuditQuery& scope, const AuditQuery& filtered);
  // The chain, then (with a signer) every signed checkpoint (audit_checkpoint.h).
  Result<AuditVerifyReport> verify_audit();
  // The chain, then a checkpoint kept outside the vault.
  Result<AuditVerifyReport> verify_audit_against(const AuditCheckpoint& external);
  // Inside the caller's transaction: signs the current head (kFailedPrecondition without a signer).
  Result<AuditCheckpoint> checkpoint_audit_head(const std::string& kind);
  Result<std::vector<AuditCheckpoint>> read_checkpoints();

  Status ensure_api_key_table();
  Result<NewApiKey> create_api_key(const std::string& role, const std::vector<std::string>& purposes,
                                   const std::string& label, const std::string& actor);
  Status revoke_api_key(const std::string& id, const std::string& actor);
  Result<std::vector<ApiKey>> list_api_keys();
  Result<std::optional<ApiKey>> authenticate_api_key(const std::string& presented);

  // ---- human oversight: review cases (catalog_reviews.cpp)
  Result<int64_t> insert_review_case(const NewReviewCase& c);
  Result<std::optional<ReviewCaseRow>> find_review_case(const std::string& uid);  // with candidates and decisions
  Result<std::vector<ReviewCaseRow>> list_review_cases(const ReviewCaseQuery& q);  // with candidates and decisions
  Result<int64_t> insert_review_decision(const ReviewDecisionRow& d);
  Result<std::optional<Bytes>> sealed_probe_crop(int64_t case_id, int face_index);
  // Closes a case; destroys its probe crops and key.
  Status close_review_case(int64_t case_id, const std::string& closed_at);
  // Destroys probe crops and keys of cases opened before `before` (probe_crop_days); returns how many cases.
  Result<int64_t> destroy_probe_crops_before(const std::string& before);
  Status mark_cases_unusable(int64_t authorisation_id, const std::string& why);
  // The purposes that the subject's bases in force at `now` cover (distinct, sorted).
  Result<std::vector<std::string>> purposes_in_force(int64_t subject_id, const std::string& now);
  // The purposes one basis covers (sorted), withdrawn or not.
  Result<std::vector<std::string>> basis_purposes(int64_t basis_id);
  // After a withdrawal: removes the subject's candidacies from open cases whose purpose none of
  // their bases in force at `now` covers; returns those cases' uids.
  Result<std::vector<std::string>> drop_candidacies_without_basis(int64_t subject_id, const std::string& now);
  // Cluster mode, in the meta vault (candidates there carry their subject's uid only): removes
  // the subject's candidacies from the open cases whose purpose is not in `purposes_kept`
  // (empty: every open case, after an erasure). Returns those cases and how many candidacies
  // went; their decisions go with them.
  struct CasesLeft {
    std::vector<std::string> case_uids;
    int64_t candidacies = 0;
  };
  Result<CasesLeft> leave_open_cases(const std::string& subject_uid, const std::vector<std::string>& purposes_kept);
  // From shard sequence `shard_seq` on, the subject is no candidate for `purpose` ('' : any).
  // Keeps the highest sequence recorded; false when nothing changed (nothing written).
  Result<bool> record_review_exclusion(const std::string& subject_uid, const std::string& purpose, int64_t shard_seq);
  // The highest such sequence for `purpose` or for every purpose; 0 when none.
  Result<int64_t> review_exclusion_seq(const std::string& subject_uid, const std::string& purpose);
  // The subject's review decisions (the access export), by candidate.
  Result<std::vector<ReviewCandidateRow>> review_candidates_of_subject(int64_t subject_id);
  // The same by the subject's uid: a cluster's meta vault names candidates on the shards by uid.
  Result<std::vector<ReviewCandidateRow>> review_candidates_of_uid(const std::string& subject_uid);
  // Re-wraps every case key (master-key rotation), inside the caller's transaction.
  Status for_each_probe_key(const std::function<Result<Bytes>(const std::string& case_uid, const Bytes& wrapped)>& rewrap,
                            const std::string& new_master_key_id);
  // Reference crops of enrolled faces, sealed under the subject key.
  Status insert_reference_crop(int64_t face_id, int64_t subject_id, const Bytes& sealed);
  // The subject's reference crops (face id → sealed JPEG), newest face first.
  // With a purpose: only the crops of faces collected under a basis that covers it.
  Result<std::vector<std::pair<int64_t, Bytes>>> reference_crops(int64_t subject_id,
                                                                 const std::optional<std::string>& purpose = std::nullopt);
  Result<int64_t> count_reference_crops(int64_t subject_id, const std::optional<std::string>& purpose = std::nullopt);

  // ---- human oversight: authorisations (catalog_authorisations.cpp)
  Result<int64_t> insert_authorisation(const AuthorisationRow& a);
  Result<std::optional<AuthorisationRow>> find_authorisation(const std::string& uid);
  Result<std::vector<AuthorisationRow>> list_authorisations();
  Status update_authorisation_status(int64_t id, const std::string& status, const std::string& decided_at,
                                     const std::string& decided_by, const std::string& note);
  // Pending authorisations whose deadline is at or before `as_of`; with `only`, that one alone
  // if it still is (checked again inside the lapsing transaction).
  Result<std::vector<AuthorisationRow>> lapsed_pending(const std::string& as_of, std::optional<int64_t> only = std::nullopt);

  // ---- replication (catalog_replication.cpp; cluster mode, changeset.h)
  // The last sequence of `stream` applied to this vault (0 when none).
  Result<int64_t> applied_seq(const std::string& stream);
  // Inside the caller's transaction (the one that applied the message). A sequence never goes
  // back: one at or below the stream's current one is kFailedPrecondition.
  Status set_applied_seq(const std::string& stream, int64_t seq, const std::string& applied_at);
  struct ReplicationStateRow {
    std::string stream;
    int64_t applied_seq = 0;
    std::string applied_at;
  };
  Result<std::vector<ReplicationStateRow>> replication_state();  // every stream, by name
  // The messages of `stream` that were sealed under a subject's key (an erasure removes them
  // from the stream): recorded in the applying transaction, listed by sequence, forgotten once
  // the erasure removed them.
  Status record_subject_message(const std::string& stream, int64_t seq, const std::string& subject_uid);
  Result<std::vector<int64_t>> subject_messages(const std::string& stream, const std::string& subject_uid);
  Status forget_subject_messages(const std::string& stream, const std::string& subject_uid);
  // Subjects with messages of `stream` recorded and no `subject` row any more: their erasure was
  // applied, their messages are not yet erased from the stream (pending erasures, by uid).
  Result<std::vector<std::string>> erased_subjects_with_messages(const std::string& stream);
  // The erasures of subjects applied from `stream` whose candidacies the meta vault has not yet
  // taken out of its open review cases (by uid), and marking one as done there.
  struct UnsettledErasure {
    std::string uid;
    int64_t seq = 0;  // the stream message that erased the subject
  };
  Result<std::vector<UnsettledErasure>> erasures_unsettled_in_meta(const std::string& stream);
  Status mark_erasure_settled_in_meta(const std::string& subject_uid);
  // The same for bases withdrawn while their subject stays, or erased by a retention run after
  // they lapsed (by basis id, with the subject's uid).
  struct UnsettledWithdrawal {
    int64_t basis_id = 0;
    std::string subject_uid;
    bool lapsed = false;  // erased by a retention run after it expired, not withdrawn
  };
  Result<std::vector<UnsettledWithdrawal>> withdrawals_unsettled_in_meta();
  Status mark_withdrawal_settled_in_meta(int64_t basis_id);
  // The withdrawals applied here whose subject stays and whose messages in the subject's
  // stream are not yet known to be erased (ShardWriter::erase_messages_of_basis), and marking
  // one as done.
  Result<std::vector<UnsettledWithdrawal>> withdrawals_unerased_in_stream();
  Status mark_withdrawal_erased_in_stream(int64_t basis_id);
  // Forgets one message recorded by record_subject_message (erased from the stream alone).
  Status forget_subject_message(const std::string& stream, int64_t seq);
  // What the withdrawal of basis `basis_id` makes of a subject's message whose rows are `rows`
  // (opened under the subject's key), read against this vault after the withdrawal applied.
  struct WithdrawnBasisMessage {
    bool holds_basis = false;  // it inserted rows of the basis: a face, its source image, its reference crop
    std::string also;          // a change it made besides (not an update), which keeps it in the stream
    std::vector<uint8_t> restatement;  // its updates, restated as the rows are now (restate_updates)
  };
  Result<WithdrawnBasisMessage> withdrawn_basis_message(std::span<const uint8_t> rows, int64_t basis_id);
  // The row of subject `subject_uid`, every column restated as it is now (restate_updates):
  // what stands in for a basis's enrollment that can no longer be opened (its key went with
  // the withdrawal). Empty when the subject is gone.
  Result<std::vector<uint8_t>> subject_restatement(const std::string& subject_uid);
  // The stream sequence of the message that erased subject `uid` here (nullopt: none applied).
  Result<std::optional<int64_t>> erasure_seq(const std::string& subject_uid);

  Result<int64_t> count_faces();
  Result<int64_t> count_subjects();
  Status ping();  // the database answers

 private:
  std::unique_ptr<Db> owned_;
  Db* db_;
  std::shared_ptr<const AuditSigner> signer_;
};

// Cluster mode: the lawful basis whose enrollment a transaction's rows (a patchset) are: they
// insert rows of that one basis (faces, their source images and reference crops) and make no
// other change but updates. nullopt for any other transaction. Read against `db`'s schema.
Result<std::optional<int64_t>> enrollment_basis(Db& db, std::span<const uint8_t> rows);

}  // namespace fv::vault
