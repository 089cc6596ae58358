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
  RpcServer(NatsConnection& conn, const vault::SecretKey& master, std::string subject, Handler handler)
      : conn_(conn), master_(master), subject_(std::move(subject)), handler_(std::move(handler)) {}
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  static void on_complete(void* closure);

  NatsConnection& conn_;
  vault::SecretKey master_;
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

// Sends every call at once and waits for the replies until `timeout_ms` has passed. Per call,
// in order: the reply; the responder's error; or kUnavailable, "no node serves <subject>"
// (NATS answered that nobody subscribes) or "no reply from <subject> within N ms". The outer
// Result fails only when nothing could be sent (the connection is down).
Result<std::vector<Result<vault::Bytes>>> rpc_scatter(NatsConnection& conn, const vault::SecretKey& master,
                                                      const std::vector<RpcCall>& calls, int timeout_ms);

}  // namespace fv::cluster
