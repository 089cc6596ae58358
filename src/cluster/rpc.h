// Request/reply between the nodes of a cluster over core NATS, for reads a node cannot serve
// from its own replicas (a search on a shard it does not host).
//
// - Subjects live under `fv.rpc.>`, which no stream's subjects cover: NATS stores nothing of a
//   request or a reply (a stream over them would keep every probe template).
// - Every node that hosts a shard serves its subject in one queue group, so NATS hands each
//   request to exactly one live replica.
// - Payloads are sealed under a key derived from the cluster master key, with the subject and
//   the direction as associated data: a process on the NATS cluster without the master key
//   reads no template and cannot answer in a node's place.
// - A reply carries a Status code: the caller branches on the responder's error as on a
//   local one.
#pragma once

#include <nats/nats.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/nats_connection.h"
#include "common/status.h"
#include "vault/crypto.h"

namespace fv::cluster {

// "fv.rpc.shard.07.search": the subject of operation `op` on shard `shard`.
std::string shard_rpc_subject(int shard, std::string_view op);

// Serves one subject in a queue group. The handler runs on nats.c's delivery thread of this
// subscription (one request at a time per subject); its Status travels to the caller.
class RpcServer {
 public:
  using Handler = std::function<Result<vault::Bytes>(std::span<const uint8_t> request)>;
  static Result<std::unique_ptr<RpcServer>> open(NatsConnection& conn, const vault::SecretKey& master,
                                                 std::string subject, std::string queue, Handler handler);
  // Stops serving; waits (bounded) until a handler still running has returned.
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

 private:
  RpcServer(NatsConnection& conn, const vault::SecretKey& key, std::string subject, Handler handler)
      : conn_(conn), key_(key), subject_(std::move(subject)), handler_(std::move(handler)) {}
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  static void on_complete(void* closure);

  NatsConnection& conn_;
  vault::SecretKey key_;  // derived from the master key for request/reply
  std::string subject_;
  Handler handler_;
  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool completed_ = false;  // nats.c will call on_message no more
};

struct RpcCall {
  std::string subject;
  vault::Bytes request;
};

// What became of one call. Answered: `result` is the responder's (its reply, or its own error).
// Otherwise `result` is kUnavailable naming the subject, and `delivery` says why: nobody serves
// it (NATS answered so at once), or no reply came by the deadline (the responder may still be
// working: a write's outcome is then unknown).
struct RpcReply {
  enum class Delivery { kAnswered, kNoResponder, kNoReply };
  Delivery delivery;
  Result<vault::Bytes> result;
};

// Sends every call at once and waits for the replies until `timeout_ms` has passed; one reply
// per call, in order. Fails only when nothing could be sent (the connection is down). A call
// or an answer over the NATS servers' max_payload is not sent: it gets kResourceExhausted
// saying so (a responder answers so in place of an answer too large).
Result<std::vector<RpcReply>> rpc_scatter(NatsConnection& conn, const vault::SecretKey& master,
                                          const std::vector<RpcCall>& calls, int timeout_ms);

// Sends one request to every server of `call.subject` (servers in queue groups of their own:
// each receives it) and gathers their answers as they come. `enough` sees the answers so far
// after each one; it stops when `enough` says true, after `max_replies` answers, or at `timeout_ms`.
// With `resend_ms` > 0 the request goes again whenever that long passes with no answer (so a
// server may answer more than once: `enough` tells them apart). NATS's "no responders" ends it
// at once with no answer. Fails only when nothing could be sent.
Result<std::vector<Result<vault::Bytes>>> rpc_gather(
    NatsConnection& conn, const vault::SecretKey& master, const RpcCall& call, size_t max_replies, int timeout_ms,
    const std::function<bool(const std::vector<Result<vault::Bytes>>&)>& enough, int resend_ms = 0);

}  // namespace fv::cluster
