// The NATS client seam of cluster mode: one connection (with its JetStream context) to a NATS
// cluster, and the mapping of nats.c's errors onto fv::Status codes that callers branch on.
#pragma once

#include <nats/nats.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::cluster {

struct NatsOptions {
  std::vector<std::string> servers;  // nats://host:port of every server of the cluster
  std::string name;                  // client name shown by the servers (the node's name)
  int connect_timeout_ms = 2000;     // per server, for the first connection
  int request_timeout_ms = 5000;     // JetStream API calls (stream info, get, erase, KV, ...)
};

// One connection that, once established, reconnects forever to any listed (or discovered)
// server: a node must ride out a server being restarted or killed. The first connect fails
// with kUnavailable when no server answers.
class NatsConnection {
 public:
  static Result<std::unique_ptr<NatsConnection>> connect(const NatsOptions& options);
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  natsConnection* raw() { return nc_; }
  jsCtx* js() { return js_; }
  int request_timeout_ms() const { return request_timeout_ms_; }
  bool connected() const;

  // Frees a subscription that is already unsubscribed (closed), once this connection's read
  // loop can no longer be delivering to it. nats.c 3.4 (Debian's) looks a subscription up and
  // locks it in two steps, so one freed in between makes the read loop lock freed memory
  // (nats.c #637, fixed in 3.6). A PING/PONG round trip proves the read loop has passed every
  // message it held before: retired subscriptions are destroyed in groups after one, and the
  // rest when the connection goes.
  void retire(natsSubscription* sub);

 private:
  NatsConnection(natsConnection* nc, jsCtx* js, int request_timeout_ms)
      : nc_(nc), js_(js), request_timeout_ms_(request_timeout_ms) {}
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  int request_timeout_ms_ = 5000;
  std::mutex retired_mu_;
  std::vector<natsSubscription*> retired_;
};

// A nats.c failure as a Status (`what` names the operation; the message adds nats's text):
//   timeout, no responders, not connected, no JetStream leader/peers right now → kUnavailable;
//   stream / message / consumer / key not found                               → kNotFound;
//   wrong last sequence or last msg id (optimistic concurrency lost)          → kWrongLastSequence;
//   stream or consumer name already in use                                     → kAlreadyExists;
//   anything else                                                              → kInternal.
// A lost compare-and-publish is kAborted: the writer catches up and redoes its use case.
inline constexpr StatusCode kWrongLastSequence = StatusCode::kAborted;
Status from_nats(natsStatus s, jsErrCode js_err, const std::string& what);
// The same for calls that give no JetStream error code (core NATS, nats.c's KV functions).
inline Status from_nats(natsStatus s, const std::string& what) { return from_nats(s, static_cast<jsErrCode>(0), what); }

// True when `st` is worth retrying as is (kUnavailable).
inline bool is_transient(const Status& st) { return st.code() == StatusCode::kUnavailable; }

}  // namespace fv::cluster
