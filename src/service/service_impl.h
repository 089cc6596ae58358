// Service::Impl: what the use cases share — the vault and its catalog, the gallery, the
// pipeline pool, the second connection, the audit helpers and the input checks. Internal to
// src/service (the use-case files include it; nothing outside does).
//
// Locking: `mu` guards the vault's main connection and the gallery; every Impl helper below
// that touches either expects the caller to hold it. `aux` (API keys, denials at the door,
// events, gauges) has its own mutex. Photo analysis runs with neither held.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "service/gallery.h"
#include "service/photo.h"
#include "service/pipeline_pool.h"
#include "service/service.h"
#include "vault/catalog.h"

namespace fv::service {

// Input checks shared by the use cases.
bool valid_token(const std::string& s, size_t max = 64);  // purposes: letters, digits, . _ : / -
bool valid_text(const std::string& s, size_t max);         // printable UTF-8, at most `max` bytes
bool valid_ref(const std::string& s);                      // 1-200 bytes of valid_text

// Associated data of a sealed opt-out template.
std::string optout_ad(const std::string& uid, const std::string& model_id, int version);
// Opens a sealed template (kCorruptData when it does not decrypt).
Result<face::FaceTemplate> open_template(const vault::SecretKey& key, const vault::Bytes& sealed, const std::string& ad,
                                         const std::string& model_id, int version);

// A review candidate's status (reviews.cpp; ReviewCandidate::status says what each means):
// pending, confirmed, rejected, inconclusive or disputed.
std::string review_candidate_status(const vault::ReviewCandidateRow& c, int reviewers_required);

// A search request may tighten the vault's false-match-rate limit, never loosen it (search.cpp).
SearchRequest within_search_limits(const SearchRequest& req, double config_max_fmr);

// The transparency report (report.cpp): its period, the purposes the operator defined (from a
// vault's basis and lapse entries and its config), and the counts over a log's entries.
struct ReportPeriod {
  std::string from, to;  // `to` excluded
};
Result<ReportPeriod> report_period(const std::string& from_text, const std::string& to_text);
Result<std::set<std::string>> operator_purposes(vault::Catalog& cat, const vault::VaultConfig& config);
nlohmann::json count_report(const std::vector<vault::AuditEntry>& entries, std::set<std::string> known,
                            const ReportPeriod& period, const std::string& now);

// What `audit show` reads of a log (admin.cpp): `scope` (since, subject) with the filter's
// action, outcome, actor, limit and order.
vault::AuditQuery audit_page_query(const vault::AuditQuery& scope, const AuditFilter& filter);

// The access export's audit section: the entries naming `uid`, with other subjects' ids removed.
nlohmann::json export_audit(const std::vector<vault::AuditEntry>& entries, const std::string& uid);

// The face of a photo an opt-out takes: the only one, or `face_index` (optout.cpp).
Result<int> choose_optout_face(const std::vector<face::Face>& faces, int face_index);

// A search's operating point, computed once per request and passed to its scans.
struct SearchPlan {
  double threshold = 0;
  int64_t templates = 0;  // eligible templates: the N of FPIR
  size_t top = 0;         // candidates asked for
};

// Why a subject is erased (the erase audit entry's details.cause: request, withdrawal, retention).
enum class ErasureCause { kRequest, kWithdrawal, kRetention };
inline const char* erasure_cause_name(ErasureCause c) {
  return c == ErasureCause::kWithdrawal ? "withdrawal" : c == ErasureCause::kRetention ? "retention" : "request";
}

// The authorisation a search cites, as checked before it runs (authorisations.cpp).
struct CitedAuthorisation {
  std::optional<int64_t> id;  // row id; absent when the search cites none
  std::string uid;
  bool pending = false;
};

// What a search recorded about its probe (Impl::record_search).
struct SearchProbe {
  std::string sha256;                                    // '' for templates
  std::vector<std::vector<int64_t>> subject_ids;         // per face, as res.faces[i].candidates
  // A cluster: per face, as subject_ids, the sequence each candidate's shard had applied when
  // it was searched (record_search withholds a candidate excluded after it). Empty on one vault.
  std::vector<std::vector<int64_t>> searched_seqs;
  std::vector<const std::vector<uint8_t>*> crops;        // per face (null: none)
  bool foreign_subjects = false;  // candidates live in other vaults (a cluster's shards): uid only
};

struct Service::Impl {
  std::unique_ptr<vault::Vault> vault;
  ServiceOptions options;
  std::optional<face::Calibration> calibration_table;
  std::shared_ptr<PipelinePool> pool;
  std::unique_ptr<Gallery> gallery;
  mutable std::mutex mu;  // the vault's main connection and the gallery

  // The presentation-attack model of verify_photos(liveness), loaded at its first use (a
  // service that is never asked for the check never loads it). One for all requests: its
  // forward() is serialised (nn::Model). Guarded by liveness_mu until built.
  std::unique_ptr<face::LivenessChecker> liveness_model;
  std::mutex liveness_mu;
  Result<face::LivenessChecker*> liveness_checker();  // photo_checks.cpp

