#include "cluster/shard_replica.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

#include "cluster/envelope.h"
#include "cluster/stream.h"
#include "vault/timeutil.h"

namespace fv::cluster {
namespace {

constexpr int kPollMs = 200;
// How long a key fetch waits for the other replicas' answers.
constexpr int kKeyFetchMs = 2000;
// A batch's plaintext stays small beside a node's memory (ReplicaOptions::max_batch counts them).
constexpr size_t kMaxBatchBytes = 8u << 20;

}  // namespace

std::string applied_subject(const std::string& stream) { return "fv.applied." + stream; }

ShardReplica::ShardReplica(NatsConnection& conn, std::unique_ptr<vault::Vault> vault, const vault::SecretKey& master,
                           ReplicaOptions options)
    : conn_(conn), vault_(std::move(vault)), master_(master), options_(std::move(options)) {}

Result<std::unique_ptr<ShardReplica>> ShardReplica::open(NatsConnection& conn, const std::filesystem::path& vault_dir,
                                                          const vault::SecretKey& master, ReplicaOptions options) {
  if (options.stream.empty() || options.node.empty())
    return invalid_argument("a shard replica needs its stream and its node's name");
  FV_ASSIGN_OR_RETURN(auto v, vault::Vault::open(vault_dir));
  FV_ASSIGN_OR_RETURN(const int64_t applied, v->catalog().applied_seq(options.stream));
  std::unique_ptr<ShardReplica> r(new ShardReplica(conn, std::move(v), master, std::move(options)));
  r->applied_ = static_cast<uint64_t>(applied);
  return r;
}

ShardReplica::~ShardReplica() { stop(); }

Status ShardReplica::start() {
  {
    std::lock_guard lk(mu_);
    if (thread_.joinable()) return failed_precondition("the replica of " + options_.stream + " is already running");
  }
  FV_ASSIGN_OR_RETURN(replicas_, stream_replicas(conn_, options_.stream));
  if (!key_server_) {
    FV_ASSIGN_OR_RETURN(key_server_, serve_subject_keys(conn_, master_, options_.stream, options_.node, *this));
  }
  std::lock_guard lk(mu_);
  stop_ = false;
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void ShardReplica::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  key_server_.reset();  // waits for a request being answered
}

Result<std::optional<vault::SecretKey>> ShardReplica::key_of(const std::string& uid) {
  std::lock_guard lk(mu_);
  return vault_->replicated_key(uid);
}

Result<std::vector<vault::SecretKey>> ShardReplica::held_keys(const std::string& uid) {
  std::lock_guard lk(mu_);
  return vault_->held_subject_keys(uid);
}

Result<bool> ShardReplica::erased(const std::string& uid) {
  std::lock_guard lk(mu_);
  return vault_->key_destroyed_by_stream(uid);
}

Status ShardReplica::hold(const std::string& uid, const vault::SecretKey& key, uint64_t expected_seq) {
  std::lock_guard lk(mu_);
  return vault_->hold_subject_key(options_.stream, uid, key, static_cast<int64_t>(expected_seq));
}

uint64_t ShardReplica::applied() const {
  std::lock_guard lk(mu_);
  return applied_;
}

Status ShardReplica::error() const {
  std::lock_guard lk(mu_);
  return error_;
}

Status ShardReplica::wait_applied(uint64_t seq, int timeout_ms) {
  std::unique_lock lk(mu_);
  const bool reached = cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                                    [&] { return applied_ >= seq || !error_.is_ok() || stop_; });
  if (!error_.is_ok()) return error_;
  if (!reached || applied_ < seq)
    return unavailable("the replica of " + options_.stream + " on " + options_.node + " has applied " +
                       std::to_string(applied_) + ", not yet " + std::to_string(seq));
  return Status::ok();
}

Status ShardReplica::catch_up(int timeout_ms) {
  FV_ASSIGN_OR_RETURN(const uint64_t last, last_sequence(conn_, options_.stream));
  return wait_applied(last, timeout_ms);
}

Result<std::vector<uint64_t>> ShardReplica::messages_of_subject(const std::string& subject_uid) {
  std::lock_guard lk(mu_);  // the vault connection is the apply thread's too
  FV_ASSIGN_OR_RETURN(auto seqs, vault_->catalog().subject_messages(options_.stream, subject_uid));
  std::vector<uint64_t> out(seqs.begin(), seqs.end());
  return out;
}

