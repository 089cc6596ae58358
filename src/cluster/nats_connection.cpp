#include "cluster/nats_connection.h"

#include <mutex>

namespace fv::cluster {
namespace {

// nats.c initialises itself on the first connection, but two first connections made at once
// race in nats_Open (the loser gets NATS_ILLEGAL_STATE), so the library is opened once here.
// nats_Close is never called: it would pull the library from under connections still alive,
// and the process exit releases what it holds.
natsStatus open_library() {
  static std::once_flag once;
  static natsStatus status = NATS_OK;
  std::call_once(once, [] { status = nats_Open(-1); });
  return status;
}

bool is_unavailable_js(jsErrCode e) {
  switch (e) {
    case JSClusterNoPeersErr:         // not enough servers up to place the replicas
    case JSClusterNotAvailErr:        // JetStream system temporarily unavailable
    case JSClusterNotLeaderErr:       // asked a server that is no longer the leader
    case JSInsufficientResourcesErr:  // R3 asked while a server is down
    case JSStreamOfflineErr:
    case JSConsumerOfflineErr:
    case JSNotEnabledErr:             // nats.c's translation of "no responders" for JS APIs
    case JSStreamSequenceNotMatchErr: // a new leader's sequence bookkeeping not settled yet
      return true;
    default:
      return false;
  }
}

}  // namespace

Status from_nats(natsStatus s, jsErrCode js_err, const std::string& what) {
  std::string msg = what + ": " + natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (last == s && text != nullptr && *text != '\0') msg += std::string(" (") + text + ")";
  if (static_cast<int>(js_err) != 0) msg += " [JetStream error " + std::to_string(static_cast<int>(js_err)) + "]";

  switch (s) {
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
    case NATS_DRAINING:
      return unavailable(std::move(msg));
    case NATS_NOT_FOUND:
      return not_found(std::move(msg));
    default:
      break;
  }
  switch (js_err) {
    case JSStreamNotFoundErr:
    case JSNoMessageFoundErr:
    case JSConsumerNotFoundErr:
    case JSSequenceNotFoundErr:
      return not_found(std::move(msg));
    case JSStreamWrongLastSequenceErr:
    case JSStreamWrongLastMsgIDErr:
      return Status(kWrongLastSequence, std::move(msg));
    case JSStreamNameExistErr:
    case JSConsumerNameExistErr:
      return already_exists(std::move(msg));
    default:
      break;
  }
  if (is_unavailable_js(js_err)) return unavailable(std::move(msg));
  return internal_error(std::move(msg));
}

Result<std::unique_ptr<NatsConnection>> NatsConnection::connect(const NatsOptions& options) {
  if (options.servers.empty()) return invalid_argument("NATS connect: no server given");
  if (natsStatus s = open_library(); s != NATS_OK) return from_nats(s, "NATS library init");

  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  std::vector<const char*> urls;
  for (const auto& u : options.servers) urls.push_back(u.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK && !options.name.empty()) s = natsOptions_SetName(opts, options.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options.connect_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  // A request in flight when the connection drops fails at once (kUnavailable) instead of
  // waiting out its timeout, so a publish retries on the next server sooner.
  if (s == NATS_OK) s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
  // A server that hangs without closing the socket is noticed within ~30 s.
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 10000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 3);
  // nats.c 3.4 holds an ordinary publish up to 1 ms before writing it; replicas' apply
  // announcements (which every write waits for) and replies go out at once instead
  // (measured: a request/reply p50 of ~1 ms becomes 0.24 ms, docs/benchmarks.md).
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  if (s != NATS_OK) {
    Status st = from_nats(s, "NATS options");
    natsOptions_Destroy(opts);
    return st;
  }

  natsConnection* nc = nullptr;
  s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return from_nats(s, "NATS connect to " + options.servers.front());

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options.request_timeout_ms;
  jsCtx* js = nullptr;
  s = natsConnection_JetStream(&js, nc, &jo);
  if (s != NATS_OK) {
    Status st = from_nats(s, "JetStream context");
    natsConnection_Destroy(nc);
    return st;
  }
  return std::unique_ptr<NatsConnection>(new NatsConnection(nc, js, options.request_timeout_ms));
}

NatsConnection::~NatsConnection() {
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);  // closes it and joins its read loop
  // Each subscription holds the connection: the last one destroyed frees it.
  for (natsSubscription* sub : retired_) natsSubscription_Destroy(sub);
}

void NatsConnection::retire(natsSubscription* sub) {
  if (sub == nullptr) return;
  // A round trip per group, not per subscription: every RPC retires its reply inbox.
  constexpr size_t kGroup = 32;
  constexpr int kFlushMs = 1000;
  std::vector<natsSubscription*> group;
  {
    std::lock_guard lk(retired_mu_);
    retired_.push_back(sub);
    if (retired_.size() < kGroup) return;
    group.swap(retired_);
  }
  if (natsConnection_FlushTimeout(nc_, kFlushMs) == NATS_OK) {
    for (natsSubscription* s : group) natsSubscription_Destroy(s);
    return;
  }
  // Disconnected: no proof yet, so they wait for the next round trip (or the destructor).
  std::lock_guard lk(retired_mu_);
  retired_.insert(retired_.end(), group.begin(), group.end());
}

bool NatsConnection::connected() const {
  return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

}  // namespace fv::cluster
