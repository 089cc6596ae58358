// The vocabulary of the use cases: what a request asks and what a result holds, shared by
// every implementation of the use cases (service::Api: one vault, or a cluster of them) and
// every adapter (server, CLI, Python).
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
  // Cluster mode: when a shard does not answer in time, return what the others found, marked
  // partial (SearchResult::shards_missing), instead of failing. Never on by default: a partial
  // candidate list is silently incomplete unless whoever reads it knows.
  bool allow_partial = false;
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
  // Shards whose replicas did not answer (only with SearchRequest::allow_partial): their
  // subjects were not searched. Empty: the whole gallery was.
  std::vector<int> shards_missing;
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
  // Set when one basis's rows went and the subject stays (a withdrawal, or a basis that
  // lapsed while another is in force); the subject's bases and key are then untouched.
  std::optional<int64_t> basis_id;
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
  // Cluster mode: the replicas of the subject's shard that applied the erasure (node names),
  // and the subject's earlier stream messages erased (js_EraseMsg).
  std::vector<std::string> replicas;
  int64_t stream_messages_erased = 0;
  // Cluster retention run: what of the erasure's completion (stream messages, reference
  // directory, review cases) failed and is left to the next run or start; empty when complete.
  std::string completion_error;
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
  // Bases that expired while their subject keeps another in force: what each covered (faces,
  // source images, reference crops) is erased as a withdrawal erases it.
  std::vector<EraseReceipt> bases_lapsed;
  LapseReport oversight;  // lapsed authorisations and aged-out probe crops (not in a dry run)
  std::string audit_hash;
  // Cluster: shards whose run lost a race with another node's write (kAborted) and stopped;
  // what is due there is erased by that node's run or the next.
  std::vector<int> deferred_shards;
  // Cluster: shards whose run failed (unreachable, or an erasure left to complete), with why.
  // The others ran; what failed is completed by the next run or start of a node hosting it.
  std::vector<std::pair<int, std::string>> failed_shards;
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

struct ServiceStats {
  // In the vault; absent when the database does not answer (the counters below are still
  // given: they matter most then).
  std::optional<int64_t> templates, subjects;
  // Templates loaded into the in-memory search index (0 until the first search or warm_up()).
  size_t templates_in_memory = 0;
  size_t pipelines = 0;
  uint64_t audit_write_failures = 0;    // use cases failed because their audit entry could not be written
  std::string calibration;
  // Cluster mode: per stream the node hosts, the sequence its vault applied and the stream's
  // last (absent when NATS did not answer): the replica's lag is their difference.
  struct StreamProgress {
    std::string stream;
    uint64_t applied = 0;
    std::optional<uint64_t> last;
  };
  std::vector<StreamProgress> replication;
};

}  // namespace fv::service
