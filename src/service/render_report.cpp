// The transparency report (Service::transparency_report) as one standalone HTML page: the
// period, the totals, then per purpose a bar chart (inline SVG) and its table, and what each
// count means. No script and no external resource (the page's own Content-Security-Policy
// forbids both), every text escaped, one column that reads at phone width: an operator can
// publish the file as it is, or the web UI can show it.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "common/html.h"
#include "service/render.h"

using nlohmann::json;

namespace fv::service::render {
namespace {

std::string esc(const std::string& s) { return html_escape(s); }

// The report is built by the service, but this page must not throw on anything it is given.
int64_t num(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number()) return static_cast<int64_t>(it->get<double>());
  return 0;
}
const json& sub(const json& j, const char* key) {
  static const json empty = json::object();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : empty;
}
std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// "2026-03-10T00:00:00.000Z" → "2026-03-10 00:00 UTC" (seconds when not zero).
std::string when(const std::string& ts) {
  if (ts.size() != 24 || ts[10] != 'T' || ts[23] != 'Z') return ts;
  std::string out = ts.substr(0, 10) + " " + ts.substr(11, 5);
  if (ts.substr(16, 7) != ":00.000") out += ts.substr(16, 7);
  return out + " UTC";
}

std::string purpose_label(const std::string& p) {
  if (p == "(none)") return "No purpose given";
  if (p == "(other)") return "Other purposes (named by no lawful basis)";
  return p;
}

struct Metric {
  const char* label;
  const char* colour;
  int64_t value;
};

// The bars of one purpose; `scale_max` is shared by every chart so that bars compare.
std::vector<Metric> chart_metrics(const json& c) {
  const json& d = sub(c, "decisions");
  return {{"Searches", "#2b6cb0", num(c, "searches")},
          {"Candidates shown", "#6b46c1", num(c, "candidates_shown")},
          {"Confirmed", "#2f855a", num(d, "confirm")},
          {"Rejected", "#c53030", num(d, "reject")},
          {"Inconclusive", "#975a16", num(d, "inconclusive")},
          {"Denials", "#4a5568", num(c, "denials")},
          {"Refusals", "#718096", num(c, "refusals")}};
}

std::string chart(const std::string& purpose, const json& c, int64_t scale_max, int id) {
  const auto metrics = chart_metrics(c);
  constexpr int kWidth = 340, kLabel = 124, kBarMax = 166, kRow = 24, kBar = 15, kTop = 4;
  const int height = kTop * 2 + kRow * static_cast<int>(metrics.size());
  const std::string title_id = "chart-" + std::to_string(id);
  std::string svg = "<svg class=\"chart\" viewBox=\"0 0 " + std::to_string(kWidth) + " " + std::to_string(height) +
                    "\" role=\"img\" aria-labelledby=\"" + title_id + "\">";
  svg += "<title id=\"" + title_id + "\">" + esc(purpose_label(purpose)) + ": ";
  for (size_t i = 0; i < metrics.size(); ++i)
    svg += std::string(i ? ", " : "") + metrics[i].label + " " + std::to_string(metrics[i].value);
  svg += "</title>";
  for (size_t i = 0; i < metrics.size(); ++i) {
    const Metric& m = metrics[i];
    const int y = kTop + kRow * static_cast<int>(i);
    const double w = scale_max > 0 ? static_cast<double>(kBarMax) * static_cast<double>(m.value) / scale_max : 0;
    char bar[256];
    std::snprintf(bar, sizeof bar, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" rx=\"2\" fill=\"%s\"/>",
                  kLabel, y + (kRow - kBar) / 2, std::max(w, m.value > 0 ? 1.5 : 0.0), kBar, m.colour);
    svg += "<text x=\"" + std::to_string(kLabel - 6) + "\" y=\"" + std::to_string(y + kRow / 2 + 4) +
           "\" text-anchor=\"end\">" + m.label + "</text>";
    svg += bar;
    char value[160];
    std::snprintf(value, sizeof value, "<text x=\"%.1f\" y=\"%d\" class=\"v\">%lld</text>", kLabel + w + 5,
                  y + kRow / 2 + 4, static_cast<long long>(m.value));
    svg += value;
  }
  return svg + "</svg>";
}

std::string row(const std::string& label, int64_t value, const char* cls = nullptr) {
  return std::string("<tr") + (cls ? std::string(" class=\"") + cls + "\"" : "") + "><th scope=\"row\">" + label +
         "</th><td>" + std::to_string(value) + "</td></tr>";
}

// The rows every purpose has (and the totals too).
std::string purpose_rows(const json& c) {
  const json& d = sub(c, "decisions");
  return row("Searches", num(c, "searches")) + row("Candidates shown", num(c, "candidates_shown")) +
         row("Review decisions: confirmed", num(d, "confirm")) + row("Review decisions: rejected", num(d, "reject")) +
         row("Review decisions: inconclusive", num(d, "inconclusive")) + row("Denials", num(c, "denials")) +
         row("Refusals", num(c, "refusals")) + row("Searches citing an authorisation", num(c, "authorisations_cited")) +
         row("Authorisations lapsed", num(c, "authorisations_lapsed"));
}

std::string table(const std::string& caption, const std::string& rows) {
  return "<table><caption>" + caption + "</caption><thead><tr><th scope=\"col\">What</th><th scope=\"col\">Count</th>"
         "</tr></thead><tbody>" + rows + "</tbody></table>";
}

constexpr const char* kStyle = R"(
:root{color-scheme:light;--ink:#1a202c;--muted:#4a5568;--line:#cbd5e0}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fff}
main{max-width:44rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:2px solid var(--line);padding-bottom:.25rem}
h3{font-size:1.1rem;margin:1.5rem 0 .25rem;overflow-wrap:anywhere}
p{margin:.5rem 0}
.period{font-size:1.05rem}
.note{color:var(--muted)}
table{width:100%;border-collapse:collapse;margin:.5rem 0 1rem}
caption{text-align:left;font-weight:600;padding:.25rem 0;color:var(--muted)}
th,td{padding:.35rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
thead th{border-bottom:2px solid var(--line)}
tbody th{font-weight:400}
thead th:last-child{text-align:right}
tr.group th{padding-top:.75rem}
.chart{display:block;width:100%;max-width:26rem;height:auto;margin:.25rem 0}
.chart text{font-size:13px;fill:var(--ink)}
.chart text.v{font-variant-numeric:tabular-nums}
dl{margin:.5rem 0}dt{font-weight:600;margin-top:.5rem}dd{margin:0 0 0 1rem;color:var(--muted)}
@media print{main{max-width:none}h2{break-after:avoid}section{break-inside:avoid}}
)";

}  // namespace

std::string report_html(const json& report) {
  const std::string from = when(str(report, "from")), to = when(str(report, "to"));
  const json& per = sub(report, "per_purpose");
  const json& totals = sub(report, "totals");

  // Purposes the operator named first (alphabetically), then "(other)", then "(none)".
  std::vector<std::string> purposes;
  for (auto& [p, c] : per.items()) purposes.push_back(p);
  auto rank = [](const std::string& p) { return p == "(none)" ? 2 : p == "(other)" ? 1 : 0; };
  std::stable_sort(purposes.begin(), purposes.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  int64_t scale_max = 0;
  for (auto& p : purposes)
    for (auto& m : chart_metrics(per[p])) scale_max = std::max(scale_max, m.value);

  std::string h;
  h += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
       "<title>Transparency report, " + esc(from) + " to " + esc(to) + "</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n<main>\n";
  h += "<h1>Transparency report</h1>\n";
  h += "<p class=\"period\">Period: from <time>" + esc(from) + "</time> up to <time>" + esc(to) +
       "</time> (the end excluded).</p>\n";
  h += "<p class=\"note\">Generated " + esc(when(str(report, "generated_at"))) +
       ". Every number counts entries of the vault's audit log in this period; the report names no person, "
       "subject, reference or case. Candidates shown are suggestions for human review, not identifications: "
       "a candidate is confirmed only when the required number of reviewers (at least two) confirm it.</p>\n";

  h += "<h2>Totals</h2>\n";
  const json& erasures = sub(totals, "erasures");
  h += table("Searches and review, all purposes", purpose_rows(totals));
  h += table("Records",
             row("Enrolments", num(totals, "enrolments")) + row("Erasures on request", num(erasures, "request")) +
                 row("Erasures by withdrawal of a lawful basis", num(erasures, "withdrawal")) +
                 row("Erasures at the end of retention", num(erasures, "retention")) +
                 row("Opt-outs registered", num(totals, "optouts")) +
                 row("Access exports", num(totals, "access_exports")));

  h += "<h2>By purpose</h2>\n";
  if (purposes.empty()) {
    h += "<p>No search, review decision, denial or authorisation in this period.</p>\n";
  } else {
    h += "<p class=\"note\">The bars of every purpose share one scale.</p>\n";
    int id = 0;
    for (auto& p : purposes) {
      h += "<section>\n<h3>" + esc(purpose_label(p)) + "</h3>\n";
      h += chart(p, per[p], scale_max, ++id) + "\n";
      h += table("Counts for " + esc(purpose_label(p)), purpose_rows(per[p])) + "\n</section>\n";
    }
  }

  h += "<h2>What is counted</h2>\n<dl>\n"
       "<dt>Searches</dt><dd>Searches of the gallery that ran (refused ones are not searches).</dd>\n"
       "<dt>Candidates shown</dt><dd>Candidates listed in those searches' results, for all probe faces.</dd>\n"
       "<dt>Review decisions</dt><dd>Each reviewer's decision on a candidate: confirm, reject or inconclusive.</dd>\n"
       "<dt>Denials</dt><dd>Requests refused because the caller's role or key did not allow them.</dd>\n"
       "<dt>Refusals</dt><dd>Requests refused because they broke a rule: a search without a case reference or "
       "without the authorisation its purpose needs, a reviewer deciding a candidate twice, and the like.</dd>\n"
       "<dt>Searches citing an authorisation</dt><dd>Searches made under an authorisation of a judicial or "
       "administrative authority.</dd>\n"
       "<dt>Authorisations lapsed</dt><dd>Pending authorisations whose deadline passed without a grant; the "
       "searches made under them are marked unusable.</dd>\n"
       "<dt>Erasures</dt><dd>Subjects erased on request, by withdrawal of their lawful basis (also a withdrawal "
       "that left another basis in force), or when their retention ended.</dd>\n"
       "<dt>Other purposes</dt><dd>Purposes named by no lawful basis, typically typed in a refused request; "
       "they are grouped so that no free text reaches this report.</dd>\n"
       "</dl>\n</main>\n</body>\n</html>\n";
  return h;
}

}  // namespace fv::service::render
