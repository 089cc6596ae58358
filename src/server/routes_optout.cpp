// The opt-out registry: POST /v1/optout (the public form, or an officer's key) and the check
// of enrolled subjects against it.
#include "server/server_impl.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {

void add_optout_routes(Server::Impl& s) {
  s.add_public_or_key("POST", "/v1/optout", Action::kOptoutAdd, [&s](Call& c) {
    if (c.caller.is_public) {
      if (!s.opt.public_optout) throw http_error(401, "this server takes opt-outs only with an API key");
      // The public form acts for the data-protection officer's office, which receives
      // opt-out requests; the audit names the form, not a person.
      c.caller.actor = service::Actor{"public:optout-form", service::Role::kAuditor};
    }  // with a key: its role was checked at the door against the policy table (a denial audited)
    // Every text field before the photo: a malformed one must not leave a copy of it behind.
    const int face_index = int_field(form_field(c.req, "face"), "face", 0, 199, -1);
    std::vector<uint8_t> bytes = s.image_part(c.req, "image");
    auto r = value_or_throw(s.photo_use_case("optout", [&](service::Api& svc) {
      return svc.optout_add(c.caller.who(), std::move(bytes), face_index);
    }));
    json j = {{"recorded", true}};
    if (c.caller.is_public) {
      // Whether someone is enrolled is not told to whoever holds their photo.
      j["optout"] = r.optout_uid;
      j["message"] = "Your opt-out is recorded: only an encrypted template of your face is kept, and no enrollment "
                     "that matches it will be accepted. Keep this reference: " + r.optout_uid;
    } else {
      j.update(service::render::optout(r));  // the number of matches only: who they are is for optout_check
    }
    reply(c.res, 201, j);
  });

  s.add("GET", "/v1/optout/check", Action::kOptoutCheck, [&s](Call& c) {
    auto r = value_or_throw(s.svc->optout_check(c.caller.who()));
    reply(c.res, 200, service::render::optout_check(r));
  });
}

}  // namespace fv::server
