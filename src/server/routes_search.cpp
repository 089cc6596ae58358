// Photos against the vault or each other: 1:N search, 1:1 verification (two photos, or a photo
// against an enrolled subject) and detection. Every photo goes to the service, which analyzes
// it on its pipeline pool, wipes it and audits the call; the server only reads the form.
#include "server/server_impl.h"
#include "service/photo.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

// Purpose, case and authorisation: the search policy's inputs from a form.
service::SearchRequest search_request(const Call& c, const char* fmr_field, double fmr_lo, double fmr_hi) {
  service::SearchRequest sr;
  sr.purpose = form_field(c.req, "purpose");
  sr.case_ref = form_field(c.req, "case");
  sr.max_fmr = double_field(form_field(c.req, fmr_field), fmr_field, fmr_lo, fmr_hi);
  // The authorisation the search cites ("au_…"); whether the purpose needs one, and whether
  // this one covers it, is the service's rule (422 when required and missing or not usable).
  if (auto au = form_field(c.req, "authorisation"); !au.empty()) sr.authorisation = au;
  // The key's purpose scope, for a search and a verification against a subject alike: the
  // service refuses a purpose outside it (403, audited "denied").
  sr.allowed_purposes = c.caller.key->purposes;
  return sr;
}

}  // namespace

void add_search_routes(Server::Impl& s) {
  s.add("POST", "/v1/search", Action::kSearch, [&s](Call& c) {
    require_multipart(c.req);
    service::SearchRequest sr = search_request(c, "max_fmr", 1e-9, 1.0);
    sr.top_k = int_field(form_field(c.req, "top"), "top", 1, 1000, 0);
    sr.allow_partial = flag_field(form_field(c.req, "partial"), "partial");
    if (sr.purpose.empty() || sr.case_ref.empty()) {
      // The service refuses (and audits) a search without purpose or case before any work.
      auto r = s.svc->search(c.caller.who(), sr, {});
      throw r.is_ok() ? http_error(400, "a search needs a purpose and a case reference") : from_status(r.status());
    }
    std::vector<uint8_t> bytes = s.image_part(c.req, "image");
    auto r = value_or_throw(s.photo_use_case("search", [&](service::Api& svc) {
      return svc.search(c.caller.who(), sr, std::move(bytes));
    }));
    reply(c.res, 200, service::render::search(r));
  });

  s.add("POST", "/v1/verify", Action::kVerify, [&s](Call& c) {
    require_multipart(c.req);
    if (c.req.has_file("subject")) {
      // Photo against an enrolled subject: the service's 1:1 use case under search policy
      // (investigator or admin, purpose, case; only templates whose basis covers the purpose).
      service::SearchRequest sr = search_request(c, "fmr", 1e-7, 0.5);
      const std::string subject = form_field(c.req, "subject");
      std::vector<uint8_t> a = s.image_part(c.req, "a");
      auto v = value_or_throw(s.photo_use_case("verify_subject", [&](service::Api& svc) {
        return svc.verify_subject(c.caller.who(), sr, subject, std::move(a));
      }));
      reply(c.res, 200, service::render::verify_subject(v));
      return;
    }
    const double fmr = double_field(form_field(c.req, "fmr"), "fmr", 1e-7, 0.5).value_or(1e-4);
    // liveness=1: photo a is the probe presented live and is checked for a presentation attack.
    const bool liveness = flag_field(form_field(c.req, "liveness"), "liveness");
    // Photo a is held as an Upload while b is read: a refused b must not leave a behind.
    service::Upload a(s.image_part(c.req, "a"), s.on_wipe());
    std::vector<uint8_t> b = s.image_part(c.req, "b");
    auto v = value_or_throw(s.photo_use_case("verify", [&](service::Api& svc) {
      return svc.verify_photos(c.caller.who(), a.release(), std::move(b), fmr, liveness);
    }));
    reply(c.res, 200, service::render::verify_photos(v));
  });

  s.add("POST", "/v1/detect", Action::kDetect, [&s](Call& c) {
    std::vector<uint8_t> bytes = s.image_part(c.req, "image");
    auto d = value_or_throw(s.photo_use_case("detect", [&](service::Api& svc) {
      return svc.detect(c.caller.who(), std::move(bytes));
    }));
    reply(c.res, 200, service::render::detection(d));
  });
}

}  // namespace fv::server
