#include "vault/vault.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "vault/api_keys.h"
#include "vault/audit.h"
#include "vault/timeutil.h"

namespace fs = std::filesystem;

namespace fv::vault {
namespace {

constexpr int kBusyTimeoutMs = 15000;

// Schema migrations: kMigrations[i] takes the database from version i to i + 1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE subject(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,          -- opaque id used in the audit log and receipts
  ref TEXT NOT NULL UNIQUE,          -- the operator's external reference
  created_at TEXT NOT NULL,
  retention_until TEXT NOT NULL);
CREATE TABLE subject_key(
  subject_id INTEGER PRIMARY KEY REFERENCES subject(id) ON DELETE CASCADE,
  wrapped BLOB NOT NULL,             -- the subject's data key sealed by the master key
  master_key_id TEXT NOT NULL);
CREATE TABLE lawful_basis(
  id INTEGER PRIMARY KEY,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK(kind IN ('consent','legal-obligation','public-task','law-enforcement')),
  reference TEXT NOT NULL,
  granted_at TEXT NOT NULL,
  expires_at TEXT,
  withdrawn_at TEXT,
  recorded_by TEXT NOT NULL);
CREATE TABLE basis_purpose(
  basis_id INTEGER NOT NULL REFERENCES lawful_basis(id) ON DELETE CASCADE,
  purpose TEXT NOT NULL,
  PRIMARY KEY(basis_id, purpose)) WITHOUT ROWID;
CREATE INDEX basis_purpose_by_purpose ON basis_purpose(purpose, basis_id);
CREATE INDEX lawful_basis_by_subject ON lawful_basis(subject_id);
CREATE TABLE source_image(
  id INTEGER PRIMARY KEY,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  basis_id INTEGER NOT NULL REFERENCES lawful_basis(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  format TEXT NOT NULL,
  supplied_by TEXT NOT NULL,
  method TEXT NOT NULL,
  source TEXT NOT NULL,
  received_at TEXT NOT NULL,
  image BLOB);                        -- sealed with the subject key; NULL unless kept
CREATE INDEX source_image_by_subject ON source_image(subject_id);
CREATE TABLE face(
  id INTEGER PRIMARY KEY,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  image_id INTEGER REFERENCES source_image(id) ON DELETE CASCADE,
  basis_id INTEGER NOT NULL REFERENCES lawful_basis(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  dim INTEGER NOT NULL,
  template BLOB NOT NULL,             -- float32 values sealed with the subject key
  box TEXT NOT NULL,
  quality TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE INDEX face_by_subject ON face(subject_id);
CREATE TABLE optout(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  model_id TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  template BLOB NOT NULL,             -- sealed with the opt-out key; nothing else about the person
  created_at TEXT NOT NULL);
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY,
  ts TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
  outcome TEXT NOT NULL, purpose TEXT NOT NULL, case_ref TEXT NOT NULL,
  subjects TEXT NOT NULL, details TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX audit_by_ts ON audit(ts);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql",
    // 1 → 2: indexes on the remaining foreign-key columns, so that deleting an image or a
    // basis (erasure, withdrawal) does not scan every template.
    R"sql(
CREATE INDEX face_by_image ON face(image_id);
CREATE INDEX face_by_basis ON face(basis_id);
CREATE INDEX source_image_by_basis ON source_image(basis_id);
)sql",
    // 2 → 3: AUTOINCREMENT for subject, lawful_basis, source_image and face, so that an id is
    // never given again after its row was erased (a late `basis withdraw 2` meant for an
    // erased subject must not reach a new one). SQLite cannot add AUTOINCREMENT in place:
    // each table is rebuilt (run_migrations turns foreign-key enforcement off around this, as
    // a DROP would otherwise cascade). Ids erased before this migration are recovered from the
    // audit log, which records every basis, template and image id it created.
    R"sql(
CREATE TABLE subject_v3(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uid TEXT NOT NULL UNIQUE,
  ref TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  retention_until TEXT NOT NULL);
INSERT INTO subject_v3(id, uid, ref, created_at, retention_until)
  SELECT id, uid, ref, created_at, retention_until FROM subject;
DROP TABLE subject;
ALTER TABLE subject_v3 RENAME TO subject;

CREATE TABLE lawful_basis_v3(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK(kind IN ('consent','legal-obligation','public-task','law-enforcement')),
  reference TEXT NOT NULL,
  granted_at TEXT NOT NULL,
  expires_at TEXT,
  withdrawn_at TEXT,
  recorded_by TEXT NOT NULL);
INSERT INTO lawful_basis_v3(id, subject_id, kind, reference, granted_at, expires_at, withdrawn_at, recorded_by)
  SELECT id, subject_id, kind, reference, granted_at, expires_at, withdrawn_at, recorded_by FROM lawful_basis;
DROP TABLE lawful_basis;
ALTER TABLE lawful_basis_v3 RENAME TO lawful_basis;
CREATE INDEX lawful_basis_by_subject ON lawful_basis(subject_id);

CREATE TABLE source_image_v3(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  basis_id INTEGER NOT NULL REFERENCES lawful_basis(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  format TEXT NOT NULL,
  supplied_by TEXT NOT NULL,
  method TEXT NOT NULL,
  source TEXT NOT NULL,
  received_at TEXT NOT NULL,
  image BLOB);
INSERT INTO source_image_v3(id, subject_id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image)
  SELECT id, subject_id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image FROM source_image;
DROP TABLE source_image;
ALTER TABLE source_image_v3 RENAME TO source_image;
CREATE INDEX source_image_by_subject ON source_image(subject_id);
CREATE INDEX source_image_by_basis ON source_image(basis_id);

CREATE TABLE face_v3(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  image_id INTEGER REFERENCES source_image(id) ON DELETE CASCADE,
  basis_id INTEGER NOT NULL REFERENCES lawful_basis(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  dim INTEGER NOT NULL,
  template BLOB NOT NULL,
  box TEXT NOT NULL,
  quality TEXT NOT NULL,
  created_at TEXT NOT NULL);
INSERT INTO face_v3(id, subject_id, image_id, basis_id, model_id, model_version, dim, template, box, quality, created_at)
  SELECT id, subject_id, image_id, basis_id, model_id, model_version, dim, template, box, quality, created_at FROM face;
DROP TABLE face;
ALTER TABLE face_v3 RENAME TO face;
CREATE INDEX face_by_subject ON face(subject_id);
CREATE INDEX face_by_image ON face(image_id);
CREATE INDEX face_by_basis ON face(basis_id);

INSERT INTO sqlite_sequence(name, seq)
  SELECT t.name, 0 FROM (SELECT 'subject' AS name UNION ALL SELECT 'lawful_basis' UNION ALL SELECT 'source_image'
                         UNION ALL SELECT 'face') t
  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence s WHERE s.name = t.name);
-- Ids are given as max(id) + 1 without AUTOINCREMENT, so no id ever given exceeds the number
-- of rows ever created, which the log counts (subject ids are in no entry: the count is all
-- there is for them); the ids it names are taken into account too.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT count(*) FROM audit WHERE action = 'basis_add' AND outcome = 'ok'
    AND CASE WHEN json_valid(details) THEN json_extract(details, '$.subject_created') = 1 ELSE 0 END))
  WHERE name = 'subject';
UPDATE sqlite_sequence SET seq = max(seq,
    (SELECT count(*) FROM audit WHERE action = 'basis_add' AND outcome = 'ok'),
    (SELECT coalesce(max(CASE WHEN json_valid(details) THEN CAST(json_extract(details, '$.basis_id') AS INTEGER) END), 0)
       FROM audit WHERE action = 'basis_add' AND outcome = 'ok'))
  WHERE name = 'lawful_basis';
UPDATE sqlite_sequence SET seq = max(seq,
    (SELECT count(*) FROM audit WHERE action = 'enroll' AND outcome = 'ok'),
    (SELECT coalesce(max(CASE WHEN json_valid(details) THEN CAST(json_extract(details, '$.image_id') AS INTEGER) END), 0)
       FROM audit WHERE action = 'enroll' AND outcome = 'ok'))
  WHERE name = 'source_image';
UPDATE sqlite_sequence SET seq = max(seq,
    (SELECT count(*) FROM audit WHERE action = 'enroll' AND outcome = 'ok'),
    (SELECT coalesce(max(CASE WHEN json_valid(details) THEN CAST(json_extract(details, '$.face_id') AS INTEGER) END), 0)
       FROM audit WHERE action = 'enroll' AND outcome = 'ok'))
  WHERE name = 'face';
)sql",
    // 3 → 4: sealed templates and kept images are bound to their own row (face_ad and
    // image_ad name the face or image id), so that two blobs of one subject cannot be swapped.
    // No schema change: run_migrations re-seals every existing row under the new binding.
    "SELECT 1",
    // 4 → 5: a gallery generation, bumped by every face row added or deleted, by any process.
    // A long-lived service (the server) compares it before each search and rebuilds its index
    // when another process (a CLI erasure, say) changed the templates: an erased subject
    // must not stay searchable in a process that did not do the erasure.
    R"sql(
INSERT OR IGNORE INTO meta(key, value) VALUES('gallery_generation', '0');
CREATE TRIGGER gallery_face_insert AFTER INSERT ON face BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_generation';
END;
CREATE TRIGGER gallery_face_delete AFTER DELETE ON face BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_generation';
END;
)sql",
    // 5 → 6: an eligibility generation, bumped by every change to a lawful basis, its purposes
    // or a subject (retention), by any process. A service caches who a purpose may return and
    // recomputes it only when this changed (or the earliest expiry in it passed), so a search
    // does not pay a pass over every basis of a large gallery. Every enrollment renews its
    // subject's retention; a renewal only lengthens it and cannot end anyone's eligibility, so
    // it bumps the generation only when the old retention had ended, or ends within a day
    // (it may bring an expired subject back). (A later migration that rebuilds
    // one of these tables must create its triggers again: DROP TABLE drops them.)
    R"sql(
