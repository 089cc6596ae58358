#include "cluster/rpc.h"

#include <sodium.h>

#include <algorithm>

#include <chrono>
#include <cstdio>

#include "cluster/envelope.h"

namespace fv::cluster {

namespace {

constexpr size_t kNonceSize = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

vault::SecretKey rpc_key(const vault::SecretKey& master) {
  // The same derivation as a stream's key, under a name no stream can take (streams are fv-…).
  return stream_key(master, "fv.rpc");
}

std::string request_ad(const std::string& subject) { return "facevault/rpc/request/v1|" + subject; }

// A reply is bound to its request: an old reply replayed to a new request does not open.
std::string reply_ad(const std::string& subject, std::span<const uint8_t> sealed_request) {
  std::string ad = "facevault/rpc/reply/v1|" + subject + "|";
  const size_t n = std::min(kNonceSize, sealed_request.size());
  ad.append(reinterpret_cast<const char*>(sealed_request.data()), n);
  return ad;
}

// code (1 byte) ‖ payload (ok) or the error's message.
vault::Bytes frame_reply(const Result<vault::Bytes>& r) {
  vault::Bytes out;
  if (r.is_ok()) {
    out.reserve(1 + r->size());
    out.push_back(0);
    out.insert(out.end(), r->begin(), r->end());
  } else {
    const std::string& m = r.status().message();
    out.push_back(static_cast<uint8_t>(r.status().code()));
    out.insert(out.end(), m.begin(), m.end());
  }
  return out;
}

Result<vault::Bytes> unframe_reply(vault::Bytes plain, const std::string& subject) {
  if (plain.empty()) return corrupt_data("reply from " + subject + ": empty");
  const auto code = static_cast<StatusCode>(plain[0]);
  Result<vault::Bytes> r = corrupt_data("reply from " + subject + ": unknown status");
  if (plain[0] == 0)
    r = vault::Bytes(plain.begin() + 1, plain.end());
  else if (plain[0] <= static_cast<uint8_t>(kLastStatusCode))
    r = Status(code, std::string(plain.begin() + 1, plain.end()));
  vault::wipe(plain);
  return r;
}

// What NATS does not carry: a message over the servers' max_payload (1 MB unless configured).
Status too_large(const char* what, size_t bytes, int64_t max, const std::string& subject) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (%.1f MB sealed) is more than the NATS servers carry in one message (max_payload %.1f MB) on %s: raise max_payload (docs/cluster.md)",
                what, static_cast<double>(bytes) / 1e6, static_cast<double>(max) / 1e6, subject.c_str());
  return resource_exhausted(buf);
}

}  // namespace

std::string shard_rpc_subject(int shard, std::string_view op) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", shard);
  return "fv.rpc.shard." + std::string(buf) + "." + std::string(op);
}

Result<std::unique_ptr<RpcServer>> RpcServer::open(NatsConnection& conn, const vault::SecretKey& master,
                                                   std::string subject, std::string queue, Handler handler) {
  std::unique_ptr<RpcServer> s(new RpcServer(conn, rpc_key(master), std::move(subject), std::move(handler)));
  const natsStatus st = natsConnection_QueueSubscribe(&s->sub_, conn.raw(), s->subject_.c_str(), queue.c_str(),
                                                      &RpcServer::on_message, s.get());
  if (st != NATS_OK) return from_nats(st, "serve " + s->subject_);
  const natsStatus c = natsSubscription_SetOnCompleteCB(s->sub_, &RpcServer::on_complete, s.get());
  if (c != NATS_OK) return from_nats(c, "watch the subscription to " + s->subject_);
  // Once the flush returns, the server this connection uses knows the subscription (its NATS
  // cluster peers learn of it a moment later: callers that must reach every server resend).
  (void)natsConnection_FlushTimeout(conn.raw(), 5000);
  return s;
}

RpcServer::~RpcServer() {
  if (!sub_) return;
  // A handler may be running on the delivery thread: wait for the completion callback
  // (bounded) before the handler's captures go away.
  if (natsSubscription_Unsubscribe(sub_) == NATS_OK) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(30), [&] { return completed_; });
  }
  conn_.retire(sub_);
}

void RpcServer::on_complete(void* closure) {
  auto* self = static_cast<RpcServer*>(closure);
  std::lock_guard lk(self->mu_);
  self->completed_ = true;
  self->cv_.notify_all();
}

