// The HTTP API over real HTTP on 127.0.0.1 (an ephemeral port): every route with success,
// wrong role, missing key, missing purpose/case, malformed JSON, oversized and non-image
// uploads and unknown ids: the status code, a JSON error body, and nothing written on failure.
// Also: every route of the router is in /v1/openapi.json and every path there is routed.
// Needs the models and ../shared/data/samples; skips without them.
//
// Built twice: server_api_test serves one vault; server_api_cluster_test (FV_API_TEST_CLUSTER)
// serves node a of a three-node cluster (3 nats-servers, 4 shards, 3 replicas), so every
// route, role, refusal and the audit behave on a cluster node as on one vault.
#include <httplib.h>

#include <opencv2/imgcodecs.hpp>

#include <future>
#include <map>
#include <set>
#include <thread>

#include "server/http_resp.h"
#include "server/server.h"
#ifdef FV_API_TEST_CLUSTER
#include "cluster/cluster_config.h"
#include "cluster/node.h"
#include "service/cluster_service.h"
#include "support/nats_servers.h"
#endif
#include "support/paths.h"
#include "vault/api_keys.h"
#include "vault/vault_test_util.h"

namespace fv::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

fs::path samples() { return data_dir() / "samples" / "face-api-js" / "images"; }
fs::path photo(const std::string& who, int n) { return samples() / who / (who + std::to_string(n) + ".png"); }
std::string file_text(const fs::path& p) {
  auto b = file_bytes(p);
  return std::string(b.begin(), b.end());
}

struct Env {
  TempDir tmp;
  fs::path dir;  // the vault (cluster: node a's folder, its meta and shard vaults inside)
#ifdef FV_API_TEST_CLUSTER
  std::unique_ptr<NatsTestCluster> nats;
  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;  // a, b, c
#endif
  std::unique_ptr<server::Server> srv;
  std::map<std::string, std::string> key;  // role → key; plus "revoked", "narrow"
  std::map<std::string, std::string> key_id;
};
Env* env = nullptr;

#ifdef FV_API_TEST_CLUSTER
const std::string kClusterMaster(64, '5');
const std::string kClusterSigning(64, '6');

// Node a's use cases (the keys are issued through them, as `facevault cluster key create` does).
std::unique_ptr<service::ClusterService> open_cluster_service() {
  auto cs = service::ClusterService::open(*env->nodes[0], {});
  EXPECT_TRUE(cs.is_ok()) << cs.status().to_string();
  return cs.is_ok() ? std::move(*cs) : nullptr;
}
#endif

// A server over the test's vault (cluster: over node a).
server::ServerOptions server_options() {
  server::ServerOptions o;
  o.vault_dir = env->dir;
#ifdef FV_API_TEST_CLUSTER
  o.open_api = [](service::ServiceOptions so) -> Result<std::unique_ptr<service::Api>> {
    FV_ASSIGN_OR_RETURN(auto cs, service::ClusterService::open(*env->nodes[0], std::move(so)));
    return std::unique_ptr<service::Api>(std::move(cs));
  };
#endif
  return o;
}

// The SQLite files of the vault (cluster: node a's meta and shard vaults).
std::vector<fs::path> vault_files() {
#ifdef FV_API_TEST_CLUSTER
  std::vector<fs::path> out = {env->dir / "meta" / "vault.db"};
  for (const auto& d : fs::directory_iterator(env->dir / "shards")) out.push_back(d.path() / "vault.db");
  return out;
#else
  return {env->dir / "vault.db"};
#endif
}

class ApiTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    if (!models_present() || !fs::exists(samples())) return;
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    env = new Env();
    env->dir = env->tmp.path() / "v";