Status ShardReplica::forget_messages_of_subject(const std::string& subject_uid) {
  std::lock_guard lk(mu_);
  return vault_->catalog().forget_subject_messages(options_.stream, subject_uid);
}

Result<std::vector<std::string>> ShardReplica::erased_subjects_with_messages() {
  std::lock_guard lk(mu_);
  return vault_->catalog().erased_subjects_with_messages(options_.stream);
}

Result<std::vector<vault::Catalog::UnsettledErasure>> ShardReplica::erasures_unsettled_in_meta() {
  std::lock_guard lk(mu_);
  return vault_->catalog().erasures_unsettled_in_meta(options_.stream);
}

Status ShardReplica::mark_erasure_settled_in_meta(const std::string& subject_uid) {
  std::lock_guard lk(mu_);
  return vault_->catalog().mark_erasure_settled_in_meta(subject_uid);
}

Result<std::vector<vault::Catalog::UnsettledWithdrawal>> ShardReplica::withdrawals_unerased_in_stream() {
  std::lock_guard lk(mu_);
  return vault_->catalog().withdrawals_unerased_in_stream();
}

Status ShardReplica::mark_withdrawal_erased_in_stream(int64_t basis_id) {
  std::lock_guard lk(mu_);
  return vault_->catalog().mark_withdrawal_erased_in_stream(basis_id);
}

Status ShardReplica::forget_message(uint64_t seq) {
  std::lock_guard lk(mu_);
  return vault_->catalog().forget_subject_message(options_.stream, static_cast<int64_t>(seq));
}

Result<std::pair<vault::Catalog::WithdrawnBasisMessage, uint64_t>> ShardReplica::withdrawn_basis_message(
    std::span<const uint8_t> rows, int64_t basis_id) {
  std::lock_guard lk(mu_);  // the apply thread applies under it: both reads see one state
  FV_ASSIGN_OR_RETURN(auto plan, vault_->catalog().withdrawn_basis_message(rows, basis_id));
  FV_ASSIGN_OR_RETURN(const int64_t at, vault_->catalog().applied_seq(options_.stream));
  return std::make_pair(std::move(plan), static_cast<uint64_t>(at));
}

Result<std::pair<std::vector<uint8_t>, uint64_t>> ShardReplica::subject_restatement(const std::string& subject_uid) {
  std::lock_guard lk(mu_);
  FV_ASSIGN_OR_RETURN(auto restated, vault_->catalog().subject_restatement(subject_uid));
  FV_ASSIGN_OR_RETURN(const int64_t at, vault_->catalog().applied_seq(options_.stream));
  return std::make_pair(std::move(restated), static_cast<uint64_t>(at));
}

Result<std::vector<vault::Catalog::UnsettledWithdrawal>> ShardReplica::withdrawals_unsettled_in_meta() {
  std::lock_guard lk(mu_);
  return vault_->catalog().withdrawals_unsettled_in_meta();
}

Status ShardReplica::mark_withdrawal_settled_in_meta(int64_t basis_id) {
  std::lock_guard lk(mu_);
  return vault_->catalog().mark_withdrawal_settled_in_meta(basis_id);
}

Result<std::optional<int64_t>> ShardReplica::erasure_seq(const std::string& subject_uid) {
  std::lock_guard lk(mu_);
  return vault_->catalog().erasure_seq(subject_uid);
}

void ShardReplica::announce() {
  if (!options_.announce) return;
  const std::string body = options_.node + " " + std::to_string(applied());
  // Core NATS, not stored: a lost announcement is repeated by the next one.
  (void)natsConnection_Publish(conn_.raw(), applied_subject(options_.stream).c_str(), body.data(),
                               static_cast<int>(body.size()));
}

