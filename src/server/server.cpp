#include "server/server.h"

#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <span>
#include <sstream>
#include <thread>

#include "image/decode.h"
#include "server/assets.h"
#include "server/guarded_server.h"
#include "server/metrics.h"
#include "server/rate_limit.h"
#include "service/service.h"
#include "vault/api_keys.h"
#include "vault/audit.h"
#include "vault/crypto.h"
#include "vault/timeutil.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::server {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kAnyRole = {"admin", "enroller", "investigator", "auditor"};

// An HTTP error raised inside a handler; the dispatcher turns it into a JSON body.
struct HttpError {
  int status;
  std::string code, message;
};

HttpError http_error(int status, std::string message) {
  static const std::map<int, std::string> codes = {
      {400, "bad_request"},   {401, "unauthenticated"},        {403, "forbidden"},
      {404, "not_found"},     {405, "method_not_allowed"},     {409, "conflict"},
      {413, "payload_too_large"}, {415, "unsupported_media_type"}, {422, "refused"},
      {429, "rate_limited"},  {431, "header_fields_too_large"},   {500, "internal"},
      {501, "not_implemented"}, {503, "unavailable"}};
  auto it = codes.find(status);
  return {status, it == codes.end() ? "error" : it->second, std::move(message)};
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The service speaks Status; HTTP speaks status codes. Policy refusals are 422 (the request was
// understood and refused), except the few whose meaning is "that id does not exist" (404) or
// "your role may not" (403), which the service states in the first words of its message.
HttpError from_status(const Status& st) {
  const std::string& m = st.message();
  switch (st.code()) {
    case StatusCode::kInvalidArgument: return http_error(400, m);
    case StatusCode::kNotFound: return http_error(404, m);
    case StatusCode::kCorruptData: return http_error(422, m);
    case StatusCode::kUnsupported: return http_error(415, m);
    case StatusCode::kResourceExhausted: return http_error(413, m);
    case StatusCode::kFailedPrecondition:
      if (starts_with(m, "role '")) return http_error(403, m);
      if (starts_with(m, "no subject '") || starts_with(m, "no lawful basis ")) return http_error(404, m);
      return http_error(422, m);
    case StatusCode::kIoError:
    case StatusCode::kInternal:
    case StatusCode::kOk: break;
  }
  return http_error(500, m);
}

template <class T>
T value_or_throw(Result<T> r) {
  if (!r.is_ok()) throw from_status(r.status());
  return std::move(r).value();
}

json error_body(const HttpError& e) { return {{"error", {{"status", e.status}, {"code", e.code}, {"message", e.message}}}}; }

void security_headers(httplib::Response& res) {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
}

json box_json(const face::Box& b) {
  auto r = [](double v) { return std::round(v * 10) / 10; };
  return json::array({r(b.x1), r(b.y1), r(b.width()), r(b.height())});
}

std::string mime_for(const std::string& name) {
  auto ends = [&](const char* e) { return name.size() >= std::strlen(e) && name.compare(name.size() - std::strlen(e), std::string::npos, e) == 0; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

// A fixed set of face pipelines handed out one request at a time.
class PipelinePool {
 public:
  Status init(int n, const std::function<Result<std::unique_ptr<face::FacePipeline>>()>& factory) {
    for (int i = 0; i < n; ++i) {
      auto p = factory();
      if (!p.is_ok()) return p.status();
      free_.push_back(p->get());
      all_.push_back(std::move(*p));
    }
    return Status::ok();
  }
  class Lease {
   public:
    Lease(PipelinePool* pool, face::FacePipeline* p) : pool_(pool), p_(p) {}
    Lease(const Lease&) = delete;
    ~Lease() { pool_->release(p_); }
    face::FacePipeline& operator*() { return *p_; }
    face::FacePipeline* operator->() { return p_; }

   private:
    PipelinePool* pool_;
    face::FacePipeline* p_;
  };
  Lease acquire() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !free_.empty(); });
    auto* p = free_.back();
    free_.pop_back();
    return Lease(this, p);
  }
  size_t size() const { return all_.size(); }

 private:
  void release(face::FacePipeline* p) {
    {
      std::lock_guard<std::mutex> l(mu_);
      free_.push_back(p);
    }
    cv_.notify_one();
  }
  std::vector<std::unique_ptr<face::FacePipeline>> all_;
  std::vector<face::FacePipeline*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
};

struct Caller {
  std::optional<vault::ApiKey> key;
  std::string actor, role;  // what the service and the audit log see
  std::string limiter_id;
  bool is_public = false;
};

}  // namespace

struct Server::Impl {
  struct Call {
    const httplib::Request& req;
    httplib::Response& res;
    Caller caller;
  };
  struct Route {
    RouteInfo info;
    std::string action;  // the use case, named in audit entries of refusals at the door
    std::function<void(Call&)> fn;
    bool is_public() const { return info.roles.empty(); }
    bool takes_key() const { return !info.roles.empty() || !info.key_roles.empty(); }
    // The roles a key must have here; empty: no key is looked at.
    const std::vector<std::string>& key_roles() const { return info.roles.empty() ? info.key_roles : info.roles; }
  };

  ServerOptions opt;
  std::unique_ptr<httplib::Server> http;
  std::thread thread;
  std::atomic<bool> running{false};
  int port = 0;

