#include "service/shard_call_wire.h"

namespace fv::service {

namespace {

using nlohmann::json;

template <typename T>
json opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}
template <typename T>
std::optional<T> opt_of(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<T>();
}

json box_json(const face::Box& b) { return {b.x1, b.y1, b.x2, b.y2}; }
face::Box box_of(const json& j) {
  return {j.at(0).get<double>(), j.at(1).get<double>(), j.at(2).get<double>(), j.at(3).get<double>()};
}

vault::Bytes cbor(const json& j) { return json::to_cbor(j); }

// Parses CBOR, then runs `f` on the value; nlohmann's type errors stay inside as kCorruptData.
template <typename T, typename F>
Result<T> parse(std::span<const uint8_t> bytes, const char* what, F&& f) {
  json j = json::from_cbor(bytes.begin(), bytes.end(), true, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt_data(std::string("forwarded ") + what + ": not a CBOR map");
  try {
    return f(j);
  } catch (const std::exception& e) {
    return corrupt_data(std::string("forwarded ") + what + ": " + e.what());
  }
}

json receipt_json(const EraseReceipt& r) {
  return {{"ref", r.subject_ref}, {"uid", r.subject_uid}, {"reason", r.reason}, {"erased_at", r.erased_at},
          {"faces", r.faces}, {"images", r.images}, {"kept_images", r.kept_images}, {"bases", r.bases},
          {"reference_crops", r.reference_crops}, {"review_candidates_removed", r.review_candidates_removed},
          {"key_destroyed", r.key_destroyed}, {"wiped", r.wiped}, {"wipe_error", r.wipe_error},
          {"index_removed", r.index_removed}, {"audit_seq", r.audit_seq}, {"audit_hash", r.audit_hash},
          {"replicas", r.replicas}, {"stream_messages_erased", r.stream_messages_erased}, {"basis_id", opt(r.basis_id)},
          {"completion_error", r.completion_error}};
}

EraseReceipt receipt_of(const json& j) {
  EraseReceipt r;
  r.subject_ref = j.at("ref").get<std::string>();
  r.subject_uid = j.at("uid").get<std::string>();
  r.reason = j.at("reason").get<std::string>();
  r.erased_at = j.at("erased_at").get<std::string>();
  r.faces = j.at("faces").get<int64_t>();
  r.images = j.at("images").get<int64_t>();
  r.kept_images = j.at("kept_images").get<int64_t>();
  r.bases = j.at("bases").get<int64_t>();
  r.reference_crops = j.at("reference_crops").get<int64_t>();
  r.review_candidates_removed = j.at("review_candidates_removed").get<int64_t>();
  r.key_destroyed = j.at("key_destroyed").get<bool>();
  r.wiped = j.at("wiped").get<bool>();
  r.wipe_error = j.at("wipe_error").get<std::string>();
  r.index_removed = j.at("index_removed").get<int64_t>();
  r.audit_seq = j.at("audit_seq").get<int64_t>();
  r.audit_hash = j.at("audit_hash").get<std::string>();
  r.replicas = j.at("replicas").get<std::vector<std::string>>();
  r.stream_messages_erased = j.at("stream_messages_erased").get<int64_t>();
  // Fields added later are read when present: a node of the release before sends none.
  if (j.contains("basis_id")) r.basis_id = opt_of<int64_t>(j.at("basis_id"));
  r.completion_error = j.value("completion_error", std::string());
  return r;
}

}  // namespace

vault::Bytes encode_call(const ShardCall& c) {
  const auto& b = c.basis;
  const auto& e = c.enroll;
  const auto& s = c.search;
  json j = {{"op", c.op},
            {"actor", {{"name", c.actor.name}, {"role", role_name(c.actor.role)}}},
            {"basis", {{"ref", b.subject_ref}, {"kind", basis_kind_name(b.kind)}, {"reference", b.reference},
                       {"purposes", b.purposes}, {"expires", opt(b.expires)}}},
            {"id", c.id},
            {"enroll", {{"ref", e.subject_ref}, {"basis", e.basis_id}, {"purpose", opt(e.purpose)}, {"face", e.face_index},
                        {"keep_image", e.keep_image}, {"keep_reference", opt(e.keep_reference)},
                        {"supplied_by", e.provenance.supplied_by}, {"method", e.provenance.method},
                        {"source", e.provenance.source}}},
            {"tmpl", {{"model", c.tmpl.model_id}, {"version", c.tmpl.model_version}, {"values", c.tmpl.values},
                      {"sha256", c.origin_sha256}, {"format", c.origin_format}}},
            {"subject", c.subject},
            {"reason", c.reason},
            {"include_templates", c.include_templates},
            {"search", {{"purpose", s.purpose}, {"case", s.case_ref}, {"top", s.top_k}, {"max_fmr", opt(s.max_fmr)},
                        {"mode", s.mode}, {"max_fpir", opt(s.max_fpir)}, {"allowed", opt(s.allowed_purposes)},
                        {"authorisation", opt(s.authorisation)}}},
            {"image", json::binary(c.image)},
            {"as_of", c.as_of},
            {"dry_run", c.dry_run},
            {"since", c.audit.since.value_or("")},
            {"after_seq", c.audit.after_seq},
            {"audit", {{"action", opt(c.audit.action)}, {"outcome", opt(c.audit.outcome)}, {"actor", opt(c.audit.actor)},
                       {"limit", c.audit.limit}, {"newest_first", c.audit.newest_first}, {"by_time", c.audit.by_time},
                       {"after_ts", c.audit.after_ts}, {"counts", c.audit_counts}}}};
  return cbor(j);
}

Result<ShardCall> decode_call(std::span<const uint8_t> bytes) {
  return parse<ShardCall>(bytes, "call", [](const json& j) -> Result<ShardCall> {
    ShardCall c;
    c.op = j.at("op").get<std::string>();
    c.actor.name = j.at("actor").at("name").get<std::string>();
    const auto role = parse_role(j.at("actor").at("role").get<std::string>());
    if (!role) return corrupt_data("forwarded call: unknown role");
    c.actor.role = *role;
    const auto& b = j.at("basis");
    c.basis.subject_ref = b.at("ref").get<std::string>();
    const auto kind = parse_basis_kind(b.at("kind").get<std::string>());
    if (!kind) return corrupt_data("forwarded call: unknown kind of basis");
    c.basis.kind = *kind;
    c.basis.reference = b.at("reference").get<std::string>();
    c.basis.purposes = b.at("purposes").get<std::vector<std::string>>();
    c.basis.expires = opt_of<std::string>(b.at("expires"));
    c.id = j.at("id").get<int64_t>();
    const auto& e = j.at("enroll");
    c.enroll.subject_ref = e.at("ref").get<std::string>();
    c.enroll.basis_id = e.at("basis").get<int64_t>();
    c.enroll.purpose = opt_of<std::string>(e.at("purpose"));
    c.enroll.face_index = e.at("face").get<int>();
    c.enroll.keep_image = e.at("keep_image").get<bool>();
    c.enroll.keep_reference = opt_of<bool>(e.at("keep_reference"));
    c.enroll.provenance = {e.at("supplied_by").get<std::string>(), e.at("method").get<std::string>(),
                           e.at("source").get<std::string>()};
    const auto& t = j.at("tmpl");
    c.tmpl = {t.at("model").get<std::string>(), t.at("version").get<int>(), t.at("values").get<std::vector<float>>()};
    c.origin_sha256 = t.at("sha256").get<std::string>();
    c.origin_format = t.at("format").get<std::string>();
    c.subject = j.at("subject").get<std::string>();
    c.reason = j.at("reason").get<std::string>();
    c.include_templates = j.at("include_templates").get<bool>();
    const auto& s = j.at("search");
    c.search.purpose = s.at("purpose").get<std::string>();
    c.search.case_ref = s.at("case").get<std::string>();
    c.search.top_k = s.at("top").get<int>();
    c.search.max_fmr = opt_of<double>(s.at("max_fmr"));
    c.search.mode = s.at("mode").get<std::string>();
    c.search.max_fpir = opt_of<double>(s.at("max_fpir"));
    c.search.allowed_purposes = opt_of<std::vector<std::string>>(s.at("allowed"));
    c.search.authorisation = opt_of<std::string>(s.at("authorisation"));
    const auto& img = j.at("image");
    if (!img.is_binary()) return corrupt_data("forwarded call: the image is not bytes");
    c.image = img.get_binary();
    c.as_of = j.at("as_of").get<std::string>();
    c.dry_run = j.at("dry_run").get<bool>();
    if (auto since = j.at("since").get<std::string>(); !since.empty()) c.audit.since = since;
    c.audit.after_seq = j.at("after_seq").get<int64_t>();
    // A sender of an earlier version reads the whole chain in seq order, page by page.
    if (auto a = j.find("audit"); a != j.end()) {
      c.audit.action = opt_of<std::string>(a->at("action"));
      c.audit.outcome = opt_of<std::string>(a->at("outcome"));
      c.audit.actor = opt_of<std::string>(a->at("actor"));
      c.audit.limit = a->at("limit").get<size_t>();
      c.audit.newest_first = a->at("newest_first").get<bool>();
      c.audit.by_time = a->at("by_time").get<bool>();
      c.audit.after_ts = a->at("after_ts").get<std::string>();
      c.audit_counts = a->at("counts").get<bool>();
    }
    return c;
  });
}

vault::Bytes encode_result(const BasisResult& r) {
  return cbor({{"basis_id", r.basis_id}, {"ref", r.subject_ref}, {"uid", r.subject_uid}, {"created", r.subject_created},
               {"retention_until", r.retention_until}, {"audit_hash", r.audit_hash}});
}

Result<BasisResult> decode_basis_result(std::span<const uint8_t> bytes) {
  return parse<BasisResult>(bytes, "basis result", [](const json& j) -> Result<BasisResult> {
    return BasisResult{j.at("basis_id").get<int64_t>(), j.at("ref").get<std::string>(), j.at("uid").get<std::string>(),
                       j.at("created").get<bool>(), j.at("retention_until").get<std::string>(),
                       j.at("audit_hash").get<std::string>()};
  });
}

vault::Bytes encode_result(const EnrollResult& r) {
  return cbor({{"ref", r.subject_ref}, {"uid", r.subject_uid}, {"face_id", r.face_id}, {"image_id", r.image_id},
               {"sha256", r.sha256}, {"box", box_json(r.box)}, {"face", r.face_index},
               {"retention_until", r.retention_until}, {"reference_kept", r.reference_kept}, {"audit_hash", r.audit_hash}});
}

Result<EnrollResult> decode_enroll_result(std::span<const uint8_t> bytes) {
  return parse<EnrollResult>(bytes, "enrollment result", [](const json& j) -> Result<EnrollResult> {
    EnrollResult r;
    r.subject_ref = j.at("ref").get<std::string>();
    r.subject_uid = j.at("uid").get<std::string>();
    r.face_id = j.at("face_id").get<int64_t>();
    r.image_id = j.at("image_id").get<int64_t>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.box = box_of(j.at("box"));
    r.face_index = j.at("face").get<int>();
    r.retention_until = j.at("retention_until").get<std::string>();
    r.reference_kept = j.at("reference_kept").get<bool>();
    r.audit_hash = j.at("audit_hash").get<std::string>();
    return r;
  });
}

vault::Bytes encode_result(const EraseReceipt& r) { return cbor(receipt_json(r)); }

Result<EraseReceipt> decode_erase_receipt(std::span<const uint8_t> bytes) {
  return parse<EraseReceipt>(bytes, "erasure receipt", [](const json& j) -> Result<EraseReceipt> { return receipt_of(j); });
}

vault::Bytes encode_result(const VerifyResult& r) {
  return cbor({{"ref", r.subject_ref}, {"box", box_json(r.box)}, {"similarity", r.similarity}, {"threshold", r.threshold},
               {"max_fmr", r.max_fmr}, {"fmr", opt(r.fmr)}, {"same", r.same}, {"audit_hash", r.audit_hash}});
}

Result<VerifyResult> decode_verify_result(std::span<const uint8_t> bytes) {
  return parse<VerifyResult>(bytes, "verification result", [](const json& j) -> Result<VerifyResult> {
    VerifyResult r;
    r.subject_ref = j.at("ref").get<std::string>();
    r.box = box_of(j.at("box"));
    r.similarity = j.at("similarity").get<double>();
    r.threshold = j.at("threshold").get<double>();
    r.max_fmr = j.at("max_fmr").get<double>();
    r.fmr = opt_of<double>(j.at("fmr"));
    r.same = j.at("same").get<bool>();
    r.audit_hash = j.at("audit_hash").get<std::string>();
    return r;
  });
}

vault::Bytes encode_result(const json& r) { return cbor({{"json", r}}); }

Result<json> decode_json_result(std::span<const uint8_t> bytes) {
  return parse<json>(bytes, "export", [](const json& j) -> Result<json> { return j.at("json"); });
}

vault::Bytes encode_result(const OptoutResult& r) {
  return cbor({{"uid", r.optout_uid}, {"matches", r.enrolled_match_count}, {"audit_hash", r.audit_hash}});
}

Result<OptoutResult> decode_optout_result(std::span<const uint8_t> bytes) {
  return parse<OptoutResult>(bytes, "opt-out result", [](const json& j) -> Result<OptoutResult> {
    return OptoutResult{j.at("uid").get<std::string>(), j.at("matches").get<int64_t>(), j.at("audit_hash").get<std::string>()};
  });
}

vault::Bytes encode_result(const OptoutCheck& r) {
  json ms = json::array();
  for (const auto& m : r.matches)
    ms.push_back({{"ref", m.subject_ref}, {"uid", m.subject_uid}, {"optout", m.optout_uid}, {"similarity", m.similarity}});
  return cbor({{"matches", ms}, {"threshold", r.threshold}, {"incomparable", r.incomparable_optouts}, {"audit_hash", r.audit_hash}});
}

Result<OptoutCheck> decode_optout_check(std::span<const uint8_t> bytes) {
  return parse<OptoutCheck>(bytes, "opt-out check", [](const json& j) -> Result<OptoutCheck> {
    OptoutCheck r;
    for (const auto& m : j.at("matches"))
      r.matches.push_back({m.at("ref").get<std::string>(), m.at("uid").get<std::string>(), m.at("optout").get<std::string>(),
                           m.at("similarity").get<double>()});
    r.threshold = j.at("threshold").get<double>();
    r.incomparable_optouts = j.at("incomparable").get<int64_t>();
    r.audit_hash = j.at("audit_hash").get<std::string>();
    return r;
  });
}

vault::Bytes encode_result(const CandidateOnShard& r) {
  return cbor(r ? json{{"found", true}, {"ref", r->first}, {"reference", r->second}} : json{{"found", false}});
}

Result<CandidateOnShard> decode_candidate(std::span<const uint8_t> bytes) {
  return parse<CandidateOnShard>(bytes, "candidate", [](const json& j) -> Result<CandidateOnShard> {
    if (!j.at("found").get<bool>()) return CandidateOnShard();
    return CandidateOnShard(std::make_pair(j.at("ref").get<std::string>(), j.at("reference").get<bool>()));
  });
}

vault::Bytes encode_result(const ExpireReport& r) {
  json erased = json::array();
  json lapsed = json::array(), failed = json::array();
  for (const auto& e : r.erased) erased.push_back(receipt_json(e));
  for (const auto& e : r.bases_lapsed) lapsed.push_back(receipt_json(e));
  for (const auto& [s, why] : r.failed_shards) failed.push_back({{"shard", s}, {"error", why}});
  return cbor({{"as_of", r.as_of}, {"dry_run", r.dry_run}, {"erased", erased}, {"bases_lapsed", lapsed}, {"failed", failed}});
}

Result<ExpireReport> decode_expire_report(std::span<const uint8_t> bytes) {
  return parse<ExpireReport>(bytes, "retention run", [](const json& j) -> Result<ExpireReport> {
    ExpireReport r;
    r.as_of = j.at("as_of").get<std::string>();
    r.dry_run = j.at("dry_run").get<bool>();
    for (const auto& e : j.at("erased")) r.erased.push_back(receipt_of(e));
    if (j.contains("bases_lapsed"))
      for (const auto& e : j.at("bases_lapsed")) r.bases_lapsed.push_back(receipt_of(e));
    if (j.contains("failed"))
      for (const auto& f : j.at("failed")) r.failed_shards.emplace_back(f.at("shard").get<int>(), f.at("error").get<std::string>());
    return r;
  });
}

vault::Bytes encode_result(const ShardAudit& r) {
  json entries = json::array();
  for (const auto& e : r.entries) entries.push_back(e.to_json());
  return cbor({{"entries", entries}, {"purposes", r.purposes}, {"more", r.more}, {"total", opt(r.total)},
               {"matched", opt(r.matched)}, {"selected", r.selected}});
}

Result<ShardAudit> decode_shard_audit(std::span<const uint8_t> bytes) {
  return parse<ShardAudit>(bytes, "audit chain", [](const json& j) -> Result<ShardAudit> {
    ShardAudit r;
    for (const auto& x : j.at("entries")) {
      vault::AuditEntry e;
      e.seq = x.at("seq").get<int64_t>();
      e.ts = x.at("ts").get<std::string>();
      e.actor = x.at("actor").get<std::string>();
      e.role = x.at("role").get<std::string>();
      e.action = x.at("action").get<std::string>();
      e.outcome = x.at("outcome").get<std::string>();
      e.purpose = x.at("purpose").get<std::string>();
      e.case_ref = x.at("case").get<std::string>();
      e.subjects = x.at("subjects").get<std::vector<std::string>>();
      e.details = x.at("details");
      e.prev_hash = x.at("prev_hash").get<std::string>();
      e.hash = x.at("hash").get<std::string>();
      r.entries.push_back(std::move(e));
    }
    r.purposes = j.at("purposes").get<std::vector<std::string>>();
    r.more = j.at("more").get<bool>();
    if (auto t = j.find("total"); t != j.end()) r.total = opt_of<int64_t>(*t);
    if (auto m = j.find("matched"); m != j.end()) r.matched = opt_of<int64_t>(*m);
    if (auto x = j.find("selected"); x != j.end()) r.selected = x->get<bool>();
    return r;
  });
}

ShardAudit cut_audit_page(ShardAudit whole, size_t page_bytes) {
  ShardAudit page;
  page.purposes = std::move(whole.purposes);
  page.total = whole.total;
  page.matched = whole.matched;
  page.selected = whole.selected;
  page.more = whole.more;
  size_t bytes = 0;
  for (auto& e : whole.entries) {
    if (!page.entries.empty() && bytes >= page_bytes) {
      page.more = true;
      break;
    }
    bytes += e.to_json().dump().size();
    page.entries.push_back(std::move(e));
  }
  return page;
}

vault::Bytes encode_result(const vault::AuditVerifyReport& r) {
  return cbor({{"ok", r.ok}, {"entries", r.entries}, {"head", r.head}, {"first_bad_seq", r.first_bad_seq},
               {"problem", r.problem}, {"message", r.message}, {"checkpoints", r.checkpoints},
               {"first_bad_checkpoint", r.first_bad_checkpoint}});
}

Result<vault::AuditVerifyReport> decode_verify_report(std::span<const uint8_t> bytes) {
  return parse<vault::AuditVerifyReport>(bytes, "audit verification", [](const json& j) -> Result<vault::AuditVerifyReport> {
    vault::AuditVerifyReport r;
    r.ok = j.at("ok").get<bool>();
    r.entries = j.at("entries").get<int64_t>();
    r.head = j.at("head").get<std::string>();
    r.first_bad_seq = j.at("first_bad_seq").get<int64_t>();
    r.problem = j.at("problem").get<std::string>();
    r.message = j.at("message").get<std::string>();
    r.checkpoints = j.at("checkpoints").get<int64_t>();
    r.first_bad_checkpoint = j.at("first_bad_checkpoint").get<int64_t>();
    return r;
  });
}

vault::Bytes encode_result(const ReviewImage& r) { return cbor({{"jpeg", json::binary(r.jpeg)}}); }

Result<ReviewImage> decode_review_image(std::span<const uint8_t> bytes) {
  return parse<ReviewImage>(bytes, "reference face", [](const json& j) -> Result<ReviewImage> {
    const auto& b = j.at("jpeg");
    if (!b.is_binary()) return corrupt_data("forwarded reference face: not bytes");
    return ReviewImage{b.get_binary()};
  });
}

}  // namespace fv::service
