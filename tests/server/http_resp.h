// An HTTP answer as the server tests look at it: status, raw body, parsed JSON body, headers.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <string>

namespace fv::test {

struct Resp {
  int status = 0;  // 0: no response
  nlohmann::json body;
  std::string raw;
  httplib::Headers headers;
  std::string header(const std::string& k) const { return httplib::detail::get_header_value(headers, k.c_str(), 0, ""); }
};

inline Resp wrap(const httplib::Result& r) {
  Resp out;
  if (!r) return out;
  out.status = r->status;
  out.raw = r->body;
  out.headers = r->headers;
  out.body = nlohmann::json::parse(r->body, nullptr, false);
  return out;
}

}  // namespace fv::test