namespace {

// One opened message of a batch; its plaintext patchset is wiped whatever happens.
struct PatchToApply {
  uint64_t seq = 0;
  std::string subject_uid;
  vault::ApplyMode mode = vault::ApplyMode::kNormal;
  vault::Bytes body;
  vault::PatchsetSummary summary;
};

struct WipeBodies {
  std::vector<PatchToApply>& messages;
  ~WipeBodies() {
    for (auto& m : messages) vault::wipe(m.body);
  }
};

// The subject whose message it is (recorded for its erasure): a basis key's name names it; a
// review case's message or a cluster-sealed one is no subject's.
std::string subject_of(const Envelope& e) {
  if (e.kind == EnvelopeKind::kBasis) {
    const auto named = vault::parse_basis_key_name(e.subject_uid);
    return named ? named->first : std::string();
  }
  return e.kind == EnvelopeKind::kCase ? std::string() : e.subject_uid;
}

// Whether opening a message needs a key its uid names: a subject's, a basis's, or a review
// case's (its probe crops; without the key, a closed case's rows open without them).
bool needs_named_key(const Envelope& e) { return sealed_under_named_key(e.kind) || e.kind == EnvelopeKind::kCase; }

// The message opened with the first of `keys` that opens it; kCorruptData when none does.
Result<OpenedMessage> open_with_any(const vault::SecretKey& master, const std::string& stream, const Envelope& e,
                                    std::span<const vault::SecretKey> keys) {
  Status last = corrupt_data("no key to open it with");
  for (const vault::SecretKey& k : keys) {
    auto o = open_envelope(master, stream, e, &k);
    if (o.is_ok() || o.status().code() != StatusCode::kCorruptData) return o;
    last = o.status();
  }
  return last;
}

}  // namespace

Result<std::vector<std::optional<OpenedMessage>>> ShardReplica::open_batch(std::span<const StoredMessage> batch,
                                                                          std::span<const Envelope> envelopes) {
  std::vector<std::optional<OpenedMessage>> out(batch.size());
  std::vector<bool> done(batch.size(), false);
  // This vault's keys first. An applied message's key is the one: a message it does not open
  // was altered. Held keys are candidates: another writer's push for the same uid and sequence
  // may have been the one whose message landed, and then only another replica has its key.
  struct LocalKeys {
    std::optional<vault::SecretKey> applied;
    std::vector<vault::SecretKey> held;  // when none is applied
  };
  std::map<std::string, LocalKeys> local;  // read once per uid of the batch
  std::vector<std::string> unopened;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Envelope& e = envelopes[i];
    if (!needs_named_key(e)) {
      FV_ASSIGN_OR_RETURN(out[i], open_envelope(master_, options_.stream, e, nullptr));
      done[i] = true;
      continue;
    }
    if (std::find(unopened.begin(), unopened.end(), e.subject_uid) != unopened.end()) continue;
    auto it = local.find(e.subject_uid);
    if (it == local.end()) {
      LocalKeys keys;
      {
        std::lock_guard lk(mu_);
        FV_ASSIGN_OR_RETURN(keys.applied, vault_->replicated_key(e.subject_uid));
        if (!keys.applied) {
          FV_ASSIGN_OR_RETURN(keys.held, vault_->held_subject_keys(e.subject_uid));
        }
      }
      it = local.emplace(e.subject_uid, std::move(keys)).first;
    }
    if (it->second.applied) {
      FV_ASSIGN_OR_RETURN(out[i], open_envelope(master_, options_.stream, e, &*it->second.applied));
      done[i] = true;
      continue;
    }
    auto o = open_with_any(master_, options_.stream, e, it->second.held);
    if (o.is_ok()) {
      out[i] = std::move(*o);
      done[i] = true;
    } else if (o.status().code() == StatusCode::kCorruptData) {
      unopened.push_back(e.subject_uid);
    } else {
      return o.status();
    }
  }
  if (unopened.empty()) return out;
  FV_ASSIGN_OR_RETURN(auto fetched, fetch_subject_keys(conn_, master_, options_.stream, unopened,
                                                       static_cast<size_t>(replicas_), kKeyFetchMs));
  for (size_t i = 0; i < batch.size(); ++i) {
    if (done[i]) continue;
    const Envelope& e = envelopes[i];
    const FetchedKey& f = fetched[e.subject_uid];
    const std::string which = " (message " + std::to_string(batch[i].seq) + ")";
    if (f.state == FetchedKey::State::kKey) {
      auto o = open_with_any(master_, options_.stream, e, f.keys);
      if (o.is_ok()) {
        out[i] = std::move(*o);
        continue;
      }
      if (o.status().code() != StatusCode::kCorruptData || f.applied) return o.status();
      return unavailable("none of the " + std::to_string(f.keys.size()) + " keys that the replicas of " +
                         options_.stream + " hold for subject " + e.subject_uid + " opens its message" + which +
                         "; waiting for a replica that applied it");
    }
    if (f.state == FetchedKey::State::kUnknown) {
      // No replica that answered knows it: gone for good only if the stream no longer holds
      // the message (an erasure removed it); otherwise a replica holding the key may be down.
      FV_ASSIGN_OR_RETURN(const auto still, get_message(conn_, options_.stream, batch[i].seq));
      if (still)
        return unavailable("no replica of " + options_.stream + " that answered holds the key of subject " +
                           e.subject_uid + which + "; waiting for one that does");
    }
    // Gone for good. A closed review case's rows open without its crops.
    if (e.kind == EnvelopeKind::kCase) {
      FV_ASSIGN_OR_RETURN(out[i], open_envelope(master_, options_.stream, e, nullptr));
    }
  }
  return out;
}

