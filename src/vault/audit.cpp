#include "vault/audit.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "vault/crypto.h"

namespace fv::vault {

namespace {
constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
}  // namespace

std::string dump_json(const nlohmann::json& j, int indent, bool ensure_ascii) {
  // Invalid UTF-8 in a string becomes U+FFFD instead of throwing (type_error 316).
  return j.dump(indent, ' ', ensure_ascii, kReplace);
}

std::string audit_subjects_text(const std::vector<std::string>& subjects) {
  return dump_json(nlohmann::json(subjects), -1, false);
}

std::string audit_details_text(const nlohmann::json& details) { return dump_json(details, -1, true); }

Result<int64_t> parse_meta_int(const std::optional<std::string>& text, const std::string& key) {
  if (!text) return int64_t{0};
  int64_t v = 0;
  const char* b = text->data();
  const char* e = b + text->size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || v < 0)
    return corrupt_data("the vault's meta value '" + key + "' is not a number: the database was altered");
  return v;
}

std::string AuditEntry::canonical() const {
  // nlohmann::json objects keep keys sorted, so dump() is canonical for this structure.
  nlohmann::json j = {{"ts", ts},           {"actor", actor},       {"role", role},
                      {"action", action},   {"outcome", outcome},   {"purpose", purpose},
                      {"case", case_ref},   {"subjects", subjects}, {"details", details}};
  return dump_json(j, -1, true);
}

nlohmann::json AuditEntry::to_json() const {
  return {{"seq", seq},        {"ts", ts},         {"actor", actor},       {"role", role},
          {"action", action},  {"outcome", outcome}, {"purpose", purpose}, {"case", case_ref},
          {"subjects", subjects}, {"details", details}, {"prev_hash", prev_hash}, {"hash", hash}};
}

std::string genesis_hash() { return std::string(64, '0'); }

std::string chain_hash(const std::string& prev_hash_hex, const std::string& canonical) {
  auto prev = from_hex(prev_hash_hex);
  Bytes p = prev.is_ok() ? *prev : Bytes(32, 0);
  auto h = blake2b_256(p, as_bytes(canonical));
  return to_hex(h);
}

Result<std::string> append_audit(Db& db, AuditEntry& e) {
  FV_ASSIGN_OR_RETURN(auto head_seq, db.query_text("SELECT value FROM meta WHERE key='audit_head_seq'"));
  FV_ASSIGN_OR_RETURN(auto head_hash, db.query_text("SELECT value FROM meta WHERE key='audit_head_hash'"));
  FV_ASSIGN_OR_RETURN(const int64_t last, parse_meta_int(head_seq, "audit_head_seq"));
  e.seq = last + 1;
  e.prev_hash = head_hash ? *head_hash : genesis_hash();
  e.hash = chain_hash(e.prev_hash, e.canonical());
  FV_ASSIGN_OR_RETURN(Stmt ins, db.prepare(
      "INSERT INTO audit(seq, ts, actor, role, action, outcome, purpose, case_ref, subjects, details, prev_hash, hash)"
      " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"));
  ins.bind_all(e.seq, e.ts, e.actor, e.role, e.action, e.outcome, e.purpose, e.case_ref,
               audit_subjects_text(e.subjects), audit_details_text(e.details), e.prev_hash, e.hash);
  FV_RETURN_IF_ERROR(ins.run());
  FV_ASSIGN_OR_RETURN(Stmt meta, db.prepare(
      "INSERT INTO meta(key, value) VALUES('audit_head_seq', ?1), ('audit_head_hash', ?2)"
      " ON CONFLICT(key) DO UPDATE SET value=excluded.value"));
  meta.bind_all(std::to_string(e.seq), e.hash);
  FV_RETURN_IF_ERROR(meta.run());
  return e.hash;
}

