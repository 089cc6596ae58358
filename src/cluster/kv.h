// A JetStream key-value bucket (nats.c's kvStore) for cluster-wide settings: the shard map,
// node membership, one-time cluster init.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/nats_connection.h"
#include "common/status.h"

namespace fv::cluster {

// Owns a kvStore handle; movable, not copyable; must not outlive its NatsConnection. Keys:
// letters, digits, '-', '_', '=', '/', '.'. Values are bytes in a std::string. One revision
// kept per key, file storage.
class KvBucket {
 public:
  // Opens the bucket, creating it with `replicas` replicas if it does not exist (an existing
  // bucket is opened whatever its replica count). Two nodes doing this at once both succeed.
  static Result<KvBucket> open_or_create(NatsConnection& conn, const std::string& bucket, int replicas);
  // Opens an existing bucket; kNotFound when there is none (reading must not create one with
  // the wrong replica count before the cluster is initialised).
  static Result<KvBucket> open(NatsConnection& conn, const std::string& bucket);

  KvBucket(KvBucket&& other) noexcept;
  KvBucket& operator=(KvBucket&& other) noexcept;
  KvBucket(const KvBucket&) = delete;
  KvBucket& operator=(const KvBucket&) = delete;
  ~KvBucket();

  const std::string& name() const { return bucket_; }

  // The value, or nullopt when the key has none. Read from the bucket stream's leader, so a
  // get sees every put acknowledged before it (nats.c's kvStore_Get uses direct get, which
  // any replica answers and which can miss a put just acknowledged).
  Result<std::optional<std::string>> get(const std::string& key);
  // Sets the value; returns its revision (the bucket stream's sequence).
  Result<uint64_t> put(const std::string& key, const std::string& value);
  // Sets the value only if the key has none: kAlreadyExists otherwise (one-time cluster init).
  // A create whose answer was lost (kUnavailable) may have been stored: a retry then gets
  // kAlreadyExists, so the caller reads the key back to tell its own value from another's.
  Result<uint64_t> create(const std::string& key, const std::string& value);
  // Removes the key's value and its history (kvStore_Purge: a purge marker stays; a later
  // create of the key succeeds). Removing a key that has none is fine.
  Status purge(const std::string& key);
  // Every key that has a value (the order is the bucket's). Gathered by nats.c through a
  // consumer that may sit on a follower, so a key put a moment ago can be missing; and meant
  // for small buckets: nats.c 3.4 counts its timeout down faster than real time per key.
  Result<std::vector<std::string>> keys();

 private:
  KvBucket(kvStore* kv, jsCtx* js, std::string bucket, int timeout_ms)
      : kv_(kv), js_(js), bucket_(std::move(bucket)), timeout_ms_(timeout_ms) {}
  kvStore* kv_ = nullptr;
  jsCtx* js_ = nullptr;  // the connection's
  std::string bucket_;
  int timeout_ms_ = 5000;
};

}  // namespace fv::cluster
