// The envelope of a replicated message: what a shard stream stores is never a plaintext row.
//
//   "FVE2" ‖ kind (1 byte) ‖ u16 len ‖ uid ‖ u32 len ‖ sealed rows ‖ [u32 len ‖ sealed crops] ‖ sealed log
//
// (the crops part in kCase messages only)
//
// A message holds the two patchsets of one transaction: its rows (every captured table but the
// audit log's) and its audit-log rows (vault::CaptureScope), each sealed on its own:
// - kSubject: the rows under the subject's own data key. The key itself is in no message: the
//   shard's replicas hold it in their vaults and hand it to each other over request/reply
//   (cluster/subject_keys.h). Once every replica applied the subject's erasure the key exists
//   nowhere, so whatever NATS still holds of its messages (its internal Raft log keeps erased
//   messages for minutes) cannot be opened by anyone, master key or not (docs/cluster.md).
// - kCluster: rows with no subject content (an erasure's deletes, which name primary keys
//   only), under a key derived from the master key for this stream.
// - kCarry: no rows; the audit-log rows of a message that an erasure removes from the stream,
//   carried forward so that a replica rebuilt later still has the whole audit chain.
// - kRestate: a kCarry for a message that a withdrawal removes from the stream while its subject
//   stays, with the updates it made restated as their rows are now (vault::restate_updates),
//   under the subject's key like the message it stands in for (ShardWriter::erase_messages_of_basis).
// - kBasis: an enrollment (the rows of one lawful basis, and the updates it makes), sealed under
//   that basis's key, named vault::basis_key_name(subject uid, basis id). The key travels like a
//   subject key and the basis's withdrawal destroys it, so that what a log still holds of the
//   enrollment opens with nothing from the withdrawal on.
// - kCase: a transaction that opens a review case with probe crops (meta stream). Its rows go
//   under the stream key with the case row's key columns NULL; the crops and those columns go
//   in a third part under the case's own key, named by the case uid, which travels like a
//   subject key (subject_keys.h) and is destroyed when the case closes (vault/case_crops.h).
// The audit-log rows are always sealed under the stream's key: the audit log outlives an
// erasure in a vault, and its rows must be readable for the carry after the subject's key is gone.
//
// The associated data binds each part to its stream, kind, subject and role, so a message
// copied to another stream, relabelled with another subject, or with its parts swapped, does
// not open.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vault/crypto.h"

namespace fv::cluster {

enum class EnvelopeKind : uint8_t { kSubject = 1, kCluster = 2, kCarry = 3, kRestate = 4, kCase = 5, kBasis = 6 };

// kSubject, kRestate and kBasis: the rows are sealed under the key their uid names.
inline bool sealed_under_named_key(EnvelopeKind k) {
  return k == EnvelopeKind::kSubject || k == EnvelopeKind::kRestate || k == EnvelopeKind::kBasis;
}

struct Envelope {
  EnvelopeKind kind = EnvelopeKind::kCluster;
  std::string subject_uid;  // kSubject, kRestate: the subject's; kBasis: the basis key's name; kCase: the case's
  vault::Bytes sealed_rows, sealed_crops, sealed_log;  // sealed_crops: kCase only
};

// The key sealing a stream's kCluster rows and every audit-log part, derived from the cluster
// master key (never stored, never in NATS).
vault::SecretKey stream_key(const vault::SecretKey& master, const std::string& stream);

// Seals a transaction's two patchsets for `stream`. kSubject (or kRestate) needs the subject's
// uid and key, kBasis the basis key's name and the key.
vault::Bytes seal_subject_message(const vault::SecretKey& master, const std::string& stream,
                                  const std::string& subject_uid, const vault::SecretKey& subject_key,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log,
                                  EnvelopeKind kind = EnvelopeKind::kSubject);
vault::Bytes seal_cluster_message(const vault::SecretKey& master, const std::string& stream,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log,
                                  EnvelopeKind kind = EnvelopeKind::kCluster);

// Seals a kCase message: `rows` and `log` as a kCluster message's, `crops` under the case's key.
vault::Bytes seal_case_message(const vault::SecretKey& master, const std::string& stream, const std::string& case_uid,
                               const vault::SecretKey& case_key, std::span<const uint8_t> rows,
                               std::span<const uint8_t> crops, std::span<const uint8_t> log);

// Parses the framing only (no key needed): kCorruptData on anything malformed.
Result<Envelope> parse_envelope(std::span<const uint8_t> message);

// Parses and opens every part. A kSubject or kRestate message needs its subject's key
// (`subject_key`; kFailedPrecondition without it); a kCase message opens without its case's
// key (passed as `subject_key`), its crops then left closed (`crops` empty). kCorruptData when
// the bytes, the stream or a key do not match.
struct OpenedMessage {
  EnvelopeKind kind = EnvelopeKind::kCluster;
  std::string subject_uid;
  vault::Bytes rows, log;  // the two patchsets (either may be empty)
  vault::Bytes crops;      // kCase, opened with the case's key: the crops' patchset
};
Result<OpenedMessage> open_message(const vault::SecretKey& master, const std::string& stream,
                                   std::span<const uint8_t> message, const vault::SecretKey* subject_key = nullptr);
// Opens the audit-log part only (no subject key needed): what an erasure carries forward.
Result<vault::Bytes> open_log(const vault::SecretKey& master, const std::string& stream,
                              std::span<const uint8_t> message);
// The same two on an envelope already parsed (a replica parses each message of a batch once).
Result<OpenedMessage> open_envelope(const vault::SecretKey& master, const std::string& stream, const Envelope& e,
                                    const vault::SecretKey* subject_key = nullptr);
Result<vault::Bytes> open_envelope_log(const vault::SecretKey& master, const std::string& stream, const Envelope& e);

}  // namespace fv::cluster
