// Subject keys between the replicas of a shard, over request/reply: never in a stream.
//
// A message of a subject is sealed under that subject's key (envelope.h), and the key travels
// only here: core NATS stores no request and no reply, so once every replica has applied the
// subject's erasure the key exists nowhere and no leftover of its messages can be opened
// (docs/cluster.md, "Subject keys stay out of NATS").
// - push: before a writer publishes the first message of a new subject, it hands the key to the
//   shard's replicas and waits until enough of them hold it in their fsynced vaults (the
//   writer's own replica among them), so that a writer dying right after the publish loses no
//   key that an acknowledged message needs.
// - fetch: a replica applying a message whose subject it does not know yet (one catching up,
//   or rebuilt) asks the others, for a batch of subjects at once. Each answer comes back sealed
//   to a key pair made for that request (crypto_box_seal), so a recording of the reply opens
//   with nothing that outlives the request. A replica that applied a subject's erasure answers
//   that the key is gone for good.
// Requests and replies are sealed under the cluster's request/reply key as every RPC is (rpc.h);
// every replica serves the stream's subject in a queue group of its own, so each gets the request.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/nats_connection.h"
#include "cluster/rpc.h"
#include "common/status.h"
#include "vault/crypto.h"

namespace fv::cluster {

// "fv.rpc.keys.fv-shard-07".
std::string subject_keys_subject(const std::string& stream);

// What one replica holds of its subjects' keys (ShardReplica, on its vault).
class SubjectKeyHolder {
 public:
  virtual ~SubjectKeyHolder() = default;
  // The key an applied message left (the one that opens the uid's messages), or nullopt.
  virtual Result<std::optional<vault::SecretKey>> key_of(const std::string& uid) = 0;
  // Keys pushed for a uid whose creating message is not applied here yet: several writers may
  // have pushed one each, and only one of their messages lands.
  virtual Result<std::vector<vault::SecretKey>> held_keys(const std::string& uid) = 0;
  // Whether this replica applied the subject's erasure.
  virtual Result<bool> erased(const std::string& uid) = 0;
  // Keeps a pushed key until message expected_seq + 1 is applied or passed (Vault::hold_subject_key).
  virtual Status hold(const std::string& uid, const vault::SecretKey& key, uint64_t expected_seq) = 0;
};

// Serves `holder` for `stream` as node `node`, until the server is destroyed.
Result<std::unique_ptr<RpcServer>> serve_subject_keys(NatsConnection& conn, const vault::SecretKey& master,
                                                      const std::string& stream, const std::string& node,
                                                      SubjectKeyHolder& holder);

struct FetchedKey {
  enum class State { kUnknown, kKey, kErased };
  State state = State::kUnknown;  // kUnknown: no replica that answered holds it
  // kKey only, each once: a replica's applied key first, then the keys replicas hold for a
  // message none of them applied yet (one of which opens it, if any does).
  std::vector<vault::SecretKey> keys;
  bool applied = false;  // keys[0] is an applied message's key
};
// Asks the replicas of `stream` (`replicas` of them) for the keys of `uids`. Returns once each
// uid has an applied message's key, or every replica answered, or `timeout_ms` passed; a key
// wins over an erasure (a replica behind the erasure still rightly holds it). The request goes
// again every 250 ms without an answer.
Result<std::map<std::string, FetchedKey>> fetch_subject_keys(NatsConnection& conn, const vault::SecretKey& master,
                                                             const std::string& stream,
                                                             const std::vector<std::string>& uids, size_t replicas,
                                                             int timeout_ms);

// Hands the key of new subject `uid` to the replicas of `stream`, whose next message can only be
// expected_seq + 1. Returns the nodes that hold it once `needed` did; kUnavailable naming those
// that did when fewer answered by `timeout_ms` (the push goes again every 250 ms meanwhile).
Result<std::vector<std::string>> push_subject_key(NatsConnection& conn, const vault::SecretKey& master,
                                                  const std::string& stream, const std::string& uid,
                                                  const vault::SecretKey& key, uint64_t expected_seq, size_t needed,
                                                  int timeout_ms);

}  // namespace fv::cluster
