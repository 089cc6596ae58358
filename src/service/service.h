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
#include "face/pipeline.h"
#include "index/vector_index.h"
#include "service/api.h"
#include "service/types.h"
#include "vault/vault.h"

namespace fv::service {

class PipelinePool;

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
// The enrollment a manifest row asks for (its provenance source: the row's, else the image's
// file name), whoever runs it: Service::enroll_batch, or a cluster row by row.
EnrollRequest manifest_request(const BatchRow& row, bool keep_image, const std::string& method);

// Creates a vault in `dir` (vault::Vault::init) and writes its first audit entry, "init", by
// `actor` (an admin, named by 1-200 printable UTF-8 characters): the one way every adapter
// creates a vault, so that the log always starts with who made it.
Status init_vault(const std::filesystem::path& dir, const vault::VaultConfig& config, const Actor& actor);

// The face to enroll from a photo: the only acceptable one, or `face_index` when given;
// otherwise a reason (no face, not good enough, ambiguous).
Result<int> choose_enrollment_face(const std::vector<face::Face>& faces, int face_index);

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
  // Cluster mode: brings the vault up to its stream after a commit lost a race with another
  // node's (kAborted). A use case's audit entry written on its own (a read, a refusal) is then
  // written again on the new state rather than failing; writes are redone by the facade.
  std::function<Status()> catch_up;
  // A pool of face pipelines shared with other services (a cluster node's services, one per
  // vault, analyze photos on one pool); replaces shared_pipeline, pipeline_factory and pipelines.
  std::shared_ptr<PipelinePool> shared_pool;
};

class Service final : public Api {
 public:
  static Result<std::unique_ptr<Service>> open(const std::filesystem::path& dir, ServiceOptions options = {});
  ~Service();

  const vault::VaultConfig& config() const override;
  const vault::VaultPaths& paths() const;
  std::string now() const override;

  Result<BasisResult> add_basis(const Actor& actor, const BasisRequest& req) override;
  Result<EraseReceipt> withdraw_basis(const Actor& actor, int64_t basis_id) override;

  Result<EnrollResult> enroll(const Actor& actor, const EnrollRequest& req, std::vector<uint8_t> image_bytes) override;
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

  Result<SearchResult> search(const Actor& actor, const SearchRequest& req, std::vector<uint8_t> image_bytes) override;
  // The same for probes already embedded (one SearchFace per template; boxes left empty).
  Result<SearchResult> search_templates(const Actor& actor, const SearchRequest& req,
                                        const std::vector<face::FaceTemplate>& probes);
  Result<VerifyResult> verify_subject(const Actor& actor, const SearchRequest& req, const std::string& subject_ref,
                                      std::vector<uint8_t> image_bytes) override;
  Result<VerifyResult> verify_subject_template(const Actor& actor, const SearchRequest& req,
                                               const std::string& subject_ref, const face::FaceTemplate& probe);
  Result<PhotoComparison> verify_photos(const Actor& actor, std::vector<uint8_t> a, std::vector<uint8_t> b, double fmr,
                                        bool liveness = false) override;
  Result<Detection> detect(const Actor& actor, std::vector<uint8_t> image_bytes) override;

  Result<EraseReceipt> erase(const Actor& actor, const std::string& subject, const std::string& reason = "erasure request") override;
  Result<ExpireReport> expire(const Actor& actor, const std::optional<std::string>& as_of, bool dry_run) override;

  Result<nlohmann::json> export_subject(const Actor& actor, const std::string& subject, bool include_templates,
                                        const std::optional<std::filesystem::path>& images_dir) override;

  Result<OptoutResult> optout_add(const Actor& actor, std::vector<uint8_t> image_bytes, int face_index = -1) override;
  Result<OptoutResult> optout_add_template(const Actor& actor, const face::FaceTemplate& tmpl);
  Result<OptoutCheck> optout_check(const Actor& actor) override;

  Result<std::vector<ReviewCase>> review_list(const Actor& actor, const ReviewListFilter& filter) override;
  Result<ReviewCase> review_show(const Actor& actor, const std::string& case_id, const PurposeScope& scope = std::nullopt) override;
  Result<ReviewDecision> review_decide(const Actor& actor, const std::string& case_id, const ReviewDecisionRequest& req) override;
  Result<ReviewImage> review_probe_image(const Actor& actor, const std::string& case_id, int face_index,
                                         const PurposeScope& scope = std::nullopt) override;
  Result<ReviewImage> review_reference_image(const Actor& actor, const std::string& case_id, int64_t candidate_id,
                                             const PurposeScope& scope = std::nullopt) override;

  Result<Authorisation> authorisation_add(const Actor& actor, const AuthorisationRequest& req) override;
  Result<Authorisation> authorisation_grant(const Actor& actor, const std::string& id, const std::string& note) override;
  Result<Authorisation> authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note) override;
  Result<std::vector<Authorisation>> authorisation_list(const Actor& actor) override;
  Result<LapseReport> oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of) override;

  Result<nlohmann::json> transparency_report(const Actor& actor, const std::string& from, const std::string& to) override;

  Result<vault::AuditVerifyReport> audit_verify(const Actor& actor) override;
  Result<AuditPage> audit_show(const Actor& actor, const AuditFilter& filter) override;
  Result<vault::AuditCheckpoint> audit_checkpoint(const Actor& actor) override;
  // The chain and every checkpoint, then a checkpoint kept elsewhere (audit_checkpoint.h).
  Result<vault::AuditVerifyReport> audit_verify_against(const Actor& actor, const vault::AuditCheckpoint& external);
  Result<vault::Vault::RotateReport> rotate_key(const Actor& actor, const std::function<void()>& after_commit = {});
  Result<vault::NewApiKey> create_api_key(const Actor& actor, Role role, const std::vector<std::string>& purposes,
                                          const std::string& label) override;
  Status revoke_api_key(const Actor& actor, const std::string& key_id) override;
  Result<std::vector<vault::ApiKey>> list_api_keys(const Actor& actor) override;
  Result<std::pair<Actor, vault::ApiKey>> authenticate_key(const std::string& presented) override;
  Status record_denial(const Actor& actor, Action action, const std::string& reason, const nlohmann::json& details = {},
                       const std::string& purpose = "", const std::string& case_ref = "") override;
  Result<std::string> record_event(const Actor& actor, Action action, const nlohmann::json& details) override;

  // ---- thresholds, health and gauges
  double optout_threshold();
  double search_threshold(double max_fmr);
  const face::Calibration* calibration();
  Status health() override;
  ServiceStats stats() override;
  Status warm_up() override;

  // Templates in the in-memory search index (loaded at the first search; tests look at it).
  size_t gallery_size() const;
  // Tests only: the index serving a model's templates (null before the first search). The
  // pointer is read without the service's lock: use it only while no other thread calls in.
  const index::VectorIndex* search_index(const std::string& model_id, int model_version) const;

  // Tests only: the vault underneath (its catalog, its failure injection).
  vault::Vault& vault_for_testing();

  struct Impl;

 private:
  friend class ClusterService;  // composes services and reaches their parts (cluster_*.cpp)
  Service() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fv::service
