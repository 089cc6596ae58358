#include "service/shard_search_wire.h"

#include <nlohmann/json.hpp>

namespace fv::service {

namespace {

using nlohmann::json;

vault::Bytes bytes_of(const json& j) {
  const std::string s = j.dump();
  return vault::Bytes(s.begin(), s.end());
}

// Parses without exceptions escaping: kCorruptData naming what did not parse.
Result<json> parse(std::span<const uint8_t> bytes, const char* what) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt_data(std::string("shard search ") + what + ": not a JSON object");
  return j;
}

template <typename T>
bool get(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  out = it->get<T>();
  return true;
}

json candidate_json(const Candidate& c) {
  json j = {{"ref", c.subject_ref}, {"uid", c.subject_uid}, {"similarity", c.similarity}};
  if (c.fmr) j["fmr"] = *c.fmr;
  if (c.fpir) j["fpir"] = *c.fpir;
  return j;
}

}  // namespace

vault::Bytes encode_search_request(const std::string& purpose, const SearchPlan& plan,
                                   const std::vector<const face::FaceTemplate*>& probes) {
  json ps = json::array();
  for (const auto* p : probes)
    if (p) ps.push_back({{"model", p->model_id}, {"version", p->model_version}, {"values", p->values}});
  return bytes_of({{"op", "search"},
                   {"purpose", purpose},
                   {"threshold", plan.threshold},
                   {"templates", plan.templates},
                   {"top", plan.top},
                   {"probes", ps}});
}

Result<ShardSearchRequest> decode_shard_request(std::span<const uint8_t> bytes) {
  FV_ASSIGN_OR_RETURN(json j, parse(bytes, "request"));
  ShardSearchRequest r;
  std::string op;
  if (!get(j, "op", op) || !get(j, "purpose", r.purpose)) return corrupt_data("shard search request: no op or purpose");
  if (op != "search") return corrupt_data("shard search request: unknown op '" + op + "'");
  int64_t top = 0;
  if (!get(j, "threshold", r.plan.threshold) || !get(j, "templates", r.plan.templates) || !get(j, "top", top) ||
      top < 0 || !j.contains("probes") || !j["probes"].is_array())
    return corrupt_data("shard search request: an incomplete search");
  r.plan.top = static_cast<size_t>(top);
  for (const auto& p : j["probes"]) {
    face::FaceTemplate t;
    int64_t version = 0;
    if (!p.is_object() || !get(p, "model", t.model_id) || !get(p, "version", version) || !p.contains("values") ||
        !p["values"].is_array() || p["values"].empty())
      return corrupt_data("shard search request: a malformed probe template");
    t.model_version = static_cast<int>(version);
    for (const auto& v : p["values"]) {
      if (!v.is_number()) return corrupt_data("shard search request: a probe value is not a number");
      t.values.push_back(v.get<float>());
    }
    r.probes.push_back(std::move(t));
  }
  return r;
}

vault::Bytes encode_shard_answer(const ShardAnswer& a) {
  json fs = json::array();
  for (const auto& cands : a.faces) {
    json cs = json::array();
    for (const auto& c : cands) cs.push_back(candidate_json(c));
    fs.push_back(std::move(cs));
  }
  return bytes_of({{"subjects", a.count.subjects}, {"templates", a.count.templates}, {"faces", fs},
                   {"searched_seq", a.searched_seq}});
}

Result<ShardAnswer> decode_shard_answer(std::span<const uint8_t> bytes, size_t probes) {
  FV_ASSIGN_OR_RETURN(json j, parse(bytes, "reply"));
  ShardAnswer a;
  if (!get(j, "subjects", a.count.subjects) || !get(j, "templates", a.count.templates) || a.count.subjects < 0 ||
      a.count.templates < 0)
    return corrupt_data("shard search reply: no subjects or templates");
  if (!j.contains("faces") || !j["faces"].is_array() || j["faces"].size() != probes)
    return corrupt_data("shard search reply: not one candidate list per probe");
  if (j.contains("searched_seq") && (!get(j, "searched_seq", a.searched_seq) || a.searched_seq < 0))
    return corrupt_data("shard search reply: a malformed searched_seq");
  for (const auto& cs : j["faces"]) {
    if (!cs.is_array()) return corrupt_data("shard search reply: a candidate list is not a list");
    std::vector<Candidate> list;
    for (const auto& c : cs) {
      Candidate x;
      if (!c.is_object() || !get(c, "ref", x.subject_ref) || !get(c, "uid", x.subject_uid) ||
          !get(c, "similarity", x.similarity))
        return corrupt_data("shard search reply: a malformed candidate");
      double v = 0;
      if (get(c, "fmr", v)) x.fmr = v;
      if (get(c, "fpir", v)) x.fpir = v;
      list.push_back(std::move(x));
    }
    a.faces.push_back(std::move(list));
  }
  return a;
}

}  // namespace fv::service
