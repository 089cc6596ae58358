#include "cluster/shard_writer.h"

#include <sqlite3.h>

#include <algorithm>
#include <optional>

#include "cluster/envelope.h"
#include "cluster/patch_subjects.h"
#include "cluster/stream.h"
#include "cluster/subject_keys.h"
#include "vault/case_crops.h"
#include "vault/changeset.h"

namespace fv::cluster {

// One transaction's pending commit: the capture started at BEGIN and the sequence the local
// vault had applied then (per transaction, never a field of the long-lived writer).
class ReplicatedTxn : public vault::PendingCommit {
 public:
  ReplicatedTxn(ShardWriter& w, vault::ChangeCapture rows, vault::ChangeCapture log, uint64_t expected)
      : w_(w), rows_(std::move(rows)), log_(std::move(log)), expected_(expected) {}

  Status commit(vault::Db& db) override {
    FV_ASSIGN_OR_RETURN(auto patch, rows_.patchset());
    FV_ASSIGN_OR_RETURN(auto log, log_.patchset());
    if (patch.empty() && log.empty()) return db.exec("COMMIT");  // only local-only rows changed (or nothing)
    FV_ASSIGN_OR_RETURN(const auto subjects, subjects_written(db, patch));
    if (subjects.size() > 1)
      return failed_precondition("a replicated transaction writes the rows of one subject at most (this one: " +
                                 std::to_string(subjects.size()) + ")");
    vault::Bytes message;
    std::string nats_subject = w_.options_.subject_prefix + ".tx";
    std::string new_subject;  // a subject (or review case) whose key this transaction creates
    std::optional<vault::SecretKey> new_key;
    if (subjects.size() == 1) {
      const int64_t id = *subjects.begin();
      FV_ASSIGN_OR_RETURN(auto uid, db.prepare("SELECT uid FROM subject WHERE id = ?"));
      uid.bind(1, id);
      FV_ASSIGN_OR_RETURN(const bool has_uid, uid.step());
      if (!has_uid) return failed_precondition("the transaction writes rows of subject " + std::to_string(id) + " but not the subject");
      const std::string subject_uid = uid.text(0);
      // Read on the transaction's own connection (it may be one of the vault's second ones).
      FV_ASSIGN_OR_RETURN(auto wrapped, db.prepare("SELECT wrapped FROM subject_key WHERE subject_id = ?"));
      wrapped.bind(1, id);
      FV_ASSIGN_OR_RETURN(const bool has_key, wrapped.step());
      if (!has_key) return failed_precondition("the transaction writes rows of subject " + std::to_string(id) + ", which has no key");
      FV_ASSIGN_OR_RETURN(const vault::SecretKey key, vault::unwrap_subject_key(w_.master_, id, wrapped.blob(0)));
      nats_subject = w_.subject_of(subject_uid);
      // An enrollment goes under its basis's key instead, which the basis's withdrawal destroys
      // (vault::ensure_basis_key): from then on, what a log still holds of it opens with
      // nothing, though the subject's key lives on. The basis's first enrollment creates the
      // key, whose row joins this transaction's rows (sealed under the key itself).
      FV_ASSIGN_OR_RETURN(const auto basis, vault::enrollment_basis(db, patch));
      if (basis) {
        FV_ASSIGN_OR_RETURN(auto made, vault::ensure_basis_key(db, w_.master_, *basis));
        const std::string name = vault::basis_key_name(subject_uid, *basis);
        if (made.second) {
          vault::wipe(patch);
          FV_ASSIGN_OR_RETURN(patch, rows_.patchset());
          new_subject = name;
          new_key = made.first;
        }
        message = seal_subject_message(w_.master_, w_.options_.stream, name, made.first, patch, log, EnvelopeKind::kBasis);
      } else {
        message = seal_subject_message(w_.master_, w_.options_.stream, subject_uid, key, patch, log);
        FV_ASSIGN_OR_RETURN(const vault::PatchsetSummary summary, vault::summarize_patchset(patch));
        if (summary.count("subject_key", SQLITE_INSERT) > 0) {
          new_subject = subject_uid;
          new_key = key;
        }
      }
    } else {
      // A new review case's probe crops go under the case's key, which is in no message
      // either: pushed to the replicas like a new subject's (vault/case_crops.h).
      FV_ASSIGN_OR_RETURN(vault::CaseCrops split, vault::split_case_crops(db, patch));
      if (split.case_uid.empty()) {
        message = seal_cluster_message(w_.master_, w_.options_.stream, patch, log);
      } else {
        FV_ASSIGN_OR_RETURN(vault::SecretKey key, vault::unwrap_case_key(w_.master_, split.case_uid, split.wrapped_key));
        message = seal_case_message(w_.master_, w_.options_.stream, split.case_uid, key, split.shared, split.crops, log);
        vault::wipe(split.crops);
        new_subject = split.case_uid;
        new_key = std::move(key);
      }
    }
    vault::wipe(patch);
    // The local vault changes only by applying the stream, like every other replica's.
    FV_RETURN_IF_ERROR(db.exec("ROLLBACK"));
    if (new_key) {
      // The key is in no message: the replicas must hold it before the message that needs it
      // can be acknowledged, so that no writer's death leaves a message nobody can open. This
      // node's replica is one of them (it answers the push like the others).
      const size_t needed = static_cast<size_t>(std::max(1, w_.options_.replicas_to_wait));
      FV_ASSIGN_OR_RETURN(const auto holders,
                          push_subject_key(w_.conn_, w_.master_, w_.options_.stream, new_subject, *new_key, expected_,
                                           needed, w_.options_.timeout_ms));
      (void)holders;
    }
    auto published = publish(w_.conn_, nats_subject, message, vault::random_hex(16), expected_, w_.options_.timeout_ms);
    // A publish that timed out may still be committed: the one sequence it could take says
    // whether it was (then this write goes on), or was not (kAborted: the use case is redone
    // on the new state), or cannot tell yet (kUnavailable, "outcome unknown").
    if (!published.is_ok() && published.status().code() == StatusCode::kUnavailable)
      published = resolve_publish(w_.conn_, w_.options_.stream, message, expected_, w_.options_.timeout_ms);
    FV_ASSIGN_OR_RETURN(const PublishAck ack, std::move(published));
    FV_RETURN_IF_ERROR(w_.local_.wait_applied(ack.seq, w_.options_.timeout_ms));
    FV_ASSIGN_OR_RETURN(const auto nodes, w_.watch_.wait(ack.seq, w_.options_.replicas_to_wait, w_.options_.timeout_ms));
    (void)nodes;
    return Status::ok();
  }

