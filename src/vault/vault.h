// A vault on disk: DIR/vault.db (SQLite, WAL, secure_delete, foreign keys, versioned schema),
// DIR/master.key (32 random bytes as hex, mode 0600; or FACEVAULT_MASTER_KEY), DIR/config.json
// and DIR/vault.lock. The Vault object owns the connection, the master key and the lock; its
// rows are read and written through the typed catalog (catalog.h) inside explicit transactions.
//
// Keys: every subject has its own random data key, wrapped (XChaCha20-Poly1305) by the master
// key. Templates and kept images are sealed with the subject key, so deleting the wrapped
// subject key makes what is left of them in the live vault unreadable. A backup made before
// holds the wrapped key too: it stays readable with the master key of its time until that key
// is retired (key rotate, then destroy the old key; docs/privacy.md).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vault/audit_checkpoint.h"
#include "vault/catalog.h"
#include "vault/changeset.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"

namespace fv::vault {

inline constexpr const char* kMasterKeyEnv = "FACEVAULT_MASTER_KEY";
inline constexpr const char* kNewMasterKeyEnv = "FACEVAULT_NEW_MASTER_KEY";
inline constexpr int kSchemaVersion = 15;

struct VaultConfig {
  double default_retention_days = 365;  // subject retention from creation, renewed by enrollment
  double search_max_fmr = 1e-3;         // candidates weaker than this false-match rate are not returned
  int search_default_top = 5;
  double optout_fmr = 1e-5;             // opt-out matches at this (strict) false-match rate
  double optout_fallback_threshold = 0.49;  // used only when the embedder has no calibration table
  double search_fallback_threshold = 0.34;  // idem
  bool erase_vacuum = true;             // VACUUM after erasure (rebuilds the file; see docs/privacy.md)
  std::string detector = "ultralight-rfb320";
  std::string landmarker = "faceplugin-lm68";
  std::string embedder = "faceplugin-mobilefacenet-512";
  std::string master_key = "file";      // "file" (DIR/master.key) or "env" (FACEVAULT_MASTER_KEY)
  // Signed audit checkpoints (audit_checkpoint.h): the Ed25519 key is "file"
  // (DIR/audit-signing.key) or "env" (FACEVAULT_AUDIT_SIGNING_KEY); a checkpoint is signed every
  // audit_checkpoint_every entries (0: only at creation/migration and on demand).
  std::string audit_signing_key = "file";
  int64_t audit_checkpoint_every = 1000;
  // Search index (docs/index.md): exact int8 scan below index_ann_min_size templates, IVF
  // with exact re-rank above; rebuilt from the vault at the first search of each process.
  std::string index_kind = "auto";      // auto | exact | ivf | hnsw
  // Exact up to 16 M: at 10 M the exact scan costs 180 ms and 575 B/template but never misses a
  // candidate; the IVF keeps the exact scan's identifications only by reading half of its cells
  // (docs/benchmarks.md, "Closing the gap", three rounds): ~11× faster at 1 M, but at 10 M half
  // of the cells is 320 MB per search, not the 2 ms that would justify switching earlier.
  int64_t index_ann_min_size = 16000000;
  int search_threads = 1;
  // Human oversight (config "oversight"; docs/privacy.md). A candidate is a confirmed
  // identification only after `reviewers_required` distinct reviewers confirmed it; the
  // searcher may be one of them only with searcher_may_review. Reference crops of enrolled
  // faces are kept (sealed) when keep_reference_crops, or when an enrollment asks; probe crops
  // of a review case are destroyed when it closes or after probe_crop_days (0: at closure
  // only). A search for a purpose in authorisation_required must cite an authorisation; a
  // pending one allows searches for authorisation_pending_hours (Art 26(10): 48 h).
  int reviewers_required = 2;
  bool searcher_may_review = false;
  bool keep_reference_crops = false;
  int probe_crop_days = 30;
  std::vector<std::string> authorisation_required;
  int authorisation_pending_hours = 48;
  // Presentation-attack check of 1:1 verification, on request only (docs/models.md, liveness
  // card): the probe is refused when the liveness model's P(live) is below this. 0.5 is the
  // model's own decision (class "live" most probable), not a threshold fitted to evidence.
  double liveness_threshold = 0.5;

