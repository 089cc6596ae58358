// `facevault serve`: the HTTP/JSON API over the service (cpp-httplib) and the web UI.
//
// A thin adapter: every route names the service Action it performs, admits the roles the
// policy table gives that action (service::roles_for), and maps one request onto one service
// use case, with the request's API key as its actor ("key:<id>", the key's role). Roles,
// purposes, lawful bases, photo analysis, wiping and the audit are the service's. What the
// server adds is transport: authentication by API key (Authorization: Bearer), per-key rate
// limits, request size limits, status codes (by StatusCode, http_status.h) with JSON error
// bodies, metrics, the OpenAPI document and the web UI.
//
// Concurrency is the service's too (it is thread-safe): requests are served by a pool of HTTP
// threads that call it directly; it runs photo analysis on its own pool of face pipelines
// outside its lock.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "face/pipeline.h"
#include "service/service.h"

namespace fv::server {

struct ServerOptions {
  std::filesystem::path vault_dir;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: an ephemeral port (see Server::port())
  std::string tls_cert, tls_key;  // both or neither: HTTPS from these PEM files
  int http_threads = 16;
  int pipelines = 0;  // the service's face pipelines (photos analyzed at once); 0: the number of cores (max 4)
  size_t max_upload_bytes = 16u << 20;  // per request with an image
  size_t max_json_bytes = 64u << 10;
  double rate_per_s = 10, rate_burst = 30;      // per API key; rate <= 0: no limit
  double public_rate_per_s = 0.2, public_burst = 5;  // per client address, public opt-out form
  bool public_optout = true;  // POST /v1/optout without a key (recorded as "public:optout-form")
  std::filesystem::path web_root;  // serve the UI from here instead of the embedded copy
  bool access_log = true;
  // Slow or idle clients: a connection that sends nothing for read_timeout_s while a request is
  // being read, or stays idle for keep_alive_timeout_s between requests, is closed; and a
  // request not read in full request_timeout_s after its first byte (a client trickling a
  // byte at a time: slowloris) is refused and its connection closed. So each slow client
  // holds one of the http_threads for a bounded time. Over TLS (cpp-httplib's own connection
  // loop) only the per-read timeouts apply. request_timeout_s also bounds uploads: 60 s for
  // 16 MiB asks for about 2.2 Mbit/s.
  int read_timeout_s = 10, write_timeout_s = 30, keep_alive_timeout_s = 2;
  int request_timeout_s = 60;
  // Request headers beyond these limits are refused with 431 before any route runs. (A single
  // header line over 8 KiB is refused by cpp-httplib itself with 400.)
  size_t max_header_count = 100;
  size_t max_header_bytes = 64u << 10;
  // Retention that runs itself: Service::expire as "scheduler:retention" (role auditor) every
  // this often, the first run one interval after start (retention_scheduler.h); 0: never.
  // The last run is in /metrics (facevault_retention_*) and GET /v1/retention/last.
  std::chrono::seconds retention_interval{3600};
  // Builds a face pipeline (tests share model files); default: FacePipeline::create with the
  // vault's configured models. Handed to the service with `pipelines`.
  std::function<Result<std::unique_ptr<face::FacePipeline>>()> pipeline_factory;
  // The rest of the service's options: its clock, a shared pipeline, and on_wipe, which the
  // server also calls for the request buffers it zeroes itself (tests count the wipes).
  // Its `pipelines` and `pipeline_factory` are replaced by the two fields above.
  service::ServiceOptions service_options;
  // Opens the use cases the server serves, given the service options above; default:
  // service::Service::open(vault_dir). Cluster mode (`serve --cluster`) opens a
  // service::ClusterService over the node's shards instead.
  std::function<Result<std::unique_ptr<service::Api>>(service::ServiceOptions)> open_api;
};

struct RouteInfo {
  std::string method;  // GET, POST, DELETE
  std::string path;    // OpenAPI template, e.g. /v1/subjects/{ref}
  service::Action action = service::Action::kHealth;  // what it does; its roles come from the policy table
  // The names of service::roles_for(action); empty: public (no key needed; a key sent anyway
  // is ignored).
  std::vector<std::string> roles;
  // Public routes that also take a key (POST /v1/optout: the public form, or an officer's key):
  // a key sent must be valid (401 otherwise) and have one of these roles (403 otherwise).
  std::vector<std::string> key_roles;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> create(ServerOptions options);
  ~Server();

  // Binds the listening socket (port() is then known).
  Status bind();
  // Serves until stop(); returns after the listener closes.
  Status run();
  // bind() + run() on a background thread.
  Status start();
  void stop();
  int port() const;
  bool tls() const;

  // Every route the router serves (what the OpenAPI document must describe).
  std::vector<RouteInfo> routes() const;

  struct Impl;

 private:
  Server() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fv::server