 private:
  ShardWriter& w_;
  vault::ChangeCapture rows_, log_;  // two sessions: the log's rows outlive an erasure (envelope.h)
  uint64_t expected_;
};

ShardWriter::ShardWriter(NatsConnection& conn, const vault::SecretKey& master, ShardReplica& local, AppliedWatch& watch,
                         WriterOptions options)
    : conn_(conn), master_(master), local_(local), watch_(watch), options_(std::move(options)) {}

std::string ShardWriter::subject_of(const std::string& subject_uid) const {
  return options_.subject_prefix + ".s." + subject_uid;
}

Result<std::unique_ptr<vault::PendingCommit>> ShardWriter::begin(vault::Db& db) {
  // Inside BEGIN IMMEDIATE: the replica cannot apply until this transaction ends, so this is
  // exactly the state the use case reads.
  FV_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT applied_seq FROM replication_state WHERE stream = ?"));
  st.bind(1, options_.stream);
  FV_ASSIGN_OR_RETURN(const bool row, st.step());
  const uint64_t expected = row ? static_cast<uint64_t>(st.i64(0)) : 0;
  FV_ASSIGN_OR_RETURN(auto rows, vault::ChangeCapture::start(db, vault::CaptureScope::kAllButLog));
  FV_ASSIGN_OR_RETURN(auto log, vault::ChangeCapture::start(db, vault::CaptureScope::kLog));
  return std::unique_ptr<vault::PendingCommit>(new ReplicatedTxn(*this, std::move(rows), std::move(log), expected));
}

Result<int> ShardWriter::erase_messages_of_subject(const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(const auto seqs, local_.messages_of_subject(subject_uid));
  int erased = 0;
  for (const uint64_t seq : seqs) {
    FV_ASSIGN_OR_RETURN(const auto stored, get_message(conn_, options_.stream, seq));
    if (stored) {
      // Its audit-log rows go on in the stream (a carry, cluster-sealed, deduplicated by the
      // message it came from) before the message itself is overwritten.
      FV_ASSIGN_OR_RETURN(const vault::Bytes log, open_log(master_, options_.stream, stored->data));
      if (!log.empty()) {
        const auto carry = seal_cluster_message(master_, options_.stream, {}, log, EnvelopeKind::kCarry);
        FV_ASSIGN_OR_RETURN(const PublishAck ack,
                            publish(conn_, options_.subject_prefix + ".carry", carry,
                                    "carry-" + options_.stream + "-" + std::to_string(seq), std::nullopt,
                                    options_.timeout_ms));
        (void)ack;
      }
      const Status st = erase_message(conn_, options_.stream, seq);
      if (!st.is_ok() && st.code() != StatusCode::kNotFound) return st;
    }
    ++erased;
  }
  FV_RETURN_IF_ERROR(local_.forget_messages_of_subject(subject_uid));
  return erased;
}

Result<bool> ShardWriter::publish_stand_in(const std::string& subject_uid, const vault::SecretKey& key, uint64_t seq,
                                           const vault::Catalog::WithdrawnBasisMessage& plan,
                                           std::span<const uint8_t> log, uint64_t read_at) {
  const std::string origin = options_.stream + "-" + std::to_string(seq);
  if (plan.restatement.empty()) {
    if (log.empty()) return true;
    const auto carry = seal_cluster_message(master_, options_.stream, {}, log, EnvelopeKind::kCarry);
    FV_ASSIGN_OR_RETURN(const PublishAck ack, publish(conn_, options_.subject_prefix + ".carry", carry, "carry-" + origin,
                                                      std::nullopt, options_.timeout_ms));
    (void)ack;
    return true;
  }
  // The restatement holds the rows as they were at read_at: stored anywhere but right after
  // it, a later write to the same rows would be undone on every replica.
  const auto restate = seal_subject_message(master_, options_.stream, subject_uid, key, plan.restatement, log,
                                            EnvelopeKind::kRestate);
  auto published = publish(conn_, subject_of(subject_uid), restate, "restate-" + origin, read_at, options_.timeout_ms);
  if (!published.is_ok() && published.status().code() == StatusCode::kUnavailable)
    published = resolve_publish(conn_, options_.stream, restate, read_at, options_.timeout_ms);
  if (!published.is_ok() && published.status().code() == StatusCode::kAborted) return false;
  FV_ASSIGN_OR_RETURN(const PublishAck ack, std::move(published));
  // Applied here before the message goes: this replica then records the restatement as one of
  // the subject's messages (its erasure removes it too).
  FV_RETURN_IF_ERROR(local_.wait_applied(ack.seq, options_.timeout_ms));
  return true;
}

Result<int> ShardWriter::erase_messages_of_basis(const std::string& subject_uid, int64_t basis_id) {
  constexpr int kAttempts = 8;  // each lost only to a write landing meanwhile
  FV_ASSIGN_OR_RETURN(const auto key, local_.key_of(subject_uid));
  // Erased meanwhile: its erasure removes every message of the subject.
  if (!key) return 0;
  FV_ASSIGN_OR_RETURN(const auto seqs, local_.messages_of_subject(subject_uid));
  int erased = 0;
  std::string kept;
  bool subject_restated = false;
  for (const uint64_t seq : seqs) {
    bool gone = false;
    for (int attempt = 0;; ++attempt) {
      FV_ASSIGN_OR_RETURN(const auto stored, get_message(conn_, options_.stream, seq));
      if (!stored) {
        gone = true;
        break;
      }
      FV_ASSIGN_OR_RETURN(const Envelope envelope, parse_envelope(stored->data));
      vault::Catalog::WithdrawnBasisMessage plan;
      uint64_t read_at = 0;
      vault::Bytes log;
      if (envelope.kind == EnvelopeKind::kBasis) {
        // Sealed under the basis's key, which the withdrawal destroyed: the name says whose it
        // is, and what its enrollment updated is restated from the subject's row as it is now.
        // One restatement of the row stands for all the basis's messages: the others carry
        // their audit rows only.
        const auto named = vault::parse_basis_key_name(envelope.subject_uid);
        if (!named || named->second != basis_id) break;
        plan.holds_basis = true;
        if (!subject_restated) {
          FV_ASSIGN_OR_RETURN(auto restated, local_.subject_restatement(subject_uid));
          plan.restatement = std::move(restated.first);
          read_at = restated.second;
        }
        FV_ASSIGN_OR_RETURN(log, open_envelope_log(master_, options_.stream, envelope));
      } else if (envelope.kind == EnvelopeKind::kSubject) {
        // Written under the subject's key (before basis keys, or by no enrollment): opened and
        // read for the basis's rows (vault::Catalog::withdrawn_basis_message).
        FV_ASSIGN_OR_RETURN(OpenedMessage opened, open_envelope(master_, options_.stream, envelope, &*key));
        auto read = local_.withdrawn_basis_message(opened.rows, basis_id);
        vault::wipe(opened.rows);
        FV_RETURN_IF_ERROR(read.status());
        plan = std::move(read->first);
        read_at = read->second;
        log = std::move(opened.log);
      } else {
        break;  // a restatement or a carry inserts no row
      }
      if (!plan.holds_basis) break;
      if (!plan.also.empty()) {
        if (kept.empty()) kept = "message " + std::to_string(seq) + " (" + plan.also + ")";
        break;
      }
      FV_ASSIGN_OR_RETURN(const bool stood_in, publish_stand_in(subject_uid, *key, seq, plan, log, read_at));
      if (stood_in && envelope.kind == EnvelopeKind::kBasis && !plan.restatement.empty()) subject_restated = true;
      if (!stood_in) {
        if (attempt + 1 >= kAttempts)
          return aborted("the restatement of message " + std::to_string(seq) + " of " + options_.stream +
                         " lost to other writes " + std::to_string(kAttempts) + " times");
        FV_RETURN_IF_ERROR(local_.catch_up(options_.timeout_ms));
        continue;
      }
      const Status st = erase_message(conn_, options_.stream, seq);
      if (!st.is_ok() && st.code() != StatusCode::kNotFound) return st;
      gone = true;
      break;
    }
    if (!gone) continue;
    ++erased;
    FV_RETURN_IF_ERROR(local_.forget_message(seq));
  }
  if (!kept.empty())
    return failed_precondition("withdrawn basis " + std::to_string(basis_id) + ": " + kept + " of " + options_.stream +
                               " holds the basis's rows and others, so it stays in the stream");
  FV_RETURN_IF_ERROR(local_.mark_withdrawal_erased_in_stream(basis_id));
  return erased;
}

Result<int> ShardWriter::sweep_pending_erasures() {
  FV_ASSIGN_OR_RETURN(const auto uids, local_.erased_subjects_with_messages());
  int erased = 0;
  Status first;
  for (const auto& uid : uids) {
    auto n = erase_messages_of_subject(uid);
    if (n.is_ok()) erased += *n;
    else if (first.is_ok()) first = Status(n.status().code(), "erasing the messages of erased subject " + uid + " from " +
                                                                  options_.stream + ": " + n.status().message());
  }
  FV_ASSIGN_OR_RETURN(const auto withdrawals, local_.withdrawals_unerased_in_stream());
  for (const auto& w : withdrawals) {
    auto n = erase_messages_of_basis(w.subject_uid, w.basis_id);
    if (n.is_ok()) erased += *n;
    else if (first.is_ok()) first = Status(n.status().code(), "erasing the messages of withdrawn basis " +
                                                                  std::to_string(w.basis_id) + " from " + options_.stream +
                                                                  ": " + n.status().message());
  }
  if (!first.is_ok()) return first;
  return erased;
}

}  // namespace fv::cluster
