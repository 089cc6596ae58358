// facevault report: the transparency report (EU AI Act Art 26(6), (10)) — per purpose, counts
// of searches, candidates shown, review decisions, denials, authorisations cited and lapsed;
// in total, enrolments, erasures by cause, opt-outs and access exports. Counts only: no
// subject id or reference. The service builds it from the audit log (and audits the request);
// --format json prints what GET /v1/report answers, --format html the same page.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/vault_common.h"
#include "service/render.h"

using nlohmann::json;

namespace fv::cli {
namespace {

int64_t count(const json& j, const char* k) { return j.is_object() ? j.value(k, int64_t{0}) : 0; }

std::string report_text(const json& r) {
  std::ostringstream out;
  out << "transparency report " << r.value("from", "") << " → " << r.value("to", "") << " (generated "
      << r.value("generated_at", "") << "): counts from the audit log, no personal data\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %9s %11s %8s %7s %13s %8s %9s %11s %12s\n", "purpose", "searches",
                "candidates", "confirm", "reject", "inconclusive", "denials", "refusals", "auth cited", "auth lapsed");
  out << line;
  auto row = [&](const std::string& name, const json& p) {
    const json d = p.value("decisions", json::object());
    std::snprintf(line, sizeof line, "%-24s %9lld %11lld %8lld %7lld %13lld %8lld %9lld %11lld %12lld\n", name.c_str(),
                  static_cast<long long>(count(p, "searches")), static_cast<long long>(count(p, "candidates_shown")),
                  static_cast<long long>(count(d, "confirm")), static_cast<long long>(count(d, "reject")),
                  static_cast<long long>(count(d, "inconclusive")), static_cast<long long>(count(p, "denials")),
                  static_cast<long long>(count(p, "refusals")), static_cast<long long>(count(p, "authorisations_cited")),
                  static_cast<long long>(count(p, "authorisations_lapsed")));
    out << line;
  };
  // The operator's purposes first, then "(other)" and "(none)" (denials without a purpose).
  const json per_purpose = r.value("per_purpose", json::object());  // a local: items() does not keep it alive
  for (const bool grouped : {false, true})
    for (const auto& [purpose, p] : per_purpose.items())
      if ((purpose == "(other)" || purpose == "(none)") == grouped) row(purpose, p);
  const json t = r.value("totals", json::object());
  row("(all purposes)", t);
  const json e = t.value("erasures", json::object());
  out << "enrolments " << count(t, "enrolments") << "; erasures: " << count(e, "request") << " on request, "
      << count(e, "withdrawal") << " on withdrawal, " << count(e, "retention") << " at the end of retention; opt-outs "
      << count(t, "optouts") << "; access exports " << count(t, "access_exports") << "\n";
  return out.str();
}

}  // namespace

void add_report_command(CLI::App& app, int& exit_code) {
  struct A { std::string from, to, format, output; VaultOptions c; };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("report", "the transparency report: per purpose, counts of searches, candidates, decisions, "
                                           "denials, authorisations; enrolments, erasures, opt-outs, exports (no personal data)");
  cmd->add_option("--from", a->from, "first day (YYYY-MM-DD) or timestamp, UTC")->required();
  cmd->add_option("--to", a->to, "last day (YYYY-MM-DD, included) or timestamp, UTC")->required();
  cmd->add_option("--format", a->format, "text (default), json (as GET /v1/report) or html (a page with a chart)")
      ->check(CLI::IsMember({"text", "json", "html"}));
  cmd->add_option("--output", a->output, "write the report to FILE instead of stdout");
  add_vault_options(cmd, a->c);
  set_examples(cmd, {"facevault report --from 2025-01-01 --to 2025-12-31 --role auditor",
                     "facevault report --from 2025-01-01 --to 2025-12-31 --format html --output report.html --role auditor"});
  cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
    std::string format = a->format.empty() ? (a->c.json ? "json" : "text") : a->format;
    if (a->c.json && format != "json") return invalid_argument("--json prints the JSON report: it cannot go with --format " + format);
    FV_ASSIGN_OR_RETURN(auto report, svc.transparency_report(actor, a->from, a->to));
    std::string body = format == "html"   ? service::render::report_html(report)
                       : format == "json" ? report.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"
                                          : report_text(report);
    if (a->output.empty()) {
      std::fwrite(body.data(), 1, body.size(), stdout);
      return Status::ok();
    }
    std::ofstream out(a->output, std::ios::binary | std::ios::trunc);
    if (!out) return io_error("cannot write " + a->output);
    out << body;
    out.close();
    if (!out) return io_error("cannot write " + a->output);
    if (!a->c.json) std::fprintf(stderr, "report (%s) written to %s\n", format.c_str(), a->output.c_str());
    return Status::ok();
  }));
}

}  // namespace fv::cli
