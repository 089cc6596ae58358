#include "cluster/envelope.h"

#include <sodium.h>

#include <cstring>

#include "vault/vault.h"

namespace fv::cluster {
namespace {

constexpr char kMagic[4] = {'F', 'V', 'E', '2'};
constexpr char kOldMagic[4] = {'F', 'V', 'E', '1'};

vault::SecretKey derive(const vault::SecretKey& master, const std::string& label) {
  // BLAKE2b keyed by the master key over a label: a key per purpose, none of them the master.
  std::array<uint8_t, vault::SecretKey::kSize> out{};
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(label.data()), label.size(),
                     master.data(), vault::SecretKey::kSize);
  auto key = vault::SecretKey::from_bytes(out);
  vault::wipe(out.data(), out.size());
  return std::move(*key);
}

std::string part_ad(const std::string& stream, EnvelopeKind kind, const std::string& uid, const char* part) {
  return "facevault/cluster/" + std::string(part) + "/v2|" + stream + "|" + std::to_string(static_cast<int>(kind)) +
         "|" + uid;
}

vault::Bytes frame(const Envelope& e) {
  vault::Bytes out(kMagic, kMagic + 4);
  out.reserve(4 + 1 + 2 + e.subject_uid.size() + 8 + e.sealed_rows.size() + e.sealed_crops.size() + e.sealed_log.size());
  out.push_back(static_cast<uint8_t>(e.kind));
  out.push_back(static_cast<uint8_t>(e.subject_uid.size() >> 8));
  out.push_back(static_cast<uint8_t>(e.subject_uid.size() & 0xff));
  out.insert(out.end(), e.subject_uid.begin(), e.subject_uid.end());
  auto part = [&out](const vault::Bytes& sealed) {
    const uint32_t n = static_cast<uint32_t>(sealed.size());
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
    out.insert(out.end(), sealed.begin(), sealed.end());
  };
  part(e.sealed_rows);
  if (e.kind == EnvelopeKind::kCase) part(e.sealed_crops);
  out.insert(out.end(), e.sealed_log.begin(), e.sealed_log.end());
  return out;
}

Envelope sealed(const vault::SecretKey& master, const std::string& stream, EnvelopeKind kind, const std::string& uid,
                const vault::SecretKey& rows_key, std::span<const uint8_t> rows, std::span<const uint8_t> log) {
  Envelope e;
  e.kind = kind;
  e.subject_uid = uid;
  e.sealed_rows = vault::seal(rows_key, rows, part_ad(stream, kind, uid, "rows"));
  e.sealed_log = vault::seal(stream_key(master, stream), log, part_ad(stream, kind, uid, "log"));
  return e;
}

}  // namespace

vault::SecretKey stream_key(const vault::SecretKey& master, const std::string& stream) {
  return derive(master, "facevault/cluster/stream/v1|" + stream);
}

vault::Bytes seal_subject_message(const vault::SecretKey& master, const std::string& stream,
                                  const std::string& subject_uid, const vault::SecretKey& subject_key,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log, EnvelopeKind kind) {
  if (kind != EnvelopeKind::kRestate && kind != EnvelopeKind::kBasis) kind = EnvelopeKind::kSubject;
  return frame(sealed(master, stream, kind, subject_uid, subject_key, rows, log));
}

vault::Bytes seal_cluster_message(const vault::SecretKey& master, const std::string& stream,
                                  std::span<const uint8_t> rows, std::span<const uint8_t> log, EnvelopeKind kind) {
  kind = kind == EnvelopeKind::kCarry ? EnvelopeKind::kCarry : EnvelopeKind::kCluster;
  return frame(sealed(master, stream, kind, "", stream_key(master, stream), rows, log));
}

vault::Bytes seal_case_message(const vault::SecretKey& master, const std::string& stream, const std::string& case_uid,
                               const vault::SecretKey& case_key, std::span<const uint8_t> rows,
                               std::span<const uint8_t> crops, std::span<const uint8_t> log) {
  Envelope e = sealed(master, stream, EnvelopeKind::kCase, case_uid, stream_key(master, stream), rows, log);
  e.sealed_crops = vault::seal(case_key, crops, part_ad(stream, EnvelopeKind::kCase, case_uid, "crops"));
  return frame(e);
}