  std::unique_ptr<service::Service> svc;  // entered under svc_mu only
  std::mutex svc_mu;
  vault::Db aux;  // a second connection: API keys, the server's own audit entries, gauges
  std::mutex aux_mu;
  const face::Calibration* calibration = nullptr;  // owned by svc, immutable once loaded
  PipelinePool pool;
  Metrics metrics;
  std::unique_ptr<RateLimiter> key_limiter, public_limiter;
  std::vector<Route> routes;
  std::map<std::string, std::string> web;  // file name → content
  std::string openapi;

  // ---------------------------------------------------------------- helpers

  template <class F>
  auto with_service(const Caller& c, F&& f) {
    std::lock_guard<std::mutex> l(svc_mu);
    svc->set_actor({c.actor, c.role});
    return f(*svc);
  }

  // Audit entries for calls that reach no service use case (detect, verify, sign-in) and for
  // refusals at the door (wrong role, purpose outside the key), in their own transaction.
  void audit(const Caller& c, const std::string& action, const std::string& outcome, json details,
             const std::string& purpose = "", const std::string& case_ref = "") {
    vault::AuditEntry e;
    e.ts = vault::utc_now();
    e.actor = c.actor;
    e.role = c.role;
    e.action = action;
    e.outcome = outcome;
    e.purpose = purpose;
    e.case_ref = case_ref;
    e.details = std::move(details);
    std::lock_guard<std::mutex> l(aux_mu);
    auto txn = vault::Txn::begin(aux);
    if (!txn.is_ok()) return;
    auto h = vault::append_audit(aux, e);
    if (h.is_ok()) (void)txn->commit();
  }

  static std::string field(const httplib::Request& req, const std::string& name) {
    if (!req.has_file(name)) return "";
    return req.get_file_value(name).content;
  }

  void require_multipart(const httplib::Request& req) {
    if (!req.is_multipart_form_data())
      throw http_error(415, "this route takes multipart/form-data (an image part and text fields)");
  }

  std::vector<uint8_t> image_part(const httplib::Request& req, const std::string& name) {
    require_multipart(req);
    if (!req.has_file(name)) throw http_error(400, "missing the image part '" + name + "'");
    const auto& f = req.get_file_value(name);
    if (f.content.empty()) throw http_error(400, "the image part '" + name + "' is empty");
    if (f.content.size() > opt.max_upload_bytes)
      throw http_error(413, "the image is larger than " + std::to_string(opt.max_upload_bytes >> 20) + " MiB");
    std::vector<uint8_t> bytes(f.content.begin(), f.content.end());
    if (image::sniff_header(bytes).format.empty())
      throw http_error(415, "the part '" + name + "' is not an image (JPEG, PNG, WebP, BMP, TIFF or PNM expected)");
    return bytes;
  }

