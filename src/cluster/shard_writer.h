// The writer side of a replicated shard: a vault::CommitInterceptor installed on the node's
// vault of that shard, so that the service's use cases run unchanged and their transactions
// are replicated instead of committed locally (docs/cluster.md, "The replication unit").
//
// At COMMIT it takes the transaction's patchset, seals it (under the key of the one subject
// whose rows it writes, else under the stream key), rolls the transaction back, publishes the
// message with a fresh message id and the expected last sequence (the stream sequence the
// local vault had applied when the transaction began), and returns once the local replica has
// applied it and at least `replicas_to_wait` replicas (this node's among them) announced it.
// A concurrent writer that got there first makes the commit fail with kAborted: the caller
// catches up (ShardReplica::catch_up) and redoes its use case.
#pragma once

#include <memory>
#include <string>

#include "cluster/applied_watch.h"
#include "cluster/nats_connection.h"
#include "cluster/shard_replica.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/vault.h"

namespace fv::cluster {

struct WriterOptions {
  std::string stream;          // fv-shard-07
  std::string subject_prefix;  // fv.shard.07
  int replicas_to_wait = 2;    // min(2, the shard's replicas)
  int timeout_ms = 30000;      // publish (retries included) and each wait
};

class ShardWriter : public vault::CommitInterceptor {
 public:
  // Installed on any connection to this node's vault of the shard (Vault::set_commit_interceptor,
  // ServiceOptions::commit_interceptor); `local` is this node's replica of the same shard.
  ShardWriter(NatsConnection& conn, const vault::SecretKey& master, ShardReplica& local, AppliedWatch& watch,
              WriterOptions options);

  Result<std::unique_ptr<vault::PendingCommit>> begin(vault::Db& db) override;

  // The NATS subject a subject's messages are published under ("fv.shard.07.s.<uid>"), so that
  // an erasure finds them with a subject filter; cluster-sealed ones go to "<prefix>.tx".
  std::string subject_of(const std::string& subject_uid) const;

  // After a subject's erasure was applied: removes from the stream every earlier message
  // sealed under the subject's key (js_EraseMsg: overwritten on every NATS replica, never a
  // purge alone), each once its audit-log rows were published again as a carry, so the stream
  // still rebuilds the whole audit chain. Messages another node erased first count as erased.
  // Returns how many.
  Result<int> erase_messages_of_subject(const std::string& subject_uid);

  // After the withdrawal of basis `basis_id` was applied while its subject stays: removes from
  // the stream each of the subject's messages that inserted the basis's rows (a face, its source
  // image, its reference crop), so that no copy of them stays readable under the subject's live
  // key. What such a message wrote that outlives the withdrawal (the subject's retention, which
  // its enrollment renewed) is published again first, restated as the rows are now, with its
  // audit-log rows (a kRestate under the subject's key, expecting the stream's last sequence the
  // restatement was read at), else its audit-log rows alone as a carry. Then js_EraseMsg. Marks
  // the withdrawal done on this replica. Returns how many messages were erased (by this call or
  // another node before it); kFailedPrecondition when a message holds the basis's rows and
  // other inserts or deletes (it stays; no use case writes such a message).
  Result<int> erase_messages_of_basis(const std::string& subject_uid, int64_t basis_id);

  // Completes the stream erasures left undone: a node that died after a subject's erasure was
  // applied and before erase_messages_of_subject finished (or a replica other than the one
  // that erased) still records that subject's messages, and no subject row has its uid any
  // more. Each such subject's messages go as erase_messages_of_subject takes them (carry, then
  // js_EraseMsg). Returns how many messages were found erased, by this call or by another node
  // before it. One query of the local vault and nothing else when there is nothing to do; every
  // pending subject is tried, and the first failure is returned after the others. Withdrawals
  // whose messages this replica does not know to be erased go as erase_messages_of_basis takes
  // them, and count likewise.
  Result<int> sweep_pending_erasures();

 private:
  friend class ReplicatedTxn;
  // Publishes what stands in for message `seq` of a subject's basis before it is erased; false
  // when the stream moved on since the restatement was read (read it again).
  Result<bool> publish_stand_in(const std::string& subject_uid, const vault::SecretKey& key, uint64_t seq,
                                const vault::Catalog::WithdrawnBasisMessage& plan, std::span<const uint8_t> log,
                                uint64_t read_at);
  NatsConnection& conn_;
  vault::SecretKey master_;
  ShardReplica& local_;
  AppliedWatch& watch_;
  WriterOptions options_;
};

}  // namespace fv::cluster
