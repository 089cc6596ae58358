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
    gauges.emplace_back("facevault_gallery_templates_in_memory",
                        "Templates loaded into the in-memory search index (0 until warmed up or first searched).",
                        static_cast<double>(st.templates_in_memory));
    gauges.emplace_back("facevault_face_pipelines", "Face pipelines serving requests concurrently.",
                        static_cast<double>(st.pipelines));
    counters.emplace_back("facevault_audit_write_failures_total",
                          "Use cases failed because their audit entry could not be written.",
                          static_cast<double>(st.audit_write_failures));
    // Retention that runs itself (retention_scheduler.h).
    const RetentionState rs = s.retention->state();
    gauges.emplace_back("facevault_retention_interval_seconds", "Seconds between scheduled retention runs (0: disabled).",
                        static_cast<double>(rs.interval.count()));
    if (rs.last_run_unix)
      gauges.emplace_back("facevault_retention_last_run_timestamp_seconds",
                          "When the last scheduled retention run ended (Unix time), successful or not.", *rs.last_run_unix);
    if (rs.last_success_unix)
      gauges.emplace_back("facevault_retention_last_success_timestamp_seconds",
                          "When the last successful scheduled retention run ended (Unix time).", *rs.last_success_unix);
    gauges.emplace_back("facevault_retention_last_run_erased", "Subjects erased by the last successful scheduled retention run.",
                        static_cast<double>(rs.last_erased));
    counters.emplace_back("facevault_retention_runs_total", "Scheduled retention runs.", static_cast<double>(rs.runs));
    counters.emplace_back("facevault_retention_failures_total", "Scheduled retention runs that failed (retried at the next run).",
                          static_cast<double>(rs.failures));
    // Cluster mode: how far each replica this node hosts is behind its stream.
    std::vector<Metrics::Family> labeled;
    if (!st.replication.empty()) {
      Metrics::Family applied{"facevault_replica_applied_sequence",
                              "Cluster mode: the last stream sequence this node's vault applied, per hosted stream.", {}};
      Metrics::Family lag{"facevault_replica_lag_messages",
                          "Cluster mode: messages of the stream this node has not applied yet, per hosted stream.", {}};
      for (const auto& p : st.replication) {
        const std::string labels = "stream=\"" + p.stream + "\"";
        std::get<2>(applied).emplace_back(labels, static_cast<double>(p.applied));
        if (p.last) std::get<2>(lag).emplace_back(labels, static_cast<double>(*p.last > p.applied ? *p.last - p.applied : 0));
      }
      labeled = {std::move(applied), std::move(lag)};
    }
    c.res.status = 200;
    c.res.set_content(s.metrics.render(gauges, counters, labeled), "text/plain; version=0.0.4");
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