#ifdef FV_API_TEST_CLUSTER
    ::setenv(vault::kMasterKeyEnv, kClusterMaster.c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, kClusterSigning.c_str(), 1);
    env->nats = std::make_unique<NatsTestCluster>(3);
    ASSERT_TRUE(env->nats->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
    {
      auto conn = cluster::NatsConnection::connect({env->nats->urls(), "test"});
      ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
      ASSERT_TRUE(cluster::init_cluster(**conn, 4, 3).is_ok());
    }
    for (const std::string name : {"a", "b", "c"}) {
      cluster::NodeOptions no;
      no.servers = env->nats->urls();
      no.name = name;
      no.dir = name == "a" ? env->dir : env->tmp.path() / name;
      auto n = cluster::ClusterNode::start(no);
      ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
      env->nodes.push_back(std::move(*n));
    }
    {
      auto svc = open_cluster_service();
#else
    unsetenv(vault::kMasterKeyEnv);
    ASSERT_TRUE(vault::Vault::init(env->dir).is_ok());
    {
      // Keys are issued through the service, as `facevault key create` does.
      auto svc = open_service(env->dir);
#endif
      ASSERT_NE(svc, nullptr);
      auto issue = [&](service::Role role, std::vector<std::string> purposes, const std::string& label) {
        auto k = svc->create_api_key(kAdmin, role, purposes, label);
        EXPECT_TRUE(k.is_ok()) << k.status().to_string();
        return k.is_ok() ? std::move(k).value() : vault::NewApiKey{};
      };
      for (auto role : service::all_roles()) {
        const std::string name = service::role_name(role);
        auto k = issue(role, {"access-control"}, "test " + name);
        ASSERT_FALSE(k.secret.empty());
        env->key[name] = k.secret;
        env->key_id[name] = k.key.id;
      }
      env->key["narrow"] = issue(service::Role::kInvestigator, {"other-purpose"}, "narrow").secret;
      env->key["two-purposes"] = issue(service::Role::kInvestigator, {"access-control", "marketing"}, "two purposes").secret;
      auto rev = issue(service::Role::kAdmin, {}, "revoked");
      env->key["revoked"] = rev.secret;
      ASSERT_TRUE(svc->revoke_api_key(kAdmin, rev.key.id).is_ok());
    }
    server::ServerOptions o = server_options();
    o.port = 0;
    o.pipelines = 1;
    o.http_threads = 4;
    o.max_upload_bytes = 2u << 20;
    o.rate_per_s = 0;  // no limit here; RateLimit test below runs its own server
    o.access_log = false;
    auto s = server::Server::create(o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    env->srv = std::move(*s);
    ASSERT_TRUE(env->srv->start().is_ok());
  }
  static void TearDownTestSuite() {
    if (env) env->srv.reset();  // the server (and its services) before the nodes they write through
    delete env;
    env = nullptr;
  }

 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(samples());
    ASSERT_NE(env, nullptr);
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", env->srv->port());
    c.set_read_timeout(60);
    return c;
  }
  static httplib::Headers auth(const std::string& who) {
    if (who.empty()) return {};
    return {{"Authorization", "Bearer " + env->key.at(who)}};
  }

  Resp get(const std::string& path, const std::string& who) { return wrap(client().Get(path.c_str(), auth(who))); }
  Resp del(const std::string& path, const std::string& who) { return wrap(client().Delete(path.c_str(), auth(who))); }
  Resp post_json(const std::string& path, const std::string& who, const std::string& body) {
    return wrap(client().Post(path.c_str(), auth(who), body, "application/json"));
  }
  Resp post_form(const std::string& path, const std::string& who, const httplib::MultipartFormDataItems& items) {
    return wrap(client().Post(path.c_str(), auth(who), items));
  }
  static httplib::MultipartFormData img(const std::string& name, const fs::path& p) {
    return {name, file_text(p), p.filename().string(), "image/png"};
  }
  static httplib::MultipartFormData text(const std::string& name, const std::string& v) { return {name, v, "", ""}; }

  // An error: the status, and a JSON body {error: {status, code, message}}.
  static void expect_error(const Resp& r, int status, const std::string& context = "") {
    EXPECT_EQ(r.status, status) << context << " " << r.raw;
    ASSERT_TRUE(r.body.is_object()) << context << " not JSON: " << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << context << " " << r.raw;
    EXPECT_EQ(r.body["error"]["status"], status) << context;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty()) << context;
    EXPECT_FALSE(r.body["error"]["code"].get<std::string>().empty()) << context;
  }

  // Rows of every table that holds personal data: nothing of it may change on a failure.
  static std::map<std::string, int64_t> data_rows() {
    std::map<std::string, int64_t> m;
    for (const auto& file : vault_files()) {
      auto db = vault::Db::open(file, false);
      for (std::string t : {"subject", "lawful_basis", "basis_purpose", "source_image", "face", "subject_key", "optout", "api_key"}) {
        auto n = db->query_int("SELECT count(*) FROM " + t);
        m[t] += n.is_ok() ? *n : -1000000;
      }
    }
    return m;
  }

  int64_t make_subject(const std::string& ref, const std::string& purpose = "access-control") {
    auto r = post_json("/v1/subjects/" + ref + "/bases", "enroller",
                       json{{"kind", "consent"}, {"reference", "form-" + ref}, {"purposes", {purpose}}}.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("id", int64_t{0});
  }
  void enroll(const std::string& ref, int64_t basis, const fs::path& p) {
    auto r = post_form("/v1/subjects/" + ref + "/faces", "enroller", {img("image", p), text("basis", std::to_string(basis))});
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  Resp search(const fs::path& p, const std::string& who = "investigator", const std::string& purpose = "access-control",
              const std::string& case_ref = "case-7") {
    httplib::MultipartFormDataItems items = {img("image", p)};
    if (!purpose.empty()) items.push_back(text("purpose", purpose));
    if (!case_ref.empty()) items.push_back(text("case", case_ref));
    return post_form("/v1/search", who, items);
  }
};

std::string request_path(const server::RouteInfo& r) {
  std::string p = r.path;
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"{ref}", "nobody"}, {"{id}", "999999"}}) {
    auto at = p.find(from);
    if (at != std::string::npos) p.replace(at, from.size(), to);
  }
  return p;
}