  static int int_field(const std::string& text, const std::string& name, int lo, int hi, int fallback) {
    if (text.empty()) return fallback;
    try {
      size_t used = 0;
      const long long v = std::stoll(text, &used);
      if (used != text.size() || v < lo || v > hi) throw std::out_of_range("x");
      return static_cast<int>(v);
    } catch (...) {
      throw http_error(400, "'" + name + "' must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
  }

  static std::optional<double> double_field(const std::string& text, const std::string& name, double lo, double hi) {
    if (text.empty()) return std::nullopt;
    try {
      size_t used = 0;
      const double v = std::stod(text, &used);
      if (used != text.size() || !(v >= lo && v <= hi)) throw std::out_of_range("x");
      return v;
    } catch (...) {
      throw http_error(400, "'" + name + "' must be a number from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
  }

  json json_body(const httplib::Request& req, bool allow_empty = false) {
    if (req.body.size() > opt.max_json_bytes) throw http_error(413, "the JSON body is larger than the limit");
    if (allow_empty && req.body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    auto j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) throw http_error(400, "malformed JSON in the request body");
    if (!j.is_object()) throw http_error(400, "the request body must be a JSON object");
    return j;
  }

  static std::string jstr(const json& j, const std::string& k, bool required) {
    if (!j.contains(k) || j[k].is_null()) {
      if (required) throw http_error(400, "missing field '" + k + "'");
      return "";
    }
    if (!j[k].is_string()) throw http_error(400, "field '" + k + "' must be a string");
    return j[k].get<std::string>();
  }

  static std::vector<std::string> jstrings(const json& j, const std::string& k) {
    if (!j.contains(k)) throw http_error(400, "missing field '" + k + "' (an array of purposes)");
    if (j[k].is_string()) return {j[k].get<std::string>()};
    if (!j[k].is_array()) throw http_error(400, "field '" + k + "' must be an array of strings");
    std::vector<std::string> out;
    for (auto& x : j[k]) {
      if (!x.is_string()) throw http_error(400, "field '" + k + "' must be an array of strings");
      out.push_back(x.get<std::string>());
    }
    return out;
  }

  std::vector<face::Face> analyze(std::span<const uint8_t> bytes, bool embed, cv::Size* size = nullptr,
                                  std::string* format = nullptr) {
    auto img = image::decode_image(bytes);
    if (!img.is_ok()) {
      const auto& st = img.status();
      if (st.code() == StatusCode::kCorruptData || st.code() == StatusCode::kUnsupported)
        throw http_error(st.code() == StatusCode::kUnsupported ? 415 : 422, "the image could not be decoded: " + st.message());
      throw from_status(st);
    }
    if (size) *size = img->rgb.size();
    if (format) *format = img->format;
    auto lease = pool.acquire();
    const auto t0 = Clock::now();
    auto faces = lease->analyze(img->rgb, embed);
    metrics.inference(embed ? "detect_embed" : "detect", std::chrono::duration<double>(Clock::now() - t0).count());
    return value_or_throw(std::move(faces));
  }

  static void reply(httplib::Response& res, int status, const json& j) {
    res.status = status;
    // Error messages echo request text (a path, a subject reference) that may not be UTF-8:
    // nlohmann's default dump() throws on it, and a throw from the error handler (outside any
    // route's try) ends the process. Invalid bytes become U+FFFD (security_test Traversal).
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // ---------------------------------------------------------------- dispatch

  Caller authenticate(const Route& r, const httplib::Request& req) {
    Caller c;
    const std::string auth = req.get_header_value("Authorization");
    // A public route that takes no key ignores one sent anyway (a stale key in a browser or a
    // monitoring probe must not turn /healthz into a 401): security_test RoleMatrix.
    if (auth.empty() || !r.takes_key()) {
      if (r.is_public()) {
        c.is_public = true;
        c.limiter_id = "addr:" + req.remote_addr;
        return c;
      }
      throw http_error(401, "missing API key: send Authorization: Bearer <key>");
    }
    if (!starts_with(auth, "Bearer ") || auth.size() > 200)
      throw http_error(401, "malformed Authorization header: expected Bearer <key>");
    const std::string presented = auth.substr(7);
    std::optional<vault::ApiKey> key;
    {
      std::lock_guard<std::mutex> l(aux_mu);
      auto k = vault::authenticate_api_key(aux, presented);
      if (!k.is_ok()) throw http_error(500, "cannot check the API key: " + k.status().message());
      key = std::move(*k);
    }
    if (!key) throw http_error(401, "unknown or revoked API key");
    c.actor = "key:" + key->id;
    c.role = key->role;
    c.limiter_id = "key:" + key->id;
    c.key = std::move(key);
    return c;
  }

  void dispatch(const Route& r, const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    metrics.in_flight(+1);
    security_headers(res);
    res.set_header("Cache-Control", "no-store");
    std::string who = "-";
    try {
      Caller caller = authenticate(r, req);
      if (!caller.actor.empty()) who = caller.actor;
      if (caller.key || !r.info.key_roles.empty()) {
        double retry = 1;
        RateLimiter& lim = caller.key ? *key_limiter : *public_limiter;
        if (!lim.take(caller.limiter_id, &retry)) {
          metrics.rate_limited(caller.key ? "key" : "public");
          res.set_header("Retry-After", std::to_string(static_cast<int>(std::ceil(retry))));
          throw http_error(429, "too many requests: retry in " + std::to_string(static_cast<int>(std::ceil(retry))) + " s");
        }
      }
      const auto& allowed_roles = r.key_roles();
      if (caller.key && !allowed_roles.empty() &&
          std::find(allowed_roles.begin(), allowed_roles.end(), caller.role) == allowed_roles.end()) {
        audit(caller, r.action, "denied", {{"reason", "role " + caller.role + " may not " + r.action}, {"route", r.info.path}});
        std::string allowed;
        for (auto& x : allowed_roles) allowed += (allowed.empty() ? "" : ", ") + x;
        throw http_error(403, "role '" + caller.role + "' may not " + r.action + " (allowed: " + allowed + ")");
      }
      Call call{req, res, std::move(caller)};
      r.fn(call);
    } catch (const HttpError& e) {
      reply(res, e.status, error_body(e));
    } catch (const std::exception& e) {
      reply(res, 500, error_body(http_error(500, std::string("internal error: ") + e.what())));
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    metrics.request(r.info.method, r.info.path, res.status, dt);
    metrics.in_flight(-1);
    if (opt.access_log)
      std::fprintf(stderr, "facevault serve: %s %s %d %.1f ms %s\n", r.info.method.c_str(), r.info.path.c_str(), res.status,
                   dt * 1e3, who.c_str());
  }

  void add(const std::string& method, const std::string& path, std::vector<std::string> roles, const std::string& action,
           std::function<void(Call&)> fn, std::vector<std::string> key_roles = {}) {
    routes.push_back({{method, path, std::move(roles), std::move(key_roles)}, action, std::move(fn)});
  }

  void install() {
    for (size_t i = 0; i < routes.size(); ++i) {
      // OpenAPI template → regex: {name} matches one path segment.
      const std::string pattern = std::regex_replace(routes[i].info.path, std::regex(R"(\{[a-z_]+\})"), "([^/]+)");
      auto h = [this, i](const httplib::Request& req, httplib::Response& res) { dispatch(routes[i], req, res); };
      const auto& m = routes[i].info.method;
      if (m == "GET") http->Get(pattern, h);
      else if (m == "POST") http->Post(pattern, h);
      else if (m == "DELETE") http->Delete(pattern, h);
    }
    auto page = [this](const std::string& name) {
      return [this, name](const httplib::Request&, httplib::Response& res) { serve_file(name, res); };
    };
    http->Get("/", page("index.html"));
    http->Get("/optout", page("optout.html"));
    http->Get(R"(/ui/([A-Za-z0-9_.-]+))", [this](const httplib::Request& req, httplib::Response& res) {
      serve_file(req.matches[1], res);
    });
    http->set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string m = res.status == 404   ? "no such route: " + req.method + " " + req.path
                      : res.status == 413 ? "the request is larger than " + std::to_string(opt.max_upload_bytes >> 20) + " MiB"
                      : res.status == 405 ? "method not allowed"
                                          : "request failed";
      security_headers(res);
      reply(res, res.status, error_body(http_error(res.status, m)));
      metrics.request(req.method, "(unrouted)", res.status, 0);
      return httplib::Server::HandlerResponse::Handled;
    }));
    // Header limits, before any route runs (cpp-httplib 0.11 has no header count limit):
    // security_test OversizedRequests.
    http->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      size_t bytes = req.method.size() + req.target.size();
      for (const auto& [k, v] : req.headers) bytes += k.size() + v.size() + 4;
      if (req.headers.size() <= opt.max_header_count && bytes <= opt.max_header_bytes)
        return httplib::Server::HandlerResponse::Unhandled;
      security_headers(res);
      reply(res, 431, error_body(http_error(431, "the request headers are over the limit (" +
                                                     std::to_string(opt.max_header_count) + " headers, " +
                                                     std::to_string(opt.max_header_bytes >> 10) + " KiB)")));
      metrics.request(req.method, "(unrouted)", 431, 0);
      return httplib::Server::HandlerResponse::Handled;
    });
    http->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      reply(res, 500, error_body(http_error(500, "internal error")));
    });
  }

  void serve_file(const std::string& name, httplib::Response& res) {
    security_headers(res);
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                   "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'");
    std::string content;
    if (!opt.web_root.empty()) {
      // The route admits only [A-Za-z0-9_.-]+ (decoded), so no separator can reach here; still,
      // a dot file ("..", ".git") or a symbolic link leading out of the web root is not served:
      // security_test Traversal.
      std::error_code ec;
      const fs::path root = fs::canonical(opt.web_root, ec);
      const fs::path file = ec ? fs::path() : fs::canonical(root / name, ec);
      const bool inside = !ec && !name.empty() && name[0] != '.' && file.parent_path() == root &&
                          fs::is_regular_file(file, ec);
      std::ifstream in;
      if (inside) in.open(file, std::ios::binary);
      if (inside && in) {
        std::stringstream ss;
        ss << in.rdbuf();
        content = ss.str();
      }
    } else if (auto it = web.find(name); it != web.end()) {
      content = it->second;
    }
    if (content.empty()) {
      reply(res, 404, error_body(http_error(404, "no such file: " + name)));
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(content, mime_for(name).c_str());
  }

  // ---------------------------------------------------------------- routes

  void define_routes();
};

