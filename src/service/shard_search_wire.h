// What the nodes of a cluster say to each other to search a shard one of them hosts
// (ClusterService, cluster_search.cpp): one request per search, the probes and the loosest
// operating point the search can end at; one reply, what the shard holds eligible for the
// purpose and its best candidates at that point. JSON inside the sealed RPC payload;
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
  std::string purpose;
  SearchPlan plan;
  std::vector<face::FaceTemplate> probes;
};

// A shard's answer: its eligible count and, per probe sent, its candidates at the plan's point.
struct ShardAnswer {
  ShardCount count;
  ShardFaces faces;
  // The sequence of the shard's stream its replica had applied before it was searched (what it
  // searched includes at least that much); 0 from a node that did not say.
  int64_t searched_seq = 0;
};

// The faces without a template (null) are not sent; the reply has a list per probe sent.
vault::Bytes encode_search_request(const std::string& purpose, const SearchPlan& plan,
                                   const std::vector<const face::FaceTemplate*>& probes);
// kCorruptData on anything malformed (a wrong op, a missing field, a template of no values).
Result<ShardSearchRequest> decode_shard_request(std::span<const uint8_t> bytes);

vault::Bytes encode_shard_answer(const ShardAnswer& a);
// kCorruptData unless the counts are there and there is exactly one list per probe sent.
Result<ShardAnswer> decode_shard_answer(std::span<const uint8_t> bytes, size_t probes);

}  // namespace fv::service