Status ShardReplica::apply(std::span<const StoredMessage> batch) {
  std::vector<Envelope> envelopes;
  envelopes.reserve(batch.size());
  for (const StoredMessage& m : batch) {
    FV_ASSIGN_OR_RETURN(Envelope e, parse_envelope(m.data));
    envelopes.push_back(std::move(e));
  }
  FV_ASSIGN_OR_RETURN(auto opening, open_batch(batch, envelopes));
  struct WipeOpened {
    std::vector<std::optional<OpenedMessage>>& o;
    ~WipeOpened() {
      for (auto& m : o)
        if (m) {
          vault::wipe(m->rows);
          vault::wipe(m->crops);
          vault::wipe(m->log);
        }
    }
  } wipe_opening{opening};
  std::vector<PatchToApply> opened;
  opened.reserve(batch.size());
  WipeBodies wipe_bodies{opened};
  for (size_t i = 0; i < batch.size(); ++i) {
    const StoredMessage& m = batch[i];
    const Envelope& e = envelopes[i];
    if (!opening[i]) {
      // Its subject's key is gone for good: the erasure that follows it in the stream deletes
      // whatever its rows wrote, so only its audit-log rows (sealed under the stream key) are
      // applied, and this replica's audit chain stays the others' without waiting for a carry.
      // A restatement's audit-log rows are a carry's: this replica may hold them already.
      PatchToApply& om = opened.emplace_back();
      om.seq = m.seq;
      om.subject_uid = subject_of(e);
      if (e.kind == EnvelopeKind::kRestate) om.mode = vault::ApplyMode::kCarry;
      FV_ASSIGN_OR_RETURN(om.body, open_envelope_log(master_, options_.stream, e));
      FV_ASSIGN_OR_RETURN(om.summary, vault::summarize_patchset(om.body));
      continue;
    }
    OpenedMessage& o = *opening[i];
    PatchToApply& om = opened.emplace_back();
    om.seq = m.seq;
    om.subject_uid = subject_of(e);
    om.mode = o.kind == EnvelopeKind::kCarry     ? vault::ApplyMode::kCarry
              : o.kind == EnvelopeKind::kRestate ? vault::ApplyMode::kRestate
                                                 : vault::ApplyMode::kNormal;
    // One transaction's two patchsets apply as one (a patchset is a sequence of table sections).
    // A closed case's crops stay closed (its key is gone): the rows apply without them.
    om.body = std::move(o.rows);
    om.body.insert(om.body.end(), o.crops.begin(), o.crops.end());
    om.body.insert(om.body.end(), o.log.begin(), o.log.end());
    vault::wipe(o.crops);
    vault::wipe(o.log);
    FV_ASSIGN_OR_RETURN(om.summary, vault::summarize_patchset(om.body));
  }
  std::vector<vault::Vault::ReplicatedMessage> messages;
  messages.reserve(opened.size());
  for (const PatchToApply& om : opened)
    messages.push_back({static_cast<int64_t>(om.seq), om.body, om.subject_uid, om.mode});
  std::vector<bool> applied;
  {
    std::lock_guard lk(mu_);
    FV_ASSIGN_OR_RETURN(applied, vault_->apply_replicated_batch(options_.stream, messages, vault::utc_now()));
  }
  bool deletes = false;
  for (size_t i = 0; i < opened.size(); ++i) deletes = deletes || (applied[i] && opened[i].summary.total_deletes() > 0);
  if (deletes) {
    // The same guarantee as an erasure on one node: no freed page of the deleted rows stays in
    // any file. A failure (a reader held the WAL) leaves the wipe pending in the vault: run()
    // tries again every announce period, and the next open would too.
    std::lock_guard lk(mu_);
    wipe_owed_ = !vault_->wipe_free_space().is_ok();
    wipe_retry_periods_ = 1;
    wipe_wait_periods_ = 0;
  }
  {
    std::lock_guard lk(mu_);
    if (opened.back().seq > applied_) applied_ = opened.back().seq;
  }
  cv_.notify_all();
  announce();
  {
    std::lock_guard lk(on_applied_mu_);
    if (!on_applied_.empty())
      for (size_t i = 0; i < opened.size(); ++i) {
        if (!applied[i]) continue;
        const AppliedMessage m{opened[i].seq, opened[i].subject_uid, std::move(opened[i].summary)};
        for (const auto& [id, fn] : on_applied_) fn(m);
      }
  }
  return Status::ok();
}