void Server::Impl::define_routes() {
  const std::vector<std::string> admin_enroller = {"admin", "enroller"};
  const std::vector<std::string> admin_auditor = {"admin", "auditor"};

  add("GET", "/healthz", {}, "health", [this](Call& c) {
    bool db_ok = false;
    {
      std::lock_guard<std::mutex> l(aux_mu);
      db_ok = aux.query_int("SELECT 1").is_ok();
    }
    reply(c.res, db_ok ? 200 : 503,
          {{"status", db_ok ? "ok" : "unavailable"}, {"version", "0.1.0"}, {"pipelines", pool.size()}, {"tls", !opt.tls_cert.empty()}});
  });

  add("GET", "/metrics", {}, "metrics", [this](Call& c) {
    std::vector<std::tuple<std::string, std::string, double>> g;
    {
      std::lock_guard<std::mutex> l(aux_mu);
      auto faces = aux.query_int("SELECT count(*) FROM face");
      auto subjects = aux.query_int("SELECT count(*) FROM subject");
      if (faces.is_ok()) g.emplace_back("facevault_gallery_templates", "Templates enrolled in the vault.", static_cast<double>(*faces));
      if (subjects.is_ok()) g.emplace_back("facevault_subjects", "Subjects in the vault.", static_cast<double>(*subjects));
    }
    g.emplace_back("facevault_face_pipelines", "Face pipelines serving requests concurrently.", static_cast<double>(pool.size()));
    c.res.status = 200;
    c.res.set_content(metrics.render(g), "text/plain; version=0.0.4");
  });

  add("GET", "/v1/openapi.json", {}, "openapi", [this](Call& c) {
    c.res.status = 200;
    c.res.set_content(openapi, "application/json");
  });

  add("GET", "/v1/whoami", kAnyRole, "sign_in", [this](Call& c) {
    audit(c.caller, "sign_in", "ok", {{"key", c.caller.key->id}});
    json j = c.caller.key->to_json();
    reply(c.res, 200, {{"key", j}, {"actor", c.caller.actor}});
  });

  auto basis_request = [](const json& j, const std::string& ref) {
    service::BasisRequest r;
    r.subject_ref = ref;
    r.kind = jstr(j, "kind", true);
    r.reference = jstr(j, "reference", true);
    r.purposes = jstrings(j, "purposes");
    const std::string exp = jstr(j, "expires", false);
    if (!exp.empty()) r.expires = exp;
    return r;
  };
  auto basis_json = [](const service::BasisResult& r, const std::string& ref) {
    return json{{"id", r.basis_id},           {"basis", r.basis_id},
                {"subject", ref},             {"subject_id", r.subject_uid},
                {"subject_created", r.subject_created}, {"retention_until", r.retention_until},
                {"audit_hash", r.audit_hash}};
  };

  add("POST", "/v1/subjects", admin_enroller, "basis_add", [=, this](Call& c) {
    json j = json_body(c.req);
    const std::string ref = jstr(j, "ref", true);
    if (!j.contains("kind") && !j.contains("reference") && !j.contains("purposes"))
      throw http_error(400, "a subject is created with its first lawful basis: send {ref, kind, reference, purposes[, expires]}");
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.add_basis(basis_request(j, ref)); }));
    reply(c.res, 201, basis_json(r, ref));
  });

  add("POST", "/v1/subjects/{ref}/bases", admin_enroller, "basis_add", [=, this](Call& c) {
    const std::string ref = c.req.matches[1];
    json j = json_body(c.req);
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.add_basis(basis_request(j, ref)); }));
    reply(c.res, 201, basis_json(r, ref));
  });

  // Withdrawal erases: the service admits auditor and admin only (docs/privacy.md), and so does
  // the route (it declared enroller too, which then got the service's 403: security_test RoleMatrix).
  add("POST", "/v1/bases/{id}/withdraw", admin_auditor, "basis_withdraw", [this](Call& c) {
    const int id = int_field(c.req.matches[1], "id", 1, 2'000'000'000, 0);
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.withdraw_basis(id); }));
    reply(c.res, 200, r.to_json());
  });

  add("POST", "/v1/subjects/{ref}/faces", admin_enroller, "enroll", [this](Call& c) {
    require_multipart(c.req);
    service::EnrollRequest req;
    req.subject_ref = c.req.matches[1];
    // The fields come as form fields, or as one JSON part "metadata" (form fields win).
    json meta = json::object();
    if (c.req.has_file("metadata")) {
      meta = json::parse(field(c.req, "metadata"), nullptr, false);
      if (meta.is_discarded() || !meta.is_object()) throw http_error(400, "malformed JSON in the 'metadata' part");
    }
    auto get = [&](const std::string& k) -> std::string {
      if (c.req.has_file(k)) return field(c.req, k);
      if (!meta.contains(k) || meta[k].is_null()) return "";
      if (meta[k].is_string()) return meta[k].get<std::string>();
      if (meta[k].is_number_integer() || meta[k].is_boolean()) return meta[k].dump();
      throw http_error(400, "metadata field '" + k + "' has the wrong type");
    };
    const std::string basis = get("basis");
    if (basis.empty()) throw http_error(400, "missing field 'basis' (the lawful basis id)");
    req.basis_id = int_field(basis, "basis", 1, 2'000'000'000, 0);
    req.face_index = int_field(get("face"), "face", 0, 199, -1);
    if (auto p = get("purpose"); !p.empty()) req.purpose = p;
    req.keep_image = get("keep_image") == "true";
    req.provenance.method = "http";
    req.provenance.supplied_by = get("supplied_by");
    req.provenance.source = get("source");
    if (req.provenance.source.empty()) req.provenance.source = c.req.get_file_value("image").filename;
    std::vector<uint8_t> bytes = image_part(c.req, "image");
    // The pipeline runs here, outside the service lock; only the commit is serialised.
    Result<service::PreparedFace> prepared = not_found("x");
    {
      auto lease = pool.acquire();
      const auto t0 = Clock::now();
      prepared = svc->prepare(*lease, bytes, req.face_index, req.keep_image);
      metrics.inference("enroll", std::chrono::duration<double>(Clock::now() - t0).count());
    }
    Result<service::EnrollResult> r = not_found("x");
    if (!prepared.is_ok()) {
      // Let the service refuse it itself, so that the refusal is audited as a CLI one is.
      r = with_service(c.caller, [&](service::Service& s) { return s.enroll(req, std::move(bytes)); });
    } else {
      vault::wipe(bytes);
      r = with_service(c.caller, [&](service::Service& s) { return s.commit_enrollment(req, *prepared); });
      prepared->wipe();
    }
    auto e = value_or_throw(std::move(r));
    reply(c.res, 201, {{"subject", e.subject_ref}, {"subject_id", e.subject_uid}, {"face_id", e.face_id},
                       {"image_id", e.image_id}, {"face", e.face_index}, {"box", box_json(e.box)}, {"sha256", e.sha256},
                       {"retention_until", e.retention_until}, {"audit_hash", e.audit_hash}});
  });

  add("POST", "/v1/search", {"admin", "investigator"}, "search", [this](Call& c) {
    require_multipart(c.req);
    service::SearchRequest sr;
    sr.purpose = field(c.req, "purpose");
    sr.case_ref = field(c.req, "case");
    sr.top_k = int_field(field(c.req, "top"), "top", 1, 1000, 0);
    sr.max_fmr = double_field(field(c.req, "max_fmr"), "max_fmr", 1e-9, 1.0);
    if (sr.purpose.empty() || sr.case_ref.empty()) {
      // The service refuses (and audits) a search without purpose or case before any work.
      auto r = with_service(c.caller, [&](service::Service& s) { return s.search_templates(sr, {}); });
      throw http_error(400, r.is_ok() ? "a search needs a purpose and a case reference" : r.status().message());
    }
    if (!c.caller.key->may_purpose(sr.purpose)) {
      audit(c.caller, "search", "denied", {{"reason", "purpose not allowed for this API key"}}, sr.purpose, sr.case_ref);
      std::string allowed;
      for (auto& p : c.caller.key->purposes) allowed += (allowed.empty() ? "" : ", ") + p;
      throw http_error(403, "this API key may not search for the purpose '" + sr.purpose + "' (allowed: " +
                                (allowed.empty() ? "none" : allowed) + ")");
    }
    std::vector<uint8_t> bytes = image_part(c.req, "image");
    auto faces = analyze(bytes, true);
    vault::wipe(bytes);
    std::vector<face::FaceTemplate> probes;
    std::vector<size_t> which;
    for (size_t i = 0; i < faces.size(); ++i)
      if (faces[i].face_template) {
        probes.push_back(*faces[i].face_template);
        which.push_back(i);
      }
    auto r = with_service(c.caller, [&](service::Service& s) { return s.search_templates(sr, probes); });
    for (auto& p : probes) vault::wipe(p.values);
    for (auto& f : faces)
      if (f.face_template) vault::wipe(f.face_template->values);
    auto res = value_or_throw(std::move(r));
    json out_faces = json::array();
    for (size_t k = 0; k < res.faces.size() && k < which.size(); ++k) {
      const auto& f = faces[which[k]];
      json cands = json::array();
      for (auto& cd : res.faces[k].candidates)
        cands.push_back({{"subject", cd.subject_ref}, {"similarity", std::round(cd.similarity * 1e4) / 1e4},
                         {"fmr", cd.fmr ? json(*cd.fmr) : json(nullptr)}});
      out_faces.push_back({{"box", box_json(f.detection.box)}, {"quality_ok", f.quality.acceptable}, {"candidates", cands}});
    }
    reply(c.res, 200,
          {{"faces", out_faces}, {"purpose", sr.purpose}, {"case", sr.case_ref}, {"eligible_subjects", res.eligible_subjects},
           {"max_fmr", res.max_fmr}, {"threshold", res.threshold}, {"calibration", res.calibration},
           {"audit_hash", res.audit_hash},
           {"notice", "candidates for human review, not an identification"}});
  });

  add("POST", "/v1/verify", {"admin", "enroller", "investigator"}, "verify", [this](Call& c) {
    require_multipart(c.req);
    if (c.req.has_file("subject")) {
      // Photo against an enrolled subject: the service's 1:1 use case, under search policy
      // (investigator or admin, purpose, case; only templates whose basis covers the purpose).
      service::SearchRequest sr;
      sr.purpose = field(c.req, "purpose");
      sr.case_ref = field(c.req, "case");
      sr.max_fmr = double_field(field(c.req, "fmr"), "fmr", 1e-7, 0.5);
      const std::string subject = field(c.req, "subject");
      std::vector<uint8_t> a = image_part(c.req, "a");
      auto fa = analyze(a, true);
      int ka = -1;
      for (size_t i = 0; i < fa.size(); ++i)
        if (fa[i].face_template && (ka < 0 || fa[i].detection.box.area() > fa[ka].detection.box.area()))
          ka = static_cast<int>(i);
      if (ka < 0) {
        audit(c.caller, "verify", "refused", {{"reason", "no face found"}});
        throw http_error(422, "no face found in photo a");
      }
      auto r = with_service(c.caller, [&](service::Service& s) { return s.verify_subject(sr, subject, *fa[ka].face_template); });
      for (auto& f : fa)
        if (f.face_template) vault::wipe(f.face_template->values);
      auto v = value_or_throw(std::move(r));
      reply(c.res, 200,
            {{"subject", subject}, {"similarity", std::round(v.similarity * 1e4) / 1e4}, {"same", v.same},
             {"threshold", v.threshold}, {"threshold_fmr", v.max_fmr}, {"score_fmr", v.fmr ? json(*v.fmr) : json(nullptr)},
             {"box_a", box_json(fa[ka].detection.box)}, {"audit_hash", v.audit_hash},
             {"notice", "a similarity for human review, not an identification"}});
      return;
    }
    const double fmr = double_field(field(c.req, "fmr"), "fmr", 1e-7, 0.5).value_or(1e-4);
    std::vector<uint8_t> a = image_part(c.req, "a"), b = image_part(c.req, "b");
    auto fa = analyze(a, true), fb = analyze(b, true);
    auto largest = [](const std::vector<face::Face>& fs) {
      int best = -1;
      for (size_t i = 0; i < fs.size(); ++i)
        if (fs[i].face_template && (best < 0 || fs[i].detection.box.area() > fs[best].detection.box.area()))
          best = static_cast<int>(i);
      return best;
    };
    const int ka = largest(fa), kb = largest(fb);
    auto wipe_all = [&] {
      for (auto* v : {&fa, &fb})
        for (auto& f : *v)
          if (f.face_template) vault::wipe(f.face_template->values);
    };
    if (ka < 0 || kb < 0) {
      wipe_all();
      audit(c.caller, "verify", "refused", {{"reason", "no face found"}});
      throw http_error(422, std::string("no face found in photo ") + (ka < 0 ? "a" : "b"));
    }
    const double sim = face::similarity(*fa[ka].face_template, *fb[kb].face_template);
    wipe_all();
    json j = {{"similarity", std::round(sim * 1e4) / 1e4}, {"faces_a", fa.size()}, {"faces_b", fb.size()},
              {"box_a", box_json(fa[ka].detection.box)}, {"box_b", box_json(fb[kb].detection.box)}};
    if (calibration) {
      const double thr = calibration->threshold_at(fmr);
      j["same"] = sim >= thr;
      j["threshold"] = thr;
      j["threshold_fmr"] = fmr;
      j["score_fmr"] = calibration->fmr_at(sim);
      j["calibration"] = calibration->source();
    }
    audit(c.caller, "verify", "ok", {{"faces_a", fa.size()}, {"faces_b", fb.size()}, {"same", j.value("same", false)}});
    reply(c.res, 200, j);
  });

  add("POST", "/v1/detect", {"admin", "enroller", "investigator"}, "detect", [this](Call& c) {
    std::vector<uint8_t> bytes = image_part(c.req, "image");
    cv::Size size;
    std::string format;
    auto faces = analyze(bytes, false, &size, &format);
    json fj = json::array();
    for (auto& f : faces) {
      json kp = json::array();
      for (auto& p : f.landmarks.five) kp.push_back({std::round(p.x * 10) / 10, std::round(p.y * 10) / 10});
      fj.push_back({{"box", box_json(f.detection.box)},
                    {"score", std::round(f.detection.score * 1e4) / 1e4},
                    {"keypoints", kp},
                    {"quality", {{"acceptable", f.quality.acceptable}, {"reasons", f.quality.reasons},
                                 {"inter_eye_px", std::round(f.quality.inter_eye_px * 10) / 10},
                                 {"sharpness", std::round(f.quality.sharpness * 10) / 10},
                                 {"yaw_deg", std::round(f.quality.yaw_deg * 10) / 10}}}});
    }
    auto choice = service::choose_enrollment_face(faces, -1);
    json j = {{"width", size.width}, {"height", size.height}, {"format", format}, {"faces", fj}};
    if (choice.is_ok()) j["enrollable_face"] = *choice;
    else {
      j["enrollable_face"] = nullptr;
      j["enrollable_reason"] = choice.status().message();
    }
    audit(c.caller, "detect", "ok", {{"faces", faces.size()}});
    reply(c.res, 200, j);
  });

  add("DELETE", "/v1/subjects/{ref}", admin_auditor, "erase", [this](Call& c) {
    const std::string ref = c.req.matches[1];
    std::string reason = c.req.has_param("reason") ? c.req.get_param_value("reason") : "erasure request (HTTP API)";
    if (reason.empty() || reason.size() > 500) throw http_error(400, "'reason' must be 1 to 500 characters");
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.erase(ref, reason); }));
    reply(c.res, 200, r.to_json());
  });

  add("GET", "/v1/subjects/{ref}/export", admin_auditor, "export", [this](Call& c) {
    const std::string ref = c.req.matches[1];
    auto j = value_or_throw(
        with_service(c.caller, [&](service::Service& s) { return s.export_subject(ref, false, std::nullopt); }));
    if (c.req.get_param_value("download") == "1") {
      std::string uid = j["subject"].value("id", "subject");
      // The vault's id, never the caller's reference, and only filename-safe characters: no
      // quote, CR or LF can reach the header (security_test ExportFilename).
      std::erase_if(uid, [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_'; });
      c.res.set_header("Content-Disposition", "attachment; filename=\"facevault-export-" + uid + ".json\"");
    }
    reply(c.res, 200, j);
  });

  add(
      "POST", "/v1/optout", {}, "optout_add",
      [this](Call& c) {
        if (c.caller.is_public) {
          if (!opt.public_optout) throw http_error(401, "this server takes opt-outs only with an API key");
          // The public form acts for the data-protection officer's office, which receives
          // opt-out requests; the audit names the form, not a person.
          c.caller.actor = "public:optout-form";
          c.caller.role = "auditor";
        }  // with a key: its role was checked against key_roles at the door (and a denial audited)
        std::vector<uint8_t> bytes = image_part(c.req, "image");
        const int face_index = int_field(field(c.req, "face"), "face", 0, 199, -1);
        auto r = value_or_throw(
            with_service(c.caller, [&](service::Service& s) { return s.optout_add(std::move(bytes), face_index); }));
        json j = {{"recorded", true}, {"optout", r.optout_uid}};
        if (c.caller.is_public) {
          // Whether someone is enrolled is not told to whoever holds their photo.
          j["message"] = "Your opt-out is recorded: only an encrypted template of your face is kept, and no enrolment "
                         "that matches it will be accepted. Keep this reference: " + r.optout_uid;
        } else {
          // Only the number (as the service gives it): who they are is for optout_check.
          j["enrolled_match_count"] = r.enrolled_match_count;
          j["audit_hash"] = r.audit_hash;
        }
        reply(c.res, 201, j);
      },
      /*key_roles=*/{"admin", "enroller", "auditor"});

  add("GET", "/v1/optout/check", admin_auditor, "optout_check", [this](Call& c) {
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.optout_check(); }));
    json m = json::array();
    for (auto& x : r)
      m.push_back({{"subject", x.subject_ref}, {"subject_id", x.subject_uid}, {"optout", x.optout_uid}, {"similarity", x.similarity}});
    reply(c.res, 200, {{"matches", m}});
  });

  add("POST", "/v1/retention/run", admin_auditor, "expire", [this](Call& c) {
    json j = json_body(c.req, true);
    std::optional<std::string> as_of;
    if (auto a = jstr(j, "as_of", false); !a.empty()) as_of = a;
    bool dry = false;
    if (j.contains("dry_run")) {
      if (!j["dry_run"].is_boolean()) throw http_error(400, "field 'dry_run' must be true or false");
      dry = j["dry_run"].get<bool>();
    }
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.expire(as_of, dry); }));
    json er = json::array();
    for (auto& e : r.erased) er.push_back(e.to_json());
    reply(c.res, 200, {{"as_of", r.as_of}, {"dry_run", dry}, {"erased", er}, {"audit_hash", r.audit_hash}});
  });

  add("GET", "/v1/audit", admin_auditor, "audit_show", [this](Call& c) {
    std::optional<std::string> since, subject;
    if (auto s = c.req.get_param_value("since"); !s.empty()) since = s;
    if (auto s = c.req.get_param_value("subject"); !s.empty()) subject = s;
    const int limit = int_field(c.req.get_param_value("limit"), "limit", 1, 10000, 200);
    const std::string action = c.req.get_param_value("action"), outcome = c.req.get_param_value("outcome"),
                      actor = c.req.get_param_value("actor");
    auto entries = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.audit_show(since, subject, 0); }));
    json out = json::array();
    size_t matched = 0;
    // Newest first; the filters below only narrow what is shown.
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (!action.empty() && it->action != action) continue;
      if (!outcome.empty() && it->outcome != outcome) continue;
      if (!actor.empty() && it->actor != actor) continue;
      ++matched;
      if (out.size() < static_cast<size_t>(limit)) out.push_back(it->to_json());
    }
    reply(c.res, 200, {{"entries", out}, {"matched", matched}, {"total", entries.size()}});
  });

  add("GET", "/v1/audit/verify", admin_auditor, "audit_verify", [this](Call& c) {
    auto r = value_or_throw(with_service(c.caller, [&](service::Service& s) { return s.audit_verify(); }));
    reply(c.res, 200, r.to_json());
  });
}

