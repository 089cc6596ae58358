// `facevault serve`: the HTTP/JSON API over the service (cpp-httplib) and the web UI.
//
// A thin adapter: every route declares the roles it admits and maps one request onto one
// service use case; roles, purposes, lawful bases and the audit are enforced by the service,
// with the request's API key as its actor ("key:<id>", the key's role). What the server adds
// is transport: authentication by API key (Authorization: Bearer), per-key rate limits,
// request size limits, status codes with JSON error bodies, metrics, and concurrency:
//
//  - requests are served by a pool of HTTP threads;
//  - the face pipeline (decode, detect, align, embed: most of a request's CPU) runs outside
//    any lock on a pool of pipelines, so searches, enrolments and detections overlap;
//  - the service (one SQLite connection and its in-memory gallery) is entered under one mutex
//    for the short part of a request: the scan, the commit, the audit entry.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "face/pipeline.h"

namespace fv::server {

struct ServerOptions {
  std::filesystem::path vault_dir;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: an ephemeral port (see Server::port())
  std::string tls_cert, tls_key;  // both or neither: HTTPS from these PEM files
  int http_threads = 16;
  int pipelines = 0;  // face pipelines for concurrent requests; 0: the number of cores (max 4)
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
  // Builds a face pipeline (tests share model files); default: FacePipeline::create with the
  // vault's configured models.
  std::function<Result<std::unique_ptr<face::FacePipeline>>()> pipeline_factory;
};

struct RouteInfo {
  std::string method;  // GET, POST, DELETE
  std::string path;    // OpenAPI template, e.g. /v1/subjects/{ref}
  std::vector<std::string> roles;  // empty: public (no key needed; a key sent anyway is ignored)
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
