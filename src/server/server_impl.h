// The server's inside, shared by server.cpp (create, dispatch, authentication, limits) and the
// route files (one per resource: routes_*.cpp, static_ui.cpp). Not a public header.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/http_util.h"
#include "server/metrics.h"
#include "server/rate_limit.h"
#include "server/retention_scheduler.h"
#include "server/server.h"
#include "service/policy.h"
#include "service/service.h"
#include "vault/api_keys.h"

namespace fv::server {

// Who is calling: an API key's actor, the public opt-out form, or nobody (public routes).
struct Caller {
  std::optional<vault::ApiKey> key;
  std::optional<service::Actor> actor;  // what the service and the audit log see
  std::string limiter_id;
  bool is_public = false;
  const service::Actor& who() const { return *actor; }  // routes that admit no anonymous caller
};

struct Call {
  const httplib::Request& req;
  httplib::Response& res;
  Caller caller;
};

struct Route {
  RouteInfo info;
  std::function<void(Call&)> fn;
  bool is_public() const { return info.roles.empty(); }
  bool takes_key() const { return !info.roles.empty() || !info.key_roles.empty(); }
};

struct Server::Impl {
  ServerOptions opt;
  std::unique_ptr<httplib::Server> http;
  std::thread thread;
  std::atomic<bool> running{false};
  int port = 0;

  std::unique_ptr<service::Api> svc;  // thread-safe: called from every HTTP thread
  int pipelines = 0;                      // the service's pool size (shown by /healthz)
  Metrics metrics;
  std::unique_ptr<RateLimiter> key_limiter, public_limiter;
  // After svc: destroyed (and its thread joined) before the service it calls.
  std::unique_ptr<RetentionScheduler> retention;
  std::vector<Route> routes;
  std::map<std::string, std::string> web;  // file name → content
  std::string openapi;

  // ---- routes (the route files call these)

  // A route performing `action`, admitting the roles the policy table gives it (none for a
  // public action).
  void add(const std::string& method, const std::string& path, service::Action action, std::function<void(Call&)> fn);
  // A public route that also takes a key: without one it runs as the route decides; with one
  // the key must have a role the policy table gives `action`.
  void add_public_or_key(const std::string& method, const std::string& path, service::Action action,
                         std::function<void(Call&)> fn);

  const WipeHook& on_wipe() const { return opt.service_options.on_wipe; }
  // An image part for the service (see take_image_part).
  std::vector<uint8_t> image_part(const httplib::Request& req, const std::string& name) const {
    return take_image_part(req, name, opt.max_upload_bytes, on_wipe());
  }
  nlohmann::json json_body(const httplib::Request& req, bool allow_empty = false) const {
    return server::json_body(req, opt.max_json_bytes, allow_empty);
  }
  // Runs a use case that analyzes a photo, timing it for facevault_inference_seconds.
  template <class F>
  auto photo_use_case(const char* stage, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = f(*svc);
    metrics.inference(stage, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return r;
  }

  // ---- dispatch (server.cpp)

  Caller authenticate(const Route& r, const httplib::Request& req);
  void check_role_at_door(const Route& r, const Caller& caller);
  void dispatch(const Route& r, const httplib::Request& req, httplib::Response& res);
  void install();

  // ---- the web UI (static_ui.cpp)

  void install_static_ui();
  void serve_file(const std::string& name, httplib::Response& res);
};

// One function per resource, each adding its routes (routes_*.cpp).
void add_meta_routes(Server::Impl& s);      // healthz, metrics, openapi, whoami
void add_subject_routes(Server::Impl& s);   // subjects, bases, faces, erase, export, withdraw
void add_search_routes(Server::Impl& s);    // search, verify, detect
void add_optout_routes(Server::Impl& s);    // optout, optout check
void add_audit_routes(Server::Impl& s);     // audit, audit verify, retention run and last run
void add_review_routes(Server::Impl& s);    // review cases, decisions, probe and reference crops
void add_authorisation_routes(Server::Impl& s);  // authorisations of searches
void add_report_routes(Server::Impl& s);    // the transparency report

}  // namespace fv::server