TEST_F(ApiTest, OpenApiDocumentMatchesTheRouter) {
  auto r = get("/v1/openapi.json", "");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.body.is_object());
  EXPECT_EQ(r.body["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::string> documented, routed;
  for (auto& [path, ops] : r.body["paths"].items())
    for (auto& [method, op] : ops.items()) {
      std::string m = method;
      for (auto& ch : m) ch = static_cast<char>(std::toupper(ch));
      documented.insert(m + " " + path);
      // The roles the document states are the ones the router enforces.
      for (auto& route : env->srv->routes())
        if (route.method == m && route.path == path) {
          std::set<std::string> doc_roles(op["x-roles"].begin(), op["x-roles"].end());
          EXPECT_EQ(doc_roles, std::set<std::string>(route.roles.begin(), route.roles.end())) << m << " " << path;
        }
    }
  for (auto& route : env->srv->routes()) routed.insert(route.method + " " + route.path);
  for (auto& x : routed) EXPECT_TRUE(documented.count(x)) << x << " is routed but not in openapi.json";
  for (auto& x : documented) EXPECT_TRUE(routed.count(x)) << x << " is in openapi.json but not routed";
  EXPECT_GE(routed.size(), 18u);
}

TEST_F(ApiTest, PublicRoutes) {
  auto h = get("/healthz", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  auto m = wrap(client().Get("/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.raw.find("facevault_http_requests_total"), std::string::npos);
  EXPECT_NE(m.raw.find("facevault_gallery_templates"), std::string::npos);
  EXPECT_NE(m.raw.find("facevault_gallery_templates_in_memory"), std::string::npos) << m.raw;
#ifdef FV_API_TEST_CLUSTER
  // Each stream the node hosts: what it applied and how far it is behind (catch-up progress).
  EXPECT_NE(m.raw.find("facevault_replica_applied_sequence{stream=\"fv-meta\"}"), std::string::npos) << m.raw;
  EXPECT_NE(m.raw.find("facevault_replica_lag_messages{stream=\"fv-shard-03\"}"), std::string::npos) << m.raw;
#else
  EXPECT_EQ(m.raw.find("facevault_replica_lag_messages"), std::string::npos) << "one vault has no replicas";
#endif
  auto ui = wrap(client().Get("/"));
  EXPECT_EQ(ui.status, 200);
  EXPECT_NE(ui.raw.find("<html"), std::string::npos);
  expect_error(get("/no/such/route", ""), 404);
  expect_error(get("/ui/no-such-file.js", ""), 404);
}

TEST_F(ApiTest, EveryProtectedRouteNeedsAValidKey) {
  const auto before = data_rows();
  for (auto& route : env->srv->routes()) {
    if (route.roles.empty()) continue;
    const std::string p = request_path(route);
    for (std::string who : {"", "revoked"}) {
      Resp r;
      if (route.method == "GET") r = get(p, who);
      else if (route.method == "DELETE") r = del(p, who);
      else r = post_json(p, who, "{}");
      expect_error(r, 401, route.method + " " + p + " as '" + who + "'");
    }
    auto bogus = wrap(client().Get(p.c_str(), {{"Authorization", "Bearer fvk_000000000000_" + std::string(64, '0')}}));
    if (route.method == "GET") expect_error(bogus, 401, "bogus key on " + p);
  }
  EXPECT_EQ(before, data_rows());
}

TEST_F(ApiTest, EveryProtectedRouteRefusesOtherRoles) {
  const auto before = data_rows();
  int checked = 0;
  for (auto& route : env->srv->routes()) {
    if (route.roles.empty()) continue;
    for (std::string role : {"admin", "enroller", "investigator", "auditor"}) {
      if (std::find(route.roles.begin(), route.roles.end(), role) != route.roles.end()) continue;
      const std::string p = request_path(route);
      Resp r;
      if (route.method == "GET") r = get(p, role);
      else if (route.method == "DELETE") r = del(p, role);
      else r = post_json(p, role, "{}");
      expect_error(r, 403, route.method + " " + p + " as " + role);
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  EXPECT_EQ(before, data_rows());
  // The refusals are in the audit log, under the key's id.
  auto a = get("/v1/audit?outcome=denied&limit=500", "auditor");
  ASSERT_EQ(a.status, 200);
  std::set<std::string> actors;
  for (auto& e : a.body["entries"]) actors.insert(e["actor"].get<std::string>());
  EXPECT_TRUE(actors.count("key:" + env->key_id["investigator"]));
  EXPECT_TRUE(actors.count("key:" + env->key_id["enroller"]));
}

TEST_F(ApiTest, WhoAmI) {
  auto r = get("/v1/whoami", "investigator");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["key"]["role"], "investigator");
  EXPECT_EQ(r.body["key"]["id"], env->key_id["investigator"]);
  EXPECT_EQ(r.body["key"]["purposes"], json::array({"access-control"}));
  EXPECT_EQ(r.raw.find(env->key["investigator"].substr(17)), std::string::npos) << "the secret must never come back";
}

TEST_F(ApiTest, SubjectsAndBases) {
  auto ok = post_json("/v1/subjects", "enroller",
                      json{{"ref", "sb-1"}, {"kind", "consent"}, {"reference", "F-1"}, {"purposes", {"access-control"}}}.dump());
  ASSERT_EQ(ok.status, 201) << ok.raw;
  EXPECT_TRUE(ok.body["subject_created"].get<bool>());
  EXPECT_GT(ok.body["id"].get<int64_t>(), 0);
  auto second = post_json("/v1/subjects/sb-1/bases", "admin",
                          json{{"kind", "public-task"}, {"reference", "S-2"}, {"purposes", {"investigation"}}, {"expires", "2099-01-01"}}.dump());
  ASSERT_EQ(second.status, 201) << second.raw;
  EXPECT_FALSE(second.body["subject_created"].get<bool>());

  const auto before = data_rows();
  expect_error(post_json("/v1/subjects", "enroller", R"({"ref":"sb-2"})"), 400, "ref only");
  expect_error(post_json("/v1/subjects", "enroller", R"({"ref": "sb-2", "kind": )"), 400, "malformed JSON");
  expect_error(post_json("/v1/subjects", "enroller", R"(["sb-2"])"), 400, "not an object");
  expect_error(post_json("/v1/subjects", "enroller", R"({"ref":"sb-2","kind":"consent","reference":"x","purposes":[1]})"), 400);
  expect_error(post_json("/v1/subjects", "enroller", R"({"ref":"sb-2","kind":"whim","reference":"x","purposes":["a"]})"), 400, "kind");
  expect_error(post_json("/v1/subjects", "enroller", R"({"ref":"sb-2","kind":"consent","reference":"x","purposes":[]})"), 400);
  expect_error(post_json("/v1/subjects/sb-2/bases", "enroller", "not json"), 400, "malformed JSON");
  expect_error(post_json("/v1/subjects/sb-2/bases", "enroller",
                         R"({"kind":"consent","reference":"x","purposes":["a"],"expires":"2001-01-01"})"), 400, "expired");
  expect_error(post_json("/v1/subjects", "enroller", std::string(100 << 10, ' ')), 413, "oversized JSON");
  EXPECT_EQ(before, data_rows());

  auto w = wrap(client().Post(("/v1/bases/" + std::to_string(second.body["id"].get<int64_t>()) + "/withdraw").c_str(),
                              auth("auditor"), "", "application/json"));
  EXPECT_EQ(w.status, 200) << w.raw;
  EXPECT_EQ(w.body["receipt"], "erasure");
  expect_error(wrap(client().Post("/v1/bases/999999/withdraw", auth("auditor"), "", "application/json")), 404, "unknown basis");
  expect_error(wrap(client().Post("/v1/bases/abc/withdraw", auth("auditor"), "", "application/json")), 400, "bad id");
  // Ids past 32 bits are ids (a cluster's are local id × 1024 + shard): unknown, not malformed.
  expect_error(wrap(client().Post("/v1/bases/2000001025/withdraw", auth("auditor"), "", "application/json")), 404, "large id");
  expect_error(wrap(client().Post("/v1/bases/9007199254740992/withdraw", auth("auditor"), "", "application/json")), 404, "2^53");
  expect_error(wrap(client().Post("/v1/bases/9007199254740993/withdraw", auth("auditor"), "", "application/json")), 400, "past 2^53");
  expect_error(wrap(client().Post("/v1/bases/0/withdraw", auth("auditor"), "", "application/json")), 400, "id 0");
  expect_error(wrap(client().Post("/v1/bases/-5/withdraw", auth("auditor"), "", "application/json")), 400, "negative id");
}

// A reference may hold '/' (an operator's "dept/1234"): every route under /v1/subjects/{ref}
// reaches it, sent raw or percent-encoded, and a reference ending like a route's suffix stays
// the reference.
TEST_F(ApiTest, ReferencesWithASlashReachEverySubjectRoute) {
  for (const std::string ref : {"dept/1234", "x/bases", "a/b/export"}) {
    SCOPED_TRACE(ref);
    std::string encoded;
    for (char ch : ref) encoded += ch == '/' ? std::string("%2F") : std::string(1, ch);
    auto made = post_json("/v1/subjects/" + encoded + "/bases", "admin",
                          json{{"kind", "consent"}, {"reference", "F-" + ref}, {"purposes", {"access-control"}}}.dump());
    ASSERT_EQ(made.status, 201) << made.raw;
    EXPECT_TRUE(made.body["subject_created"].get<bool>());
    auto again = post_json("/v1/subjects/" + ref + "/bases", "admin",
                           json{{"kind", "consent"}, {"reference", "G-" + ref}, {"purposes", {"payroll"}}}.dump());
    ASSERT_EQ(again.status, 201) << again.raw;
    EXPECT_FALSE(again.body["subject_created"].get<bool>()) << "the raw path names the same subject";
    auto x = get("/v1/subjects/" + encoded + "/export", "auditor");
    ASSERT_EQ(x.status, 200) << x.raw;
    EXPECT_EQ(x.body["subject"]["reference"], ref);
    EXPECT_EQ(x.body["lawful_bases"].size(), 2u);
    auto gone = del("/v1/subjects/" + ref, "auditor");
    ASSERT_EQ(gone.status, 200) << gone.raw;
    EXPECT_EQ(gone.body["subject"], ref);
    expect_error(get("/v1/subjects/" + encoded + "/export", "auditor"), 404, "erased");
  }
}

TEST_F(ApiTest, EnrollmentSearchExportErase) {
  const int64_t b = make_subject("penny");
  const int64_t other = make_subject("raj", "investigation");
  // Success, audited with the enroller key's id.
  auto e = post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 1)), text("basis", std::to_string(b))});
  ASSERT_EQ(e.status, 201) << e.raw;
  EXPECT_EQ(e.body["subject"], "penny");
  EXPECT_EQ(e.body["box"].size(), 4u);
  // The same with the fields as one JSON part.
  auto m = post_form("/v1/subjects/penny/faces", "enroller",
                     {img("image", photo("penny", 2)), {"metadata", json{{"basis", b}}.dump(), "", "application/json"}});
  ASSERT_EQ(m.status, 201) << m.raw;
  enroll("raj", other, photo("raj", 1));

  const auto before = data_rows();
  const std::string bs = std::to_string(b);
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3))}), 400, "no basis");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3)), text("basis", "x")}), 400);
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {text("basis", bs)}), 400, "no image");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {{"image", "just some text", "a.png", "image/png"}, text("basis", bs)}),
               415, "non-image");
  expect_error(post_json("/v1/subjects/penny/faces", "enroller", "{}"), 415, "not multipart");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3)), {"metadata", "{basis:", "", "application/json"}}),
               400, "malformed metadata");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3)), {"metadata", R"({"basis": [1]})", "", "application/json"}}),
               400, "metadata type");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3)), text("basis", bs), text("keep_image", "yes")}),
               400, "keep_image yes");
  // The metadata part has the JSON bodies' bound: a deeply nested one costs many times its size to parse.
  expect_error(post_form("/v1/subjects/penny/faces", "enroller",
                         {img("image", photo("penny", 3)), {"metadata", std::string(1 << 20, '['), "", "application/json"}}),
               413, "oversized metadata");
  {
    std::vector<uchar> png;
    cv::imencode(".png", cv::Mat(240, 320, CV_8UC3, cv::Scalar(128, 128, 128)), png);
    expect_error(post_form("/v1/subjects/penny/faces", "enroller",
                           {{"image", std::string(png.begin(), png.end()), "grey.png", "image/png"}, text("basis", bs)}),
                 422, "no face");
  }
  {
    std::string big(3u << 20, 'x');
    big.replace(0, 8, "\x89PNG\r\n\x1a\n");
    expect_error(post_form("/v1/subjects/penny/faces", "enroller", {{"image", big, "big.png", "image/png"}, text("basis", bs)}),
                 413, "oversized");
  }
  expect_error(post_form("/v1/subjects/nobody/faces", "enroller", {img("image", photo("penny", 3)), text("basis", bs)}), 404,
               "unknown subject");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller", {img("image", photo("penny", 3)), text("basis", "999999")}),
               404, "unknown basis");
  expect_error(post_form("/v1/subjects/penny/faces", "enroller",
                         {img("image", photo("penny", 3)), text("basis", std::to_string(other))}),
               422, "another subject's basis");
  EXPECT_EQ(before, data_rows());

  // Search: the top candidate, with the same JSON as `facevault search --json`.
  auto s = search(photo("penny", 3));
  ASSERT_EQ(s.status, 200) << s.raw;
  ASSERT_EQ(s.body["faces"].size(), 1u);
  ASSERT_FALSE(s.body["faces"][0]["candidates"].empty());
  EXPECT_EQ(s.body["faces"][0]["candidates"][0]["subject"], "penny");
  EXPECT_LT(s.body["faces"][0]["candidates"][0]["fmr"].get<double>(), 1e-3);
  for (auto k : {"purpose", "case", "eligible_subjects", "max_fmr", "threshold", "calibration", "audit_hash"})
    EXPECT_TRUE(s.body.contains(k)) << k;
  EXPECT_EQ(s.body["case"], "case-7");
  // Purpose limitation: raj's basis does not cover access-control.
  auto sr = search(photo("raj", 2));
  ASSERT_EQ(sr.status, 200);
  for (auto& c : sr.body["faces"][0]["candidates"]) EXPECT_NE(c["subject"], "raj");

  expect_error(search(photo("penny", 3), "investigator", ""), 400, "no purpose");
  expect_error(search(photo("penny", 3), "investigator", "access-control", ""), 400, "no case");
  expect_error(search(photo("penny", 3), "narrow"), 403, "purpose outside the key");
  expect_error(search(photo("penny", 3), "enroller"), 403, "role");
  expect_error(post_form("/v1/search", "investigator", {{"image", "GIF89a? no", "x.gif", "image/gif"}, text("purpose", "access-control"), text("case", "c")}),
               415, "non-image probe");
  expect_error(post_form("/v1/search", "investigator", {img("image", photo("penny", 3)), text("purpose", "access-control"), text("case", "c"), text("top", "0")}),
               400, "top");
  expect_error(post_json("/v1/search", "investigator", R"({"purpose":"access-control"})"), 415, "JSON instead of multipart");
  expect_error(post_form("/v1/search", "investigator", {img("image", photo("penny", 3)), text("purpose", "access-control"), text("case", "c"), text("partial", "yes")}),
               400, "partial");

  // Export: every record, the download header, unknown ids.
  auto x = get("/v1/subjects/penny/export?download=1", "auditor");
  ASSERT_EQ(x.status, 200) << x.raw;
  EXPECT_EQ(x.body["subject"]["reference"], "penny");
  EXPECT_EQ(x.body["templates"].size(), 2u);
  EXPECT_NE(httplib::detail::get_header_value(x.headers, "Content-Disposition", 0, ""), std::string(""));
  bool enrolled_by_key = false;
  for (auto& a : x.body["audit"])
    if (a["action"] == "enroll" && a["actor"] == "key:" + env->key_id["enroller"]) enrolled_by_key = true;
  EXPECT_TRUE(enrolled_by_key) << "the audit must name the API key";
  expect_error(get("/v1/subjects/nobody/export", "auditor"), 404, "unknown export");

  // Erase: a receipt; then the subject is gone from search, and a second erase is 404.
  auto d = del("/v1/subjects/penny?reason=test%20erasure", "auditor");
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["receipt"], "erasure");
  EXPECT_EQ(d.body["reason"], "test erasure");
  EXPECT_EQ(d.body["erased"]["templates"], 2);
  auto s2 = search(photo("penny", 3));
  ASSERT_EQ(s2.status, 200);
  for (auto& c : s2.body["faces"][0]["candidates"]) EXPECT_NE(c["subject"], "penny");
  expect_error(del("/v1/subjects/penny", "auditor"), 404, "erase twice");
}