  std::unique_ptr<vault::Catalog> aux;  // opened at first use
  std::mutex aux_mu;
  std::atomic<uint64_t> audit_write_failures{0};

  vault::Catalog& catalog() { return vault->catalog(); }
  const vault::VaultConfig& config() const { return vault->config(); }
  std::string now() const;
  const face::Calibration* calibration() const { return calibration_table ? &*calibration_table : nullptr; }
  double optout_threshold() const;
  double search_threshold(double max_fmr) const;

  // ---- audit (callers hold mu, except audit_aux which takes aux_mu)
  vault::AuditEntry entry(const Actor& actor, const std::string& action) const;
  vault::AuditEntry entry(const Actor& actor, Action action) const { return entry(actor, action_name(action)); }
  // In a transaction of its own / in the caller's. A failure is counted in
  // stats().audit_write_failures and returned: the use case fails with it.
  Result<std::string> audit_now(vault::AuditEntry& e);
  Result<std::string> audit_in_txn(vault::AuditEntry& e);
  Result<std::string> audit_aux(vault::AuditEntry& e);
  Result<vault::Catalog*> aux_catalog();  // caller holds aux_mu
  // Which connection a refusal's audit entry goes through: the main one (the caller holds mu)
  // or the second one (the caller holds no lock: the checks before a photo is analyzed, so
  // that analysis never waits behind a long scan or a gallery load).
  enum class AuditVia { kMain, kAux };
  // A refusal: audited with `outcome` and `reason` (plus `details`), then `refusal` returned
  // (or the audit's failure).
  Status refuse(vault::AuditEntry e, const std::string& outcome, const nlohmann::json& details, Status refusal,
                AuditVia via = AuditVia::kMain);
  // The role check of every use case: a refusal is audited "denied" and is kPermissionDenied.
  Status authorize(const Actor& actor, Action action, const std::string& purpose = "", const std::string& case_ref = "",
                   AuditVia via = AuditVia::kMain);

  // ---- gallery (callers hold mu)
  // Rebuilds the gallery when the vault's gallery generation moved (another process, or
  // this one's rebuild after a damaged re-rank file).
  Status load_gallery();
  Status warm_gallery();  // load_gallery() under mu
  Status rebuild_gallery();
  std::function<Status()> rebuild_hook() {
    return [this] { return rebuild_gallery(); };
  }
  Result<std::shared_ptr<Gallery::Eligibility>> eligible_subjects(const std::string& purpose);

  // ---- use-case parts (callers hold mu)
  // A new subject gets `new_uid` when given (a cluster places subjects by uid), else a random one.
  Result<BasisResult> add_basis(const Actor& actor, const BasisRequest& req, const std::optional<std::string>& new_uid);
  Status check_search(const Actor& actor, const SearchRequest& req, AuditVia via = AuditVia::kMain);
  Status plan_search(const SearchRequest& req, Gallery::Eligibility& eligible, SearchResult& res, SearchPlan& plan);
  // The same for a gallery of `subjects` and `templates` eligible (a cluster's, over its shards).
  Status plan_search_for(const SearchRequest& req, int64_t subjects, int64_t templates, SearchResult& res,
                         SearchPlan& plan);
  // The candidates of one probe, best first; `subject_ids` (when given) receives their vault ids.
  Result<std::vector<Candidate>> scan(const SearchPlan& plan, const face::FaceTemplate& probe,
                                      const Gallery::Eligibility& eligible, std::vector<int64_t>* subject_ids = nullptr);
  // The search's audit entry and the review case it opens, in one transaction (the case names
  // the entry's seq, the entry the case): candidates with their subject ids (per face, as in
  // res.faces), the probe's hash ('' for templates) and the probe crops of the faces that
  // have candidates, sealed under a new case key. A search with no candidate opens its case
  // closed, with no crop. Fills res.review_case, authorisation and audit_hash.
  using SearchProbe = service::SearchProbe;
  // A review decision (reviews.cpp). `known_reference`: whether a reference crop of the
  // candidate exists, when this vault does not hold the candidate's subject (a cluster's meta
  // vault: the crop is on the subject's shard); nullopt: this vault counts its own.
  Result<ReviewDecision> review_decide(const Actor& actor, const std::string& case_id, const ReviewDecisionRequest& req,
                                       std::optional<bool> known_reference);
  Status record_search(const Actor& actor, const SearchRequest& req, const CitedAuthorisation& auth,
                       const SearchProbe& probe, SearchResult& res);