  nlohmann::json to_json() const;
  static Result<VaultConfig> from_json(const nlohmann::json& j);
};

struct VaultPaths {
  std::filesystem::path dir;
  std::filesystem::path db() const { return dir / "vault.db"; }
  std::filesystem::path key() const { return dir / "master.key"; }
  std::filesystem::path new_key() const { return dir / "master.key.new"; }
  std::filesystem::path signing_key() const { return dir / "audit-signing.key"; }
  std::filesystem::path config() const { return dir / "config.json"; }
  std::filesystem::path lock() const { return dir / "vault.lock"; }
};

// Associated data of a sealed template or kept image: binds the blob to its subject and to its
// own row, so that it opens nowhere else (another subject's row, or another row of the same
// subject). A row is inserted first and sealed once its id is known.
std::string face_ad(int64_t subject_id, int64_t face_id, const std::string& model_id, int version);
std::string image_ad(int64_t subject_id, int64_t image_id);
// A reference crop of an enrolled face (sealed with the subject key), and a probe crop of a
// review case (sealed with the case key), bound to their rows likewise.
std::string reference_ad(int64_t subject_id, int64_t face_id);
std::string probe_ad(const std::string& case_uid, int face_index);

// A subject's data key from its wrapped form (as stored in subject_key): cluster mode unwraps
// it on the connection of a replicated transaction, without a Vault object.
Result<SecretKey> unwrap_subject_key(const SecretKey& master, int64_t subject_id, std::span<const uint8_t> wrapped);
// The same for a review case's key (review_case.probe_key), bound to the case's uid.
Result<SecretKey> unwrap_case_key(const SecretKey& master, const std::string& case_uid, std::span<const uint8_t> wrapped);
// Cluster mode: the name a basis's key goes by between replicas and in envelopes
// ("<subject uid>/<basis id>"), and its parts (nullopt for a subject's or a case's uid).
std::string basis_key_name(const std::string& subject_uid, int64_t basis_id);
std::optional<std::pair<std::string, int64_t>> parse_basis_key_name(const std::string& name);
// The same for a lawful basis's key (basis_key.wrapped, cluster mode).
Result<SecretKey> unwrap_basis_key(const SecretKey& master, int64_t basis_id, std::span<const uint8_t> wrapped);
// Basis `basis_id`'s key on `db` (inside the caller's transaction), created and stored when it
// has none yet (second: true). Cluster mode: what seals the basis's enrollments in a stream.
Result<std::pair<SecretKey, bool>> ensure_basis_key(Db& db, const SecretKey& master, int64_t basis_id);

// Where a command finds its vault: --vault, else $FACEVAULT_VAULT, else ./var/vault.
std::filesystem::path default_vault_dir();

class Vault;
namespace testing {
Db& raw_db(Vault& v);
}

class Vault {
 public:
  // Creates DIR (mode 0700) with a new database, config and master key. With
  // FACEVAULT_MASTER_KEY set, that key is used and no key file is written. Refuses a DIR that
  // already holds a vault. Crash-safe: vault.db appears (by rename) only once complete, and an
  // interrupted init is resumed by running it again (its key file is reused).
  // `schema_version` below the current one builds an older vault (tests of the migrations);
  // open() migrates it.
  static Status init(const std::filesystem::path& dir, const VaultConfig& config = {},
                     int schema_version = kSchemaVersion);
  // Opens an existing vault: takes a shared lock on DIR/vault.lock for the object's lifetime,
  // finishes an interrupted key rotation, loads and checks the master key, then applies
  // schema migrations.
  static Result<std::unique_ptr<Vault>> open(const std::filesystem::path& dir);
  ~Vault();

  // Every read and write of the vault's rows, on this vault's connection.
  Catalog& catalog() { return *catalog_; }
  // BEGIN IMMEDIATE on this vault's connection (the catalog's operations run inside it).
  Result<Txn> begin() { return catalog_->begin(); }
  // A second connection to the same database with the vault's pragmas, for work that must
  // not wait behind this one (API-key checks, denials at the door, gauges).
  Result<std::unique_ptr<Catalog>> open_second_connection() const;
  const VaultConfig& config() const { return config_; }
  const VaultPaths& paths() const { return paths_; }
  const std::string& master_key_id() const { return master_id_; }
  // The audit signing key's public half (hex), and the key itself (the catalog signs with it).
  const std::string& audit_public_key() const { return signer_->public_key(); }
  std::shared_ptr<const AuditSigner> audit_signer() const { return signer_; }