int ShardReplica::add_on_applied(OnApplied fn) {
  std::lock_guard lk(on_applied_mu_);
  const int id = next_listener_++;
  on_applied_.emplace(id, std::move(fn));
  return id;
}

void ShardReplica::remove_on_applied(int listener) {
  std::lock_guard lk(on_applied_mu_);
  on_applied_.erase(listener);
}

std::optional<Status> ShardReplica::apply_until_stopped(std::span<const StoredMessage> batch) {
  Status s = apply(batch);
  // A vault locked for longer than its busy timeout is no divergence: the same messages are
  // applied again (bounded by stop()).
  while (is_transient(s)) {
    {
      std::lock_guard lk(mu_);
      if (stop_) return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    s = apply(batch);
  }
  return s;
}

void ShardReplica::run() {
  auto fail = [&](Status s) {
    {
      std::lock_guard lk(mu_);
      error_ = std::move(s);
    }
    cv_.notify_all();
  };
  auto reader = StreamReader::open(conn_, options_.stream, applied());
  if (!reader.is_ok()) return fail(reader.status());
  auto last_announce = std::chrono::steady_clock::now();
  announce();
  std::vector<StoredMessage> batch;
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (stop_) return;
    }
    auto msg = (*reader)->next(kPollMs);
    if (!msg.is_ok()) {
      if (is_transient(msg.status())) continue;
      return fail(msg.status());
    }
    if (msg->has_value()) {
      // What the client already holds joins the first message's transaction: a replica
      // catching up commits (and fsyncs) once per batch. Nothing is waited for, so a writer's
      // lone message is applied at once.
      batch.clear();
      size_t bytes = (*msg)->data.size();
      batch.push_back(std::move(**msg));
      while (batch.size() < options_.max_batch && bytes < kMaxBatchBytes && (*reader)->buffered() > 0) {
        auto more = (*reader)->next(1);
        if (!more.is_ok() || !more->has_value()) break;  // an error comes back on the next call
        bytes += (*more)->data.size();
        batch.push_back(std::move(**more));
      }
      uint64_t failed_seq = batch.front().seq;
      auto s = apply_until_stopped(batch);
      if (!s) return;
      if (!s->is_ok() && batch.size() > 1) {
        // The batch rolled back whole: one message at a time applies those before the one that
        // fails, and names it.
        for (const StoredMessage& m : batch) {
          s = apply_until_stopped(std::span(&m, 1));
          if (!s) return;
          if (!s->is_ok()) {
            failed_seq = m.seq;
            break;
          }
        }
      }
      if (!s->is_ok())
        return fail(Status(s->code(), options_.stream + " message " + std::to_string(failed_seq) + " on " +
                                          options_.node + ": " + s->message()));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_announce >= std::chrono::milliseconds(options_.announce_every_ms)) {
      announce();
      last_announce = now;
      // A wipe that waited out a reader (the busy timeout) and failed again is tried after
      // twice as many periods each time (at most 64): a reader that stays does not keep
      // this thread, and the writers waiting for it, blocked.
      if (wipe_owed_ && ++wipe_wait_periods_ >= wipe_retry_periods_) {
        std::lock_guard lk(mu_);
        wipe_owed_ = !vault_->wipe_free_space().is_ok();
        wipe_wait_periods_ = 0;
        wipe_retry_periods_ = std::min(wipe_retry_periods_ * 2, 64);
      }
    }
  }
}

}  // namespace fv::cluster
