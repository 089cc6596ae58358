#include "cluster/envelope.h"

#include <sodium.h>

#include <cstring>

namespace fv::cluster {
namespace {

constexpr char kMagic[4] = {'F', 'V', 'E', '1'};

vault::SecretKey derive(const vault::SecretKey& master, const std::string& label) {
  // BLAKE2b keyed by the master key over a label: a key per purpose, none of them the master.
  std::array<uint8_t, vault::SecretKey::kSize> out{};
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(label.data()), label.size(),
                     master.data(), vault::SecretKey::kSize);
  auto key = vault::SecretKey::from_bytes(out);
  vault::wipe(out.data(), out.size());
  return std::move(*key);
}

std::string body_ad(const std::string& stream, EnvelopeKind kind, const std::string& uid) {
  return "facevault/cluster/body/v1|" + stream + "|" + std::to_string(static_cast<int>(kind)) + "|" + uid;
}

std::string wrap_ad(const std::string& uid) { return "facevault/cluster/subject-key/v1|" + uid; }

void put_field(vault::Bytes& out, std::span<const uint8_t> field) {
  out.push_back(static_cast<uint8_t>(field.size() >> 8));
  out.push_back(static_cast<uint8_t>(field.size() & 0xff));
  out.insert(out.end(), field.begin(), field.end());
}

vault::Bytes body_of(std::span<const uint8_t> rows, std::span<const uint8_t> log) {
  vault::Bytes b;
  b.reserve(4 + rows.size() + log.size());
  const uint32_t n = static_cast<uint32_t>(rows.size());
  for (int i = 3; i >= 0; --i) b.push_back(static_cast<uint8_t>(n >> (8 * i)));
  b.insert(b.end(), rows.begin(), rows.end());
  b.insert(b.end(), log.begin(), log.end());
  return b;
}

Status split_body(vault::Bytes body, OpenedMessage& out) {
  if (body.size() < 4) return corrupt_data("cluster message: body without its framing");
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | body[static_cast<size_t>(i)];
  if (body.size() - 4 < n) return corrupt_data("cluster message: truncated body");
  out.rows.assign(body.begin() + 4, body.begin() + 4 + n);
  out.log.assign(body.begin() + 4 + n, body.end());
  vault::wipe(body);
  return Status::ok();
}

vault::Bytes frame(const Envelope& e) {
  vault::Bytes out(kMagic, kMagic + 4);
  out.push_back(static_cast<uint8_t>(e.kind));
  put_field(out, vault::as_bytes(e.subject_uid));
  put_field(out, e.wrapped_key);
  out.insert(out.end(), e.sealed_body.begin(), e.sealed_body.end());
  return out;
}

}  // namespace

vault::SecretKey envelope_wrapping_key(const vault::SecretKey& master) {
  return derive(master, "facevault/cluster/envelope-wrap/v1");
}

vault::SecretKey stream_key(const vault::SecretKey& master, const std::string& stream) {
  return derive(master, "facevault/cluster/stream/v1|" + stream);
}

vault::Bytes seal_subject_message(const vault::SecretKey& master, const std::string& stream,
                                  const std::string& subject_uid, const vault::SecretKey& subject_key,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log) {
  vault::Bytes body = body_of(rows, log);
  Envelope e;
  e.kind = EnvelopeKind::kSubject;
  e.subject_uid = subject_uid;
  e.wrapped_key = vault::wrap_key(envelope_wrapping_key(master), subject_key, wrap_ad(subject_uid));
  e.sealed_body = vault::seal(subject_key, body, body_ad(stream, e.kind, subject_uid));
  vault::wipe(body);
  return frame(e);
}

vault::Bytes seal_cluster_message(const vault::SecretKey& master, const std::string& stream,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log, EnvelopeKind kind) {
  vault::Bytes body = body_of(rows, log);
  Envelope e;
  e.kind = kind == EnvelopeKind::kCarry ? EnvelopeKind::kCarry : EnvelopeKind::kCluster;
  e.sealed_body = vault::seal(stream_key(master, stream), body, body_ad(stream, e.kind, ""));
  vault::wipe(body);
  return frame(e);
}

Result<Envelope> parse_envelope(std::span<const uint8_t> m) {
  if (m.size() < 9 || std::memcmp(m.data(), kMagic, 4) != 0)
    return corrupt_data("cluster message: not a facevault envelope");
  Envelope e;
  const uint8_t kind = m[4];
  if (kind < static_cast<uint8_t>(EnvelopeKind::kSubject) || kind > static_cast<uint8_t>(EnvelopeKind::kCarry))
    return corrupt_data("cluster message: unknown envelope kind " + std::to_string(kind));
  e.kind = static_cast<EnvelopeKind>(kind);
  size_t at = 5;
  auto field = [&](vault::Bytes& out) -> Status {
    if (m.size() < at + 2) return corrupt_data("cluster message: truncated envelope");
    const size_t n = (size_t{m[at]} << 8) | m[at + 1];
    at += 2;
    if (m.size() < at + n) return corrupt_data("cluster message: truncated envelope");
    out.assign(m.begin() + at, m.begin() + at + n);
    at += n;
    return Status::ok();
  };
  vault::Bytes uid;
  if (auto s = field(uid); !s.is_ok()) return s;
  if (auto s = field(e.wrapped_key); !s.is_ok()) return s;
  e.subject_uid.assign(uid.begin(), uid.end());
  if ((e.kind == EnvelopeKind::kSubject) != !e.subject_uid.empty() ||
      (e.kind == EnvelopeKind::kSubject) != !e.wrapped_key.empty())
    return corrupt_data("cluster message: envelope kind and subject fields disagree");
  e.sealed_body.assign(m.begin() + at, m.end());
  return e;
}

Result<OpenedMessage> open_message(const vault::SecretKey& master, const std::string& stream,
                                   std::span<const uint8_t> message) {
  FV_ASSIGN_OR_RETURN(Envelope e, parse_envelope(message));
  OpenedMessage out;
  out.kind = e.kind;
  out.subject_uid = e.subject_uid;
  if (e.kind == EnvelopeKind::kSubject) {
    FV_ASSIGN_OR_RETURN(const vault::SecretKey key,
                        vault::unwrap_key(envelope_wrapping_key(master), e.wrapped_key, wrap_ad(e.subject_uid)));
    FV_ASSIGN_OR_RETURN(auto body, vault::open_sealed(key, e.sealed_body, body_ad(stream, e.kind, e.subject_uid)));
    FV_RETURN_IF_ERROR(split_body(std::move(body), out));
  } else {
    FV_ASSIGN_OR_RETURN(auto body, vault::open_sealed(stream_key(master, stream), e.sealed_body,
                                                      body_ad(stream, e.kind, "")));
    FV_RETURN_IF_ERROR(split_body(std::move(body), out));
  }
  if (out.kind == EnvelopeKind::kCarry && !out.rows.empty())
    return corrupt_data("cluster message: a carry holds audit-log rows only");
  return out;
}

}  // namespace fv::cluster