// Presentation-attack detection on 1:1 verification (opt-in per request): a staged attack as
// photo a is refused with its reason (422) and audited "refused"; a live photo passes with the
// liveness object; without the flag the answer carries no liveness field.
TEST_F(ApiTest, VerifyWithLivenessRefusesAStagedAttack) {
  const fs::path spoof = data_dir() / "spoof" / "silent-face";
  FV_REQUIRE_PATH(spoof);
  auto refused_verifies = [&] {
    auto a = get("/v1/audit?action=verify&outcome=refused&limit=500", "auditor");
    EXPECT_EQ(a.status, 200) << a.raw;
    return a.body["entries"].size();
  };
  const size_t refused_before = refused_verifies();
  auto attack = post_form("/v1/verify", "investigator",
                          {img("a", spoof / "image_F1.jpg"), img("b", spoof / "image_T1.jpg"), text("liveness", "1")});
  ASSERT_EQ(attack.status, 422) << attack.raw;
  EXPECT_NE(attack.raw.find("presentation attack"), std::string::npos) << attack.raw;
  EXPECT_EQ(refused_verifies(), refused_before + 1);
  auto live = post_form("/v1/verify", "investigator",
                        {img("a", spoof / "image_T1.jpg"), img("b", spoof / "image_F1.jpg"), text("liveness", "true")});
  ASSERT_EQ(live.status, 200) << live.raw;
  ASSERT_TRUE(live.body.contains("liveness")) << live.raw;
  EXPECT_TRUE(live.body["liveness"]["live"].get<bool>());
  auto off = post_form("/v1/verify", "investigator", {img("a", spoof / "image_F1.jpg"), img("b", spoof / "image_T1.jpg")});
  ASSERT_EQ(off.status, 200) << off.raw;
  EXPECT_FALSE(off.body.contains("liveness")) << "off by default: the answer is as before";
  expect_error(post_form("/v1/verify", "investigator",
                         {img("a", spoof / "image_T1.jpg"), img("b", spoof / "image_F2.jpg"), text("liveness", "maybe")}),
               400, "liveness");
}