INSERT OR IGNORE INTO meta(key, value) VALUES('eligibility_generation', '0');
CREATE TRIGGER IF NOT EXISTS eligibility_basis_insert AFTER INSERT ON lawful_basis BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_basis_update AFTER UPDATE ON lawful_basis BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_basis_delete AFTER DELETE ON lawful_basis BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_purpose_insert AFTER INSERT ON basis_purpose BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_purpose_update AFTER UPDATE ON basis_purpose BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_purpose_delete AFTER DELETE ON basis_purpose BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_subject_update AFTER UPDATE OF retention_until ON subject
WHEN NEW.retention_until < OLD.retention_until OR OLD.retention_until <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day')
BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
CREATE TRIGGER IF NOT EXISTS eligibility_subject_delete AFTER DELETE ON subject BEGIN
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'eligibility_generation';
END;
)sql",
    // 6 → 7: signed audit checkpoints (audit_checkpoint.h). run_migrations creates the table
    // (kCheckpointSchemaSql) and signs the chain's head as it stands, the vault's "start"
    // checkpoint: `audit verify` expects one every N entries from there on.
    "SELECT 1",
    // 7 → 8: human oversight. Review cases hold each search's candidates and the reviewers'
    // decisions; a candidate keeps its subject's opaque uid (as the audit does) so that a
    // closed case still records what was decided after the subject is erased (the catalog
    // removes an erased subject from open cases). Probe crops are sealed under a key of the
    // case (wrapped by the master key) and destroyed when the case closes or ages out.
    // Reference crops of enrolled faces (opt-in) are sealed under the subject key and go with
    // their face. Authorisations of searches (Art 26(10)) are cited by the cases they allowed.
    // IF NOT EXISTS: re-running the migrations over a current schema must be harmless.
    R"sql(
CREATE TABLE IF NOT EXISTS authorisation(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uid TEXT NOT NULL UNIQUE,
  authority TEXT NOT NULL,
  reference TEXT NOT NULL,
  purposes TEXT NOT NULL,             -- JSON array
  valid_from TEXT NOT NULL,
  valid_until TEXT NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('granted','pending','refused','lapsed')),
  requested_at TEXT NOT NULL,
  deadline TEXT,                      -- pending: a grant must be recorded before this
  decided_at TEXT,
  recorded_by TEXT NOT NULL,
  decided_by TEXT,
  note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS review_case(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uid TEXT NOT NULL UNIQUE,
  opened_at TEXT NOT NULL,
  searcher TEXT NOT NULL,
  searcher_role TEXT NOT NULL,
  purpose TEXT NOT NULL,
  case_ref TEXT NOT NULL,
  mode TEXT NOT NULL,
  probe_sha256 TEXT NOT NULL,         -- '' for a search of templates
  authorisation_id INTEGER REFERENCES authorisation(id),
  search_audit_seq INTEGER NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('open','closed')),
  closed_at TEXT,
  unusable TEXT,                      -- why its results may not be used (authorisation lapsed or refused)
  probe_key BLOB,                     -- the case key wrapped by the master key; NULL once destroyed
  probe_master_key_id TEXT);
CREATE INDEX IF NOT EXISTS review_case_by_status ON review_case(status, id);
CREATE INDEX IF NOT EXISTS review_case_by_authorisation ON review_case(authorisation_id);
CREATE TABLE IF NOT EXISTS review_probe(
  case_id INTEGER NOT NULL REFERENCES review_case(id) ON DELETE CASCADE,
  face_index INTEGER NOT NULL,
  crop BLOB NOT NULL,                 -- JPEG of the aligned probe face, sealed with the case key
  PRIMARY KEY(case_id, face_index)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS review_candidate(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id INTEGER NOT NULL REFERENCES review_case(id) ON DELETE CASCADE,
  face_index INTEGER NOT NULL,
  rank INTEGER NOT NULL,
  subject_id INTEGER REFERENCES subject(id) ON DELETE SET NULL,
  subject_uid TEXT NOT NULL,
  similarity REAL NOT NULL,
  fmr REAL,
  fpir REAL);
CREATE INDEX IF NOT EXISTS review_candidate_by_case ON review_candidate(case_id);
CREATE INDEX IF NOT EXISTS review_candidate_by_subject ON review_candidate(subject_id);
CREATE TABLE IF NOT EXISTS review_decision(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  candidate_id INTEGER NOT NULL REFERENCES review_candidate(id) ON DELETE CASCADE,
  reviewer TEXT NOT NULL,
  reviewer_role TEXT NOT NULL,
  decision TEXT NOT NULL CHECK(decision IN ('confirm','reject','inconclusive')),
  reason TEXT NOT NULL,
  reference_available INTEGER NOT NULL,
  decided_at TEXT NOT NULL,
  audit_seq INTEGER NOT NULL,
  UNIQUE(candidate_id, reviewer));
CREATE TABLE IF NOT EXISTS reference_crop(
  face_id INTEGER PRIMARY KEY REFERENCES face(id) ON DELETE CASCADE,
  subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
  crop BLOB NOT NULL);                -- JPEG of the aligned face, sealed with the subject key (reference_ad)
CREATE INDEX IF NOT EXISTS reference_crop_by_subject ON reference_crop(subject_id);
)sql",
    // 8 → 9: cluster mode. Each vault records, per stream it applies, the last sequence
    // applied, in the transaction that applied it, and the messages sealed under each
    // subject's key, which its erasure removes from the stream (catalog_replication.cpp). Both
    // are local to the vault, never replicated (changeset.h). run_migrations also creates the
    // API-key table here (until now created on first use), so that every replica has the same
    // tables: a patchset naming a table the replica lacks cannot apply.
    R"sql(
