// One replica of a shard on this node: applies the shard's stream, in order, into the node's
// local vault of that shard (docs/cluster.md, "The replication unit"). Each message is one
// vault transaction (a sealed patchset). Messages are applied in SQLite transactions together
// with the stream sequence reached, so a replica killed at any point resumes exactly after the
// last message it applied; the messages the client already holds when one arrives join its
// transaction (up to 256: one commit, one fsync, for a replica catching up). After each commit
// the replica announces the sequence it reached on `fv.applied.<stream>` (and again every
// second), which is what writers wait for before they acknowledge a write.
//
// The replica opens the vault a second time (a connection of its own): the service keeps its
// own connection for use cases, and applying never waits behind the service's lock.
//
// Subject keys are in no message (envelope.h): while it runs, the replica serves the keys its
// vault holds to the shard's other replicas and takes new subjects' keys from writers
// (subject_keys.h). A message whose subject's key it lacks is opened with a key fetched from
// another replica; one whose key every replica that answered has erased is skipped, as is one
// the stream no longer holds (its subject's erasure is under way); otherwise the replica waits
// and tries again (kUnavailable: it has not diverged).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "cluster/envelope.h"
#include "cluster/nats_connection.h"
#include "cluster/rpc.h"
#include "cluster/stream.h"
#include "cluster/subject_keys.h"
#include "common/status.h"
#include "vault/changeset.h"
#include "vault/crypto.h"
#include "vault/vault.h"

namespace fv::cluster {

// The subject on which replicas of `stream` announce the sequence they applied.
std::string applied_subject(const std::string& stream);

struct ReplicaOptions {
  std::string stream;  // fv-shard-07 / fv-meta
  std::string node;    // this node's name, in the announcements
  int announce_every_ms = 1000;
  // false for a node that is no member (NodeOptions::meta_only): its vault is a client's
  // temporary copy, so its applying must count for no writer's acknowledgement, and cluster
  // status must not list it among the replicas.
  bool announce = true;
  // At most this many messages in one vault transaction (1: a commit per message, as a
  // benchmark's anchor).
  size_t max_batch = 256;
};

// What one applied message did (for the node's in-memory index and for erasure).
struct AppliedMessage {
  uint64_t seq = 0;
  std::string subject_uid;  // the subject whose key sealed it; empty for cluster-sealed messages
  vault::PatchsetSummary summary;
};

class ShardReplica : public SubjectKeyHolder {
 public:
  using OnApplied = std::function<void(const AppliedMessage&)>;

  // Opens `vault_dir` (an existing vault whose master key is the cluster's) for applying.
  static Result<std::unique_ptr<ShardReplica>> open(NatsConnection& conn, const std::filesystem::path& vault_dir,
                                                    const vault::SecretKey& master, ReplicaOptions options);
  ~ShardReplica();
  ShardReplica(const ShardReplica&) = delete;
  ShardReplica& operator=(const ShardReplica&) = delete;

  // Listeners called (on the apply thread) after each message is committed, added and removed
  // at any time: once remove_on_applied returns, that listener is never called again. One must
  // not wait for anything a writer may hold while it waits for this replica (a service lock).
  int add_on_applied(OnApplied fn);
  void remove_on_applied(int listener);
  // Tests: the local vault's wipe of freed pages fails while `fault` returns an error.
  void set_wipe_fault_for_testing(std::function<Status()> fault) {
    std::lock_guard lk(mu_);
    vault_->wipe_fault_for_testing = std::move(fault);
  }
  // Starts serving subject keys and the apply thread (reading after the vault's applied sequence).
  Status start();
  // Stops and joins the apply thread, and stops serving keys. Idempotent.
  void stop();

  const std::string& stream() const { return options_.stream; }
  uint64_t applied() const;
  // Waits until the local vault applied `seq` (or later). kUnavailable after timeout_ms;
  // the replica's error when it stopped applying.
  Status wait_applied(uint64_t seq, int timeout_ms);
  // Waits until the local vault applied everything the stream holds now.
  Status catch_up(int timeout_ms);
  // The error that stopped the apply thread (a diverged replica), ok while it runs.
  Status error() const;

