// Shared by security_test.cpp and security_test_limits.cpp (one binary, server_security_test):
// one vault and one server for the whole binary (models loaded once for it), API keys of every
// role plus a revoked and an unknown one, HTTP helpers, a raw-socket client for requests no
// well-behaved client would send, and the audit lookups the tests assert on.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <opencv2/imgcodecs.hpp>

#include <map>
#include <string>

#include "server/http_resp.h"
#include "server/sample_photos.h"
#include "server/server.h"
#include "support/paths.h"
#include "vault/api_keys.h"
#include "vault/vault_test_util.h"

namespace fv::test::sec {

using nlohmann::json;
namespace fs = std::filesystem;

using sample_photos::file_text;
using sample_photos::photo;
using sample_photos::samples;
// A valid image with no face: every image route accepts it past authentication, cheaply.
inline std::string grey_png() {
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(64, 64, CV_8UC3, cv::Scalar(128, 128, 128)), png);
  return std::string(png.begin(), png.end());
}

inline const std::vector<std::string> kRoles = {"admin", "enroller", "investigator", "auditor", "reviewer"};
// Every kind of caller the matrix tries: no key, a well-formed key the vault never issued, a
// revoked key, and one key per role.
inline const std::vector<std::string> kCallers = {"none",    "unknown", "revoked", "admin",
                                                   "enroller", "investigator", "auditor", "reviewer"};

struct Env {
  TempDir tmp;
  fs::path dir;
  std::unique_ptr<server::Server> srv;
  std::map<std::string, std::string> key, key_id;  // caller → full key / its id
};

// A new API key issued by the test's admin ("tester"); an empty key on failure (the test fails).
inline vault::NewApiKey issue_key(service::Service& svc, const std::string& role, const std::vector<std::string>& purposes,
                                  const std::string& label) {
  auto r = service::parse_role(role);
  EXPECT_TRUE(r.has_value()) << role;
  auto k = svc.create_api_key(kAdmin, r.value_or(service::Role::kAuditor), purposes, label);
  EXPECT_TRUE(k.is_ok()) << k.status().to_string();
  return k.is_ok() ? std::move(k).value() : vault::NewApiKey{};
}

// A server over `dir` with test defaults (no rate limit, ephemeral port).
inline std::unique_ptr<server::Server> start_server(server::ServerOptions o) {
  o.port = 0;
  if (o.pipelines == 0) o.pipelines = 1;
  o.rate_per_s = 0;
  auto s = server::Server::create(o);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  if (!s.is_ok()) return nullptr;
  EXPECT_TRUE((*s)->start().is_ok());
  return std::move(s).value();
}

// For servers whose tests never reach the face pipeline: no models loaded. (Posting an image
// that passes every check to such a server would dereference null: the tests never do.)
inline server::ServerOptions no_pipeline(server::ServerOptions o) {
  o.pipeline_factory = [] { return Result<std::unique_ptr<face::FacePipeline>>(std::unique_ptr<face::FacePipeline>()); };
  return o;
}

inline Env* env() {
  static Env* e = [] {
    auto* e = new Env();
    EXPECT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    e->dir = e->tmp.path() / "v";
    EXPECT_TRUE(vault::Vault::init(e->dir).is_ok());
    {
      // Keys are issued through the service, as `facevault key create` does (no models loaded:
      // the service builds its pipelines on first need).
      auto svc = open_service(e->dir);
      EXPECT_NE(svc, nullptr);
      for (const auto& role : kRoles) {
        auto k = issue_key(*svc, role, {"access-control"}, "sec " + role);
        e->key[role] = k.secret;
        e->key_id[role] = k.key.id;
      }
      auto rev = issue_key(*svc, "admin", {"access-control"}, "sec revoked");
      e->key["revoked"] = rev.secret;
      e->key_id["revoked"] = rev.key.id;
      EXPECT_TRUE(svc->revoke_api_key(kAdmin, rev.key.id).is_ok());
    }
    // Well formed, never issued (its id is not in the vault).
    e->key_id["unknown"] = "0123456789ab";
    e->key["unknown"] = "fvk_0123456789ab_" + std::string(64, 'c');
    server::ServerOptions o;
    o.vault_dir = e->dir;
    o.http_threads = 8;
    o.max_upload_bytes = 2u << 20;
    o.access_log = true;  // captured and scanned by NoTemplateOrImageBytesInLogsErrorsOrMetrics
    e->srv = start_server(o);
    return e;
  }();
  return e;
}

