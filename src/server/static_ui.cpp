// The web UI: the pages and files of web/, embedded at build time, or read from
// ServerOptions::web_root while working on the UI. Public, not audited.
#include <cstring>
#include <fstream>
#include <sstream>

#include "server/server_impl.h"

namespace fs = std::filesystem;

namespace fv::server {
namespace {

std::string mime_for(const std::string& name) {
  auto ends = [&](const char* e) {
    return name.size() >= std::strlen(e) && name.compare(name.size() - std::strlen(e), std::string::npos, e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

}  // namespace

void Server::Impl::install_static_ui() {
  auto page = [this](const std::string& name) {
    return [this, name](const httplib::Request&, httplib::Response& res) { serve_file(name, res); };
  };
  http->Get("/", page("index.html"));
  http->Get("/optout", page("optout.html"));
  http->Get(R"(/ui/([A-Za-z0-9_.-]+))", [this](const httplib::Request& req, httplib::Response& res) {
    serve_file(req.matches[1], res);
  });
}

void Server::Impl::serve_file(const std::string& name, httplib::Response& res) {
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
    const bool inside = !ec && !name.empty() && name[0] != '.' && file.parent_path() == root && fs::is_regular_file(file, ec);
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

}  // namespace fv::server
