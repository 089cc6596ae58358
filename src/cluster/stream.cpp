#include "cluster/stream.h"

#include <algorithm>
#include <set>
#include <thread>

namespace fv::cluster {
namespace {

using Clock = std::chrono::steady_clock;

// Not in nats.c 3.4's jsErrCode enum: the server's answer to deleting a message that is not there.
constexpr jsErrCode kJSStreamMsgDeleteFailed = static_cast<jsErrCode>(10057);

// A publish attempt waits at most this long for its ack before retrying with the same msg id:
// long enough for a healthy quorum on a loaded machine, short enough to reach the new leader
// soon after an election.
constexpr int kPublishAttemptMs = 2000;

int remaining_ms(Clock::time_point deadline) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

std::set<std::string> subjects_of(const jsStreamConfig* cfg) {
  std::set<std::string> out;
  if (cfg == nullptr) return out;
  for (int i = 0; i < cfg->SubjectsLen; ++i) out.insert(cfg->Subjects[i]);
  return out;
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) {
    if (!out.empty()) out += ',';
    out += x;
  }
  return out;
}

}  // namespace

Status ensure_stream(NatsConnection& conn, const StreamSpec& spec) {
  if (spec.name.empty() || spec.subjects.empty()) return invalid_argument("ensure_stream: name and subjects required");
  std::vector<const char*> subjects;
  for (const auto& s : spec.subjects) subjects.push_back(s.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = spec.name.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Replicas = spec.replicas;
  cfg.Duplicates = spec.duplicate_window_ms * 1000000;  // nanoseconds

  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, conn.js(), &cfg, nullptr, &jerr);
  if (s == NATS_OK) {  // created, or already there with this exact configuration
    jsStreamInfo_Destroy(si);
    return Status::ok();
  }
  if (jerr != JSStreamNameExistErr) return from_nats(s, jerr, "create stream " + spec.name);

  s = js_GetStreamInfo(&si, conn.js(), spec.name.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return from_nats(s, jerr, "stream info " + spec.name);
  const std::set<std::string> have = subjects_of(si->Config);
  const int64_t have_replicas = si->Config != nullptr ? si->Config->Replicas : 0;
  jsStreamInfo_Destroy(si);
  const std::set<std::string> want(spec.subjects.begin(), spec.subjects.end());
  if (have != want || have_replicas != spec.replicas) {
    return failed_precondition("stream " + spec.name + " exists with subjects [" + join(have) + "] and " +
                               std::to_string(have_replicas) + " replicas, not [" + join(want) + "] and " +
                               std::to_string(spec.replicas));
  }
  return Status::ok();
}

Status delete_stream(NatsConnection& conn, const std::string& stream) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteStream(conn.js(), stream.c_str(), nullptr, &jerr);
  return s == NATS_OK ? Status::ok() : from_nats(s, jerr, "delete stream " + stream);
}

Result<PublishAck> publish(NatsConnection& conn, const std::string& subject, std::span<const uint8_t> data,
                           const std::string& msg_id, std::optional<uint64_t> expected_last_seq,
                           int timeout_ms) {
  if (msg_id.empty()) return invalid_argument("publish to " + subject + ": a msg id is required");
  const std::string expected = expected_last_seq ? std::to_string(*expected_last_seq) : "";
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  int backoff_ms = 50;
  Status last = unavailable("publish to " + subject + ": no attempt within " + std::to_string(timeout_ms) + " ms");
  for (int attempt = 0;; ++attempt) {
    const int left = remaining_ms(deadline);
    if (left <= 0 && attempt > 0) return last;
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, reinterpret_cast<const char*>(data.data()),
                                  static_cast<int>(data.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id.c_str());
    // Set by hand: nats.c's ExpectLastSeq option cannot say 0 (it means "unset" there).
    if (s == NATS_OK && expected_last_seq) s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Sequence", expected.c_str());
    if (s != NATS_OK) {
      natsMsg_Destroy(msg);
      return from_nats(s, "publish to " + subject);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = std::clamp(left, 1, kPublishAttemptMs);
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&pa, conn.js(), msg, &po, &jerr);
    natsMsg_Destroy(msg);
    if (s == NATS_OK) {
      PublishAck ack{pa->Sequence, pa->Duplicate};
      jsPubAck_Destroy(pa);
      // Some server versions answer a duplicate of a message still being replicated with
      // sequence 0 (its id staged, not yet committed): ask again until the original commits.
      if (!(ack.duplicate && ack.seq == 0)) return ack;
      last = unavailable("publish to " + subject + ": msg id " + msg_id + " still in flight");
    } else {
      last = from_nats(s, jerr, "publish to " + subject + " (msg id " + msg_id + ")");
      // A leader that cannot propose (lost its quorum, stepping down) answers with a bare 503
      // and no JetStream error code: as transient as a timeout.
      if (s == NATS_ERR && static_cast<int>(jerr) == 0) last = unavailable(last.message());
      if (!is_transient(last)) return last;
    }
    const int wait = std::min(backoff_ms, std::max(remaining_ms(deadline), 0));
    if (wait <= 0) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    backoff_ms = std::min(backoff_ms * 2, 500);
  }
}