inline bool have_models_and_samples() { return models_present() && fs::exists(samples()); }

inline httplib::Client client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60);
  c.set_connection_timeout(30);
  return c;
}
inline httplib::Headers auth_for(const std::string& caller) {
  if (caller.empty() || caller == "none") return {};
  return {{"Authorization", "Bearer " + env()->key.at(caller)}};
}
inline httplib::MultipartFormData part(const std::string& name, const std::string& content, const std::string& filename = "",
                                       const std::string& type = "") {
  return {name, content, filename, type};
}

// An error: the status, and a JSON body {error: {status, code, message}}.
inline ::testing::AssertionResult is_json_error(const Resp& r, int status) {
  if (r.status != status) return ::testing::AssertionFailure() << "status " << r.status << " != " << status << ": " << r.raw;
  if (!r.body.is_object() || !r.body.contains("error") || r.body["error"].value("status", 0) != status ||
      r.body["error"].value("code", "").empty() || r.body["error"].value("message", "").empty())
    return ::testing::AssertionFailure() << "not a JSON error body: " << r.raw;
  return ::testing::AssertionSuccess();
}

// Audit entries whose actor is `actor` (optionally only those with this outcome), read on a
// connection of our own.
inline int64_t audit_count(const fs::path& vault_dir, const std::string& actor, const std::string& outcome = "",
                           const std::string& route = "") {
  auto db = vault::Db::open(vault_dir / "vault.db", false);
  EXPECT_TRUE(db.is_ok());
  if (!db.is_ok()) return -1;
  sqlite3_busy_timeout(db->handle(), 15000);
  auto q = db->prepare(
      "SELECT count(*) FROM audit WHERE actor=?1 AND (?2='' OR outcome=?2) AND (?3='' OR json_extract(details,'$.route')=?3)");
  EXPECT_TRUE(q.is_ok());
  q->bind_all(actor, outcome, route);
  auto row = q->step();
  return row.is_ok() && *row ? q->i64(0) : -1;
}
inline int64_t audit_total(const fs::path& vault_dir) {
  auto db = vault::Db::open(vault_dir / "vault.db", false);
  if (!db.is_ok()) return -1;
  sqlite3_busy_timeout(db->handle(), 15000);
  auto n = db->query_int("SELECT count(*) FROM audit");
  return n.is_ok() ? *n : -1;
}

// ------------------------------------------------------------------ raw sockets

inline int raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}
// Sends what it can (the server may answer and close before a huge request is all sent).
inline bool raw_send(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}
// Everything the server sends until it closes the connection (or `timeout_s` of silence).
inline std::string raw_read_all(int fd, int timeout_s = 30) {
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_s * 1000) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}
// One request on its own connection; the whole response (the request should say
// "Connection: close").
inline std::string raw_request(int port, std::string_view bytes, int timeout_s = 30) {
  const int fd = raw_connect(port);
  if (fd < 0) return "";
  raw_send(fd, bytes);
  std::string out = raw_read_all(fd, timeout_s);
  ::close(fd);
  return out;
}
inline int raw_status(const std::string& response) {
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 && response.compare(0, 9, "HTTP/1.0 ") != 0) return 0;
  return std::atoi(response.c_str() + 9);
}
inline std::string raw_body(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}
inline std::string raw_head(const std::string& response) { return response.substr(0, response.find("\r\n\r\n")); }

// The server still serves: the liveness check after every hostile request.
inline bool still_serves(int port) {
  auto r = client(port).Get("/healthz");
  return r && r->status == 200;
}

}  // namespace fv::test::sec