void RpcServer::on_message(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
  auto* self = static_cast<RpcServer*>(closure);
  const char* reply_to = natsMsg_GetReply(msg);
  if (reply_to == nullptr || *reply_to == '\0') {  // not a request: nothing to answer
    natsMsg_Destroy(msg);
    return;
  }
  const std::string reply(reply_to);
  const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
  const vault::Bytes sealed(data, data + natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  const vault::SecretKey& key = self->key_;
  auto plain = vault::open_sealed(key, sealed, request_ad(self->subject_));
  // A request that does not open was not sealed with this cluster's master key: no answer (the
  // caller's deadline says so), nothing to learn from a refusal.
  if (!plain.is_ok()) return;
  Result<vault::Bytes> result = self->handler_(*plain);
  vault::wipe(*plain);
  vault::Bytes framed = frame_reply(result);
  vault::Bytes out = vault::seal(key, framed, reply_ad(self->subject_, sealed));
  vault::wipe(framed);
  // An answer NATS would refuse to carry is replaced by an error the caller can act on: it
  // would otherwise wait for its deadline and take the outcome for unknown.
  if (const int64_t max = natsConnection_GetMaxPayload(nc); max > 0 && static_cast<int64_t>(out.size()) > max) {
    vault::wipe(out);
    framed = frame_reply(too_large("the answer", out.size(), max, self->subject_));
    out = vault::seal(key, framed, reply_ad(self->subject_, sealed));
  }
  (void)natsConnection_Publish(nc, reply.c_str(), out.data(), static_cast<int>(out.size()));
}

namespace {

// The replies to requests sent from here, handed over from nats.c's delivery thread. An
// asynchronous subscription: NATS's "no responders" answer arrives as a message, where a
// synchronous one would only fail the read.
class ReplyInbox {
 public:
  // Subscribes to a fresh inbox name (`prefix()`), or to every name under it (`wildcard`).
  static Result<std::unique_ptr<ReplyInbox>> open(NatsConnection& conn, bool wildcard) {
    natsInbox* name = nullptr;
    natsStatus st = natsInbox_Create(&name);
    if (st != NATS_OK) return from_nats(st, "create a reply inbox");
    std::unique_ptr<ReplyInbox> in(new ReplyInbox(conn, name));
    natsInbox_Destroy(name);
    const std::string subject = wildcard ? in->prefix_ + ".*" : in->prefix_;
    st = natsConnection_Subscribe(&in->sub_, conn.raw(), subject.c_str(), &ReplyInbox::on_message, in.get());
    if (st != NATS_OK) return from_nats(st, "subscribe to the reply inbox");
    if (natsSubscription_SetOnCompleteCB(in->sub_, &ReplyInbox::on_complete, in.get()) != NATS_OK) in->completed_ = true;
    return in;
  }
  ~ReplyInbox() {
    if (sub_ != nullptr) {
      if (natsSubscription_Unsubscribe(sub_) == NATS_OK) {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::seconds(5), [&] { return completed_; });
      }
      conn_.retire(sub_);
    }
    for (natsMsg* m : msgs_) natsMsg_Destroy(m);
  }
  const std::string& prefix() const { return prefix_; }
  // What arrived, once something has; empty at the deadline. The caller destroys the messages.
  std::vector<natsMsg*> wait(std::chrono::steady_clock::time_point deadline) {
    std::vector<natsMsg*> out;
    std::unique_lock lk(mu_);
    if (cv_.wait_until(lk, deadline, [&] { return !msgs_.empty(); })) out.swap(msgs_);
    return out;
  }

 private:
  ReplyInbox(NatsConnection& conn, const char* name) : conn_(conn), prefix_(name) {}
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<ReplyInbox*>(closure);
    std::lock_guard lk(self->mu_);
    self->msgs_.push_back(msg);
    self->cv_.notify_all();
  }
  static void on_complete(void* closure) {
    auto* self = static_cast<ReplyInbox*>(closure);
    std::lock_guard lk(self->mu_);
    self->completed_ = true;
    self->cv_.notify_all();
  }

  NatsConnection& conn_;
  const std::string prefix_;
  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<natsMsg*> msgs_;
  bool completed_ = false;  // nats.c will deliver no more
};

}  // namespace