// ------------------------------------------------------------------ Server

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
  FV_RETURN_IF_ERROR(vault::ensure_sodium());
  std::unique_ptr<Server> s(new Server());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.opt = std::move(options);
  if (m.opt.tls_cert.empty() != m.opt.tls_key.empty())
    return invalid_argument("TLS needs both --tls-cert and --tls-key");
  FV_ASSIGN_OR_RETURN(m.svc, service::Service::open(m.opt.vault_dir, {"facevault-serve", "admin"}));
  FV_ASSIGN_OR_RETURN(m.aux, vault::Db::open(m.svc->vault().paths().db(), false));
  sqlite3_busy_timeout(m.aux.handle(), 15000);
  FV_RETURN_IF_ERROR(m.aux.exec("PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL"));
  FV_RETURN_IF_ERROR(vault::ensure_api_key_table(m.aux));
  m.calibration = m.svc->calibration();
  int n = m.opt.pipelines > 0 ? m.opt.pipelines
                              : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  auto factory = m.opt.pipeline_factory;
  if (!factory) {
    const auto& cfg = m.svc->vault().config();
    face::PipelineOptions po;
    po.detector = cfg.detector;
    po.landmarker = cfg.landmarker;
    po.embedder = cfg.embedder;
    factory = [po] { return face::FacePipeline::create(nn::ModelStore(), po); };
  }
  FV_RETURN_IF_ERROR(m.pool.init(n, factory));
  m.key_limiter = std::make_unique<RateLimiter>(m.opt.rate_per_s, m.opt.rate_burst);
  m.public_limiter = std::make_unique<RateLimiter>(m.opt.public_rate_per_s, m.opt.public_burst);
  for (const auto& a : embedded_assets()) {
    std::string content(reinterpret_cast<const char*>(a.data), a.size);
    if (a.name == "openapi.json") m.openapi = std::move(content);
    else m.web[a.name] = std::move(content);
  }
  if (!m.opt.tls_cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(m.opt.tls_cert.c_str(), m.opt.tls_key.c_str());
    if (!ssl->is_valid()) return invalid_argument("cannot load the TLS certificate or key (" + m.opt.tls_cert + ", " + m.opt.tls_key + ")");
    m.http = std::move(ssl);
  } else {
    m.http = make_guarded_server(m.opt.request_timeout_s);  // deadline per request (slowloris)
  }
  const int threads = std::max(2, m.opt.http_threads);
  m.http->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  m.http->set_payload_max_length(m.opt.max_upload_bytes + (64u << 10));
  m.http->set_keep_alive_max_count(1000);
  m.http->set_keep_alive_timeout(std::max(1, m.opt.keep_alive_timeout_s));
  m.http->set_read_timeout(std::max(1, m.opt.read_timeout_s));
  m.http->set_write_timeout(std::max(1, m.opt.write_timeout_s));
  m.define_routes();
  m.install();
  return s;
}

