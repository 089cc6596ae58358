#include "cluster/subject_keys.h"

#include <sodium.h>

#include <algorithm>
#include <set>

namespace fv::cluster {
namespace {

constexpr uint8_t kFetch = 'F';
constexpr uint8_t kPush = 'P';
constexpr size_t kMaxUids = 4096;
// Answers gathered at most (a replica answers each copy of a request it receives).
constexpr size_t kMaxAnswers = 256;
// Held keys sent per uid at most (the newest pushes): one per writer that raced for it.
constexpr size_t kMaxHeld = 8;
// A request goes again after this long without an answer: core NATS delivers at most once, and
// a replica that just subscribed reaches the other NATS servers a moment late.
constexpr int kResendMs = 250;

// A cursor over a request or a reply: every read is bounds-checked (the bytes come from the wire).
struct Reader {
  std::span<const uint8_t> b;
  size_t at = 0;
  bool ok = true;
  bool has(size_t n) {
    ok = ok && b.size() - at >= n && at <= b.size();
    return ok;
  }
  uint8_t u8() { return has(1) ? b[at++] : 0; }
  uint64_t be(int bytes) {
    uint64_t v = 0;
    if (!has(static_cast<size_t>(bytes))) return 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | b[at++];
    return v;
  }
  std::span<const uint8_t> take(size_t n) {
    if (!has(n)) return {};
    auto s = b.subspan(at, n);
    at += n;
    return s;
  }
  std::string text() {
    const size_t n = be(2);
    auto s = take(n);
    return std::string(s.begin(), s.end());
  }
  bool done() const { return ok && at == b.size(); }
};

void put_be(vault::Bytes& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_text(vault::Bytes& out, const std::string& s) {
  put_be(out, s.size(), 2);
  out.insert(out.end(), s.begin(), s.end());
}

bool valid_uid(const std::string& uid) { return !uid.empty() && uid.size() <= 128; }

// Adds a key to what was fetched for a uid, once; an applied message's key goes first.
void add_key(FetchedKey& f, vault::SecretKey key, bool applied) {
  f.state = FetchedKey::State::kKey;
  for (const auto& k : f.keys)
    if (sodium_memcmp(k.data(), key.data(), vault::SecretKey::kSize) == 0) return;
  if (applied && !f.applied) {
    f.keys.insert(f.keys.begin(), std::move(key));
    f.applied = true;
  } else {
    f.keys.push_back(std::move(key));
  }
}

// The answer: node ‖ crypto_box_seal(one state per uid, in request order: 0 unknown, 1 applied
// key (followed by its 32 bytes), 2 erased, 3 held keys (a count, then 32 bytes each)) to the
// requester's key pair.
Result<vault::Bytes> answer_fetch(Reader& r, const std::string& node, SubjectKeyHolder& holder) {
  const auto pk = r.take(crypto_box_PUBLICKEYBYTES);
  const size_t n = r.be(2);
  if (!r.ok || n == 0 || n > kMaxUids) return invalid_argument("a key request names 1 to 4096 subjects");
  std::vector<uint8_t> public_key(pk.begin(), pk.end());
  vault::Bytes plain;
  struct WipePlain {
    vault::Bytes& b;
    ~WipePlain() { vault::wipe(b); }
  } wipe_plain{plain};
  plain.reserve(n * (1 + vault::SecretKey::kSize));
  for (size_t i = 0; i < n; ++i) {
    const std::string uid = r.text();
    if (!r.ok || !valid_uid(uid)) return invalid_argument("a key request with a malformed subject uid");
    FV_ASSIGN_OR_RETURN(auto key, holder.key_of(uid));
    if (key) {
      plain.push_back(1);
      plain.insert(plain.end(), key->data(), key->data() + vault::SecretKey::kSize);
      continue;
    }
    FV_ASSIGN_OR_RETURN(const bool erased, holder.erased(uid));
    if (!erased) {
      FV_ASSIGN_OR_RETURN(auto held, holder.held_keys(uid));
      if (held.size() > kMaxHeld) held.resize(kMaxHeld);
      if (!held.empty()) {
        plain.push_back(3);
        plain.push_back(static_cast<uint8_t>(held.size()));
        for (const auto& k : held) plain.insert(plain.end(), k.data(), k.data() + vault::SecretKey::kSize);
        continue;
      }
    }
    plain.push_back(erased ? 2 : 0);
  }
  if (!r.done()) return invalid_argument("a key request with trailing bytes");
  vault::Bytes out;
  put_text(out, node);
  const size_t at = out.size();
  out.resize(at + plain.size() + crypto_box_SEALBYTES);
  if (crypto_box_seal(out.data() + at, plain.data(), plain.size(), public_key.data()) != 0)
    return internal_error("sealing the subject keys to the requester failed");
  return out;
}

Result<vault::Bytes> answer_push(Reader& r, const std::string& node, SubjectKeyHolder& holder) {
  const uint64_t expected = r.be(8);
  const auto raw = r.take(vault::SecretKey::kSize);
  const std::string uid = r.text();
  if (!r.done() || !valid_uid(uid)) return invalid_argument("a malformed key push");
  FV_ASSIGN_OR_RETURN(const vault::SecretKey key, vault::SecretKey::from_bytes(raw));
  FV_RETURN_IF_ERROR(holder.hold(uid, key, expected));
  vault::Bytes out;
  put_text(out, node);
  return out;
}

}  // namespace

std::string subject_keys_subject(const std::string& stream) { return "fv.rpc.keys." + stream; }

Result<std::unique_ptr<RpcServer>> serve_subject_keys(NatsConnection& conn, const vault::SecretKey& master,
                                                      const std::string& stream, const std::string& node,
                                                      SubjectKeyHolder& holder) {
  return RpcServer::open(conn, master, subject_keys_subject(stream), "fv-keys-" + node,
                         [node, &holder](std::span<const uint8_t> request) -> Result<vault::Bytes> {
                           Reader r{request};
                           const uint8_t op = r.u8();
                           if (op == kFetch) return answer_fetch(r, node, holder);
                           if (op == kPush) return answer_push(r, node, holder);
                           return invalid_argument("unknown key operation");
                         });
}

Result<std::map<std::string, FetchedKey>> fetch_subject_keys(NatsConnection& conn, const vault::SecretKey& master,
                                                             const std::string& stream,
                                                             const std::vector<std::string>& uids, size_t replicas,
                                                             int timeout_ms) {
  std::map<std::string, FetchedKey> out;
  for (const auto& uid : uids) out[uid];
  if (out.empty()) return out;
  if (out.size() > kMaxUids) return invalid_argument("at most 4096 subject keys per request");
  std::vector<std::string> asked;
  for (const auto& [uid, _] : out) {
    if (!valid_uid(uid)) return invalid_argument("a malformed subject uid");
    asked.push_back(uid);
  }
  // A key pair for this request only: its secret half never leaves this function.
  std::array<uint8_t, crypto_box_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_box_SECRETKEYBYTES> sk{};
  crypto_box_keypair(pk.data(), sk.data());
  struct WipeSecret {
    std::array<uint8_t, crypto_box_SECRETKEYBYTES>& sk;
    ~WipeSecret() { vault::wipe(sk.data(), sk.size()); }
  } wipe_secret{sk};

  RpcCall call{subject_keys_subject(stream), {}};
  size_t size = 1 + pk.size() + 2;  // reserved whole: GCC 12 raises a -Warray-bounds false alarm otherwise
  for (const auto& uid : asked) size += 2 + uid.size();
  call.request.reserve(size);
  call.request.push_back(kFetch);
  call.request.insert(call.request.end(), pk.begin(), pk.end());
  put_be(call.request, asked.size(), 2);
  for (const auto& uid : asked) put_text(call.request, uid);

  auto merge = [&](const vault::Bytes& reply) {
    Reader r{reply};
    (void)r.text();  // the answering node
    const auto sealed = r.take(reply.size() - std::min(reply.size(), r.at));
    if (!r.ok || sealed.size() < crypto_box_SEALBYTES) return;
    vault::Bytes plain(sealed.size() - crypto_box_SEALBYTES);
    struct WipePlain {
      vault::Bytes& b;
      ~WipePlain() { vault::wipe(b); }
    } wipe_plain{plain};
    if (crypto_box_seal_open(plain.data(), sealed.data(), sealed.size(), pk.data(), sk.data()) != 0) return;
    Reader p{plain};
    for (const auto& uid : asked) {
      const uint8_t state = p.u8();
      FetchedKey& f = out[uid];
      if (state == 1 || state == 3) {
        const size_t n = state == 1 ? 1 : p.u8();
        if (n == 0 || n > kMaxHeld) return;
        for (size_t i = 0; i < n; ++i) {
          const auto raw = p.take(vault::SecretKey::kSize);
          if (!p.ok) return;  // malformed: what came before it stands
          add_key(f, *vault::SecretKey::from_bytes(raw), state == 1);
        }
      } else if (state == 2 && f.state == FetchedKey::State::kUnknown) {
        f.state = FetchedKey::State::kErased;
      } else if (state > 3 || !p.ok) {
        return;
      }
    }
  };
  // An erasure is settled only when no replica has a key: the gathering goes on to every
  // replica's answer then, unless every uid already has a key.
  std::set<std::string> answered;
  FV_ASSIGN_OR_RETURN(auto replies,
                      rpc_gather(
                          conn, master, call, kMaxAnswers, timeout_ms,
                          [&](const std::vector<Result<vault::Bytes>>& so_far) {
                            if (so_far.back().is_ok()) {
                              Reader r{*so_far.back()};
                              const std::string node = r.text();
                              if (r.ok && answered.insert(node).second) merge(*so_far.back());
                            }
                            return answered.size() >= std::max<size_t>(replicas, 1) ||
                                   std::all_of(out.begin(), out.end(),
                                               [](const auto& e) { return e.second.applied; });
                          },
                          kResendMs));
  (void)replies;
  return out;
}

Result<std::vector<std::string>> push_subject_key(NatsConnection& conn, const vault::SecretKey& master,
                                                  const std::string& stream, const std::string& uid,
                                                  const vault::SecretKey& key, uint64_t expected_seq, size_t needed,
                                                  int timeout_ms) {
  if (!valid_uid(uid)) return invalid_argument("a malformed subject uid");
  RpcCall call{subject_keys_subject(stream), {kPush}};
  put_be(call.request, expected_seq, 8);
  call.request.insert(call.request.end(), key.data(), key.data() + vault::SecretKey::kSize);
  put_text(call.request, uid);
  std::vector<std::string> holders;
  Status first_error;
  auto take = [&](const Result<vault::Bytes>& reply) {
    if (!reply.is_ok()) {
      if (first_error.is_ok()) first_error = reply.status();
      return;
    }
    Reader r{*reply};
    const std::string node = r.text();
    if (r.done() && !node.empty() && std::find(holders.begin(), holders.end(), node) == holders.end())
      holders.push_back(node);
  };
  auto replies = rpc_gather(
      conn, master, call, kMaxAnswers, timeout_ms,
      [&](const std::vector<Result<vault::Bytes>>& so_far) {
        take(so_far.back());
        return holders.size() >= needed;
      },
      kResendMs);
  vault::wipe(call.request);
  FV_RETURN_IF_ERROR(replies.status());
  if (holders.size() >= needed) return holders;
  std::string who;
  for (const auto& n : holders) who += (who.empty() ? "" : ", ") + n;
  return unavailable("the key of new subject " + uid + " reached " + std::to_string(holders.size()) + " of the " +
                     std::to_string(needed) + " replicas it needs" + (who.empty() ? "" : " (" + who + ")") +
                     (first_error.is_ok() ? "" : "; " + first_error.to_string()));
}

}  // namespace fv::cluster