namespace {

AuditEntry row_entry(const Stmt& s) {
  AuditEntry e;
  e.seq = s.i64(0);
  e.ts = s.text(1);
  e.actor = s.text(2);
  e.role = s.text(3);
  e.action = s.text(4);
  e.outcome = s.text(5);
  e.purpose = s.text(6);
  e.case_ref = s.text(7);
  auto subj = nlohmann::json::parse(s.text(8), nullptr, false);
  if (subj.is_array())
    for (auto& x : subj) e.subjects.push_back(x.is_string() ? x.get<std::string>() : x.dump());
  e.details = nlohmann::json::parse(s.text(9), nullptr, false);
  if (e.details.is_discarded()) e.details = s.text(9);  // keep the bytes so verification sees the edit
  e.prev_hash = s.text(10);
  e.hash = s.text(11);
  return e;
}

constexpr const char* kSelect =
    "SELECT seq, ts, actor, role, action, outcome, purpose, case_ref, subjects, details, prev_hash, hash FROM audit";

}  // namespace

nlohmann::json AuditVerifyReport::to_json() const {
  nlohmann::json j = {{"ok", ok}, {"entries", entries}, {"head", head}, {"checkpoints", checkpoints}};
  if (!ok) {
    j["first_bad_seq"] = first_bad_seq;
    if (first_bad_checkpoint) j["first_bad_checkpoint"] = first_bad_checkpoint;
    j["problem"] = problem;
    j["message"] = message;
  }
  return j;
}

Result<AuditVerifyReport> verify_audit(Db& db, std::vector<std::string>* hashes) {
  std::vector<AuditEntry> rows;
  // Entries whose subjects or details column is not byte for byte the canonical text of
  // its parsed value: the hash (computed over parsed values) would still match, but a
  // re-encoded column hides the entry from text searches (audit show --subject, export).
  std::vector<bool> reencoded;
  {
    FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(std::string(kSelect) + " ORDER BY seq"));
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      rows.push_back(row_entry(s));
      reencoded.push_back(s.text(8) != audit_subjects_text(rows.back().subjects) ||
                          s.text(9) != audit_details_text(rows.back().details));
    }
  }
  // Every stored hash, to tell a reordered entry (links to an entry that exists elsewhere)
  // from one whose predecessor was removed (links to nothing we hold).
  std::map<std::string, int64_t> by_hash;
  for (auto& r : rows) by_hash[r.hash] = r.seq;

  AuditVerifyReport rep;
  rep.entries = static_cast<int64_t>(rows.size());
  auto fail = [&](int64_t seq, const std::string& problem, const std::string& msg) {
    rep.ok = false;
    rep.first_bad_seq = seq;
    rep.problem = problem;
    rep.message = msg;
    return rep;
  };
  std::string prev = genesis_hash();
  int64_t expected = 1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string seq = std::to_string(r.seq);
    if (r.seq != expected) {
      return fail(expected, "removed", "audit entry " + std::to_string(expected) + " was removed (the log jumps from " +
                                           std::to_string(expected - 1) + " to " + seq + ")");
    }
    if (chain_hash(r.prev_hash, r.canonical()) != r.hash) {
      return fail(r.seq, "altered", "audit entry " + seq + " was altered: its hash does not match its contents");
    }
    if (reencoded[i]) {
      return fail(r.seq, "altered", "audit entry " + seq +
                                        " was altered: its subjects or details are not stored in canonical form");
    }
    if (r.prev_hash != prev) {
      // A self-consistent entry that does not link to its predecessor.
      if (i > 0 && r.prev_hash == rows[i - 1].prev_hash)
        return fail(r.seq - 1, "inserted", "audit entry " + std::to_string(r.seq - 1) + " was inserted: entries " +
                                               std::to_string(r.seq - 1) + " and " + seq + " both follow entry " +
                                               std::to_string(r.seq - 2));
      auto it = by_hash.find(r.prev_hash);
      if (it != by_hash.end() && it->second != r.seq - 1)
        return fail(r.seq, "reordered", "audit entry " + seq + " is out of order: it follows entry " +
                                            std::to_string(it->second) + " in the chain");
      const bool next_links_to_prev = i + 1 < rows.size() && rows[i + 1].prev_hash == prev;
      if (next_links_to_prev)
        return fail(r.seq, "inserted", "audit entry " + seq + " was inserted: entry " + std::to_string(r.seq + 1) +
                                           " links to entry " + std::to_string(r.seq - 1));
      return fail(r.seq, "removed", "an audit entry before entry " + seq + " was removed: entry " + seq +
                                        " links to a hash the log no longer holds");
    }
    prev = r.hash;
    ++expected;
  }
  rep.head = prev;
  // The head recorded at each append catches removal (or addition) at the end of the log.
  FV_ASSIGN_OR_RETURN(auto head_seq, db.query_text("SELECT value FROM meta WHERE key='audit_head_seq'"));
  FV_ASSIGN_OR_RETURN(auto head_hash, db.query_text("SELECT value FROM meta WHERE key='audit_head_hash'"));
  FV_ASSIGN_OR_RETURN(const int64_t hs, parse_meta_int(head_seq, "audit_head_seq"));
  const std::string hh = head_hash ? *head_hash : genesis_hash();
  if (hs != rep.entries || hh != prev) {
    if (hs > rep.entries)
      return fail(rep.entries + 1, "truncated", "audit entries " + std::to_string(rep.entries + 1) + ".." +
                                                    std::to_string(hs) + " were removed from the end of the log");
    if (hs < rep.entries)
      return fail(hs + 1, "inserted", "audit entry " + std::to_string(hs + 1) +
                                          " was inserted after the recorded head of the log");
    return fail(rep.entries, "altered", "audit entry " + std::to_string(rep.entries) +
                                            " does not match the recorded head of the log");
  }
  if (hashes) {
    hashes->clear();
    hashes->push_back(genesis_hash());
    for (auto& r : rows) hashes->push_back(r.hash);
  }
  return rep;
}

