// GET /healthz, /metrics, /v1/openapi.json (public) and /v1/whoami (any key, audited as sign_in).
#include "server/server_impl.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {

void add_meta_routes(Server::Impl& s) {
  s.add("GET", "/healthz", Action::kHealth, [&s](Call& c) {
    const bool ok = s.svc->health().is_ok();
    reply(c.res, ok ? 200 : 503,
          {{"status", ok ? "ok" : "unavailable"}, {"version", "0.1.0"},
           {"pipelines", s.pipelines}, {"tls", !s.opt.tls_cert.empty()}});
  });

  s.add("GET", "/metrics", Action::kMetrics, [&s](Call& c) {
    std::vector<std::tuple<std::string, std::string, double>> gauges, counters;
    const service::ServiceStats st = s.svc->stats();
    if (st.templates)
      gauges.emplace_back("facevault_gallery_templates", "Templates enrolled in the vault.", static_cast<double>(*st.templates));
    if (st.subjects) gauges.emplace_back("facevault_subjects", "Subjects in the vault.", static_cast<double>(*st.subjects));
    gauges.emplace_back("facevault_face_pipelines", "Face pipelines serving requests concurrently.",
                        static_cast<double>(st.pipelines));
    counters.emplace_back("facevault_audit_write_failures_total",
                          "Use cases failed because their audit entry could not be written.",
                          static_cast<double>(st.audit_write_failures));
    c.res.status = 200;
    c.res.set_content(s.metrics.render(gauges, counters), "text/plain; version=0.0.4");
  });

  s.add("GET", "/v1/openapi.json", Action::kOpenApi, [&s](Call& c) {
    c.res.status = 200;
    c.res.set_content(s.openapi, "application/json");
  });

  s.add("GET", "/v1/whoami", Action::kSignIn, [&s](Call& c) {
    value_or_throw(s.svc->record_event(c.caller.who(), Action::kSignIn, {{"key", c.caller.key->id}}));
    reply(c.res, 200, {{"key", c.caller.key->to_json()}, {"actor", c.caller.who().name}});
  });
}

}  // namespace fv::server
