#include "cluster/applied_watch.h"

#include <chrono>

#include "cluster/shard_replica.h"

namespace fv::cluster {

Result<std::unique_ptr<AppliedWatch>> AppliedWatch::open(NatsConnection& conn, const std::string& stream) {
  std::unique_ptr<AppliedWatch> w(new AppliedWatch(conn, stream));
  const natsStatus s = natsConnection_Subscribe(&w->sub_, conn.raw(), applied_subject(stream).c_str(),
                                                &AppliedWatch::on_message, w.get());
  if (s != NATS_OK) return from_nats(s, static_cast<jsErrCode>(0), "subscribe to " + applied_subject(stream));
  const natsStatus c = natsSubscription_SetOnCompleteCB(w->sub_, &AppliedWatch::on_complete, w.get());
  if (c != NATS_OK) return from_nats(c, static_cast<jsErrCode>(0), "watch the subscription to " + applied_subject(stream));
  return w;
}

AppliedWatch::~AppliedWatch() {
  if (!sub_) return;
  // nats.c may be inside on_message on its delivery thread when Unsubscribe returns: wait for
  // its completion callback (bounded) before this object's mutex goes away.
  if (natsSubscription_Unsubscribe(sub_) == NATS_OK) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(5), [&] { return completed_; });
  }
  conn_.retire(sub_);
}

void AppliedWatch::on_complete(void* closure) {
  auto* self = static_cast<AppliedWatch*>(closure);
  // Notified under the lock: the destructor may free the object as soon as it sees completed_.
  std::lock_guard lk(self->mu_);
  self->completed_ = true;
  self->cv_.notify_all();
}

void AppliedWatch::on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* self = static_cast<AppliedWatch*>(closure);
  const std::string body(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  // "<node> <seq>"; anything else is ignored (nobody but replicas publishes here).
  const auto space = body.rfind(' ');
  if (space == std::string::npos || space == 0) return;
  uint64_t seq = 0;
  try {
    seq = std::stoull(body.substr(space + 1));
  } catch (...) {
    return;
  }
  {
    std::lock_guard lk(self->mu_);
    auto& at = self->positions_[body.substr(0, space)];
    if (seq > at) at = seq;
  }
  self->cv_.notify_all();
}

std::vector<std::string> AppliedWatch::at_or_after(uint64_t seq) const {
  std::vector<std::string> out;
  for (const auto& [node, at] : positions_)
    if (at >= seq) out.push_back(node);
  return out;
}

Result<std::vector<std::string>> AppliedWatch::wait(uint64_t seq, int replicas, int timeout_ms) {
  std::unique_lock lk(mu_);
  const bool ok = cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                               [&] { return static_cast<int>(at_or_after(seq).size()) >= replicas; });
  auto nodes = at_or_after(seq);
  if (!ok) {
    std::string who;
    for (const auto& [node, at] : positions_) who += (who.empty() ? "" : ", ") + node + " at " + std::to_string(at);
    return unavailable(stream_ + " message " + std::to_string(seq) + " applied by " + std::to_string(nodes.size()) +
                       " replica(s), " + std::to_string(replicas) + " needed (" + (who.empty() ? "none heard" : who) +
                       ")");
  }
  return nodes;
}

std::map<std::string, uint64_t> AppliedWatch::positions() const {
  std::lock_guard lk(mu_);
  return positions_;
}

}  // namespace fv::cluster
