#include "cluster/shard_replica.h"

#include <nats/nats.h>

#include <chrono>

#include "cluster/envelope.h"
#include "cluster/stream.h"
#include "vault/timeutil.h"

namespace fv::cluster {
namespace {

constexpr int kPollMs = 200;

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
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return failed_precondition("the replica of " + options_.stream + " is already running");
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

void ShardReplica::announce() {
  if (!options_.announce) return;
  const std::string body = options_.node + " " + std::to_string(applied());
  // Core NATS, not stored: a lost announcement is repeated by the next one.
  (void)natsConnection_Publish(conn_.raw(), applied_subject(options_.stream).c_str(), body.data(),
                               static_cast<int>(body.size()));
}

Status ShardReplica::apply(uint64_t seq, std::span<const uint8_t> data) {
  FV_ASSIGN_OR_RETURN(auto opened, open_message(master_, options_.stream, data));
  const bool carry = opened.kind == EnvelopeKind::kCarry;
  // One transaction's two patchsets apply as one (a patchset is a sequence of table sections).
  vault::Bytes body = std::move(opened.rows);
  body.insert(body.end(), opened.log.begin(), opened.log.end());
  vault::wipe(opened.log);
  FV_ASSIGN_OR_RETURN(auto summary, vault::summarize_patchset(body));
  bool applied = false;
  {
    std::lock_guard lk(mu_);
    FV_ASSIGN_OR_RETURN(applied, vault_->apply_replicated(options_.stream, static_cast<int64_t>(seq), body,
                                                          vault::utc_now(), opened.subject_uid,
                                                          carry ? vault::ApplyMode::kCarry : vault::ApplyMode::kNormal));
  }
  vault::wipe(body);
  if (applied && summary.total_deletes() > 0) {
    // The same guarantee as an erasure on one node: no freed page of the deleted rows stays in
    // any file. A failure leaves the wipe pending in the vault (the next open does it).
    std::lock_guard lk(mu_);
    (void)vault_->wipe_free_space();
  }
  {
    std::lock_guard lk(mu_);
    if (seq > applied_) applied_ = seq;
  }
  cv_.notify_all();
  announce();
  if (applied && on_applied_) on_applied_(AppliedMessage{seq, opened.subject_uid, std::move(summary)});
  return Status::ok();
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
      const auto& m = **msg;
      Status s = apply(m.seq, m.data);
      // A vault locked for longer than its busy timeout is no divergence: the same message is
      // applied again (bounded by stop()).
      while (is_transient(s)) {
        {
          std::lock_guard lk(mu_);
          if (stop_) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
        s = apply(m.seq, m.data);
      }
      if (!s.is_ok())
        return fail(Status(s.code(), options_.stream + " message " + std::to_string(m.seq) + " on " + options_.node +
                                         ": " + s.message()));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_announce >= std::chrono::milliseconds(options_.announce_every_ms)) {
      announce();
      last_announce = now;
    }
  }
}

}  // namespace fv::cluster
