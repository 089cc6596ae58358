// Which replicas of a stream have applied which sequence: the replicas announce it on
// `fv.applied.<stream>` (ShardReplica); a writer waits here until enough of them reached its
// message before it acknowledges a write (docs/cluster.md: stored on a JetStream quorum AND
// applied into at least two fsynced local vaults).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "cluster/nats_connection.h"
#include "common/status.h"

namespace fv::cluster {

class AppliedWatch {
 public:
  static Result<std::unique_ptr<AppliedWatch>> open(NatsConnection& conn, const std::string& stream);
  ~AppliedWatch();
  AppliedWatch(const AppliedWatch&) = delete;
  AppliedWatch& operator=(const AppliedWatch&) = delete;

  // The nodes that announced `seq` or later, once there are at least `replicas` of them
  // (sorted by name). kUnavailable naming who has and who has not after timeout_ms.
  Result<std::vector<std::string>> wait(uint64_t seq, int replicas, int timeout_ms);
  // The last sequence each node announced.
  std::map<std::string, uint64_t> positions() const;

 private:
  AppliedWatch(NatsConnection& conn, std::string stream) : conn_(conn), stream_(std::move(stream)) {}
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  static void on_complete(void* closure);
  std::vector<std::string> at_or_after(uint64_t seq) const;  // under mu_

  NatsConnection& conn_;
  std::string stream_;
  natsSubscription* sub_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, uint64_t> positions_;
  bool completed_ = false;  // nats.c will call on_message no more
};

}  // namespace fv::cluster
