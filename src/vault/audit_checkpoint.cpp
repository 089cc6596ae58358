#include "vault/audit_checkpoint.h"

#include <sodium.h>

#include <algorithm>

#include "vault/timeutil.h"

namespace fv::vault {

namespace {

// The Ed25519 key pair of a seed; the secret half is wiped by the caller.
void keypair(const SecretKey& seed, std::array<uint8_t, crypto_sign_PUBLICKEYBYTES>& pk,
             std::array<uint8_t, crypto_sign_SECRETKEYBYTES>& sk) {
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
}

bool is_hex(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

AuditCheckpoint row_checkpoint(const Stmt& s) {
  AuditCheckpoint c;
  c.id = s.i64(0);
  c.seq = s.i64(1);
  c.entries = s.i64(2);
  c.head = s.text(3);
  c.every = s.i64(4);
  c.kind = s.text(5);
  c.created_at = s.text(6);
  c.public_key = s.text(7);
  c.signature = s.text(8);
  return c;
}

constexpr const char* kSelect =
    "SELECT id, seq, entries, head, every, kind, created_at, public_key, signature FROM audit_checkpoint";

std::string name(const AuditCheckpoint& c) {
  return "checkpoint #" + std::to_string(c.id) + " (audit entry " + std::to_string(c.seq) + ")";
}

}  // namespace

const char* const kCheckpointSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS audit_checkpoint(
  id INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,       -- the audit entry whose hash is signed (0: the empty chain)
  entries INTEGER NOT NULL,
  head TEXT NOT NULL,
  every INTEGER NOT NULL,
  kind TEXT NOT NULL,
  created_at TEXT NOT NULL,
  public_key TEXT NOT NULL,          -- Ed25519, hex; the private key is never in the database
  signature TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_checkpoint_append_only_update BEFORE UPDATE ON audit_checkpoint
  BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoint_append_only_delete BEFORE DELETE ON audit_checkpoint
  BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
)sql";

AuditSigner::AuditSigner(const SecretKey& seed, int64_t every) : seed_(seed), every_(every) {
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  keypair(seed_, pk, sk);
  sodium_memzero(sk.data(), sk.size());
  pk_hex_ = to_hex(pk);
}

std::string AuditSigner::sign(const std::string& message) const {
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  keypair(seed_, pk, sk);
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(message.data()), message.size(), sk.data());
  sodium_memzero(sk.data(), sk.size());
  return to_hex(sig);
}

std::string AuditCheckpoint::canonical() const {
  return std::string(kCheckpointFormat) + "\nseq=" + std::to_string(seq) + "\nentries=" + std::to_string(entries) +
         "\nhead=" + head + "\nevery=" + std::to_string(every) + "\nkind=" + kind + "\ncreated_at=" + created_at +
         "\npublic_key=" + public_key + "\n";
}

nlohmann::json AuditCheckpoint::to_json() const {
  return {{"format", kCheckpointFormat}, {"id", id},         {"seq", seq},
          {"entries", entries},          {"head", head},     {"every", every},
          {"kind", kind},                {"created_at", created_at}, {"public_key", public_key},
          {"signature", signature}};
}

Result<AuditCheckpoint> AuditCheckpoint::from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("format", std::string()) != kCheckpointFormat)
    return invalid_argument(std::string("not an audit checkpoint (expected the JSON of `facevault audit checkpoint --json`, "
                                        "format \"") + kCheckpointFormat + "\")");
  AuditCheckpoint c;
  try {
    c.id = j.value("id", int64_t{0});
    c.seq = j.at("seq").get<int64_t>();
    c.entries = j.at("entries").get<int64_t>();
    c.head = j.at("head").get<std::string>();
    c.every = j.at("every").get<int64_t>();
    c.kind = j.at("kind").get<std::string>();
    c.created_at = j.at("created_at").get<std::string>();
    c.public_key = j.at("public_key").get<std::string>();
    c.signature = j.at("signature").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("malformed audit checkpoint: ") + e.what());
  }
  if (c.seq < 0) return invalid_argument("malformed audit checkpoint: negative seq");
  return c;
}