CREATE TABLE IF NOT EXISTS replication_state(
  stream TEXT PRIMARY KEY,
  applied_seq INTEGER NOT NULL,
  applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replication_message(
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  subject_uid TEXT NOT NULL,          -- the subject whose key sealed the message
  PRIMARY KEY(stream, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replication_message_by_subject ON replication_message(subject_uid, stream, seq);
-- The audit chain's head exists from the start (the values its absence meant), so that every
-- append is an update of these rows: a replica rebuilt from a stream whose first audited
-- message was erased can still apply the updates that follow.
INSERT OR IGNORE INTO meta(key, value) VALUES('audit_head_seq', '0'),
  ('audit_head_hash', '0000000000000000000000000000000000000000000000000000000000000000');
)sql",
    // 9 → 10: subject keys never travel in a stream (docs/cluster.md, "Subject keys stay out of
    // NATS"). A writer hands a new subject's key to the shard's replicas before it publishes;
    // each keeps it here, wrapped by the master key, until the message that creates the
    // subject's own subject_key row is applied (it can only land at expected_seq + 1). The
    // uids whose subject row an applied message deleted let a replica answer that a key is
    // gone for good. Both are local to the vault, never replicated (changeset.h).
    R"sql(
CREATE TABLE IF NOT EXISTS replication_pending_key(
  uid TEXT PRIMARY KEY,
  stream TEXT NOT NULL,
  expected_seq INTEGER NOT NULL,
  wrapped BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replication_erased_subject(
  uid TEXT PRIMARY KEY,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL) WITHOUT ROWID;
)sql",
    // 10 → 11: in a cluster, review cases are in the meta vault, whose candidates carry only
    // their subject's uid. An erased subject leaves the open cases there by that uid (indexed
    // now), and each replica marks the erasures it applied once the meta vault has settled
    // them (local, never replicated), and the withdrawn bases likewise (those withdrawn before
    // count as settled), so that a node completes those left undone. The meta
    // vault keeps, per uid and purpose ('' for all), the shard sequence from which the subject
    // may no longer be a candidate: a search whose shard was searched before it does not put
    // the subject in a case (replicated; the uid is the random id the audit log keeps too).
    R"sql(
CREATE INDEX IF NOT EXISTS review_candidate_by_uid ON review_candidate(subject_uid);
CREATE TABLE IF NOT EXISTS replication_settled_erasure(
  uid TEXT PRIMARY KEY) WITHOUT ROWID; -- erased subjects whose cases the meta vault has settled
CREATE TABLE IF NOT EXISTS replication_settled_withdrawal(
  basis_id INTEGER PRIMARY KEY);      -- withdrawn bases whose subject's cases the meta vault has settled
INSERT OR IGNORE INTO replication_settled_withdrawal(basis_id) SELECT id FROM lawful_basis WHERE withdrawn_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS review_exclusion(
  subject_uid TEXT NOT NULL,
  purpose TEXT NOT NULL,              -- '' : every purpose (an erasure)
  shard_seq INTEGER NOT NULL,         -- on the subject's shard stream: candidates searched before it are withheld
  PRIMARY KEY(subject_uid, purpose)) WITHOUT ROWID;
)sql",
    // 11 → 12: in a cluster, a basis withdrawn while its subject stays takes its rows' messages
    // out of the shard's stream too (ShardWriter::erase_messages_of_basis). Each replica marks
    // the withdrawals whose messages it erased or found erased (local, never replicated), so
    // that a node completes those left undone; those withdrawn before are left to that sweep.
    // An enrollment's message is sealed under a key of its basis (replicated, wrapped by the
    // master key; created by the basis's first enrollment in a cluster, never on one node),
    // which the withdrawal deletes: what NATS's log still holds of the message opens with
    // nothing from then on (docs/cluster.md, "A withdrawal the subject outlives").
    R"sql(
CREATE TABLE IF NOT EXISTS replication_withdrawn_in_stream(
  basis_id INTEGER PRIMARY KEY);      -- withdrawn bases whose stream messages are erased
CREATE TABLE IF NOT EXISTS basis_key(
  basis_id INTEGER PRIMARY KEY REFERENCES lawful_basis(id) ON DELETE CASCADE,
  wrapped BLOB NOT NULL);             -- the key sealing the basis's enrollments in a stream
)sql",
    // 12 → 13: two writers may push different keys for one uid and one sequence (a client's
    // retry through another node while the first is still at it, or dead); only one of their
    // messages lands, and no replica can tell which beforehand. Each held key is kept beside
    // the others, named by its public id (SecretKey::id), so the key of the message that lands
    // is never overwritten by the loser's. Keys held before carry an empty id (their uid was
    // unique).
    R"sql(
CREATE TABLE replication_pending_key_13(
  uid TEXT NOT NULL,
  key_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  expected_seq INTEGER NOT NULL,
  wrapped BLOB NOT NULL,
  PRIMARY KEY(uid, key_id)) WITHOUT ROWID;
INSERT INTO replication_pending_key_13(uid, key_id, stream, expected_seq, wrapped)
  SELECT uid, '', stream, expected_seq, wrapped FROM replication_pending_key;
DROP TABLE replication_pending_key;
ALTER TABLE replication_pending_key_13 RENAME TO replication_pending_key;
)sql",
    // 13 → 14: a basis that expires while its subject keeps another basis in force takes what
    // it covered with it at the next retention run, as a withdrawal does; this records when
    // (replicated). A table of its own rather than a column: messages written before keep the
    // shape of lawful_basis that every replica checks them against.
    R"sql(
CREATE TABLE IF NOT EXISTS lapsed_basis_erasure(
  basis_id INTEGER PRIMARY KEY REFERENCES lawful_basis(id) ON DELETE CASCADE,
  erased_at TEXT NOT NULL);            -- when the retention run erased the rows of the lapsed basis
)sql",
    // 14 → 15: a replica rebuilt from a stream never sees the rows of erased messages, and a
    // delete raises a sequence only to the key it names. A row both inserted and deleted by
    // messages erased later (a face withdrawn before its subject's erasure) is named by no
    // delete left in the stream. Every erasure records each AUTOINCREMENT table's sequence
    // here (replicated, in the erasure's own message, which stays), and applying it raises the
    // replica's: rebuilt, a replica still never gives an erased row's id again.
    R"sql(
CREATE TABLE IF NOT EXISTS id_floor(
  name TEXT NOT NULL,                  -- an AUTOINCREMENT table
  erasure INTEGER NOT NULL,            -- the erasure that recorded it, counted from 1
  seq INTEGER NOT NULL,                -- the table's sequence on the writer then
  PRIMARY KEY(name, erasure));         -- a new row per erasure: its insert carries every value
-- Written or applied, a record raises the sequence and replaces the table's older records.
CREATE TRIGGER IF NOT EXISTS id_floor_raises_sequence AFTER INSERT ON id_floor BEGIN
  INSERT INTO sqlite_sequence(name, seq) SELECT NEW.name, 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = NEW.name);
  UPDATE sqlite_sequence SET seq = max(seq, NEW.seq) WHERE name = NEW.name;
  DELETE FROM id_floor WHERE name = NEW.name AND erasure < NEW.erasure;
END;
)sql",
};
constexpr int kNumMigrations = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kNumMigrations == kSchemaVersion);

std::string subject_key_ad(int64_t subject_id) { return "facevault/subject-key/" + std::to_string(subject_id); }