TEST_F(ApiTest, VerifyAndDetect) {
  auto v = post_form("/v1/verify", "investigator", {img("a", photo("amy", 1)), img("b", photo("amy", 2))});
  ASSERT_EQ(v.status, 200) << v.raw;
  EXPECT_TRUE(v.body["same"].get<bool>());
  auto v2 = post_form("/v1/verify", "enroller", {img("a", photo("amy", 1)), img("b", photo("sheldon", 1))});
  ASSERT_EQ(v2.status, 200) << v2.raw;
  EXPECT_FALSE(v2.body["same"].get<bool>());
  expect_error(post_form("/v1/verify", "investigator", {img("a", photo("amy", 1))}), 400, "one photo");
  expect_error(post_form("/v1/verify", "investigator", {img("a", photo("amy", 1)), {"b", "text", "b.txt", "text/plain"}}), 415);
  // Photo against an enrolled subject: the search policy applies (purpose and case, role,
  // templates whose basis covers the purpose), and an unknown subject is a 404.
  // No purpose: malformed input (kInvalidArgument), 400 as for a search without one.
  expect_error(post_form("/v1/verify", "investigator", {img("a", photo("amy", 1)), text("subject", "amy")}), 400, "purpose");
  const int64_t b = make_subject("vamy");
  enroll("vamy", b, photo("amy", 1));
  auto vs = post_form("/v1/verify", "investigator",
                      {img("a", photo("amy", 2)), text("subject", "vamy"), text("purpose", "access-control"), text("case", "C-9")});
  ASSERT_EQ(vs.status, 200) << vs.raw;
  EXPECT_TRUE(vs.body["same"].get<bool>());
  EXPECT_GT(vs.body["similarity"].get<double>(), vs.body["threshold"].get<double>());
  auto other = post_form("/v1/verify", "investigator",
                         {img("a", photo("sheldon", 1)), text("subject", "vamy"), text("purpose", "access-control"), text("case", "C-9")});
  ASSERT_EQ(other.status, 200) << other.raw;
  EXPECT_FALSE(other.body["same"].get<bool>());
  // A purpose outside the key's scope is refused as for a search (403, audited "denied") ...
  expect_error(post_form("/v1/verify", "investigator",
                         {img("a", photo("amy", 2)), text("subject", "vamy"), text("purpose", "marketing"), text("case", "C-9")}),
               403, "may not search for the purpose 'marketing'");
  // ... and within it, a subject not enrolled for the purpose is not found.
  expect_error(post_form("/v1/verify", "two-purposes",
                         {img("a", photo("amy", 2)), text("subject", "vamy"), text("purpose", "marketing"), text("case", "C-9")}),
               404, "not enrolled for marketing");
  expect_error(post_form("/v1/verify", "enroller",
                         {img("a", photo("amy", 2)), text("subject", "vamy"), text("purpose", "access-control"), text("case", "C-9")}),
               403, "enroller may not verify against a subject");
  expect_error(post_form("/v1/verify", "investigator", {img("a", photo("amy", 1)), img("b", photo("amy", 2)), text("fmr", "2")}), 400);

  auto d = post_form("/v1/detect", "enroller", {img("image", photo("amy", 1))});
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["faces"].size(), 1u);
  EXPECT_EQ(d.body["enrollable_face"], 0);
  EXPECT_EQ(d.body["faces"][0]["keypoints"].size(), 5u);
  EXPECT_GT(d.body["width"].get<int>(), 0);
  auto group = post_form("/v1/detect", "enroller", {img("image", samples() / "bbt1.jpg")});
  if (fs::exists(samples() / "bbt1.jpg")) {
    ASSERT_EQ(group.status, 200);
    EXPECT_GT(group.body["faces"].size(), 1u);
  }
  expect_error(post_form("/v1/detect", "enroller", {{"image", "", "e.png", "image/png"}}), 400, "empty");
  expect_error(post_form("/v1/detect", "enroller", {{"image", "%PDF-1.4", "e.pdf", "application/pdf"}}), 415, "pdf");
  {
    std::string trunc = file_text(photo("amy", 1)).substr(0, 200);
    expect_error(post_form("/v1/detect", "enroller", {{"image", trunc, "t.png", "image/png"}}), 422, "truncated");
  }
  // Both are in the audit under the key's id.
  auto a = get("/v1/audit?action=detect&limit=5", "admin");
  ASSERT_EQ(a.status, 200);
  ASSERT_FALSE(a.body["entries"].empty());
  EXPECT_EQ(a.body["entries"][0]["actor"].get<std::string>().substr(0, 4), "key:");
}

