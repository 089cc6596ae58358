// Authorisations of searches (EU AI Act Art 26(10)): the record a search must cite when its
// purpose is in the vault's oversight.authorisation_required — issuing authority, reference,
// purposes, validity, granted or pending with a deadline. Validation of dates, purposes and
// state changes is the service's; the routes read the JSON and render the record.
#include "server/server_impl.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

service::AuthorisationRequest authorisation_request(const json& j) {
  service::AuthorisationRequest r;
  r.authority = json_string(j, "authority", true);
  r.reference = json_string(j, "reference", true);
  r.purposes = json_strings(j, "purposes");
  r.valid_from = json_string(j, "valid_from", true);
  r.valid_until = json_string(j, "valid_until", true);
  if (j.contains("pending") && !j["pending"].is_null()) {
    if (!j["pending"].is_boolean()) throw http_error(400, "field 'pending' must be true or false");
    r.pending = j["pending"].get<bool>();
  }
  if (auto d = json_string(j, "deadline", false); !d.empty()) r.deadline = d;
  r.note = json_string(j, "note", false);
  return r;
}

}  // namespace

void add_authorisation_routes(Server::Impl& s) {
  s.add("GET", "/v1/authorisations", Action::kAuthorisationRead, [&s](Call& c) {
    auto list = value_or_throw(s.svc->authorisation_list(c.caller.who()));
    json out = json::array();
    for (const auto& a : list) out.push_back(service::render::authorisation(a));
    reply(c.res, 200, {{"authorisations", out}});
  });

  s.add("POST", "/v1/authorisations", Action::kAuthorisationManage, [&s](Call& c) {
    const service::AuthorisationRequest req = authorisation_request(s.json_body(c.req));
    auto a = value_or_throw(s.svc->authorisation_add(c.caller.who(), req));
    reply(c.res, 201, service::render::authorisation(a));
  });

  s.add("POST", "/v1/authorisations/{id}/grant", Action::kAuthorisationManage, [&s](Call& c) {
    const std::string id = c.req.matches[1];
    const std::string note = json_string(s.json_body(c.req, true), "note", false);
    auto a = value_or_throw(s.svc->authorisation_grant(c.caller.who(), id, note));
    reply(c.res, 200, service::render::authorisation(a));
  });

  s.add("POST", "/v1/authorisations/{id}/refuse", Action::kAuthorisationManage, [&s](Call& c) {
    const std::string id = c.req.matches[1];
    const std::string note = json_string(s.json_body(c.req, true), "note", false);
    auto a = value_or_throw(s.svc->authorisation_refuse(c.caller.who(), id, note));
    reply(c.res, 200, service::render::authorisation(a));
  });
}

}  // namespace fv::server