Server::~Server() { stop(); }

Status Server::bind() {
  auto& m = *impl_;
  if (m.opt.port == 0) {
    m.port = m.http->bind_to_any_port(m.opt.host);
    if (m.port <= 0) return io_error("cannot listen on " + m.opt.host);
  } else {
    if (!m.http->bind_to_port(m.opt.host, m.opt.port))
      return io_error("cannot listen on " + m.opt.host + ":" + std::to_string(m.opt.port) + " (in use?)");
    m.port = m.opt.port;
  }
  return Status::ok();
}

Status Server::run() {
  impl_->running = true;
  const bool ok = impl_->http->listen_after_bind();
  impl_->running = false;
  return ok ? Status::ok() : io_error("the listener stopped with an error");
}

Status Server::start() {
  FV_RETURN_IF_ERROR(bind());
  impl_->thread = std::thread([this] { (void)run(); });
  for (int i = 0; i < 500 && !impl_->http->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return Status::ok();
}

void Server::stop() {
  if (!impl_) return;
  if (impl_->http) impl_->http->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::port() const { return impl_->port; }
bool Server::tls() const { return !impl_->opt.tls_cert.empty(); }

std::vector<RouteInfo> Server::routes() const {
  std::vector<RouteInfo> out;
  for (auto& r : impl_->routes) out.push_back(r.info);
  return out;
}

}  // namespace fv::server