// Schema 4: re-seals every template and kept image, from the subject-only binding of schema
// ≤ 3 to the row's own (face_ad, image_ad), inside the migration's transaction.
Status reseal_bound_to_rows(Db& db, const SecretKey& master) {
  auto legacy_face_ad = [](int64_t sid, const std::string& model, int64_t version) {
    return "facevault/face/" + std::to_string(sid) + "/" + model + "/" + std::to_string(version);
  };
  auto legacy_image_ad = [](int64_t sid) { return "facevault/image/" + std::to_string(sid); };
  struct Row {
    int64_t id, sid;
    std::string model;
    int64_t version;
  };
  for (const bool faces : {true, false}) {
    std::vector<Row> rows;
    {
      FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(faces ? "SELECT id, subject_id, model_id, model_version FROM face ORDER BY id"
                                                   : "SELECT id, subject_id, '', 0 FROM source_image WHERE image IS NOT NULL "
                                                     "ORDER BY id"));
      for (;;) {
        FV_ASSIGN_OR_RETURN(bool row, s.step());
        if (!row) break;
        rows.push_back({s.i64(0), s.i64(1), s.text(2), s.i64(3)});
      }
    }
    FV_ASSIGN_OR_RETURN(Stmt get, db.prepare(faces ? "SELECT f.template, k.wrapped FROM face f JOIN subject_key k ON "
                                                     "k.subject_id=f.subject_id WHERE f.id=?"
                                                   : "SELECT i.image, k.wrapped FROM source_image i JOIN subject_key k ON "
                                                     "k.subject_id=i.subject_id WHERE i.id=?"));
    FV_ASSIGN_OR_RETURN(Stmt put, db.prepare(faces ? "UPDATE face SET template=? WHERE id=?"
                                                   : "UPDATE source_image SET image=? WHERE id=?"));
    for (const Row& r : rows) {
      FV_RETURN_IF_ERROR(get.reset());
      get.bind(1, r.id);
      FV_ASSIGN_OR_RETURN(bool found, get.step());
      if (!found) continue;  // no subject key: nothing can open it
      auto key = unwrap_key(master, get.blob(1), subject_key_ad(r.sid));
      if (!key.is_ok()) return corrupt_data("schema migration: subject key " + std::to_string(r.sid) + " does not unwrap");
      const std::string what = (faces ? "template " : "image ") + std::to_string(r.id);
      auto plain = open_sealed(*key, get.blob(0), faces ? legacy_face_ad(r.sid, r.model, r.version) : legacy_image_ad(r.sid));
      if (!plain.is_ok()) return corrupt_data("schema migration: " + what + " does not decrypt");
      Bytes sealed = seal(*key, *plain, faces ? face_ad(r.sid, r.id, r.model, static_cast<int>(r.version))
                                              : image_ad(r.sid, r.id));
      wipe(*plain);
      FV_RETURN_IF_ERROR(put.reset());
      put.bind_all(sealed, r.id);
      FV_RETURN_IF_ERROR(put.run());
    }
  }
  return Status::ok();
}

// Takes the database from its schema version to `target` in one transaction. Foreign-key
// enforcement is off meanwhile (it cannot change inside a transaction): rebuilding a table
// drops it, and with enforcement on that DROP would cascade-delete every row that refers to
// it. The foreign keys are checked before the commit.
Status run_migrations(Db& db, const SecretKey& master, int64_t target, const AuditSigner* signer) {
  FV_RETURN_IF_ERROR(db.exec("PRAGMA foreign_keys=OFF"));
  struct KeysBackOn {
    Db& db;
    ~KeysBackOn() { (void)db.exec("PRAGMA foreign_keys=ON"); }
  } back_on{db};
  FV_ASSIGN_OR_RETURN(int64_t fk, db.query_int("PRAGMA foreign_keys"));
  if (fk != 0) return internal_error("the schema migration could not turn foreign-key enforcement off");
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
  FV_ASSIGN_OR_RETURN(int64_t version, db.query_int("PRAGMA user_version"));  // another process may have migrated
  if (version >= target) return Status::ok();
  for (int64_t v = version; v < target; ++v) {
    FV_RETURN_IF_ERROR(db.exec(kMigrations[v]));
    if (v + 1 == 4) FV_RETURN_IF_ERROR(reseal_bound_to_rows(db, master));
    if (v + 1 == 7) {
      if (!signer) return internal_error("schema migration 7 needs the audit signing key");
      FV_RETURN_IF_ERROR(db.exec(kCheckpointSchemaSql));
      FV_RETURN_IF_ERROR(checkpoint_audit_head(db, *signer, "start").status());
    }
    if (v + 1 == 9) FV_RETURN_IF_ERROR(ensure_api_key_table(db));
  }
  {
    FV_ASSIGN_OR_RETURN(Stmt ck, db.prepare("PRAGMA foreign_key_check"));
    FV_ASSIGN_OR_RETURN(bool broken, ck.step());
    if (broken) return corrupt_data("schema migration: a row of " + ck.text(0) + " refers to a missing row");
  }
  FV_RETURN_IF_ERROR(db.exec("PRAGMA user_version=" + std::to_string(target)));
  return txn.commit();
}

Status fsync_path(const fs::path& p, bool dir) {
  const int fd = ::open(p.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return os_error(errno, "cannot open " + p.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return os_error(errno, "fsync " + p.string() + ": " + std::strerror(errno));
  return Status::ok();
}

// Writes a key file (the key as hex, then a newline) with mode 0600 from the start (never
// world-readable, even briefly). The newline is written on its own: no second copy of the
// key is made in memory. The key goes to a temporary file first and is linked into place
// only once complete and synced, so a crash never leaves a partial key file behind (link,
// unlike rename, fails when `p` exists: an existing key is never replaced).
Status write_key_file(const fs::path& p, const SecretKey& key) {
  std::string hex = key.to_hex();
  const fs::path tmp = p.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    wipe(hex);
    return os_error(errno, "cannot create " + tmp.string() + ": " + std::strerror(errno));
  }
  const ssize_t n = ::write(fd, hex.data(), hex.size());
  const ssize_t nl = ::write(fd, "\n", 1);
  const int rc = ::fsync(fd);
  ::close(fd);
  const bool ok = n == static_cast<ssize_t>(hex.size()) && nl == 1 && rc == 0;
  wipe(hex);
  if (!ok || ::link(tmp.c_str(), p.c_str()) != 0) {
    const std::string why = ok ? std::strerror(errno) : "short write";
    ::unlink(tmp.c_str());
    return io_error("cannot write " + p.string() + ": " + why);
  }
  ::unlink(tmp.c_str());
  return Status::ok();
}

// Replaces `p` atomically: a temporary file next to it (mode 0600), fsync, rename. A crash
// leaves the old file or the new one, never a part of either.
Status write_file_atomic(const fs::path& p, const std::string& content) {
  const fs::path tmp = p.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return os_error(errno, "cannot create " + tmp.string() + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  const bool ok = off == content.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), p.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return io_error("cannot write " + p.string() + ": " + why);
  }
  return Status::ok();
}

Result<SecretKey> read_key_file(const fs::path& p, const std::string& what = "master key",
                                const char* env = kMasterKeyEnv) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0)
    return failed_precondition("no " + what + ": " + p.string() + " is missing and " + env + " is not set");
  if (st.st_mode & 077)
    return failed_precondition(what + " file " + p.string() + " is readable by others (mode " +
                               [&] { char b[8]; std::snprintf(b, sizeof b, "%04o", st.st_mode & 0777); return std::string(b); }() +
                               "): chmod 600 it");
  // Read into one buffer that is wiped afterwards (a stream would leave copies in its own).
  char buf[256];
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed_precondition("cannot read the " + what + " file " + p.string() + ": " + std::strerror(errno));
  size_t len = 0;
  for (ssize_t n; len < sizeof buf && (n = ::read(fd, buf + len, sizeof buf - len)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    len += static_cast<size_t>(n);
  }
  ::close(fd);
  auto k = SecretKey::from_hex(std::string_view(buf, len));
  wipe(buf, sizeof buf);
  if (!k.is_ok()) return failed_precondition(what + " file " + p.string() + " is malformed: " + k.status().message());
  return k;
}

}  // namespace

nlohmann::json VaultConfig::to_json() const {
  return {{"format", 1},
          {"default_retention_days", default_retention_days},
          {"search_max_fmr", search_max_fmr},
          {"search_default_top", search_default_top},
          {"optout_fmr", optout_fmr},
          {"optout_fallback_threshold", optout_fallback_threshold},
          {"search_fallback_threshold", search_fallback_threshold},
          {"erase_vacuum", erase_vacuum},
          {"liveness_threshold", liveness_threshold},
          {"models", {{"detector", detector}, {"landmarker", landmarker}, {"embedder", embedder}}},
          {"master_key", master_key},
          {"audit_signing_key", audit_signing_key},
          {"audit_checkpoint_every", audit_checkpoint_every},
          {"index", {{"kind", index_kind}, {"ann_min_size", index_ann_min_size}, {"search_threads", search_threads}}},
          {"oversight",
           {{"reviewers_required", reviewers_required},
            {"searcher_may_review", searcher_may_review},
            {"keep_reference_crops", keep_reference_crops},
            {"probe_crop_days", probe_crop_days},
            {"authorisation_required", authorisation_required},
            {"authorisation_pending_hours", authorisation_pending_hours}}}};
}