  // The stream sequences of the messages sealed under a subject's key that this replica
  // applied (what an erasure must remove from the stream).
  Result<std::vector<uint64_t>> messages_of_subject(const std::string& subject_uid);
  // Forgets them (ShardWriter::erase_messages_of_subject, once they are erased).
  Status forget_messages_of_subject(const std::string& subject_uid);
  // The subjects whose erasure this replica applied while it still records messages of theirs:
  // erasures of the stream left undone (ShardWriter::sweep_pending_erasures).
  Result<std::vector<std::string>> erased_subjects_with_messages();
  // The erasures this replica applied that the meta vault has not yet settled (their subjects'
  // candidacies still to leave open review cases; ClusterService::settle_in_meta), and
  // marking one settled.
  Result<std::vector<vault::Catalog::UnsettledErasure>> erasures_unsettled_in_meta();
  Status mark_erasure_settled_in_meta(const std::string& subject_uid);
  Result<std::vector<vault::Catalog::UnsettledWithdrawal>> withdrawals_unsettled_in_meta();
  Status mark_withdrawal_settled_in_meta(int64_t basis_id);
  // The withdrawals whose subject stays and whose stream messages this replica does not yet
  // know to be erased, and marking one as done (ShardWriter::erase_messages_of_basis).
  Result<std::vector<vault::Catalog::UnsettledWithdrawal>> withdrawals_unerased_in_stream();
  Status mark_withdrawal_erased_in_stream(int64_t basis_id);
  // Forgets one message of a subject (erased from the stream while the subject stays).
  Status forget_message(uint64_t seq);
  // vault::Catalog::withdrawn_basis_message on this replica's vault as it is now, with the
  // stream sequence it was read at.
  Result<std::pair<vault::Catalog::WithdrawnBasisMessage, uint64_t>> withdrawn_basis_message(
      std::span<const uint8_t> rows, int64_t basis_id);
  // vault::Catalog::subject_restatement, with the stream sequence it was read at.
  Result<std::pair<std::vector<uint8_t>, uint64_t>> subject_restatement(const std::string& subject_uid);
  // The sequence of the message that erased `subject_uid` on this replica (nullopt: none).
  Result<std::optional<int64_t>> erasure_seq(const std::string& subject_uid);

  // SubjectKeyHolder, on this replica's vault (called on NATS's delivery thread).
  Result<std::optional<vault::SecretKey>> key_of(const std::string& uid) override;
  Result<std::vector<vault::SecretKey>> held_keys(const std::string& uid) override;
  Result<bool> erased(const std::string& uid) override;
  Status hold(const std::string& uid, const vault::SecretKey& key, uint64_t expected_seq) override;

 private:
  ShardReplica(NatsConnection& conn, std::unique_ptr<vault::Vault> vault, const vault::SecretKey& master,
               ReplicaOptions options);
  void run();
  // Applies messages in stream order in one vault transaction (a replica catching up takes what
  // the client holds already); all or nothing.
  Status apply(std::span<const StoredMessage> batch);
  // apply(), again while the vault is locked by another connection; nullopt once stopped.
  std::optional<Status> apply_until_stopped(std::span<const StoredMessage> batch);
  void announce();
  // The messages of `batch` opened, with this vault's keys, else with those the other replicas
  // hold. nullopt: a message sealed under a key that is gone for good (only its audit-log rows
  // apply). kUnavailable while no replica that answered holds a key that opens one.
  Result<std::vector<std::optional<OpenedMessage>>> open_batch(std::span<const StoredMessage> batch,
                                                               std::span<const Envelope> envelopes);

  NatsConnection& conn_;
  std::unique_ptr<vault::Vault> vault_;
  vault::SecretKey master_;
  ReplicaOptions options_;
  bool wipe_owed_ = false;    // the apply thread's: the last wipe of freed pages failed,
  int wipe_retry_periods_ = 1;  // tried again after this many announce periods
  int wipe_wait_periods_ = 0;
  std::mutex on_applied_mu_;  // held while the listeners run
  std::map<int, OnApplied> on_applied_;
  int next_listener_ = 1;
  int replicas_ = 1;  // the stream's, read at start(): how many answers a key fetch may get
  std::unique_ptr<RpcServer> key_server_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t applied_ = 0;
  Status error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace fv::cluster
