// Review cases (EU AI Act Art 14(5)): the two-person review of a search's candidates. Every
// search opens a case; reviewers list and read cases, compare the probe face with each
// candidate's enrolled reference face, and record their decisions. Who may see which case and
// which decisions (a reviewer sees the others' decisions only after recording their own) is the
// service's rule: the routes only read the request and render the answer.
#include <algorithm>
#include <memory>
#include <vector>

#include "server/server_impl.h"
#include "service/render.h"
#include "vault/crypto.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

// A crop of a face as image/jpeg. The dispatcher has set Cache-Control: no-store already (a
// face must not be kept by a browser or a proxy cache). The bytes are streamed from the
// service's own buffer, which the releaser wipes once the response is sent (or abandoned):
// no copy of the face is left in freed memory by the server.
void reply_jpeg(httplib::Response& res, service::ReviewImage img) {
  auto jpeg = std::make_shared<std::vector<uint8_t>>(std::move(img.jpeg));
  const size_t size = jpeg->size();
  res.status = 200;
  res.set_content_provider(
      size, "image/jpeg",
      [jpeg](size_t offset, size_t length, httplib::DataSink& sink) {
        if (offset >= jpeg->size()) return false;  // past the end: never a write of nothing, forever
        return sink.write(reinterpret_cast<const char*>(jpeg->data()) + offset, std::min(length, jpeg->size() - offset));
      },
      [jpeg](bool) { vault::wipe(*jpeg); });
}

bool flag_param(const httplib::Request& req, const char* name) { return flag_field(req.get_param_value(name), name); }

// A key created with purposes (`key create --purpose P`) reads and decides only the review
// cases of those purposes; a key without any is not limited here (its role decides).
service::PurposeScope scope_of(const Call& c) {
  if (!c.caller.key || c.caller.key->purposes.empty()) return std::nullopt;
  return c.caller.key->purposes;
}

service::ReviewDecisionRequest decision_request(const json& j) {
  service::ReviewDecisionRequest r;
  if (!j.contains("candidate")) throw http_error(400, "missing field 'candidate' (the candidate's id in the case)");
  if (!j["candidate"].is_number_integer() || j["candidate"].get<int64_t>() < 1)
    throw http_error(400, "field 'candidate' must be a positive integer (the candidate's id in the case)");
  r.candidate_id = j["candidate"].get<int64_t>();
  const std::string decision = json_string(j, "decision", true);
  auto v = service::parse_review_verdict(decision);
  if (!v) throw http_error(400, "unknown decision '" + decision + "' (confirm, reject, inconclusive)");
  r.verdict = *v;
  // A missing or empty reason is the service's refusal (audited), like one too long.
  r.reason = json_string(j, "reason", false);
  return r;
}

}  // namespace

void add_review_routes(Server::Impl& s) {
  s.add("GET", "/v1/reviews", Action::kReviewRead, [&s](Call& c) {
    service::ReviewListFilter f;
    if (const std::string st = c.req.get_param_value("status"); !st.empty()) {
      if (st != "open" && st != "closed") throw http_error(400, "'status' must be open or closed");
      f.status = st;
    }
    f.awaiting_caller = flag_param(c.req, "awaiting");
    f.limit = static_cast<size_t>(int_field(c.req.get_param_value("limit"), "limit", 1, 1000, 100));
    f.allowed_purposes = scope_of(c);
    auto cases = value_or_throw(s.svc->review_list(c.caller.who(), f));
    const int required = s.svc->config().reviewers_required;
    json out = json::array();
    for (const auto& rc : cases) out.push_back(service::render::review_case(rc, required));
    reply(c.res, 200, {{"cases", out}});
  });

  s.add("GET", "/v1/reviews/{id}", Action::kReviewRead, [&s](Call& c) {
    auto rc = value_or_throw(s.svc->review_show(c.caller.who(), c.req.matches[1], scope_of(c)));
    reply(c.res, 200, service::render::review_case(rc, s.svc->config().reviewers_required));
  });

  s.add("POST", "/v1/reviews/{id}/decisions", Action::kReviewDecide, [&s](Call& c) {
    const std::string id = c.req.matches[1];
    service::ReviewDecisionRequest req = decision_request(s.json_body(c.req));
    req.allowed_purposes = scope_of(c);
    auto d = value_or_throw(s.svc->review_decide(c.caller.who(), id, req));
    reply(c.res, 201, service::render::review_decision(d));
  });

  s.add("GET", "/v1/reviews/{id}/probe/{face}.jpg", Action::kReviewRead, [&s](Call& c) {
    const std::string id = c.req.matches[1];
    const int face = int_field(c.req.matches[2], "face", 0, 199, 0);
    reply_jpeg(c.res, value_or_throw(s.svc->review_probe_image(c.caller.who(), id, face, scope_of(c))));
  });

  // 404 (the usual JSON error) when no reference crop of the candidate is kept: the review page
  // then says the comparison is made without one.
  s.add("GET", "/v1/reviews/{id}/candidates/{cid}/reference.jpg", Action::kReviewRead, [&s](Call& c) {
    const std::string id = c.req.matches[1];
    const int64_t candidate = id_field(c.req.matches[2], "cid");
    reply_jpeg(c.res, value_or_throw(s.svc->review_reference_image(c.caller.who(), id, candidate, scope_of(c))));
  });
}

}  // namespace fv::server
