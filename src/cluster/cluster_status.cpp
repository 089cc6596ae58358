#include "cluster/cluster_status.h"

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "cluster/applied_watch.h"
#include "cluster/cluster_config.h"
#include "cluster/shard_map.h"
#include "cluster/stream.h"

using nlohmann::json;

namespace fv::cluster {

Result<json> cluster_status(NatsConnection& conn, int listen_ms) {
  FV_ASSIGN_OR_RETURN(const ClusterConfig config, read_cluster_config(conn));
  FV_ASSIGN_OR_RETURN(const auto members, read_members(conn));
  std::vector<std::string> streams{kMetaStream};
  for (int s = 0; s < config.shards; ++s) streams.push_back(shard_stream_name(s));
  std::vector<std::unique_ptr<AppliedWatch>> watches;
  for (const auto& st : streams) {
    FV_ASSIGN_OR_RETURN(auto w, AppliedWatch::open(conn, st));
    watches.push_back(std::move(w));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(listen_ms));
  json rows = json::array();
  int64_t max_lag = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    FV_ASSIGN_OR_RETURN(const uint64_t last, last_sequence(conn, streams[i]));
    json replicas = json::object();
    for (const auto& [node, at] : watches[i]->positions()) {
      const int64_t lag = last > at ? static_cast<int64_t>(last - at) : 0;
      max_lag = std::max(max_lag, lag);
      replicas[node] = {{"applied_seq", at}, {"lag", lag}};
    }
    json r{{"stream", streams[i]}, {"last_seq", last}, {"replicas", replicas}};
    if (i > 0) r["shard"] = static_cast<int>(i - 1);
    rows.push_back(std::move(r));
  }
  json m = json::array();
  for (const auto& x : members) m.push_back({{"name", x.name}, {"http", x.http}, {"joined_at", x.joined_at}});
  return json{{"shards", config.shards},   {"replicas", config.replicas}, {"created_at", config.created_at},
              {"members", m},              {"streams", rows},             {"max_lag", max_lag},
              {"listened_ms", listen_ms}};
}

}  // namespace fv::cluster
