// The audit log (filtered pages, chain verification), the retention run and the scheduler's
// last run.
#include "server/server_impl.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

std::optional<std::string> query(const httplib::Request& req, const char* name) {
  std::string v = req.get_param_value(name);
  if (v.empty()) return std::nullopt;
  return v;
}

}  // namespace

void add_audit_routes(Server::Impl& s) {
  s.add("POST", "/v1/retention/run", Action::kExpire, [&s](Call& c) {
    json j = s.json_body(c.req, true);
    std::optional<std::string> as_of;
    if (auto a = json_string(j, "as_of", false); !a.empty()) as_of = a;
    bool dry = false;
    if (j.contains("dry_run")) {
      if (!j["dry_run"].is_boolean()) throw http_error(400, "field 'dry_run' must be true or false");
      dry = j["dry_run"].get<bool>();
    }
    auto r = value_or_throw(s.svc->expire(c.caller.who(), as_of, dry));
    reply(c.res, 200, service::render::expire_report(r));
  });

  // What the scheduler did last (retention_scheduler.h): its schedule, counts, and the last
  // successful run's report with one receipt per erased subject. The same receipts are in the
  // audit log (an `expire` entry per run, an `erase` entry per subject, actor
  // "scheduler:retention"); this is a copy kept in memory, lost when the server stops.
  s.add("GET", "/v1/retention/last", Action::kExpire, [&s](Call& c) {
    reply(c.res, 200, s.retention->state().to_json());
  });

  s.add("GET", "/v1/audit", Action::kAuditShow, [&s](Call& c) {
    service::AuditFilter f;
    f.since = query(c.req, "since");
    f.subject = query(c.req, "subject");
    f.action = query(c.req, "action");
    f.outcome = query(c.req, "outcome");
    f.actor = query(c.req, "actor");
    f.limit = static_cast<size_t>(int_field(c.req.get_param_value("limit"), "limit", 1, 10000, 200));
    f.newest_first = true;
    auto page = value_or_throw(s.svc->audit_show(c.caller.who(), f));
    reply(c.res, 200, service::render::audit_page(page));
  });

  s.add("GET", "/v1/audit/verify", Action::kAuditVerify, [&s](Call& c) {
    auto r = value_or_throw(s.svc->audit_verify(c.caller.who()));
    reply(c.res, 200, r.to_json());
  });
}

}  // namespace fv::server
