// service::Api: the use cases as every adapter sees them (the HTTP server, the CLI, the Python
// module). Two implementations: Service, over one vault (the embedded default), and
// ClusterService, over the shards of a cluster (docs/cluster.md), which routes each use case
// to the vaults that hold its data and gives the same answers.
//
// Every use case takes the acting caller (Actor) as an argument, checks its role against the
// policy table (policy.h), applies purpose limitation and writes its audit entry with its
// effect; a refusal is audited too. Every method may be called from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "service/policy.h"
#include "service/types.h"
#include "vault/api_keys.h"
#include "vault/audit.h"
#include "vault/audit_checkpoint.h"
#include "vault/vault.h"

namespace fv::service {

class Api {
 public:
  virtual ~Api() = default;

  // The vault's configuration (in a cluster: the cluster-wide one, the meta vault's) and its clock.
  virtual const vault::VaultConfig& config() const = 0;
  virtual std::string now() const = 0;

  // ---- lawful basis
  // Creates the subject (and its data key) when the reference is new.
  virtual Result<BasisResult> add_basis(const Actor& actor, const BasisRequest& req) = 0;
  // Withdrawal erases what the basis covered; when no other basis is in force (withdrawn or
  // expired ones do not count), the whole subject. A basis is withdrawn once (a second
  // withdrawal is kAlreadyExists and keeps the first date).
  virtual Result<EraseReceipt> withdraw_basis(const Actor& actor, int64_t basis_id) = 0;

  // ---- enrollment
  // Image bytes → one acceptable face → quality gate → opt-out check → sealed template +
  // provenance + audit, all or nothing. The bytes, pixels and templates are wiped on every path.
  virtual Result<EnrollResult> enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes) = 0;