bool checkpoint_signature_valid(const AuditCheckpoint& c) {
  if (!is_hex(c.public_key, 2 * crypto_sign_PUBLICKEYBYTES) || !is_hex(c.signature, 2 * crypto_sign_BYTES)) return false;
  auto pk = from_hex(c.public_key);
  auto sig = from_hex(c.signature);
  if (!pk.is_ok() || !sig.is_ok()) return false;
  const std::string msg = c.canonical();
  return crypto_sign_verify_detached(sig->data(), reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), pk->data()) ==
         0;
}

Result<AuditCheckpoint> checkpoint_audit_head(Db& db, const AuditSigner& signer, const std::string& kind) {
  FV_ASSIGN_OR_RETURN(auto head_seq, db.query_text("SELECT value FROM meta WHERE key='audit_head_seq'"));
  FV_ASSIGN_OR_RETURN(auto head_hash, db.query_text("SELECT value FROM meta WHERE key='audit_head_hash'"));
  FV_ASSIGN_OR_RETURN(const int64_t seq, parse_meta_int(head_seq, "audit_head_seq"));
  {
    FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(std::string(kSelect) + " WHERE seq=?"));
    s.bind(1, seq);
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (row) return row_checkpoint(s);
  }
  AuditCheckpoint c;
  c.seq = seq;
  c.entries = seq;
  c.head = head_hash ? *head_hash : genesis_hash();
  c.every = signer.every();
  c.kind = kind;
  c.created_at = utc_now();
  c.public_key = signer.public_key();
  c.signature = signer.sign(c.canonical());
  FV_ASSIGN_OR_RETURN(Stmt ins, db.prepare("INSERT INTO audit_checkpoint(seq, entries, head, every, kind, created_at, "
                                           "public_key, signature) VALUES(?,?,?,?,?,?,?,?)"));
  ins.bind_all(c.seq, c.entries, c.head, c.every, c.kind, c.created_at, c.public_key, c.signature);
  FV_RETURN_IF_ERROR(ins.run());
  FV_ASSIGN_OR_RETURN(c.id, db.query_int("SELECT last_insert_rowid()"));
  return c;
}

Status checkpoint_if_due(Db& db, const AuditSigner* signer, int64_t seq) {
  if (!signer || signer->every() <= 0 || seq <= 0 || seq % signer->every() != 0) return Status::ok();
  return checkpoint_audit_head(db, *signer, "auto").status();
}

Result<std::vector<AuditCheckpoint>> read_checkpoints(Db& db) {
  std::vector<AuditCheckpoint> out;
  FV_ASSIGN_OR_RETURN(int64_t has, db.query_int("SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                                                "name='audit_checkpoint'"));
  if (!has) return out;
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(std::string(kSelect) + " ORDER BY seq, id"));
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(row_checkpoint(s));
  }
  return out;
}