Result<std::vector<RpcReply>> rpc_scatter(NatsConnection& conn, const vault::SecretKey& master,
                                          const std::vector<RpcCall>& calls, int timeout_ms) {
  std::vector<RpcReply> out;
  out.reserve(calls.size());
  for (const auto& c : calls)
    out.push_back({RpcReply::Delivery::kNoReply,
                   unavailable("no reply from " + c.subject + " within " + std::to_string(timeout_ms) + " ms")});
  if (calls.empty()) return out;
  const vault::SecretKey key = rpc_key(master);

  FV_ASSIGN_OR_RETURN(auto inbox, ReplyInbox::open(conn, true));
  const std::string& prefix = inbox->prefix();

  std::vector<vault::Bytes> sealed(calls.size());
  std::vector<bool> answered(calls.size(), false);
  size_t left = calls.size();
  const int64_t max = natsConnection_GetMaxPayload(conn.raw());
  for (size_t i = 0; i < calls.size(); ++i) {
    sealed[i] = vault::seal(key, calls[i].request, request_ad(calls[i].subject));
    if (max > 0 && static_cast<int64_t>(sealed[i].size()) > max) {  // never sent: its answer is ours
      out[i] = {RpcReply::Delivery::kAnswered, too_large("the request", sealed[i].size(), max, calls[i].subject)};
      answered[i] = true;
      --left;
      continue;
    }
    const std::string reply = prefix + "." + std::to_string(i);
    const natsStatus st = natsConnection_PublishRequest(conn.raw(), calls[i].subject.c_str(), reply.c_str(),
                                                        sealed[i].data(), static_cast<int>(sealed[i].size()));
    if (st != NATS_OK) return from_nats(st, "send a request to " + calls[i].subject);
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (left > 0) {
    const std::vector<natsMsg*> batch = inbox->wait(deadline);
    if (batch.empty()) break;
    for (natsMsg* msg : batch) {
      const std::string subj(natsMsg_GetSubject(msg));
      size_t i = calls.size();
      try {
        i = std::stoul(subj.substr(prefix.size() + 1));
      } catch (...) {
      }
      if (i < calls.size() && !answered[i]) {
        if (natsMsg_IsNoResponders(msg)) {
          out[i] = {RpcReply::Delivery::kNoResponder, unavailable("no node serves " + calls[i].subject)};
        } else {
          const auto* d = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
          const vault::Bytes body(d, d + natsMsg_GetDataLength(msg));
          auto plain = vault::open_sealed(key, body, reply_ad(calls[i].subject, sealed[i]));
          out[i] = {RpcReply::Delivery::kAnswered,
                    plain.is_ok() ? unframe_reply(std::move(*plain), calls[i].subject)
                                  : Result<vault::Bytes>(corrupt_data("the reply from " + calls[i].subject +
                                                                      " does not open with this cluster's master key"))};
        }
        answered[i] = true;
        --left;
      }
      natsMsg_Destroy(msg);
    }
  }
  return out;
}

Result<std::vector<Result<vault::Bytes>>> rpc_gather(
    NatsConnection& conn, const vault::SecretKey& master, const RpcCall& call, size_t max_replies, int timeout_ms,
    const std::function<bool(const std::vector<Result<vault::Bytes>>&)>& enough, int resend_ms) {
  std::vector<Result<vault::Bytes>> out;
  if (max_replies == 0) return out;
  const vault::SecretKey key = rpc_key(master);
  FV_ASSIGN_OR_RETURN(auto inbox, ReplyInbox::open(conn, false));
  const std::string& reply = inbox->prefix();
  const vault::Bytes sealed = vault::seal(key, call.request, request_ad(call.subject));
  if (const int64_t max = natsConnection_GetMaxPayload(conn.raw()); max > 0 && static_cast<int64_t>(sealed.size()) > max)
    return too_large("the request", sealed.size(), max, call.subject);
  auto send = [&] {
    return natsConnection_PublishRequest(conn.raw(), call.subject.c_str(), reply.c_str(), sealed.data(),
                                         static_cast<int>(sealed.size()));
  };
  const natsStatus st = send();
  if (st != NATS_OK) return from_nats(st, "send a request to " + call.subject);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto next_send = resend_ms > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(resend_ms) : deadline;
  for (;;) {
    const std::vector<natsMsg*> batch = inbox->wait(std::min(deadline, next_send));
    if (batch.empty()) {
      if (std::chrono::steady_clock::now() >= deadline) return out;
      // The same sealed bytes again: a server that missed it answers now (core NATS delivers at
      // most once, and a new subscription reaches the other servers a moment late).
      if (std::chrono::steady_clock::now() >= next_send) {
        (void)send();
        next_send = std::chrono::steady_clock::now() + std::chrono::milliseconds(resend_ms);
      }
      continue;
    }
    bool done = false;
    for (natsMsg* msg : batch) {
      if (!done) {
        if (natsMsg_IsNoResponders(msg)) {
          done = resend_ms <= 0;  // when resending, a server may only not be known here yet
        } else {
          const auto* d = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
          const vault::Bytes body(d, d + natsMsg_GetDataLength(msg));
          auto plain = vault::open_sealed(key, body, reply_ad(call.subject, sealed));
          // A reply that does not open is no answer of this cluster's (nobody else can seal one).
          if (plain.is_ok()) {
            out.push_back(unframe_reply(std::move(*plain), call.subject));
            done = enough(out) || out.size() >= max_replies;
          }
        }
      }
      natsMsg_Destroy(msg);
    }
    if (done) return out;
  }
}

}  // namespace fv::cluster