  // Subject keys, inside the caller's transaction.
  Result<SecretKey> create_subject_key(int64_t subject_id);
  Result<SecretKey> subject_key(int64_t subject_id);
  Result<SecretKey> subject_key_from_wrapped(int64_t subject_id, std::span<const uint8_t> wrapped) const;
  // The key sealing the opt-out registry, created on first use (inside the caller's transaction).
  Result<SecretKey> optout_key(bool create);
  // A review case's key (its probe crops): a new one wrapped by the master key, and one
  // unwrapped; bound to the case's uid. Master-key rotation re-wraps them.
  Result<std::pair<SecretKey, Bytes>> create_case_key(const std::string& case_uid);
  Result<SecretKey> case_key(const std::string& case_uid, std::span<const uint8_t> wrapped) const;
  // Fails when another process rotated the master key since this one opened the vault.
  Status check_master_key_current();

  // ---- cluster mode (vault_replication.cpp; changeset.h)
  // Records the row changes made on this vault's connection: start it in the writer's
  // transaction, take the patchset, roll back.
  Result<ChangeCapture> capture_changes() { return ChangeCapture::start(db_); }
  // Replicates the transactions begun on this vault's connection from now on (nullptr: commit
  // locally again). Connections opened later by open_second_connection() get it too.
  void set_commit_interceptor(std::shared_ptr<CommitInterceptor> interceptor) {
    interceptor_ = interceptor;
    db_.set_commit_interceptor(std::move(interceptor));
  }
  // Applies message `seq` of `stream` in one BEGIN IMMEDIATE transaction: the patchset and the
  // stream's applied sequence together. false (and nothing done) when `seq` is at or below the
  // stream's applied sequence: a replay. A gap after it is fine (JetStream's sequences skip
  // erased messages): only the order matters. A patchset that deletes rows flags a wipe as
  // pending in the same transaction (wipe_free_space() clears it; the next open() does it
  // otherwise). A conflict is kFailedPrecondition with nothing applied (apply_patchset).
  // `subject_uid`: the subject whose key sealed the message (recorded for its erasure,
  // Catalog::subject_messages); empty for a message sealed under the cluster's key.
  // Its own transaction, never a commit interceptor's (sqlite.h): this is replication's end.
  Result<bool> apply_replicated(const std::string& stream, int64_t seq, std::span<const uint8_t> patchset,
                                const std::string& applied_at, const std::string& subject_uid = "",
                                ApplyMode mode = ApplyMode::kNormal);
  // Several messages of `stream`, in stream order, in one transaction with the last one's
  // sequence: one commit (one fsync) for all, as a replica catching up needs. Each is applied
  // as apply_replicated() would; element i of the result says whether message i was applied
  // (false: a replay). Any failure rolls back the whole batch: nothing of it is applied.
  struct ReplicatedMessage {
    int64_t seq = 0;
    std::span<const uint8_t> patchset;
    std::string subject_uid;
    ApplyMode mode = ApplyMode::kNormal;
  };
  Result<std::vector<bool>> apply_replicated_batch(const std::string& stream,
                                                   std::span<const ReplicatedMessage> messages,
                                                   const std::string& applied_at);

