#include "server/http_util.h"

#include <cstdio>
#include <stdexcept>

#include "image/decode.h"
#include "vault/crypto.h"

using nlohmann::json;

namespace fv::server {
namespace {

// cpp-httplib hands handlers a const Request, but the request object is the library's own
// mutable per-request value; zeroing a photo's bytes in place (its length unchanged) is the
// only way to keep them from lingering in freed heap memory after the request.
void zero_in_place(const std::string& s, service::WipeKind kind, const WipeHook& on_wipe) {
  if (s.empty()) return;
  auto& writable = const_cast<std::string&>(s);
  vault::wipe(writable.data(), writable.size());
  if (on_wipe) on_wipe(kind, writable.size());
}

}  // namespace

HttpError http_error(int status, std::string message) { return {status, http_error_code(status), std::move(message)}; }

HttpError internal_failure(const std::string& detail) {
  const std::string incident = vault::random_hex(6);
  std::fprintf(stderr, "facevault serve: incident %s: %s\n", incident.c_str(), detail.c_str());
  return http_error(500, "internal error (incident " + incident + "; the server's log has the details)");
}

HttpError from_status(const Status& st) {
  const int status = http_status_for(st.code());
  if (status == 500) return internal_failure(st.to_string());
  return http_error(status, st.message());
}

json error_body(const HttpError& e) { return {{"error", {{"status", e.status}, {"code", e.code}, {"message", e.message}}}}; }

void security_headers(httplib::Response& res) {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
}

void reply(httplib::Response& res, int status, const json& j) {
  res.status = status;
  // Error messages echo request text (a path, a subject reference) that may not be UTF-8:
  // nlohmann's default dump() throws on it, and a throw from the error handler (outside any
  // route's try) ends the process. Invalid bytes become U+FFFD (security_test Traversal).
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void require_multipart(const httplib::Request& req) {
  if (!req.is_multipart_form_data())
    throw http_error(415, "this route takes multipart/form-data (an image part and text fields)");
}

std::string form_field(const httplib::Request& req, const std::string& name) {
  // req.files itself: get_file_value() copies the whole part, and a copy of a photo part
  // would be freed unwiped.
  const auto part = req.files.find(name);
  return part == req.files.end() ? "" : part->second.content;
}

int int_field(const std::string& text, const std::string& name, int lo, int hi, int fallback) {
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

int64_t id_field(const std::string& text, const std::string& name) {
  constexpr long long kMax = 1LL << 53;
  try {
    size_t used = 0;
    const long long v = text.empty() ? 0 : std::stoll(text, &used);
    if (text.empty() || used != text.size() || v < 1 || v > kMax) throw std::out_of_range("x");
    return v;
  } catch (...) {
    throw http_error(400, "'" + name + "' must be an id from 1 to " + std::to_string(kMax));
  }
}

bool flag_field(const std::string& text, const std::string& name) {
  if (text.empty() || text == "0" || text == "false") return false;
  if (text == "1" || text == "true") return true;
  throw http_error(400, "'" + name + "' must be 1, 0, true or false");
}

std::optional<double> double_field(const std::string& text, const std::string& name, double lo, double hi) {
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

json json_body(const httplib::Request& req, size_t max_bytes, bool allow_empty) {
  if (req.body.size() > max_bytes) throw http_error(413, "the JSON body is larger than the limit");
  if (allow_empty && req.body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  auto j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) throw http_error(400, "malformed JSON in the request body");
  if (!j.is_object()) throw http_error(400, "the request body must be a JSON object");
  return j;
}

std::string json_string(const json& j, const std::string& k, bool required) {
  if (!j.contains(k) || j[k].is_null()) {
    if (required) throw http_error(400, "missing field '" + k + "'");
    return "";
  }
  if (!j[k].is_string()) throw http_error(400, "field '" + k + "' must be a string");
  return j[k].get<std::string>();
}

std::vector<std::string> json_strings(const json& j, const std::string& k) {
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

std::vector<uint8_t> take_image_part(const httplib::Request& req, const std::string& name, size_t max_bytes,
                                     const WipeHook& on_wipe) {
  require_multipart(req);
  // req.files itself, not get_file_value(), which returns a copy: the request's own buffer is
  // the one to zero.
  const auto part = req.files.find(name);
  if (part == req.files.end()) throw http_error(400, "missing the image part '" + name + "'");
  const std::string& content = part->second.content;
  if (content.empty()) throw http_error(400, "the image part '" + name + "' is empty");
  std::vector<uint8_t> bytes(content.begin(), content.end());
  zero_in_place(content, service::WipeKind::kUploadedBytes, on_wipe);
  auto refuse = [&](int status, std::string message) {
    const size_t n = bytes.size();
    vault::wipe(bytes);
    if (on_wipe) on_wipe(service::WipeKind::kUploadedBytes, n);
    return http_error(status, std::move(message));
  };
  if (bytes.size() > max_bytes)
    throw refuse(413, "the image is larger than " + std::to_string(max_bytes >> 20) + " MiB");
  if (image::sniff_header(bytes).format.empty())
    throw refuse(415, "the part '" + name + "' is not an image (JPEG, PNG, WebP, BMP, TIFF or PNM expected)");
  return bytes;
}

void wipe_request_body(const httplib::Request& req, const WipeHook& on_wipe) {
  zero_in_place(req.body, service::WipeKind::kUploadedBytes, on_wipe);
}

void wipe_leftover_uploads(const httplib::Request& req, const WipeHook& on_wipe) {
  for (const auto& [_, part] : req.files) {
    // A text field stays. A part is an upload when it has a filename or holds image bytes
    // (curl -F 'image=<f.jpg' sends none), recognised as take_image_part does.
    const auto bytes = std::span(reinterpret_cast<const uint8_t*>(part.content.data()), part.content.size());
    if (part.filename.empty() && image::sniff_header(bytes).format.empty()) continue;
    const bool zeroed = part.content.find_first_not_of('\0') == std::string::npos;
    if (!zeroed) zero_in_place(part.content, service::WipeKind::kUploadedBytes, on_wipe);
  }
}

}  // namespace fv::server