namespace {

// The WHERE clause of q's filters, and its parameters bound by number.
std::string audit_where(const AuditQuery& q) {
  std::string w = " WHERE 1";
  if (q.since) w += " AND ts >= ?1";
  // LIKE narrows the rows cheaply (its wildcards escaped); json_each decides exactly.
  if (q.subject)
    w += " AND subjects LIKE ?2 ESCAPE '\\' AND EXISTS (SELECT 1 FROM "
         "json_each(CASE WHEN json_valid(subjects) THEN subjects ELSE '[]' END) WHERE value = ?7)";
  if (q.action) w += " AND action = ?3";
  if (q.after_seq > 0) {
    const char* later = q.newest_first ? "<" : ">";
    // The first term bounds the scan of audit_by_ts, so a page starts at its cursor.
    if (q.by_time)
      w += std::string(" AND ts ") + later + "= ?8 AND (ts " + later + " ?8 OR seq " + later + " ?4)";
    else
      w += std::string(" AND seq ") + later + " ?4";
  }
  if (q.outcome) w += " AND outcome = ?5";
  if (q.actor) w += " AND actor = ?6";
  return w;
}

void bind_audit_where(Stmt& s, const AuditQuery& q) {
  if (q.since) s.bind(1, *q.since);
  if (q.subject) {
    std::string pattern = "%";
    for (char c : dump_json(nlohmann::json(*q.subject), -1, false)) {
      if (c == '%' || c == '_' || c == '\\') pattern += '\\';
      pattern += c;
    }
    s.bind(2, pattern + "%");
    s.bind(7, *q.subject);
  }
  if (q.action) s.bind(3, *q.action);
  if (q.after_seq > 0) {
    s.bind(4, q.after_seq);
    if (q.by_time) s.bind(8, q.after_ts);
  }
  if (q.outcome) s.bind(5, *q.outcome);
  if (q.actor) s.bind(6, *q.actor);
}

}  // namespace

Result<std::vector<AuditEntry>> read_audit(Db& db, const AuditQuery& q) {
  std::string sql = std::string(kSelect) + audit_where(q);
  if (q.by_time)
    sql += q.newest_first ? " ORDER BY ts DESC, seq DESC" : " ORDER BY ts, seq";
  else
    sql += q.newest_first ? " ORDER BY seq DESC" : " ORDER BY seq";
  if (q.limit) sql += " LIMIT " + std::to_string(q.limit);
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare(sql));
  bind_audit_where(s, q);
  std::vector<AuditEntry> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(row_entry(s));
  }
  return out;
}

Result<int64_t> count_audit(Db& db, const AuditQuery& q) {
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare("SELECT count(*) FROM audit" + audit_where(q)));
  bind_audit_where(s, q);
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? s.i64(0) : 0;
}

}  // namespace fv::vault
