// JetStream streams as cluster mode uses them: created once per shard, appended to with
// deduplication and optimistic concurrency, read back in order, and erased message by message.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/nats_connection.h"
#include "common/status.h"

namespace fv::cluster {

struct StreamSpec {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 3;
  int64_t duplicate_window_ms = 120000;
};

// Creates the stream (file storage, limits retention). An existing stream with the same
// subjects (in any order) and replica count is fine; one that differs is kFailedPrecondition.
Status ensure_stream(NatsConnection& conn, const StreamSpec& spec);

// Deletes the stream and all its messages (tests, `cluster` tooling); kNotFound if absent.
Status delete_stream(NatsConnection& conn, const std::string& stream);

struct PublishAck {
  uint64_t seq = 0;
  bool duplicate = false;  // the stream already held a message with this msg id (at `seq`)
};

// Appends `data` under `subject` with header Nats-Msg-Id = msg_id (required) and, when given,
// Nats-Expected-Last-Sequence = *expected_last_seq (0 = the stream must be empty).
// A publish that timed out may still be committed, so timeouts, no responders and dropped
// connections (a leader election, a killed server) are retried with the same msg id until
// timeout_ms has passed; the stream's duplicate window then answers a retry of a committed
// message with its original sequence and duplicate = true. Returns kWrongLastSequence (kAborted)
// at once when the stream's last sequence is not the expected one, and
// kUnavailable when timeout_ms passed (also what a subject no stream holds gives: no responders).
Result<PublishAck> publish(NatsConnection& conn, const std::string& subject,
                           std::span<const uint8_t> data, const std::string& msg_id,
                           std::optional<uint64_t> expected_last_seq, int timeout_ms);

struct StoredMessage;

// What became of a publish that failed with kUnavailable (timed out: it may still be committed).
// With Nats-Expected-Last-Sequence = expected_last_seq, the message can only ever be stored at
// expected_last_seq + 1, so that sequence decides, read until timeout_ms has passed:
//   - it holds `data` (the sealed bytes are unique: a fresh nonce each): committed, its ack;
//   - it holds another message: ours can never be stored now, kAborted (redo on the new state);
//   - the stream cannot be read, holds nothing there yet, or the message there is already
//     gone: kUnavailable, the outcome stays unknown.
Result<PublishAck> resolve_publish(NatsConnection& conn, const std::string& stream, std::span<const uint8_t> data,
                                   uint64_t expected_last_seq, int timeout_ms);

struct StoredMessage {
  uint64_t seq = 0;
  std::string subject;
  std::vector<uint8_t> data;
  int64_t time_ns = 0;  // when the stream stored it (UTC, ns since the epoch)
};

// The message at `seq`, or nullopt when there is none (deleted, erased, purged, not yet
// written). kNotFound when the stream itself does not exist.
Result<std::optional<StoredMessage>> get_message(NatsConnection& conn, const std::string& stream,
                                                 uint64_t seq);

// Secure delete (js_EraseMsg): every replica overwrites the message's bytes in its message
// block before removing it. kNotFound when there is no message at `seq` (already deleted, or
// never written): the caller decides whether that is fine.
Status erase_message(NatsConnection& conn, const std::string& stream, uint64_t seq);

// The stream's last sequence (0 when it never held a message).
Result<uint64_t> last_sequence(NatsConnection& conn, const std::string& stream);
// How many replicas the stream is configured with (at least 1).
Result<int> stream_replicas(NatsConnection& conn, const std::string& stream);

// Reads a stream in order, each message once, starting after a given sequence: an ordered push
// consumer (ephemeral, in memory on one server, no acks), which nats.c recreates from the last
// received sequence when it sees a gap or misses heartbeats. This class adds what the caller
// relies on: a message at or below the last one returned is dropped, so a redelivery after a
// recreate never reaches the caller; a subscription that reports an error is recreated from the
// last returned sequence; and a reader idle for `kStallCheck` while the stream holds later
// sequences recreates its consumer (a consumer lost with its server and not yet noticed).
// Deleted and erased messages are skipped, so sequences may have gaps. Not thread-safe: one
// thread calls next(). Must not outlive the connection.
class StreamReader {
 public:
  // Short enough that a consumer lost with its server costs a write little more than the ~6 s
  // election (20 s measured 20 s pauses); an idle reader asks for the stream's last sequence
  // this often.
  static constexpr std::chrono::seconds kStallCheck{5};

  // `filter_subject` empty = the stream's only subject (kInvalidArgument when it has several).
  static Result<std::unique_ptr<StreamReader>> open(NatsConnection& conn, const std::string& stream,
                                                    uint64_t after_seq,
                                                    const std::string& filter_subject = "");
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // The next message, or nullopt when none arrived within timeout_ms. An error only when the
  // consumer cannot be (re)created and the cause is not transient (e.g. the stream is gone).
  Result<std::optional<StoredMessage>> next(int timeout_ms);

  // How many messages the client holds already, so that next() returns without waiting for the
  // network (a replica batches them into one transaction). 0 without a subscription.
  int buffered() const;
  uint64_t last_delivered() const { return last_; }
  int resubscriptions() const { return resubscriptions_; }  // for tests and metrics

 private:
  StreamReader(NatsConnection& conn, std::string stream, std::string filter, uint64_t after)
      : conn_(conn), stream_(std::move(stream)), filter_(std::move(filter)), last_(after) {}
  Status subscribe();
  void drop_subscription();

  NatsConnection& conn_;
  std::string stream_;
  std::string filter_;
  uint64_t last_ = 0;
  natsSubscription* sub_ = nullptr;
  int resubscriptions_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
};

}  // namespace fv::cluster