  // Subject keys in cluster mode never travel in a stream: a replica takes a new subject's key
  // from its writer before the message is published, or from another replica when it applies
  // an older message (docs/cluster.md, "Subject keys stay out of NATS").
  //
  // Keeps the key of subject `uid` (wrapped by the master key, fsynced) until message
  // `expected_seq` + 1 of `stream`, the only one that can create it, is applied (or passed: a
  // writer beaten to that sequence redoes its use case with a new push). Nothing is kept when
  // the vault is already past it. Keys of other writers for the same uid are kept beside it
  // (only one of their messages lands); the same key again is kept once. Its own transaction.
  Status hold_subject_key(const std::string& stream, const std::string& uid, const SecretKey& key, int64_t expected_seq);
  // The key that `uid` names as an applied message left it here: a subject's (its subject_key
  // row), a review case's (review_case.probe_key: what seals its probe crops in a stream) or a
  // basis's (basis_key_name: what seals its enrollments). nullopt when it has none.
  Result<std::optional<SecretKey>> replicated_key(const std::string& uid);
  // The keys held for `uid` (hold_subject_key), newest push first: at most one of them opens
  // the message that creates it, and which one only opening it tells.
  Result<std::vector<SecretKey>> held_subject_keys(const std::string& uid);
  // Whether a message applied here destroyed the key `uid` names (gone for good): it deleted
  // subject `uid`, closed review case `uid` (its probe_key destroyed), or withdrew the basis
  // (or erased the subject) that a basis key's name names.
  Result<bool> key_destroyed_by_stream(const std::string& uid);

  // After an erasure: moves the WAL into the database and truncates it, then (if configured)
  // VACUUMs and truncates again, so no freed page of the erased rows survives in any file.
  // Clears the "wipe pending" flag on success.
  Status wipe_free_space();
  // Inside an erasure's transaction: flags a wipe as due, so that if wipe_free_space() cannot
  // run or fails after the commit, the next open() of the vault does it.
  Status mark_wipe_pending();
  // Tests: a failure injected at the start of wipe_free_space().
  std::function<Status()> wipe_fault_for_testing;

  struct RotateReport {
    std::string old_key_id, new_key_id;
    int64_t subject_keys = 0;
    bool optout_key = false;
    std::string new_key_hex;  // only when the caller must store it (env mode): empty otherwise
  };
  // Re-wraps every subject key (and the opt-out key) under a new master key in one transaction;
  // templates are not touched. File mode: a new key file replaces the old one, crash-safely
  // (DIR/master.key.new is written first; open() completes or discards it). Env mode: the new
  // key is taken from FACEVAULT_NEW_MASTER_KEY. Needs the vault to itself (exclusive lock).
  // `in_txn` runs inside the re-wrapping transaction (the service appends its audit entry
  // there); `after_commit` (tests) runs between the database commit and the key file rename.
  Result<RotateReport> rotate_master_key(const std::function<Status(const RotateReport&)>& in_txn,
                                         const std::function<void()>& after_commit = {});

 private:
  Vault() = default;
  Status apply_pragmas();
  Status migrate();
  Status lock(int how);  // LOCK_SH / LOCK_EX with a busy wait
  // Replication (vault_replication.cpp): the uids of the subjects a message deletes, read
  // before it is applied, and their tombstones and held keys after.
  Result<std::vector<std::string>> uids_of_subjects(const std::vector<int64_t>& subject_ids);
  Status record_erased_subjects(const std::string& stream, int64_t seq, const std::vector<std::string>& uids);
  // Master-key rotation: the keys held for messages not applied yet, wrapped under `next`.
  Status rewrap_held_subject_keys(const SecretKey& next);

  VaultPaths paths_;
  VaultConfig config_;
  SecretKey master_;
  std::string master_id_;
  std::shared_ptr<const AuditSigner> signer_;
  Db db_;
  std::unique_ptr<Catalog> catalog_;
  std::shared_ptr<CommitInterceptor> interceptor_;
  int lock_fd_ = -1;

  friend Db& testing::raw_db(Vault& v);  // tests tamper with rows (src/vault/testing.h)
};

// Loads the master key: FACEVAULT_MASTER_KEY if set, else DIR/master.key (must be mode 0600).
Result<SecretKey> load_master_key(const VaultPaths& paths, const VaultConfig& config);
// Loads the audit signing key's seed: FACEVAULT_AUDIT_SIGNING_KEY if set, else
// DIR/audit-signing.key (mode 0600). A missing file is created (crash-safely, mode 0600) only
// when `may_create` (a new vault, or one without a signed checkpoint yet): once checkpoints were
// signed with it, a lost key is an error, never silently replaced.
Result<SecretKey> load_audit_signing_key(const VaultPaths& paths, const VaultConfig& config, bool may_create);

}  // namespace fv::vault
