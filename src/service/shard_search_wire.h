// What the nodes of a cluster say to each other to search a shard one of them hosts
// (ClusterService, cluster_search.cpp): a count of what is eligible for a purpose, then a scan
// of probes at the operating point the asking node set. JSON inside the sealed RPC payload;
// scores and templates travel as JSON numbers, which round-trip a double exactly, so a
// shard's candidates score the same whichever node searched it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "face/types.h"
#include "service/service_impl.h"
#include "service/types.h"
#include "vault/crypto.h"

namespace fv::service {

struct ShardCount {
  int64_t subjects = 0;
  int64_t templates = 0;
};

// Per probe face, the shard's candidates, best first.
using ShardFaces = std::vector<std::vector<Candidate>>;

struct ShardSearchRequest {
  enum class Op { kCount, kScan };
  Op op = Op::kCount;
  std::string purpose;
  SearchPlan plan;                          // kScan
  std::vector<face::FaceTemplate> probes;   // kScan
};

vault::Bytes encode_count_request(const std::string& purpose);
// The faces without a template (null) are not sent; the reply has a list per probe sent.
vault::Bytes encode_scan_request(const std::string& purpose, const SearchPlan& plan,
                                 const std::vector<const face::FaceTemplate*>& probes);
// kCorruptData on anything malformed (a wrong op, a missing field, a template of no values).
Result<ShardSearchRequest> decode_shard_request(std::span<const uint8_t> bytes);

vault::Bytes encode_shard_count(const ShardCount& c);
Result<ShardCount> decode_shard_count(std::span<const uint8_t> bytes);
vault::Bytes encode_shard_faces(const ShardFaces& faces);
// kCorruptData unless there is exactly one list per probe sent.
Result<ShardFaces> decode_shard_faces(std::span<const uint8_t> bytes, size_t probes);

}  // namespace fv::service