Result<int64_t> count_checkpoints(Db& db) {
  FV_ASSIGN_OR_RETURN(int64_t has, db.query_int("SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                                                "name='audit_checkpoint'"));
  if (!has) return int64_t{0};
  return db.query_int("SELECT count(*) FROM audit_checkpoint");
}

Status verify_checkpoints(Db& db, const std::string& vault_public_key, int64_t every_now,
                          const std::vector<std::string>& hashes, AuditVerifyReport& rep) {
  FV_ASSIGN_OR_RETURN(auto cps, read_checkpoints(db));
  rep.checkpoints = static_cast<int64_t>(cps.size());
  const int64_t n = static_cast<int64_t>(hashes.size()) - 1;
  auto fail = [&](const AuditCheckpoint* c, int64_t seq, const std::string& problem, const std::string& msg) {
    rep.ok = false;
    rep.first_bad_checkpoint = c ? c->id : 0;
    rep.first_bad_seq = seq;
    rep.problem = problem;
    rep.message = msg;
    return Status::ok();
  };
  if (cps.empty())
    return fail(nullptr, 0, "checkpoint_missing",
                "the audit log has no signed checkpoint: the vault's first checkpoint (made when it was created or "
                "migrated) and every later one were removed");
  for (size_t i = 0; i < cps.size(); ++i) {
    const AuditCheckpoint& c = cps[i];
    if (c.public_key != vault_public_key)
      return fail(&c, c.seq, "checkpoint_key",
                  name(c) + " was signed by another key (" + c.public_key.substr(0, 16) +
                      "…) than the vault's audit signing key (" + vault_public_key.substr(0, 16) +
                      "…): the checkpoint was forged or the key replaced");
    if (!checkpoint_signature_valid(c))
      return fail(&c, c.seq, "checkpoint_signature",
                  name(c) + " was altered: its signature does not match its contents");
    if (c.entries != c.seq || c.seq > n)
      return fail(&c, c.seq, "checkpoint_head",
                  name(c) + " signs a log of " + std::to_string(c.seq) + " entries but the log holds " +
                      std::to_string(n) + ": entries were removed and the log rewritten");
    if (hashes[static_cast<size_t>(c.seq)] != c.head)
      return fail(&c, c.seq, "checkpoint_head",
                  name(c) + " signed head " + c.head.substr(0, 16) + "… but the log's hash at entry " +
                      std::to_string(c.seq) + " is " + hashes[static_cast<size_t>(c.seq)].substr(0, 16) +
                      "…: the log was rewritten");
    if (i == 0 && c.kind != "start")
      return fail(&c, c.seq, "checkpoint_missing",
                  "the vault's first checkpoint (made when it was created or migrated) was removed: the earliest "
                  "left is " + name(c));
    if (i > 0) {
      const AuditCheckpoint& p = cps[i - 1];
      const int64_t allowed = std::max({p.every, c.every, every_now});
      if (allowed > 0 && c.seq - p.seq > allowed)
        return fail(&c, p.seq + allowed, "checkpoint_missing",
                    "a checkpoint between audit entries " + std::to_string(p.seq) + " and " + std::to_string(c.seq) +
                        " was removed (one is signed every " + std::to_string(allowed) + " entries); next left: " +
                        name(c));
    }
  }
  const AuditCheckpoint& last = cps.back();
  const int64_t every = every_now > 0 ? every_now : 0;
  if (every > 0 && n - last.seq >= every)
    return fail(nullptr, last.seq + every, "checkpoint_missing",
                "the checkpoint due after audit entry " + std::to_string(last.seq) + " (one is signed every " +
                    std::to_string(every) + " entries) was removed; the last one left is " + name(last));
  return Status::ok();
}

void verify_external_checkpoint(const AuditCheckpoint& c, const std::string& vault_public_key,
                                const std::vector<std::string>& hashes, AuditVerifyReport& rep) {
  const int64_t n = static_cast<int64_t>(hashes.size()) - 1;
  auto fail = [&](const std::string& problem, const std::string& msg) {
    rep.ok = false;
    rep.first_bad_checkpoint = c.id;
    rep.first_bad_seq = c.seq;
    rep.problem = problem;
    rep.message = msg;
  };
  const std::string what = "the external checkpoint (audit entry " + std::to_string(c.seq) + ")";
  if (!checkpoint_signature_valid(c))
    return fail("external_signature", what + " does not verify under its own public key: the file was altered");
  if (c.public_key != vault_public_key)
    return fail("external_key", what + " was signed by key " + c.public_key.substr(0, 16) +
                                    "…, not by the vault's audit signing key " + vault_public_key.substr(0, 16) +
                                    "…: the vault's key was replaced (and its checkpoints re-signed)");
  if (c.entries != c.seq || c.seq > n)
    return fail("external_head", what + " signs a log of " + std::to_string(c.seq) + " entries but the log holds " +
                                     std::to_string(n) + ": entries were removed");
  if (hashes[static_cast<size_t>(c.seq)] != c.head)
    return fail("external_head", what + " signed head " + c.head.substr(0, 16) + "… but the log's hash at entry " +
                                     std::to_string(c.seq) + " is " + hashes[static_cast<size_t>(c.seq)].substr(0, 16) +
                                     "…: the log was rewritten");
}

}  // namespace fv::vault