Result<PublishAck> resolve_publish(NatsConnection& conn, const std::string& stream, std::span<const uint8_t> data,
                                   uint64_t expected_last_seq, int timeout_ms) {
  const uint64_t seq = expected_last_seq + 1;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  Status last = unavailable("outcome unknown: " + stream + " holds nothing at sequence " + std::to_string(seq) + " yet");
  int backoff_ms = 50;
  for (;;) {
    auto at = get_message(conn, stream, seq);
    if (at.is_ok() && *at) {
      const auto& m = **at;
      if (m.data.size() == data.size() && std::equal(m.data.begin(), m.data.end(), data.begin())) return PublishAck{seq, true};
      return aborted("another message took sequence " + std::to_string(seq) + " of " + stream + ": this write was not stored");
    }
    if (at.is_ok()) {
      // Nothing there: not written yet, or written and already deleted (then it may have been ours).
      auto last_seq = last_sequence(conn, stream);
      if (last_seq.is_ok() && *last_seq >= seq)
        return unavailable("outcome unknown: the message at sequence " + std::to_string(seq) + " of " + stream +
                           " is gone, it may have been this write");
    } else {
      last = unavailable("outcome unknown: " + at.status().message());
    }
    const int wait = std::min(backoff_ms, remaining_ms(deadline));
    if (wait <= 0) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    backoff_ms = std::min(backoff_ms * 2, 500);
  }
}

Result<std::optional<StoredMessage>> get_message(NatsConnection& conn, const std::string& stream, uint64_t seq) {
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, conn.js(), stream.c_str(), seq, nullptr, &jerr);
  if (s != NATS_OK) {
    if (jerr == JSNoMessageFoundErr) return std::optional<StoredMessage>();
    return from_nats(s, jerr, "get message " + std::to_string(seq) + " of " + stream);
  }
  StoredMessage m;
  m.seq = natsMsg_GetSequence(msg);
  m.subject = natsMsg_GetSubject(msg);
  const auto* p = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
  m.data.assign(p, p + natsMsg_GetDataLength(msg));
  m.time_ns = natsMsg_GetTime(msg);
  natsMsg_Destroy(msg);
  return std::optional<StoredMessage>(std::move(m));
}

Status erase_message(NatsConnection& conn, const std::string& stream, uint64_t seq) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_EraseMsg(conn.js(), stream.c_str(), seq, nullptr, &jerr);
  if (s == NATS_OK) return Status::ok();
  Status st = from_nats(s, jerr, "erase message " + std::to_string(seq) + " of " + stream);
  if (jerr == kJSStreamMsgDeleteFailed) {
    // The server says only "delete failed"; absent is the one cause callers care about.
    auto got = get_message(conn, stream, seq);
    if (got.is_ok() && !got->has_value()) return not_found(st.message());
  }
  return st;
}

Result<uint64_t> last_sequence(NatsConnection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn.js(), stream.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return from_nats(s, jerr, "stream info " + stream);
  const uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return last;
}

