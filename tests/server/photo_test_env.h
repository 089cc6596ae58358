// Shared by wipe_test.cpp and parity_test.cpp (one binary, server_photo_test): one vault and
// one server for the whole binary (the models are loaded once, by the service's single
// pipeline), API keys of every role, and a log of every wipe the server and the service
// report through ServiceOptions::on_wipe.
#pragma once

#include <httplib.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/http_resp.h"
#include "server/sample_photos.h"
#include "server/server.h"
#include "support/paths.h"
#include "vault/vault_test_util.h"

namespace fv::test::photo {

using nlohmann::json;
namespace fs = std::filesystem;

using sample_photos::file_text;
using sample_photos::photo;
using sample_photos::samples;

// Every wipe reported, in order: (what, bytes).
class WipeLog {
 public:
  void add(service::WipeKind k, size_t bytes) {
    std::lock_guard<std::mutex> l(mu_);
    events_.emplace_back(k, bytes);
  }
  std::vector<std::pair<service::WipeKind, size_t>> take() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(events_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<service::WipeKind, size_t>> events_;
};

struct Env {
  TempDir tmp;
  fs::path dir;
  WipeLog wipes;
  std::unique_ptr<server::Server> srv;
  std::map<std::string, std::string> key;  // role → full key
};

inline bool have_models_and_samples() { return models_present() && fs::exists(samples()); }

inline Env* env() {
  static Env* e = [] {
    auto* e = new Env();
    EXPECT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    e->dir = e->tmp.path() / "v";
    EXPECT_TRUE(vault::Vault::init(e->dir).is_ok());
    {
      auto svc = open_service(e->dir);
      EXPECT_NE(svc, nullptr);
      for (auto role : service::all_roles()) {
        auto k = svc->create_api_key(kAdmin, role, {"access-control"}, "photo test");
        EXPECT_TRUE(k.is_ok()) << k.status().to_string();
        if (k.is_ok()) e->key[service::role_name(role)] = k->secret;
      }
    }
    server::ServerOptions o;
    o.vault_dir = e->dir;
    o.port = 0;
    o.pipelines = 1;
    o.http_threads = 4;
    o.rate_per_s = 0;
    o.access_log = false;
    o.service_options.on_wipe = [e](service::WipeKind k, size_t n) { e->wipes.add(k, n); };
    auto s = server::Server::create(o);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    if (s.is_ok()) {
      e->srv = std::move(s).value();
      EXPECT_TRUE(e->srv->start().is_ok());
    }
    return e;
  }();
  return e;
}

inline httplib::Client client() {
  httplib::Client c("127.0.0.1", env()->srv->port());
  c.set_read_timeout(120);
  return c;
}
inline httplib::Headers auth(const std::string& role) {
  if (role.empty()) return {};
  return {{"Authorization", "Bearer " + env()->key.at(role)}};
}
inline httplib::MultipartFormData img(const std::string& name, const fs::path& p) {
  return {name, file_text(p), p.filename().string(), "image/png"};
}
inline httplib::MultipartFormData text(const std::string& name, const std::string& v) { return {name, v, "", ""}; }
inline Resp post_form(const std::string& path, const std::string& role, const httplib::MultipartFormDataItems& items) {
  return wrap(client().Post(path.c_str(), auth(role), items));
}
inline Resp post_json(const std::string& path, const std::string& role, const json& body) {
  return wrap(client().Post(path.c_str(), auth(role), body.dump(), "application/json"));
}

// A subject with a basis for access-control, one photo enrolled: the basis id.
inline int64_t enrolled_subject(const std::string& ref, const fs::path& p) {
  auto b = post_json("/v1/subjects", "enroller",
                     {{"ref", ref}, {"kind", "consent"}, {"reference", "F-" + ref}, {"purposes", {"access-control"}}});
  EXPECT_EQ(b.status, 201) << b.raw;
  const int64_t basis = b.body.value("id", int64_t{0});
  auto e = post_form("/v1/subjects/" + ref + "/faces", "enroller", {img("image", p), text("basis", std::to_string(basis))});
  EXPECT_EQ(e.status, 201) << e.raw;
  return basis;
}

}  // namespace fv::test::photo
