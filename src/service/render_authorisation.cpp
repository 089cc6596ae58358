// The JSON of authorisations and of the oversight sweep (lapsed authorisations, aged-out probe crops).
#include "service/render.h"

namespace fv::service::render {

using nlohmann::json;

namespace {
json opt(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }
}  // namespace

json authorisation(const Authorisation& a) {
  json j = {{"id", a.id},
            {"authority", a.authority},
            {"reference", a.reference},
            {"purposes", a.purposes},
            {"valid_from", a.valid_from},
            {"valid_until", a.valid_until},
            {"status", a.status},
            {"requested_at", a.requested_at},
            {"deadline", opt(a.deadline)},
            {"decided_at", opt(a.decided_at)},
            {"decided_by", opt(a.decided_by)},
            {"recorded_by", a.recorded_by},
            {"note", a.note},
            {"cases_citing", a.cases_citing}};
  if (!a.audit_hash.empty()) j["audit_hash"] = a.audit_hash;
  return j;
}

json lapse_report(const LapseReport& r) {
  return {{"authorisations_lapsed", r.lapsed},
          {"cases_marked_unusable", r.cases_marked_unusable},
          {"probe_crops_destroyed", r.probe_crops_destroyed}};
}

}  // namespace fv::service::render