Result<int> stream_replicas(NatsConnection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn.js(), stream.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return from_nats(s, jerr, "stream info " + stream);
  const int replicas = si->Config != nullptr ? static_cast<int>(si->Config->Replicas) : 1;
  jsStreamInfo_Destroy(si);
  return replicas < 1 ? 1 : replicas;
}

// ---- StreamReader ----

Result<std::unique_ptr<StreamReader>> StreamReader::open(NatsConnection& conn, const std::string& stream,
                                                         uint64_t after_seq, const std::string& filter_subject) {
  std::string filter = filter_subject;
  if (filter.empty()) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, conn.js(), stream.c_str(), nullptr, &jerr);
    if (s != NATS_OK) return from_nats(s, jerr, "stream info " + stream);
    if (si->Config != nullptr && si->Config->SubjectsLen == 1) filter = si->Config->Subjects[0];
    jsStreamInfo_Destroy(si);
    if (filter.empty()) return invalid_argument("stream " + stream + " has several subjects: give a filter");
  }
  std::unique_ptr<StreamReader> r(new StreamReader(conn, stream, std::move(filter), after_seq));
  FV_RETURN_IF_ERROR(r->subscribe());
  return r;
}

StreamReader::~StreamReader() { drop_subscription(); }

int StreamReader::buffered() const {
  int msgs = 0, bytes = 0;
  if (sub_ == nullptr || natsSubscription_GetPending(sub_, &msgs, &bytes) != NATS_OK) return 0;
  return msgs;
}

void StreamReader::drop_subscription() {
  if (sub_ == nullptr) return;
  // Unsubscribe first, free later (NatsConnection::retire): the read loop may be delivering to
  // this subscription right now. Unsubscribing also deletes the ephemeral consumer, a JetStream
  // request that fails at once while the connection is down (FailRequestsOnDisconnect); the
  // server would drop the consumer by itself anyway once nobody listens.
  (void)natsSubscription_Unsubscribe(sub_);
  conn_.retire(sub_);
  sub_ = nullptr;
}

Status StreamReader::subscribe() {
  drop_subscription();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = last_ + 1;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&sub_, conn_.js(), filter_.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    sub_ = nullptr;
    return from_nats(s, jerr, "ordered consumer on " + stream_ + " from " + std::to_string(last_ + 1));
  }
  last_progress_ = Clock::now();
  return Status::ok();
}

Result<std::optional<StoredMessage>> StreamReader::next(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  while (true) {
    const int left = remaining_ms(deadline);
    if (sub_ == nullptr) {
      Status st = subscribe();
      if (!st.is_ok()) {
        if (!is_transient(st)) return st;
        if (left <= 0) return std::optional<StoredMessage>();
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, 200)));
        continue;
      }
      ++resubscriptions_;
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, std::max(left, 1));
    if (s == NATS_OK) {
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {  // not a stream message: ignore it
        natsMsg_Destroy(msg);
        continue;
      }
      const uint64_t seq = meta->Sequence.Stream;
      const int64_t ts = meta->Timestamp;
      jsMsgMetaData_Destroy(meta);
      if (seq <= last_) {  // redelivered after a consumer was recreated
        natsMsg_Destroy(msg);
        continue;
      }
      StoredMessage m;
      m.seq = seq;
      m.subject = natsMsg_GetSubject(msg);
      const auto* p = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
      m.data.assign(p, p + natsMsg_GetDataLength(msg));
      m.time_ns = ts;
      natsMsg_Destroy(msg);
      last_ = seq;
      last_progress_ = Clock::now();
      return std::optional<StoredMessage>(std::move(m));
    }
    if (s != NATS_TIMEOUT) {  // slow consumer, mismatch, closed subscription: start over
      drop_subscription();
      if (left <= 0) return std::optional<StoredMessage>();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, 100)));
      continue;
    }
    if (Clock::now() - last_progress_ >= kStallCheck) {
      last_progress_ = Clock::now();
      auto last = last_sequence(conn_, stream_);
      if (last.is_ok() && *last > last_) drop_subscription();
      continue;
    }
    if (remaining_ms(deadline) <= 0) return std::optional<StoredMessage>();
  }
}

}  // namespace fv::cluster