TEST_F(ApiTest, OptOut) {
  const int64_t b = make_subject("leonard");
  enroll("leonard", b, photo("leonard", 1));
  const auto before = data_rows();
  expect_error(post_form("/v1/optout", "investigator", {img("image", photo("leonard", 2))}), 403, "investigator");
  expect_error(post_form("/v1/optout", "", {{"image", "nope", "n.png", "image/png"}}), 415, "public non-image");
  expect_error(post_form("/v1/optout", "revoked", {img("image", photo("leonard", 2))}), 401, "revoked key");
  EXPECT_EQ(before, data_rows());
  // The public form: recorded, and nothing said about enrollment.
  auto pub = post_form("/v1/optout", "", {img("image", photo("leonard", 2))});
  ASSERT_EQ(pub.status, 201) << pub.raw;
  EXPECT_TRUE(pub.body["recorded"].get<bool>());
  EXPECT_FALSE(pub.body.contains("enrolled_match_count"));
  EXPECT_EQ(pub.raw.find("leonard"), std::string::npos);
  // With a key the officer sees who matches, and the check lists them.
  auto dpo = post_form("/v1/optout", "auditor", {img("image", photo("leonard", 3))});
  ASSERT_EQ(dpo.status, 201) << dpo.raw;
  ASSERT_TRUE(dpo.body.contains("enrolled_match_count"));
  EXPECT_GE(dpo.body["enrolled_match_count"].get<int64_t>(), 1);
  EXPECT_EQ(dpo.raw.find("leonard"), std::string::npos) << "adding an opt-out names nobody";
  auto chk = get("/v1/optout/check", "auditor");
  ASSERT_EQ(chk.status, 200);
  bool found = false;
  for (auto& m : chk.body["matches"]) found = found || m["subject"] == "leonard";
  EXPECT_TRUE(found);
  // Enrollment of an opted-out face is refused (422) and writes nothing.
  const auto before2 = data_rows();
  expect_error(post_form("/v1/subjects/leonard/faces", "enroller", {img("image", photo("leonard", 4)), text("basis", std::to_string(b))}),
               422, "opted out");
  EXPECT_EQ(before2, data_rows());
}

