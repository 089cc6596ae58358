// The JSON of review cases and decisions (the contract the HTTP API, the CLI's --json and the
// web UI share). A candidate's "decisions" is absent, not empty, when the caller may not see
// them yet (independent review): "decisions_recorded" still says how many there are.
#include <cmath>

#include "service/render.h"

using nlohmann::json;

namespace fv::service::render {
namespace {

json optional_text(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
double rounded(double v) { return std::round(v * 1e4) / 1e4; }  // similarities: 4 decimals, as in search results

std::string how_many(int n) {
  static const char* const kWords[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
  return n >= 0 && n < 10 ? kWords[n] : std::to_string(n);
}

}  // namespace

json review_decision(const ReviewDecision& d) {
  json j = {{"candidate", d.candidate_id},
            {"reviewer", d.reviewer},
            {"reviewer_role", d.reviewer_role},
            {"decision", d.decision},
            {"reason", d.reason},
            {"decided_at", d.decided_at},
            {"reference_available", d.reference_available}};
  if (!d.audit_hash.empty()) j["audit_hash"] = d.audit_hash;
  return j;
}

json review_case(const ReviewCase& c, int reviewers_required) {
  json candidates = json::array();
  int confirmed = 0;
  for (const auto& k : c.candidates) {
    const bool is_confirmed = k.status == "confirmed";
    confirmed += is_confirmed;
    json j = {{"id", k.id},
              {"face_index", k.face_index},
              {"rank", k.rank},
              {"subject", k.subject_ref.empty() ? json(nullptr) : json(k.subject_ref)},
              {"subject_uid", k.subject_uid},
              {"similarity", rounded(k.similarity)},
              {"fmr", optional_number(k.fmr)},
              {"fpir", optional_number(k.fpir)},
              {"status", k.status},
              {"confirmed", is_confirmed},
              {"decisions_recorded", k.decisions_recorded},
              {"reference_available", k.reference_available},
              {"decided_by_caller", k.decided_by_caller}};
    if (k.decisions) {
      json ds = json::array();
      for (const auto& d : *k.decisions) ds.push_back(review_decision(d));
      j["decisions"] = ds;
    }
    candidates.push_back(j);
  }
  std::string notice = "review case " + c.id + ": candidates are not identifications until confirmed by " +
                       how_many(reviewers_required) + " reviewers";
  if (confirmed > 0)
    notice += "; " + std::to_string(confirmed) + " candidate" + (confirmed == 1 ? " is" : "s are") +
              " confirmed by the reviewers, every other one is a candidate only";
  if (c.unusable) notice += "; its results may not be used: " + *c.unusable;
  json probe_faces = json::array();
  for (int f : c.probe_faces) probe_faces.push_back(f);
  return {{"id", c.id},
          {"opened_at", c.opened_at},
          {"searcher", c.searcher},
          {"purpose", c.purpose},
          {"case", c.case_ref},
          {"mode", c.mode},
          {"probe_sha256", c.probe_sha256},
          {"status", c.status},
          {"closed_at", optional_text(c.closed_at)},
          {"authorisation", optional_text(c.authorisation)},
          {"unusable", optional_text(c.unusable)},
          {"search_audit_seq", c.search_audit_seq},
          {"reviewers_required", reviewers_required},
          {"probe_faces", probe_faces},
          {"candidates", candidates},
          {"notice", notice}};
}

}  // namespace fv::service::render
