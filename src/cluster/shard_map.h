// Where a subject lives in a cluster: its shard (a hash of its vault id, fixed for the
// cluster's life) and the nodes holding that shard's replicas (rendezvous hashing over the
// nodes, so adding or losing a node moves only the shards it held).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fv::cluster {

// The shard of a subject: the first 8 bytes of SHA-256(uid), big-endian, modulo `shards`.
// Stable across processes, machines and versions (it decides where data lives).
int shard_of(std::string_view subject_uid, int shards);

// The `replicas` nodes (fewer when fewer exist) that hold `shard`, best first: every node
// scores SHA-256(node name ‖ shard) and the highest scores win. Deterministic in the set of
// names, whatever their order.
std::vector<std::string> replicas_of(int shard, const std::vector<std::string>& nodes, int replicas);

// "fv-shard-07": the JetStream stream of a shard (two digits up to 99 shards, more beyond).
std::string shard_stream_name(int shard);
// "fv.shard.07": the subject prefix of its messages (the stream holds "fv.shard.07.>").
std::string shard_subject_prefix(int shard);

}  // namespace fv::cluster