TEST_F(ApiTest, RetentionAndAudit) {
  auto dry = post_json("/v1/retention/run", "auditor", R"({"dry_run": true, "as_of": "2100-01-01"})");
  ASSERT_EQ(dry.status, 200) << dry.raw;
  EXPECT_TRUE(dry.body["dry_run"].get<bool>());
  const auto before = data_rows();
  expect_error(post_json("/v1/retention/run", "auditor", R"({"dry_run": "yes"})"), 400);
  expect_error(post_json("/v1/retention/run", "auditor", R"({"dry_run": tru)"), 400, "malformed");
  expect_error(post_json("/v1/retention/run", "auditor", R"({"as_of": "not a date"})"), 400, "bad date");
  EXPECT_EQ(before, data_rows());
  auto now = wrap(client().Post("/v1/retention/run", auth("admin"), "", "application/json"));
  EXPECT_EQ(now.status, 200) << now.raw;

  auto a = get("/v1/audit?limit=10", "auditor");
  ASSERT_EQ(a.status, 200);
  EXPECT_LE(a.body["entries"].size(), 10u);
  EXPECT_GT(a.body["total"].get<int64_t>(), 0);
  expect_error(get("/v1/audit?limit=0", "auditor"), 400, "limit");
  expect_error(get("/v1/audit?since=yesterday-ish", "auditor"), 400, "since");
  auto v = get("/v1/audit/verify", "auditor");
  ASSERT_EQ(v.status, 200);
  EXPECT_TRUE(v.body["ok"].get<bool>()) << v.raw;
}