namespace {

// An integer setting of config.json: a JSON integer in [lo, hi], or `out` unchanged when the key
// is absent. A float is refused, not converted: nlohmann converts 1.6e53 to an integer by a cast
// that is undefined behaviour (found by fuzz/vault_open_fuzzer).
template <class T>
Status read_int(const nlohmann::json& j, const char* key, T& out, int64_t lo, int64_t hi, const char* where) {
  if (!j.contains(key)) return Status::ok();
  const auto& v = j[key];
  if (!v.is_number_integer())
    return corrupt_data(std::string("config.json: ") + where + key + " must be a whole number");
  const bool is_unsigned = v.is_number_unsigned();
  const int64_t n = is_unsigned ? -1 : v.get<int64_t>();
  if (is_unsigned ? v.get<uint64_t>() > static_cast<uint64_t>(hi) : (n < lo || n > hi))
    return corrupt_data(std::string("config.json: ") + where + key + " must be " + std::to_string(lo) + ".." +
                        std::to_string(hi));
  out = static_cast<T>(is_unsigned ? static_cast<int64_t>(v.get<uint64_t>()) : n);
  return Status::ok();
}

}  // namespace

Result<VaultConfig> VaultConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return corrupt_data("config.json is not a JSON object");
  VaultConfig c;
  FV_RETURN_IF_ERROR(read_int(j, "search_default_top", c.search_default_top, 1, 1000, ""));
  FV_RETURN_IF_ERROR(read_int(j, "audit_checkpoint_every", c.audit_checkpoint_every, 0, INT64_MAX, ""));
  if (j.contains("index") && j["index"].is_object()) {
    FV_RETURN_IF_ERROR(read_int(j["index"], "ann_min_size", c.index_ann_min_size, 1, INT64_MAX, "index."));
    FV_RETURN_IF_ERROR(read_int(j["index"], "search_threads", c.search_threads, 1, 256, "index."));
  }
  if (j.contains("oversight")) {
    const auto& o = j["oversight"];
    if (!o.is_object()) return corrupt_data("config.json: oversight must be an object");
    FV_RETURN_IF_ERROR(read_int(o, "reviewers_required", c.reviewers_required, 2, 10, "oversight."));
    FV_RETURN_IF_ERROR(read_int(o, "probe_crop_days", c.probe_crop_days, 0, 3650, "oversight."));
    FV_RETURN_IF_ERROR(read_int(o, "authorisation_pending_hours", c.authorisation_pending_hours, 1, 24 * 365, "oversight."));
    try {
      c.searcher_may_review = o.value("searcher_may_review", c.searcher_may_review);
      c.keep_reference_crops = o.value("keep_reference_crops", c.keep_reference_crops);
      if (o.contains("authorisation_required"))
        c.authorisation_required = o["authorisation_required"].get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      return corrupt_data(std::string("config.json: oversight: ") + e.what());
    }
  }
  try {
    c.default_retention_days = j.value("default_retention_days", c.default_retention_days);
    c.search_max_fmr = j.value("search_max_fmr", c.search_max_fmr);
    c.optout_fmr = j.value("optout_fmr", c.optout_fmr);
    c.optout_fallback_threshold = j.value("optout_fallback_threshold", c.optout_fallback_threshold);
    c.search_fallback_threshold = j.value("search_fallback_threshold", c.search_fallback_threshold);
    c.erase_vacuum = j.value("erase_vacuum", c.erase_vacuum);
    c.liveness_threshold = j.value("liveness_threshold", c.liveness_threshold);
    c.master_key = j.value("master_key", c.master_key);
    c.audit_signing_key = j.value("audit_signing_key", c.audit_signing_key);
    if (j.contains("index")) {
      const auto& ix = j["index"];
      c.index_kind = ix.value("kind", c.index_kind);
    }
    if (j.contains("models")) {
      const auto& m = j["models"];
      c.detector = m.value("detector", c.detector);
      c.landmarker = m.value("landmarker", c.landmarker);
      c.embedder = m.value("embedder", c.embedder);
    }
  } catch (const nlohmann::json::exception& e) {
    return corrupt_data(std::string("config.json: ") + e.what());
  }
  if (c.default_retention_days <= 0) return corrupt_data("config.json: default_retention_days must be > 0");
  if (!(c.search_max_fmr > 0 && c.search_max_fmr <= 1)) return corrupt_data("config.json: search_max_fmr must be in (0, 1]");
  if (!(c.optout_fmr > 0 && c.optout_fmr < 1)) return corrupt_data("config.json: optout_fmr must be in (0, 1)");
  if (!(c.liveness_threshold > 0 && c.liveness_threshold < 1))
    return corrupt_data("config.json: liveness_threshold must be in (0, 1)");
  if (c.master_key != "file" && c.master_key != "env") return corrupt_data("config.json: master_key must be file or env");
  if (c.audit_signing_key != "file" && c.audit_signing_key != "env")
    return corrupt_data("config.json: audit_signing_key must be file or env");
  if (c.audit_checkpoint_every < 0) return corrupt_data("config.json: audit_checkpoint_every must be >= 0");
  if (c.index_kind != "auto" && c.index_kind != "exact" && c.index_kind != "ivf" && c.index_kind != "hnsw")
    return corrupt_data("config.json: index.kind must be auto, exact, ivf or hnsw");
  if (c.index_ann_min_size < 1) return corrupt_data("config.json: index.ann_min_size must be >= 1");
  if (c.search_threads < 1 || c.search_threads > 256) return corrupt_data("config.json: index.search_threads must be 1..256");
  return c;
}

std::string face_ad(int64_t subject_id, int64_t face_id, const std::string& model_id, int version) {
  return "facevault/face/" + std::to_string(subject_id) + "/" + std::to_string(face_id) + "/" + model_id + "/" +
         std::to_string(version);
}

std::string reference_ad(int64_t subject_id, int64_t face_id) {
  return "facevault/reference/" + std::to_string(subject_id) + "/" + std::to_string(face_id);
}

std::string probe_ad(const std::string& case_uid, int face_index) {
  return "facevault/probe/" + case_uid + "/" + std::to_string(face_index);
}

std::string image_ad(int64_t subject_id, int64_t image_id) {
  return "facevault/image/" + std::to_string(subject_id) + "/" + std::to_string(image_id);
}

fs::path default_vault_dir() {
  if (const char* v = std::getenv("FACEVAULT_VAULT"); v && *v) return v;
  return fs::path("var") / "vault";
}

Result<SecretKey> load_master_key(const VaultPaths& paths, const VaultConfig& config) {
  if (const char* env = std::getenv(kMasterKeyEnv); env && *env) {
    auto k = SecretKey::from_hex(env);
    if (!k.is_ok()) return failed_precondition(std::string(kMasterKeyEnv) + " is malformed: " + k.status().message());
    return k;
  }
  if (config.master_key == "env")
    return failed_precondition(std::string("no master key: this vault keeps its key outside the directory; set ") +
                               kMasterKeyEnv);
  return read_key_file(paths.key());
}

Result<SecretKey> load_audit_signing_key(const VaultPaths& paths, const VaultConfig& config, bool may_create) {
  if (const char* env = std::getenv(kAuditSigningKeyEnv); env && *env) {
    auto k = SecretKey::from_hex(env);
    if (!k.is_ok()) return failed_precondition(std::string(kAuditSigningKeyEnv) + " is malformed: " + k.status().message());
    return k;
  }
  if (config.audit_signing_key == "env")
    return failed_precondition(std::string("no audit signing key: this vault keeps it outside the directory; set ") +
                               kAuditSigningKeyEnv);
  const fs::path p = paths.signing_key();
  std::error_code ec;
  if (fs::exists(p, ec) || !may_create) {
    if (!fs::exists(p, ec))
      return failed_precondition("no audit signing key: " + p.string() +
                                 " is missing, and this vault's audit checkpoints were signed with it; restore it from "
                                 "the backup of the vault directory (or set " + kAuditSigningKeyEnv + ")");
    return read_key_file(p, "audit signing key", kAuditSigningKeyEnv);
  }
  // Created like the master key: mode 0600 from the start, linked into place once complete.
  SecretKey seed = SecretKey::random();
  Status written = write_key_file(p, seed);
  if (!written.is_ok()) {
    if (fs::exists(p, ec)) return read_key_file(p, "audit signing key", kAuditSigningKeyEnv);  // another process won
    return written;
  }
  FV_RETURN_IF_ERROR(fsync_path(paths.dir, true));
  return seed;
}