Result<Envelope> parse_envelope(std::span<const uint8_t> m) {
  if (m.size() >= 4 && std::memcmp(m.data(), kOldMagic, 4) == 0)
    return corrupt_data("cluster message: an envelope of version 1, which carried its subject's key (this "
                        "facevault reads version 2 only; rebuild the stream)");
  if (m.size() < 11 || std::memcmp(m.data(), kMagic, 4) != 0)
    return corrupt_data("cluster message: not a facevault envelope");
  Envelope e;
  const uint8_t kind = m[4];
  if (kind < static_cast<uint8_t>(EnvelopeKind::kSubject) || kind > static_cast<uint8_t>(EnvelopeKind::kBasis))
    return corrupt_data("cluster message: unknown envelope kind " + std::to_string(kind));
  e.kind = static_cast<EnvelopeKind>(kind);
  size_t at = 5;
  const size_t uid_len = (size_t{m[at]} << 8) | m[at + 1];
  at += 2;
  if (m.size() < at + uid_len + 4) return corrupt_data("cluster message: truncated envelope");
  e.subject_uid.assign(m.begin() + at, m.begin() + at + uid_len);
  at += uid_len;
  auto part = [&](vault::Bytes& sealed) -> Status {
    if (m.size() - at < 4) return corrupt_data("cluster message: truncated envelope");
    size_t len = 0;
    for (int i = 0; i < 4; ++i) len = (len << 8) | m[at + i];
    at += 4;
    if (m.size() - at < len) return corrupt_data("cluster message: truncated envelope");
    sealed.assign(m.begin() + at, m.begin() + at + len);
    at += len;
    return Status::ok();
  };
  FV_RETURN_IF_ERROR(part(e.sealed_rows));
  if (e.kind == EnvelopeKind::kCase) FV_RETURN_IF_ERROR(part(e.sealed_crops));
  e.sealed_log.assign(m.begin() + at, m.end());
  if (e.kind == EnvelopeKind::kBasis && !vault::parse_basis_key_name(e.subject_uid))
    return corrupt_data("cluster message: a basis's envelope names no basis key");
  if ((sealed_under_named_key(e.kind) || e.kind == EnvelopeKind::kCase) != !e.subject_uid.empty())
    return corrupt_data("cluster message: envelope kind and subject disagree");
  return e;
}

Result<vault::Bytes> open_envelope_log(const vault::SecretKey& master, const std::string& stream, const Envelope& e) {
  return vault::open_sealed(stream_key(master, stream), e.sealed_log, part_ad(stream, e.kind, e.subject_uid, "log"));
}

Result<vault::Bytes> open_log(const vault::SecretKey& master, const std::string& stream,
                              std::span<const uint8_t> message) {
  FV_ASSIGN_OR_RETURN(const Envelope e, parse_envelope(message));
  return open_envelope_log(master, stream, e);
}

Result<OpenedMessage> open_message(const vault::SecretKey& master, const std::string& stream,
                                   std::span<const uint8_t> message, const vault::SecretKey* subject_key) {
  FV_ASSIGN_OR_RETURN(const Envelope e, parse_envelope(message));
  return open_envelope(master, stream, e, subject_key);
}

Result<OpenedMessage> open_envelope(const vault::SecretKey& master, const std::string& stream, const Envelope& e,
                                    const vault::SecretKey* subject_key) {
  const bool subject_sealed = sealed_under_named_key(e.kind);
  if (subject_sealed && subject_key == nullptr)
    return failed_precondition("cluster message: sealed under the key of subject " + e.subject_uid +
                               ", which opening it needs");
  const vault::SecretKey rows_key = subject_sealed ? *subject_key : stream_key(master, stream);
  OpenedMessage out;
  out.kind = e.kind;
  out.subject_uid = e.subject_uid;
  FV_ASSIGN_OR_RETURN(out.rows, vault::open_sealed(rows_key, e.sealed_rows, part_ad(stream, e.kind, e.subject_uid, "rows")));
  auto log = open_envelope_log(master, stream, e);
  if (!log.is_ok()) {
    vault::wipe(out.rows);
    return log.status();
  }
  out.log = std::move(*log);
  if (out.kind == EnvelopeKind::kCase && subject_key != nullptr) {
    auto crops = vault::open_sealed(*subject_key, e.sealed_crops, part_ad(stream, e.kind, e.subject_uid, "crops"));
    if (!crops.is_ok()) {
      vault::wipe(out.rows);
      vault::wipe(out.log);
      return crops.status();
    }
    out.crops = std::move(*crops);
  }
  if (out.kind == EnvelopeKind::kCarry && !out.rows.empty())
    return corrupt_data("cluster message: a carry holds audit-log rows only");
  return out;
}

}  // namespace fv::cluster