  // ---- review cases (reviews.cpp; callers hold mu)
  // Closes the case when every candidate has the decisions required (or none is left, after
  // an erasure): probe crops and key destroyed, audit "review_close" in the caller's
  // transaction, a wipe of freed pages flagged as due. Returns whether it closed.
  Result<bool> close_if_settled(const Actor& actor, const vault::ReviewCaseRow& c);
  // The open cases an erasure took candidates from (erase_in_txn, inside its transaction).
  Status settle_cases_after_erasure(const Actor& actor, const std::vector<std::string>& case_uids);
  // A cluster's meta vault, inside its write transaction: from shard sequence `shard_seq` on,
  // the subject is no candidate for the `purposes_excluded` ("" : any; a search whose shard was
  // searched before that is withheld from its case, record_search); its candidacies leave the
  // open cases whose purpose is not in `purposes_kept` (empty: all of them, after an erasure),
  // audited once ("review_leave", naming the cases) when there were any; a case left with
  // nothing to decide closes. Returns how many candidacies went. Writes nothing when all of it
  // is done already.
  Result<int64_t> exclude_from_review(const Actor& actor, const std::string& subject_uid,
                                      const std::vector<std::string>& purposes_kept,
                                      const std::vector<std::string>& purposes_excluded, int64_t shard_seq,
                                      const std::string& cause);
  // Independence beyond review_show (reviews.cpp): whether `actor` may not yet see the
  // decisions on a candidate — they may decide it, its case is open and they have not decided
  // it. An admin reads the audit log and the access export too: the decisions there are
  // redacted for them the same way.
  Result<bool> decisions_hidden(const Actor& actor, const std::string& case_uid, int64_t candidate_id);
  Status redact_hidden_decisions(const Actor& actor, std::vector<vault::AuditEntry>& entries);
  // Why an authorisation no longer allows searches at `now` for `purpose` ("" when it does).
  static std::string authorisation_unusable(const vault::AuthorisationRow& a, const std::string& purpose,
                                            const std::string& now);
  // The search's authorisation (authorisations.cpp): when the purpose needs one
  // (oversight.authorisation_required) a search without one, or citing one that is unknown,
  // refused, lapsed, out of its validity or scope, or pending past its deadline, is refused
  // (kFailedPrecondition, audited "refused"); a cited authorisation is checked whatever the purpose.
  Result<CitedAuthorisation> check_authorisation(const Actor& actor, const SearchRequest& req, AuditVia via);
  // Lapses overdue pending authorisations and destroys aged-out probe crops (caller holds mu).
  Result<LapseReport> sweep_oversight(const Actor& actor, const std::string& as_of);
  Result<VerifyResult> verify_locked(const Actor& actor, const SearchRequest& req, const std::string& subject_ref,
                                     const face::FaceTemplate& probe, const CitedAuthorisation& auth);
  // `cause` goes into the audit entry (details.cause) for the transparency report.
  Result<EraseReceipt> erase_in_txn(const Actor& actor, const vault::SubjectRow& s, const std::string& reason,
                                    ErasureCause cause = ErasureCause::kRequest);
  void finish_erasure(EraseReceipt& r);  // wipes freed pages (the receipt says whether it could)
  // What one basis covered, erased while its subject stays (another basis is in force): on
  // withdrawal (audited "basis_withdraw", the basis marked withdrawn) or by a retention run
  // after the basis expired (audited "erase", cause retention). The subject leaves the open
  // review cases its remaining bases do not cover.
  Result<EraseReceipt> erase_basis_in_txn(const Actor& actor, const vault::SubjectRow& s, int64_t basis_id,
                                          ErasureCause cause);
  // The access export's review section (export.cpp): the candidacies appended to
  // j["review_cases"] and j["review_summary"] recomputed (a cluster adds its meta vault's).
  Status export_reviews(const Actor& actor, const std::vector<vault::ReviewCandidateRow>& candidacies,
                        nlohmann::json& j);
  Result<std::vector<OptoutMatch>> match_optouts(const face::FaceTemplate& t);
  // A new opt-out entry (`uid` when given: a cluster writes one entry to every shard), the
  // enrolled subjects it matches counted and audited.
  Result<OptoutResult> add_optout(const Actor& actor, const face::FaceTemplate& tmpl, const std::optional<std::string>& uid);
  Result<int64_t> incomparable_optouts();
  // The enrollment's commit: policy checks, opt-out check and the records, in one transaction.
  struct TemplateSource {
    std::string sha256, format;
    size_t image_bytes = 0;
    const std::vector<uint8_t>* keep = nullptr;  // the photo's bytes when kept
    const face::Face* face = nullptr;
    int face_index = 0;
    const std::vector<uint8_t>* crop = nullptr;  // the face's aligned crop (JPEG), when taken
  };
  Result<EnrollResult> commit_template(const Actor& actor, const EnrollRequest& req, const face::FaceTemplate& tmpl,
                                       const TemplateSource& src);
  Status audit_enroll_refusal(const Actor& actor, const EnrollRequest& req, const Status& why,
                              const nlohmann::json& extra = nlohmann::json::object());
};

}  // namespace fv::service