// Crash-safe and resumable: the database is built under a temporary name and renamed into
// place last, so DIR holds a vault (vault.db) only once it is complete. A run that was
// interrupted leaves at most a key file, a config and temporary files: the next init removes
// the temporary files and reuses the key file (nothing was sealed with it yet).
Status Vault::init(const fs::path& dir, const VaultConfig& config_in, int schema_version) {
  FV_RETURN_IF_ERROR(ensure_sodium());
  if (schema_version < 1 || schema_version > kSchemaVersion) return invalid_argument("no such schema version");
  VaultPaths paths{dir};
  std::error_code ec;
  if (fs::exists(paths.db(), ec)) return already_exists(dir.string() + " already holds a vault");
  fs::create_directories(dir, ec);
  if (ec) return io_error("cannot create " + dir.string() + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return io_error("cannot make " + dir.string() + " private (mode 0700): " + ec.message());
  // One init at a time (and none while a process has the directory open).
  const int lock_fd = ::open(paths.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return os_error(errno, "cannot open " + paths.lock().string() + ": " + std::strerror(errno));
  struct CloseLock {
    int fd;
    ~CloseLock() { ::close(fd); }
  } close_lock{lock_fd};
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) return failed_precondition(dir.string() + " is in use by another process");
  if (fs::exists(paths.db(), ec)) return already_exists(dir.string() + " already holds a vault");
  const fs::path building = paths.dir / "vault.db.init";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(building.string() + suffix, ec);
  fs::remove(paths.config().string() + ".tmp", ec);
  VaultConfig config = config_in;
  SecretKey master;
  if (const char* env = std::getenv(kMasterKeyEnv); env && *env) {
    auto k = SecretKey::from_hex(env);
    if (!k.is_ok()) return failed_precondition(std::string(kMasterKeyEnv) + " is malformed: " + k.status().message());
    master = std::move(*k);
    config.master_key = "env";
  } else if (fs::exists(paths.key(), ec)) {
    // Left by an interrupted init (there is no database): nothing was sealed with it yet.
    auto k = read_key_file(paths.key());
    if (!k.is_ok())
      return failed_precondition(paths.key().string() + " (from an earlier, interrupted init?) cannot be used: " +
                                 k.status().message() + "; remove it to start afresh");
    master = std::move(*k);
    config.master_key = "file";
  } else {
    master = SecretKey::random();
    config.master_key = "file";
    FV_RETURN_IF_ERROR(write_key_file(paths.key(), master));
  }
  // The audit signing key, kept like the master key (an older schema gets it at its migration).
  std::shared_ptr<AuditSigner> signer;
  if (schema_version >= 7) {
    const char* senv = std::getenv(kAuditSigningKeyEnv);
    config.audit_signing_key = senv && *senv ? "env" : "file";
    FV_ASSIGN_OR_RETURN(SecretKey seed, load_audit_signing_key(paths, config, true));  // reuses an interrupted init's
    signer = std::make_shared<AuditSigner>(seed, config.audit_checkpoint_every);
  }
  FV_RETURN_IF_ERROR(write_file_atomic(paths.config(), config.to_json().dump(2) + "\n"));
  {
    // The database (and so its WAL, which SQLite creates with the same mode) is private.
    const int fd = ::open(building.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return os_error(errno, "cannot create " + building.string() + ": " + std::strerror(errno));
    ::close(fd);
  }
  {
    FV_ASSIGN_OR_RETURN(Db db, Db::open(building, true));
    FV_RETURN_IF_ERROR(db.exec("PRAGMA journal_mode=WAL"));
    FV_RETURN_IF_ERROR(db.exec("PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL"));
    FV_RETURN_IF_ERROR(run_migrations(db, master, schema_version, signer.get()));
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
    FV_ASSIGN_OR_RETURN(Stmt meta, db.prepare("INSERT INTO meta(key, value) VALUES('master_key_id', ?1), ('created_at', ?2)"));
    meta.bind_all(master.id(), utc_now());
    FV_RETURN_IF_ERROR(meta.run());
    FV_RETURN_IF_ERROR(txn.commit());
    db.close();  // the last connection: the WAL is checkpointed into the file and removed
  }
  if (fs::exists(building.string() + "-wal", ec))
    return io_error("the new database's WAL was not checkpointed; run init again");
  FV_RETURN_IF_ERROR(fsync_path(building, false));
  if (::rename(building.c_str(), paths.db().c_str()) != 0)
    return os_error(errno, "cannot move the new database into place: " + std::string(std::strerror(errno)));
  return fsync_path(dir, true);
}

Status Vault::lock(int how) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (;;) {
    if (::flock(lock_fd_, how | LOCK_NB) == 0) return Status::ok();
    if (errno != EWOULDBLOCK && errno != EINTR) return os_error(errno, std::string("cannot lock the vault: ") + std::strerror(errno));
    if (std::chrono::steady_clock::now() > deadline)
      return failed_precondition(how == LOCK_EX ? "the vault is in use by another process (this needs it to itself)"
                                                : "the vault is locked by another process (key rotation under way?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::unique_ptr<Vault>> Vault::open(const fs::path& dir) {
  FV_RETURN_IF_ERROR(ensure_sodium());
  std::unique_ptr<Vault> v(new Vault());
  v->paths_ = VaultPaths{dir};
  std::error_code ec;
  if (!fs::exists(v->paths_.db(), ec))
    return not_found("no vault at " + dir.string() + " (create one with `facevault init " + dir.string() + "`)");
  {
    std::ifstream in(v->paths_.config());
    if (!in) return failed_precondition("vault config missing: " + v->paths_.config().string());
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) return corrupt_data("vault config is not valid JSON: " + v->paths_.config().string());
    FV_ASSIGN_OR_RETURN(v->config_, VaultConfig::from_json(j));
  }
  v->lock_fd_ = ::open(v->paths_.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (v->lock_fd_ < 0) return os_error(errno, "cannot open " + v->paths_.lock().string() + ": " + std::strerror(errno));
  const bool pending_rotation = fs::exists(v->paths_.new_key(), ec);
  FV_RETURN_IF_ERROR(v->lock(pending_rotation ? LOCK_EX : LOCK_SH));

  FV_ASSIGN_OR_RETURN(v->db_, Db::open(v->paths_.db(), false));
  FV_RETURN_IF_ERROR(v->apply_pragmas());
  v->catalog_ = std::make_unique<Catalog>(v->db_);
  FV_ASSIGN_OR_RETURN(int64_t version, v->db_.query_int("PRAGMA user_version"));
  // Every vault is built at schema 1 or later. A damaged header can hold any 32-bit value, and
  // migrate() indexes its migration table with it (found by fuzz/vault_open_fuzzer: -1.7e9).
  if (version < 1) return corrupt_data("the vault's schema version (" + std::to_string(version) + ") is not valid");
  if (version > kSchemaVersion)
    return failed_precondition("the vault's schema (version " + std::to_string(version) +
                               ") is newer than this facevault understands (" + std::to_string(kSchemaVersion) +
                               "): upgrade facevault");
  FV_ASSIGN_OR_RETURN(auto want, v->db_.query_text("SELECT value FROM meta WHERE key='master_key_id'"));
  if (!want) return corrupt_data("vault has no master key id");

  if (pending_rotation && fs::exists(v->paths_.new_key(), ec)) {
    // A rotation was interrupted: keep whichever key the database is wrapped under.
    auto nk = read_key_file(v->paths_.new_key());
    if (nk.is_ok() && nk->id() == *want) {
      fs::rename(v->paths_.new_key(), v->paths_.key(), ec);
      if (ec) return io_error("cannot finish the interrupted key rotation: " + ec.message());
    } else {
      fs::remove(v->paths_.new_key(), ec);
    }
    FV_RETURN_IF_ERROR(fsync_path(dir, true));
  }
  if (pending_rotation) FV_RETURN_IF_ERROR(v->lock(LOCK_SH));

  FV_ASSIGN_OR_RETURN(v->master_, load_master_key(v->paths_, v->config_));
  v->master_id_ = v->master_.id();
  if (v->master_id_ != *want)
    return failed_precondition("wrong master key: it does not open this vault (vault key id " + *want + ", given key id " +
                               v->master_id_ + ")");
  // The audit signing key: created here for a vault that has no signed checkpoint yet (one made
  // before schema 7), required once checkpoints were signed with it.
  {
    FV_ASSIGN_OR_RETURN(int64_t checkpoints, count_checkpoints(v->db_));
    FV_ASSIGN_OR_RETURN(SecretKey seed, load_audit_signing_key(v->paths_, v->config_, checkpoints == 0));
    v->signer_ = std::make_shared<AuditSigner>(seed, v->config_.audit_checkpoint_every);
    v->catalog_->set_signer(v->signer_);
  }
  // Migrations run with the master key at hand (schema 4 re-seals every template) and the
  // signing key (schema 7 signs the start checkpoint).
  FV_RETURN_IF_ERROR(v->migrate());
  // An erasure committed but its wipe did not finish (another reader, a crash): finish it.
  FV_ASSIGN_OR_RETURN(auto wipe_pending, v->db_.query_text("SELECT value FROM meta WHERE key='wipe_pending'"));
  if (wipe_pending) (void)v->wipe_free_space();  // still pending on failure: the next open tries again
  return v;
}

Result<std::unique_ptr<Catalog>> Vault::open_second_connection() const {
  FV_ASSIGN_OR_RETURN(Db db, Db::open(paths_.db(), false));
  sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
  FV_RETURN_IF_ERROR(db.exec("PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL"));
  FV_RETURN_IF_ERROR(ensure_api_key_table(db));
  db.set_commit_interceptor(interceptor_);
  auto c = std::make_unique<Catalog>(std::move(db));
  c->set_signer(signer_);
  return c;
}

Db& testing::raw_db(Vault& v) { return v.db_; }

Vault::~Vault() {
  catalog_.reset();
  db_.close();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Vault::apply_pragmas() {
  sqlite3_busy_timeout(db_.handle(), kBusyTimeoutMs);
  FV_ASSIGN_OR_RETURN(auto mode, db_.query_text("PRAGMA journal_mode=WAL"));
  if (!mode || *mode != "wal") return failed_precondition("the vault database could not be put in WAL mode");
  // secure_delete: freed content is overwritten with zeros; temp_store: VACUUM's scratch copy
  // stays in memory instead of a file outside the vault directory.
  return db_.exec("PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY");
}

Status Vault::migrate() {
  FV_ASSIGN_OR_RETURN(int64_t version, db_.query_int("PRAGMA user_version"));
  if (version > kSchemaVersion)
    return failed_precondition("the vault's schema (version " + std::to_string(version) +
                               ") is newer than this facevault understands (" + std::to_string(kSchemaVersion) +
                               "): upgrade facevault");
  if (version == kSchemaVersion) return Status::ok();
  if (version < 1) return corrupt_data("the vault's schema version (" + std::to_string(version) + ") is not valid");
  return run_migrations(db_, master_, kSchemaVersion, signer_.get());
}

Status Vault::check_master_key_current() {
  FV_ASSIGN_OR_RETURN(auto want, db_.query_text("SELECT value FROM meta WHERE key='master_key_id'"));
  if (!want || *want != master_id_)
    return failed_precondition("the master key was rotated by another process: run the command again");
  return Status::ok();
}


Result<SecretKey> Vault::create_subject_key(int64_t subject_id) {
  FV_RETURN_IF_ERROR(check_master_key_current());
  SecretKey k = SecretKey::random();
  FV_ASSIGN_OR_RETURN(Stmt s, db_.prepare("INSERT INTO subject_key(subject_id, wrapped, master_key_id) VALUES(?,?,?)"));
  s.bind_all(subject_id, wrap_key(master_, k, subject_key_ad(subject_id)), master_id_);
  FV_RETURN_IF_ERROR(s.run());
  return k;
}

Result<SecretKey> unwrap_subject_key(const SecretKey& master, int64_t subject_id, std::span<const uint8_t> wrapped) {
  auto k = unwrap_key(master, wrapped, subject_key_ad(subject_id));
  if (!k.is_ok()) return corrupt_data("subject key " + std::to_string(subject_id) + " does not unwrap: " + k.status().message());
  return k;
}

Result<SecretKey> Vault::subject_key_from_wrapped(int64_t subject_id, std::span<const uint8_t> wrapped) const {
  return unwrap_subject_key(master_, subject_id, wrapped);
}

Result<SecretKey> Vault::subject_key(int64_t subject_id) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_.prepare("SELECT wrapped FROM subject_key WHERE subject_id=?"));
  s.bind(1, subject_id);
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return not_found("subject " + std::to_string(subject_id) + " has no key (erased?)");
  return subject_key_from_wrapped(subject_id, s.blob(0));
}

Result<SecretKey> Vault::optout_key(bool create) {
  constexpr const char* kAd = "facevault/optout-key";
  FV_ASSIGN_OR_RETURN(auto hex, db_.query_text("SELECT value FROM meta WHERE key='optout_key'"));
  if (hex) {
    FV_ASSIGN_OR_RETURN(Bytes wrapped, from_hex(*hex));
    auto k = unwrap_key(master_, wrapped, kAd);
    if (!k.is_ok()) return corrupt_data("the opt-out key does not unwrap: " + k.status().message());
    return k;
  }
  if (!create) return not_found("the opt-out registry is empty");
  FV_RETURN_IF_ERROR(check_master_key_current());
  SecretKey k = SecretKey::random();
  FV_ASSIGN_OR_RETURN(Stmt s, db_.prepare("INSERT INTO meta(key, value) VALUES('optout_key', ?)"));
  s.bind(1, to_hex(wrap_key(master_, k, kAd)));
  FV_RETURN_IF_ERROR(s.run());
  return k;
}

namespace {
std::string case_key_ad(const std::string& case_uid) { return "facevault/case-key/" + case_uid; }
}  // namespace

Result<std::pair<SecretKey, Bytes>> Vault::create_case_key(const std::string& case_uid) {
  FV_RETURN_IF_ERROR(check_master_key_current());
  SecretKey k = SecretKey::random();
  Bytes wrapped = wrap_key(master_, k, case_key_ad(case_uid));
  return std::make_pair(std::move(k), std::move(wrapped));
}

namespace {
std::string basis_key_ad(int64_t basis_id) { return "facevault/basis-key/" + std::to_string(basis_id); }
}  // namespace

Result<SecretKey> unwrap_basis_key(const SecretKey& master, int64_t basis_id, std::span<const uint8_t> wrapped) {
  auto k = unwrap_key(master, wrapped, basis_key_ad(basis_id));
  if (!k.is_ok()) return corrupt_data("the key of lawful basis " + std::to_string(basis_id) + " does not unwrap: " + k.status().message());
  return k;
}

Result<std::pair<SecretKey, bool>> ensure_basis_key(Db& db, const SecretKey& master, int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare("SELECT wrapped FROM basis_key WHERE basis_id = ?"));
  q.bind(1, basis_id);
  FV_ASSIGN_OR_RETURN(const bool row, q.step());
  if (row) {
    FV_ASSIGN_OR_RETURN(SecretKey k, unwrap_basis_key(master, basis_id, q.blob(0)));
    return std::make_pair(std::move(k), false);
  }
  SecretKey k = SecretKey::random();
  FV_ASSIGN_OR_RETURN(Stmt put, db.prepare("INSERT INTO basis_key(basis_id, wrapped) VALUES(?, ?)"));
  put.bind_all(basis_id, wrap_key(master, k, basis_key_ad(basis_id)));
  FV_RETURN_IF_ERROR(put.run());
  return std::make_pair(std::move(k), true);
}

Result<SecretKey> unwrap_case_key(const SecretKey& master, const std::string& case_uid, std::span<const uint8_t> wrapped) {
  auto k = unwrap_key(master, wrapped, case_key_ad(case_uid));
  if (!k.is_ok()) return corrupt_data("the key of review case " + case_uid + " does not unwrap: " + k.status().message());
  return k;
}

Result<SecretKey> Vault::case_key(const std::string& case_uid, std::span<const uint8_t> wrapped) const {
  return unwrap_case_key(master_, case_uid, wrapped);
}

Status Vault::mark_wipe_pending() {
  return db_.exec("INSERT INTO meta(key, value) VALUES('wipe_pending', '1') "
                  "ON CONFLICT(key) DO UPDATE SET value=excluded.value");
}

Status Vault::wipe_free_space() {
  if (wipe_fault_for_testing) FV_RETURN_IF_ERROR(wipe_fault_for_testing());
  // TRUNCATE: copy every WAL frame into the database, then cut the WAL to zero bytes. It
  // fails (SQLITE_BUSY) only while another connection reads; busy_timeout waits for that.
  auto checkpoint = [&]() -> Status {
    FV_ASSIGN_OR_RETURN(Stmt ck, db_.prepare("PRAGMA wal_checkpoint(TRUNCATE)"));
    FV_ASSIGN_OR_RETURN(bool row, ck.step());
    if (row && ck.i64(0) != 0)
      return failed_precondition("the WAL checkpoint was blocked by another reader; erased pages stay in the WAL until the next checkpoint");
    return Status::ok();
  };
  FV_RETURN_IF_ERROR(checkpoint());
  if (config_.erase_vacuum) {
    FV_RETURN_IF_ERROR(db_.exec("VACUUM"));
    FV_RETURN_IF_ERROR(checkpoint());
  }
  // Done: clear the pending flag (a write to the meta page, which holds no erased data) and
  // take that out of the WAL as well when nobody is reading.
  FV_RETURN_IF_ERROR(db_.exec("DELETE FROM meta WHERE key='wipe_pending'"));
  (void)checkpoint();
  return Status::ok();
}

Result<Vault::RotateReport> Vault::rotate_master_key(const std::function<Status(const RotateReport&)>& in_txn,
                                                     const std::function<void()>& after_commit) {
  RotateReport rep;
  rep.old_key_id = master_id_;
  SecretKey next;
  const bool env_mode = std::getenv(kMasterKeyEnv) && *std::getenv(kMasterKeyEnv);
  if (env_mode) {
    const char* nk = std::getenv(kNewMasterKeyEnv);
    if (!nk || !*nk)
      return failed_precondition(std::string("the master key comes from ") + kMasterKeyEnv + ": put the new key (64 hex digits, e.g. from `facevault key generate`) in " + kNewMasterKeyEnv);
    auto k = SecretKey::from_hex(nk);
    if (!k.is_ok()) return failed_precondition(std::string(kNewMasterKeyEnv) + " is malformed: " + k.status().message());
    next = std::move(*k);
  } else {
    next = SecretKey::random();
  }
  rep.new_key_id = next.id();
  if (rep.new_key_id == rep.old_key_id) return invalid_argument("the new master key is the current one");

  Status locked = lock(LOCK_EX);
  if (!locked.is_ok()) {
    (void)lock(LOCK_SH);
    return locked;
  }
  struct Relock {
    Vault* v;
    ~Relock() { (void)v->lock(LOCK_SH); }
  } relock{this};

  std::error_code ec;
  if (!env_mode) {
    fs::remove(paths_.new_key(), ec);
    FV_RETURN_IF_ERROR(write_key_file(paths_.new_key(), next));
    FV_RETURN_IF_ERROR(fsync_path(paths_.dir, true));
  }
  {
    FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db_));
    FV_RETURN_IF_ERROR(check_master_key_current());
    {
      FV_ASSIGN_OR_RETURN(Stmt sel, db_.prepare("SELECT subject_id, wrapped FROM subject_key ORDER BY subject_id"));
      FV_ASSIGN_OR_RETURN(Stmt upd, db_.prepare("UPDATE subject_key SET wrapped=?, master_key_id=? WHERE subject_id=?"));
      for (;;) {
        FV_ASSIGN_OR_RETURN(bool row, sel.step());
        if (!row) break;
        const int64_t sid = sel.i64(0);
        FV_ASSIGN_OR_RETURN(SecretKey k, subject_key_from_wrapped(sid, sel.blob(1)));
        FV_RETURN_IF_ERROR(upd.reset());
        upd.bind_all(wrap_key(next, k, subject_key_ad(sid)), rep.new_key_id, sid);
        FV_RETURN_IF_ERROR(upd.run());
        ++rep.subject_keys;
      }
    }
    FV_RETURN_IF_ERROR(rewrap_held_subject_keys(next));
    {  // cluster mode's basis keys, likewise
      std::vector<std::pair<int64_t, Bytes>> bases;
      {
        FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT basis_id, wrapped FROM basis_key ORDER BY basis_id"));
        for (;;) {
          FV_ASSIGN_OR_RETURN(bool row, q.step());
          if (!row) break;
          bases.emplace_back(q.i64(0), q.blob(1));
        }
      }
      FV_ASSIGN_OR_RETURN(Stmt put, db_.prepare("UPDATE basis_key SET wrapped=? WHERE basis_id=?"));
      for (const auto& [id, wrapped] : bases) {
        FV_ASSIGN_OR_RETURN(SecretKey k, unwrap_basis_key(master_, id, wrapped));
        FV_RETURN_IF_ERROR(put.reset());
        put.bind_all(wrap_key(next, k, basis_key_ad(id)), id);
        FV_RETURN_IF_ERROR(put.run());
      }
    }
    // Review cases' keys (their probe crops) are re-wrapped with the same care: a key that
    // does not unwrap stops the rotation rather than being lost.
    FV_RETURN_IF_ERROR(catalog_->for_each_probe_key(
        [&](const std::string& case_uid, const Bytes& wrapped) -> Result<Bytes> {
          FV_ASSIGN_OR_RETURN(SecretKey k, case_key(case_uid, wrapped));
          return wrap_key(next, k, case_key_ad(case_uid));
        },
        rep.new_key_id));
    auto ok = optout_key(false);
    if (ok.is_ok()) {
      FV_ASSIGN_OR_RETURN(Stmt s, db_.prepare("UPDATE meta SET value=? WHERE key='optout_key'"));
      s.bind(1, to_hex(wrap_key(next, *ok, "facevault/optout-key")));
      FV_RETURN_IF_ERROR(s.run());
      rep.optout_key = true;
    } else if (ok.status().code() != StatusCode::kNotFound) {
      return ok.status();
    }
    FV_ASSIGN_OR_RETURN(Stmt m, db_.prepare("UPDATE meta SET value=? WHERE key='master_key_id'"));
    m.bind(1, rep.new_key_id);
    FV_RETURN_IF_ERROR(m.run());
    if (in_txn) FV_RETURN_IF_ERROR(in_txn(rep));
    FV_RETURN_IF_ERROR(txn.commit());
  }
  // Committed: the database is wrapped under the new key from here on, so this object uses it
  // whatever happens to the key file below (a failure there used to leave the old key in
  // memory, and an fsync failure was reported as if the rotation had not happened:
  // tests/fault/fault_injection_test.cpp, key rotate on a full disk).
  master_ = std::move(next);
  master_id_ = rep.new_key_id;
  if (after_commit) after_commit();
  if (!env_mode) {
    fs::rename(paths_.new_key(), paths_.key(), ec);
    if (ec) return io_error("key rotation committed but " + paths_.new_key().string() + " could not replace " +
                            paths_.key().string() + " (" + ec.message() + "); the next open finishes it");
    Status synced = fsync_path(paths_.dir, true);
    if (!synced.is_ok())
      return io_error("key rotation committed and " + paths_.key().string() + " replaced (new key id " + rep.new_key_id +
                      "), but the directory could not be synced: " + synced.message() +
                      "; back up the new key file now (a crash before the next sync could bring the old one back)");
  }
  return rep;
}

}  // namespace fv::vault
