// The envelope of a replicated message: what a shard stream stores is never a plaintext row.
//
//   "FVE1" ‖ kind (1 byte) ‖ u16 len ‖ subject uid ‖ u16 len ‖ wrapped subject key ‖ sealed body
//
// kind kSubject: the body (a vault patchset) is sealed under the subject's own data key, and the
// envelope carries that key wrapped by the cluster master key, so every message of a subject
// opens on its own — and once the subject's messages are erased, no copy of the key is left
// in the stream. What NATS's internal Raft log may still hold for a few minutes is sealed the
// same way (docs/cluster.md, "Erasure").
// kind kCluster: the body is sealed under a key derived from the master key for this stream
// (messages that carry no subject content: an erasure's deletes, which name primary keys only).
// kind kCarry: cluster-sealed too; the audit-log rows of a message that an erasure removes from
// the stream, carried forward so that a replica rebuilt later still has the whole audit chain.
//
// A body holds two patchsets of one transaction: its rows (every captured table but the audit
// log's) and its audit-log rows (vault::CaptureScope), framed as u32 length ‖ rows ‖ log.
//
// The associated data binds the body to its stream, kind and subject, so a message copied to
// another stream or relabelled with another subject does not open.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vault/crypto.h"

namespace fv::cluster {

enum class EnvelopeKind : uint8_t { kSubject = 1, kCluster = 2, kCarry = 3 };

struct Envelope {
  EnvelopeKind kind = EnvelopeKind::kCluster;
  std::string subject_uid;     // kSubject only
  vault::Bytes wrapped_key;    // kSubject only: the subject key wrapped by the master key
  vault::Bytes sealed_body;
};

// The key wrapping a subject key in an envelope, and the one sealing kCluster bodies of a
// stream, both derived from the cluster master key (never stored, never in NATS).
vault::SecretKey envelope_wrapping_key(const vault::SecretKey& master);
vault::SecretKey stream_key(const vault::SecretKey& master, const std::string& stream);

// Seals a transaction's two patchsets for `stream`. kSubject needs the subject's uid and key.
vault::Bytes seal_subject_message(const vault::SecretKey& master, const std::string& stream,
                                  const std::string& subject_uid, const vault::SecretKey& subject_key,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log);
vault::Bytes seal_cluster_message(const vault::SecretKey& master, const std::string& stream,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log,
                                  EnvelopeKind kind = EnvelopeKind::kCluster);

// Parses the framing only (no key needed): kCorruptData on anything malformed.
Result<Envelope> parse_envelope(std::span<const uint8_t> message);

// Parses and opens: the body, and for kSubject the subject's uid. kCorruptData when the bytes,
// the stream or the master key do not match.
struct OpenedMessage {
  EnvelopeKind kind = EnvelopeKind::kCluster;
  std::string subject_uid;
  vault::Bytes rows, log;  // the two patchsets (either may be empty)
};
Result<OpenedMessage> open_message(const vault::SecretKey& master, const std::string& stream,
                                   std::span<const uint8_t> message);

}  // namespace fv::cluster
