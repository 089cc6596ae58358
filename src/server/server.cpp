#include "server/server.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>

#include "server/assets.h"
#include "server/guarded_server.h"
#include "server/server_impl.h"
#include "vault/crypto.h"

using nlohmann::json;

namespace fv::server {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> role_names_of(const std::vector<service::Role>& roles) {
  std::vector<std::string> out;
  for (auto r : roles) out.emplace_back(service::role_name(r));
  return out;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

// ------------------------------------------------------------------ routes

void Server::Impl::add(const std::string& method, const std::string& path, service::Action action,
                       std::function<void(Call&)> fn) {
  routes.push_back({{method, path, action, role_names_of(service::roles_for(action)), {}}, std::move(fn)});
}

void Server::Impl::add_public_or_key(const std::string& method, const std::string& path, service::Action action,
                                     std::function<void(Call&)> fn) {
  routes.push_back({{method, path, action, {}, role_names_of(service::roles_for(action))}, std::move(fn)});
}

// ------------------------------------------------------------------ dispatch

Caller Server::Impl::authenticate(const Route& r, const httplib::Request& req) {
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
  auto k = svc->authenticate_key(auth.substr(7));
  if (!k.is_ok()) {
    // One body for every failure (unknown id, wrong secret, revoked): security_test KeyComparison.
    if (k.status().code() == StatusCode::kUnauthenticated) throw http_error(401, "unknown or revoked API key");
    throw from_status(Status(k.status().code(), "cannot check the API key: " + k.status().message()));
  }
  c.actor = k->first;
  c.limiter_id = "key:" + k->second.id;
  c.key = std::move(k->second);
  return c;
}

// The route's roles, checked before any use case runs; a refusal is audited as "denied" (and
// when that entry cannot be written the request fails: no refusal goes unrecorded).
void Server::Impl::check_role_at_door(const Route& r, const Caller& caller) {
  if (!caller.key) return;
  const service::Action action = r.info.action;
  if (service::role_may(caller.who().role, action)) return;
  const std::string role = service::role_name(caller.who().role);
  const std::string action_name = service::action_name(action);
  throw_if_error(svc->record_denial(caller.who(), action, "role " + role + " may not " + action_name,
                                    {{"route", r.info.path}}));
  throw http_error(403, "role '" + role + "' may not " + action_name + " (allowed: " +
                            service::role_names(service::roles_for(action)) + ")");
}

void Server::Impl::dispatch(const Route& r, const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  metrics.in_flight(+1);
  security_headers(res);
  res.set_header("Cache-Control", "no-store");
  std::string who = "-";
  try {
    Caller caller = authenticate(r, req);
    if (caller.actor) who = caller.actor->name;
    if (caller.key || !r.info.key_roles.empty()) {
      double retry = 1;
      RateLimiter& lim = caller.key ? *key_limiter : *public_limiter;
      if (!lim.take(caller.limiter_id, &retry)) {
        metrics.rate_limited(caller.key ? "key" : "public");
        res.set_header("Retry-After", std::to_string(static_cast<int>(std::ceil(retry))));
        throw http_error(429, "too many requests: retry in " + std::to_string(static_cast<int>(std::ceil(retry))) + " s");
      }
    }
    check_role_at_door(r, caller);
    Call call{req, res, std::move(caller)};
    r.fn(call);
  } catch (const HttpError& e) {
    reply(res, e.status, error_body(e));
  } catch (const std::exception& e) {
    reply(res, 500, error_body(internal_failure(std::string("unexpected exception: ") + e.what())));
  }
  // Whatever happened, no uploaded photo stays in the request's buffers.
  wipe_leftover_uploads(req, on_wipe());
  wipe_request_body(req, on_wipe());
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  metrics.request(r.info.method, r.info.path, res.status, dt);
  metrics.in_flight(-1);
  if (opt.access_log)
    std::fprintf(stderr, "facevault serve: %s %s %d %.1f ms %s\n", r.info.method.c_str(), r.info.path.c_str(), res.status,
                 dt * 1e3, who.c_str());
}

void Server::Impl::install() {
  for (size_t i = 0; i < routes.size(); ++i) {
    // OpenAPI template → regex: a dot is a dot ("{face}.jpg"), {name} matches one path segment,
    // except a subject reference, which may hold '/' (sent raw or as %2F, which the library
    // decodes before routing): it takes the rest of the path up to the route's fixed suffix.
    // Each method has one route per suffix under /v1/subjects/, so no path matches two.
    const std::string literal = std::regex_replace(routes[i].info.path, std::regex(R"(\.)"), R"(\.)");
    const std::string refs = std::regex_replace(literal, std::regex(R"(\{ref\})"), "(.+)");
    const std::string pattern = std::regex_replace(refs, std::regex(R"(\{[a-z_]+\})"), "([^/]+)");
    auto h = [this, i](const httplib::Request& req, httplib::Response& res) { dispatch(routes[i], req, res); };
    const auto& m = routes[i].info.method;
    if (m == "GET") http->Get(pattern, h);
    else if (m == "POST") http->Post(pattern, h);
    else if (m == "DELETE") http->Delete(pattern, h);
  }
  install_static_ui();
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
    // No route serves partial content, and a Range header may be ignored (RFC 9110 §14.2).
    // cpp-httplib 0.11 honours it for every response: it neither clamps a range to the body
    // (a streamed face crop then spins forever on `bytes=0-99999999`) nor bounds the number of
    // ranges (thousands of `0-` ranges copy a public document thousands of times). The request
    // is a non-const object of the library's; it reads `ranges` again only after routing.
    const_cast<httplib::Request&>(req).ranges.clear();
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

// ------------------------------------------------------------------ Server

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
  FV_RETURN_IF_ERROR(vault::ensure_sodium());
  std::unique_ptr<Server> s(new Server());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.opt = std::move(options);
  if (m.opt.tls_cert.empty() != m.opt.tls_key.empty())
    return invalid_argument("TLS needs both --tls-cert and --tls-key");
  service::ServiceOptions so = m.opt.service_options;
  so.pipelines = m.opt.pipelines > 0 ? m.opt.pipelines
                                     : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  if (m.opt.pipeline_factory) so.pipeline_factory = m.opt.pipeline_factory;
  m.pipelines = so.pipelines;
  if (m.opt.open_api) {
    FV_ASSIGN_OR_RETURN(m.svc, m.opt.open_api(std::move(so)));
  } else {
    FV_ASSIGN_OR_RETURN(m.svc, service::Service::open(m.opt.vault_dir, std::move(so)));
  }
  // Every pipeline now: missing or damaged models stop `serve` at start, not its first photo.
  FV_RETURN_IF_ERROR(m.svc->warm_up());
  m.key_limiter = std::make_unique<RateLimiter>(m.opt.rate_per_s, m.opt.rate_burst);
  m.public_limiter = std::make_unique<RateLimiter>(m.opt.public_rate_per_s, m.opt.public_burst);
  if (m.opt.retention_interval.count() < 0) return invalid_argument("the retention interval cannot be negative");
  m.retention = std::make_unique<RetentionScheduler>(*m.svc, m.opt.retention_interval, m.opt.access_log);
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
  add_meta_routes(m);
  add_subject_routes(m);
  add_search_routes(m);
  add_optout_routes(m);
  add_audit_routes(m);
  add_review_routes(m);
  add_authorisation_routes(m);
  add_report_routes(m);
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
  impl_->retention->start();  // idempotent; nothing when the interval is 0
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
  // The scheduler first: its wait ends at once; a run in progress finishes its transaction.
  if (impl_->retention) impl_->retention->stop();
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