  // ---- search and verification
  // Refuses without purpose and case; the purpose filter runs inside the scan.
  virtual Result<SearchResult> search(const Actor& actor, const SearchRequest& req, std::vector<uint8_t> image_bytes) = 0;
  // 1:1 of a photo's largest face against one enrolled subject, under search policy (role, // purpose, case; only templates whose basis covers the purpose count). An unknown subject
  // and one not enrolled for the purpose give the same answer (kNotFound).
  virtual Result<VerifyResult> verify_subject(const Actor& actor, const SearchRequest& req, const std::string& subject_ref, std::vector<uint8_t> image_bytes) = 0;
  // 1:1 of two photos (largest face each, face::verification_face) at a false-match rate.
  // `liveness`: photo a is the probe presented live; its compared face is checked for a
  // presentation attack first and the request refused (kFailedPrecondition, audited
  // "refused") when the check judges it an attack. Off by default: the model is weak
  // (docs/models.md).
  virtual Result<PhotoComparison> verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b, double fmr, bool liveness = false) = 0;
  // Faces, keypoints and quality of a photo, and which face enrollment would take. Audited.
  virtual Result<Detection> detect(const Actor& actor, std::vector<uint8_t> image_bytes) = 0;

  // ---- erasure, withdrawal's sibling, and retention
  // Once the erasure is committed its receipt is returned, also when the wipe of freed pages
  // fails (wiped = false, wipe_error says why; the next open of the vault finishes it).
  virtual Result<EraseReceipt> erase(const Actor& actor, const std::string& subject, const std::string& reason = "erasure request") = 0;
  // Erases the subjects due at `as_of` (default now); a future `as_of` needs dry_run.
  virtual Result<ExpireReport> expire(const Actor& actor, const std::optional<std::string>& as_of, bool dry_run) = 0;

  // ---- access export
  // Everything held about a subject; kept images are written to images_dir when given.
  virtual Result<nlohmann::json> export_subject(const Actor& actor, const std::string& subject, bool include_templates, const std::optional<std::filesystem::path>& images_dir) = 0;

  // ---- opt-out registry
  virtual Result<OptoutResult> optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index = -1) = 0;
  // Enrolled subjects matching an opt-out. Also counts opt-outs that are compared with
  // nothing: a template is compared only with templates of the same embedder model and
  // version, so after a model change the registry's entries no longer block enrollment; they
  // must be taken again (new photo) with the current model.
  virtual Result<OptoutCheck> optout_check(const Actor& actor) = 0;

  // ---- human oversight: review cases
  // Cases the caller may see: reviewers, auditors and admins all; an investigator those they opened.
  virtual Result<std::vector<ReviewCase>> review_list(const Actor& actor, const ReviewListFilter& filter) = 0;
  virtual Result<ReviewCase> review_show(const Actor& actor, const std::string& case_id, const PurposeScope& scope = std::nullopt) = 0;
  // One reviewer's decision on one candidate: audited naming the reviewer; the case closes
  // (and its probe crops are destroyed) once every candidate has the decisions required.
  virtual Result<ReviewDecision> review_decide(const Actor& actor, const std::string& case_id, const ReviewDecisionRequest& req) = 0;
  // The probe face of a case, and a candidate's enrolled reference face (kNotFound when none
  // is kept: the page says so). Audited, as a viewing of biometric data.
  virtual Result<ReviewImage> review_probe_image(const Actor& actor, const std::string& case_id, int face_index, const PurposeScope& scope = std::nullopt) = 0;
  virtual Result<ReviewImage> review_reference_image(const Actor& actor, const std::string& case_id, int64_t candidate_id, const PurposeScope& scope = std::nullopt) = 0;

  // ---- human oversight: authorisations
  virtual Result<Authorisation> authorisation_add(const Actor& actor, const AuthorisationRequest& req) = 0;
  virtual Result<Authorisation> authorisation_grant(const Actor& actor, const std::string& id, const std::string& note) = 0;
  virtual Result<Authorisation> authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note) = 0;
  virtual Result<std::vector<Authorisation>> authorisation_list(const Actor& actor) = 0;
  // Lapses the pending authorisations past their deadline (their cases become unusable) and
  // destroys aged-out probe crops; expire() runs it too. Audited.
  virtual Result<LapseReport> oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of) = 0;

  // ---- the transparency report: counts from the audit log, no personal data.
  // `from` and `to` are dates or timestamps (UTC; a date `to` includes that day).
  virtual Result<nlohmann::json> transparency_report(const Actor& actor, const std::string& from, const std::string& to) = 0;

  // ---- audit and keys
  virtual Result<vault::AuditVerifyReport> audit_verify(const Actor& actor) = 0;
  virtual Result<AuditPage> audit_show(const Actor& actor, const AuditFilter& filter) = 0;
  // Signs the audit chain's head now (role of audit verify: admin, auditor) and returns the
  // checkpoint, to be kept outside the vault (`audit checkpoint --json`). The request is an
  // audit entry ("audit_checkpoint") and the checkpoint signs the head that includes it.
  virtual Result<vault::AuditCheckpoint> audit_checkpoint(const Actor& actor) = 0;
  virtual Result<vault::NewApiKey> create_api_key(const Actor& actor, Role role, const std::vector<std::string>& purposes, const std::string& label) = 0;
  virtual Status revoke_api_key(const Actor& actor, const std::string& key_id) = 0;
  virtual Result<std::vector<vault::ApiKey>> list_api_keys(const Actor& actor) = 0;
  // The caller a presented "fvk_…" key stands for ("key:<id>" and its role), or
  // kUnauthenticated (unknown, malformed, revoked or wrong secret: not told apart, on purpose).
  virtual Result<std::pair<Actor, vault::ApiKey>> authenticate_key(const std::string& presented) = 0;
  // A refusal decided by an adapter before any use case ran (a route's role, an upload over
  // the limit): audited as outcome "denied". Fails when the entry cannot be written.
  virtual Status record_denial(const Actor& actor, Action action, const std::string& reason, const nlohmann::json& details = {}, const std::string& purpose = "", const std::string& case_ref = "") = 0;
  // An event with no use case behind it (sign-in): audited with outcome "ok".
  virtual Result<std::string> record_event(const Actor& actor, Action action, const nlohmann::json& details) = 0;
  virtual Status health() = 0;
  virtual ServiceStats stats() = 0;
  // Builds every face pipeline of the pool now (they are otherwise built at the first photo):
  // a server calls it at start so that missing models stop it there. kUnavailable on failure.
  virtual Status warm_up() = 0;
};

}  // namespace fv::service
