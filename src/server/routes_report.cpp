// The transparency report (EU AI Act Art 26(6), (10)): counts per purpose from the audit log —
// searches, candidates shown, review decisions, denials, authorisations, enrolments, erasures,
// opt-outs, access exports — with no personal data. The service builds it (and audits it); the
// route renders it as JSON or as the standalone HTML page of render::report_html.
#include <sodium.h>

#include "server/server_impl.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

// The web UI pages' Content-Security-Policy, with the page's own inline <style> blocks allowed
// by their SHA-256 (the page is a standalone file that must also look right when saved): no
// other inline style, and still no script or resource from anywhere.
std::string report_page_csp(const std::string& page) {
  std::string hashes;
  for (size_t at = page.find("<style>"); at != std::string::npos; at = page.find("<style>", at)) {
    at += 7;
    const size_t end = page.find("</style>", at);
    if (end == std::string::npos) break;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(page.data() + at), end - at);
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    hashes += std::string(" 'sha256-") + b64 + "'";
    at = end;
  }
  std::string csp = kPageContentSecurityPolicy;
  const std::string style = "style-src 'self'";
  if (const size_t at = csp.find(style); at != std::string::npos) csp.insert(at + style.size(), hashes);
  return csp;
}

}  // namespace

void add_report_routes(Server::Impl& s) {
  s.add("GET", "/v1/report", Action::kReport, [&s](Call& c) {
    std::string format = c.req.get_param_value("format");
    if (format.empty()) format = "json";
    if (format != "json" && format != "html") throw http_error(400, "'format' must be json or html");
    // Dates or timestamps (UTC); what a missing or malformed one means is the service's rule.
    auto report = value_or_throw(s.svc->transparency_report(c.caller.who(), c.req.get_param_value("from"),
                                                            c.req.get_param_value("to")));
    if (format == "json") {
      reply(c.res, 200, report);
      return;
    }
    // A page of its own (no script, no external resource), under the UI pages' policy.
    std::string page = service::render::report_html(report);
    c.res.set_header("Content-Security-Policy", report_page_csp(page));
    c.res.status = 200;
    c.res.set_content(std::move(page), "text/html; charset=utf-8");
  });
}

}  // namespace fv::server
