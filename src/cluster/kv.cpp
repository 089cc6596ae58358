#include "cluster/kv.h"

#include <string_view>
#include <utility>

namespace fv::cluster {

Result<KvBucket> KvBucket::open(NatsConnection& conn, const std::string& bucket) {
  kvStore* kv = nullptr;
  const natsStatus s = js_KeyValue(&kv, conn.js(), bucket.c_str());
  if (s == NATS_OK) return KvBucket(kv, conn.js(), bucket, conn.request_timeout_ms());
  if (s == NATS_NOT_FOUND) return not_found("no KV bucket " + bucket);
  return from_nats(s, "open KV bucket " + bucket);
}

Result<KvBucket> KvBucket::open_or_create(NatsConnection& conn, const std::string& bucket, int replicas) {
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, conn.js(), bucket.c_str());
  if (s == NATS_OK) return KvBucket(kv, conn.js(), bucket, conn.request_timeout_ms());
  if (s != NATS_NOT_FOUND) return from_nats(s, "open KV bucket " + bucket);

  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = bucket.c_str();
  cfg.History = 1;
  cfg.StorageType = js_FileStorage;
  cfg.Replicas = replicas;
  s = js_CreateKeyValue(&kv, conn.js(), &cfg);
  if (s == NATS_OK) return KvBucket(kv, conn.js(), bucket, conn.request_timeout_ms());
  Status st = from_nats(s, "create KV bucket " + bucket);
  // Another node may have created it in between with other settings: open that one.
  s = js_KeyValue(&kv, conn.js(), bucket.c_str());
  if (s == NATS_OK) return KvBucket(kv, conn.js(), bucket, conn.request_timeout_ms());
  return st;
}

KvBucket::KvBucket(KvBucket&& other) noexcept
    : kv_(std::exchange(other.kv_, nullptr)),
      js_(other.js_),
      bucket_(std::move(other.bucket_)),
      timeout_ms_(other.timeout_ms_) {}

KvBucket& KvBucket::operator=(KvBucket&& other) noexcept {
  if (this != &other) {
    if (kv_ != nullptr) kvStore_Destroy(kv_);
    kv_ = std::exchange(other.kv_, nullptr);
    js_ = other.js_;
    bucket_ = std::move(other.bucket_);
    timeout_ms_ = other.timeout_ms_;
  }
  return *this;
}

KvBucket::~KvBucket() {
  if (kv_ != nullptr) kvStore_Destroy(kv_);
}

Result<std::optional<std::string>> KvBucket::get(const std::string& key) {
  // The bucket's layout (nats.c kv.c, ADR-8): stream KV_<bucket>, subject $KV.<bucket>.<key>,
  // a delete or purge leaves a message with header KV-Operation: DEL / PURGE.
  const std::string stream = "KV_" + bucket_;
  const std::string subject = "$KV." + bucket_ + "." + key;
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&msg, js_, stream.c_str(), subject.c_str(), nullptr, &jerr);
  if (s != NATS_OK) {
    if (jerr == JSNoMessageFoundErr) return std::optional<std::string>();
    return from_nats(s, jerr, "KV get " + bucket_ + "/" + key);
  }
  const char* op = nullptr;
  const bool deleted = natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK && op != nullptr &&
                       (std::string_view(op) == "DEL" || std::string_view(op) == "PURGE");
  std::optional<std::string> value;
  if (!deleted) value.emplace(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  return value;
}

Result<uint64_t> KvBucket::put(const std::string& key, const std::string& value) {
  uint64_t rev = 0;
  natsStatus s = kvStore_Put(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) return from_nats(s, "KV put " + bucket_ + "/" + key);
  return rev;
}

Result<uint64_t> KvBucket::create(const std::string& key, const std::string& value) {
  uint64_t rev = 0;
  natsStatus s = kvStore_Create(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK) return rev;
  Status st = from_nats(s, "KV create " + bucket_ + "/" + key);
  if (is_transient(st)) return st;
  // nats.c reports "wrong last sequence" without its code here; whether the key now has a
  // value is what decides kAlreadyExists.
  auto got = get(key);
  if (got.is_ok() && got->has_value()) return already_exists("KV create " + bucket_ + "/" + key + ": the key exists");
  return st;
}

Status KvBucket::purge(const std::string& key) {
  natsStatus s = kvStore_Purge(kv_, key.c_str(), nullptr);
  if (s == NATS_OK) return Status::ok();
  return from_nats(s, "KV purge " + bucket_ + "/" + key);
}

Result<std::vector<std::string>> KvBucket::keys() {
  kvWatchOptions o;
  kvWatchOptions_Init(&o);
  o.Timeout = timeout_ms_;
  kvKeysList list;
  natsStatus s = kvStore_Keys(&list, kv_, &o);
  if (s != NATS_OK) return from_nats(s, "KV keys of " + bucket_);
  std::vector<std::string> out;
  for (int i = 0; i < list.Count; ++i) out.emplace_back(list.Keys[i]);
  kvKeysList_Destroy(&list);
  return out;
}

}  // namespace fv::cluster
