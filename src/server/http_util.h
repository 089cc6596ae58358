// Request parsing and error replies shared by the route files. Inside the server a handler
// stops with `throw HttpError` (or value_or_throw on a service Result); the dispatcher turns it
// into a status and a JSON error body. Nothing is thrown out of the server module.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "server/http_status.h"
#include "service/service.h"

namespace fv::server {

struct HttpError {
  int status;
  std::string code, message;
};

HttpError http_error(int status, std::string message);
// A failure of the server itself (500): `detail` (a SQL error, a path, an exception's text) goes
// to the server's log under a random incident id, and the reply names only that id.
HttpError internal_failure(const std::string& detail);
// The service's Status as an HTTP error: by code only (http_status_for); a 500's message is
// logged, not sent (internal_failure).
HttpError from_status(const Status& st);

inline void throw_if_error(const Status& st) {
  if (!st.is_ok()) throw from_status(st);
}
template <class T>
T value_or_throw(Result<T> r) {
  if (!r.is_ok()) throw from_status(r.status());
  return std::move(r).value();
}

nlohmann::json error_body(const HttpError& e);
void security_headers(httplib::Response& res);
// The Content-Security-Policy of the web UI's pages (static_ui.cpp sends the same text), the
// base of the transparency report page's (routes_report.cpp: plus the hash of its own inline
// style); tests/server/oversight_test.cpp compares the two.
inline constexpr const char* kPageContentSecurityPolicy =
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
// JSON reply that never throws on invalid UTF-8 echoed from a request (it becomes U+FFFD).
void reply(httplib::Response& res, int status, const nlohmann::json& j);

// ---- form fields (multipart) and query values

void require_multipart(const httplib::Request& req);
std::string form_field(const httplib::Request& req, const std::string& name);  // "" when absent
int int_field(const std::string& text, const std::string& name, int lo, int hi, int fallback);
// A record id: 1 to 2^53 (what JSON carries exactly); cluster ids are local id × 1024 + shard,
// past 32 bits on a large vault. Throws 400 on anything else, including an empty text.
int64_t id_field(const std::string& text, const std::string& name);
// A yes/no field: 1 or true, 0 or false ("" when absent: false); anything else is 400.
bool flag_field(const std::string& text, const std::string& name);
std::optional<double> double_field(const std::string& text, const std::string& name, double lo, double hi);

// ---- JSON bodies

nlohmann::json json_body(const httplib::Request& req, size_t max_bytes, bool allow_empty = false);
std::string json_string(const nlohmann::json& j, const std::string& key, bool required);
std::vector<std::string> json_strings(const nlohmann::json& j, const std::string& key);

// ---- uploaded photos

using WipeHook = std::function<void(service::WipeKind, size_t bytes)>;

// The image part `name` as bytes for the service (which wipes them). The part's own buffer in
// the request is zeroed here, once copied, and reported to `on_wipe` as kUploadedBytes; so are
// the copied bytes when the part is refused here (empty, over `max_bytes`, not an image).
std::vector<uint8_t> take_image_part(const httplib::Request& req, const std::string& name, size_t max_bytes,
                                     const WipeHook& on_wipe);
// Zeroes the request's raw body (empty for multipart requests: cpp-httplib parses the parts
// straight into their own buffers) and reports it when there was anything to zero.
void wipe_request_body(const httplib::Request& req, const WipeHook& on_wipe);
// Zeroes every uploaded file part (one with a file name) a handler did not take, e.g. when a
// request was refused before its photo was read; reported as kUploadedBytes. Parts already
// zeroed are left alone (and not reported twice).
void wipe_leftover_uploads(const httplib::Request& req, const WipeHook& on_wipe);

}  // namespace fv::server