TEST_F(ApiTest, RateLimitPerKey) {
  server::ServerOptions o = server_options();
  o.port = 0;
  o.pipelines = 1;
  o.rate_per_s = 0.01;
  o.rate_burst = 2;
  o.access_log = false;
  auto s = server::Server::create(o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_TRUE((*s)->start().is_ok());
  httplib::Client c("127.0.0.1", (*s)->port());
  EXPECT_EQ(c.Get("/v1/whoami", auth("auditor"))->status, 200);
  EXPECT_EQ(c.Get("/v1/whoami", auth("auditor"))->status, 200);
  auto third = wrap(c.Get("/v1/whoami", auth("auditor")));
  expect_error(third, 429, "third call");
  EXPECT_TRUE(third.headers.count("Retry-After"));
  EXPECT_EQ(c.Get("/v1/whoami", auth("admin"))->status, 200) << "another key has its own bucket";
  (*s)->stop();
}


// Searches, enrollments, detections and an erasure at the same time, with health checks in
// between: all answer correctly (no timing assertion: the machine is shared).
TEST_F(ApiTest, ConcurrentSearchesEnrollmentsAndErasure) {
  const int64_t b = make_subject("howard");
  enroll("howard", b, photo("howard", 1));
  const int64_t e = make_subject("bernadette");
  enroll("bernadette", e, photo("bernadette", 1));
  std::vector<std::future<bool>> jobs;
  for (int t = 0; t < 3; ++t)
    jobs.push_back(std::async(std::launch::async, [&, t] {
      bool ok = true;
      for (int i = 0; i < 3; ++i) {
        auto r = search(photo("howard", 2 + (i + t) % 3), "investigator", "access-control", "case-c" + std::to_string(t));
        ok = ok && r.status == 200 && !r.body["faces"][0]["candidates"].empty() &&
             r.body["faces"][0]["candidates"][0]["subject"] == "howard";
      }
      return ok;
    }));
  for (int t = 0; t < 2; ++t)
    jobs.push_back(std::async(std::launch::async, [&, t] {
      bool ok = true;
      for (int i = 2; i <= 3; ++i) {
        auto r = post_form("/v1/subjects/howard/faces", "enroller",
                           {img("image", photo("howard", i + t)), text("basis", std::to_string(b))});
        ok = ok && r.status == 201;
      }
      return ok;
    }));
  jobs.push_back(std::async(std::launch::async, [&] {
    return del("/v1/subjects/bernadette?reason=concurrency", "auditor").status == 200;
  }));
  jobs.push_back(std::async(std::launch::async, [&] {
    bool ok = true;
    for (int i = 0; i < 20; ++i) {
      ok = ok && get("/healthz", "").status == 200;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ok;
  }));
  for (auto& j : jobs) EXPECT_TRUE(j.get());
  auto x = get("/v1/subjects/howard/export", "auditor");
  ASSERT_EQ(x.status, 200);
  EXPECT_EQ(x.body["templates"].size(), 5u);
  expect_error(get("/v1/subjects/bernadette/export", "auditor"), 404, "erased during the run");
  auto v = get("/v1/audit/verify", "auditor");
  EXPECT_TRUE(v.body["ok"].get<bool>()) << v.raw;
}

// HTTPS from certificate files (a self-signed pair made with the openssl tool).
TEST_F(ApiTest, Tls) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "the openssl tool is not installed";
  const fs::path cert = env->tmp.path() / "cert.pem", key = env->tmp.path() / "key.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout " + key.string() +
                          " -out " + cert.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  server::ServerOptions o = server_options();
  o.port = 0;
  o.pipelines = 1;
  o.access_log = false;
  o.tls_cert = cert.string();
  o.tls_key = key.string();
  auto s = server::Server::create(o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_TRUE((*s)->start().is_ok());
  EXPECT_TRUE((*s)->tls());
  httplib::SSLClient c("127.0.0.1", (*s)->port());
  c.enable_server_certificate_verification(false);
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_NE(h->body.find("\"tls\":true"), std::string::npos);
  auto w = c.Get("/v1/whoami", auth("auditor"));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->status, 200);
  (*s)->stop();
  server::ServerOptions bad = o;
  bad.tls_key = (env->tmp.path() / "missing.pem").string();
  EXPECT_FALSE(server::Server::create(bad).is_ok());
}

}  // namespace
}  // namespace fv::test
