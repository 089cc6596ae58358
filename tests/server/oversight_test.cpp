// Human oversight over real HTTP on 127.0.0.1 (issue #18): review cases, the two-person
// confirmation and its independence, reference and probe crops, authorisations of searches
// and the transparency report, each through the routes of routes_reviews.cpp,
// routes_authorisations.cpp and routes_report.cpp with API keys of every role involved.
// One vault and one server for the binary (the models are loaded once); its clock is the real
// one plus an offset the authorisation test moves forward to make a pending one lapse.
// Needs the models and ../shared/data/samples; skips without them.
#include <httplib.h>
#include <sodium.h>

#include <atomic>
#include <map>
#include <set>

#include "server/http_resp.h"
#include "server/sample_photos.h"
#include "server/server.h"
#include "support/paths.h"
#include "vault/api_keys.h"
#include "vault/timeutil.h"
#include "vault/vault_test_util.h"

namespace fv::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using sample_photos::file_text;
using sample_photos::photo;
using sample_photos::samples;

// Purposes: access-control is searched freely; investigation needs an authorisation.
const std::vector<std::string> kPurposes = {"access-control", "investigation"};

struct Env {
  TempDir tmp;
  fs::path dir;
  std::atomic<double> clock_offset_days{0};
  std::unique_ptr<server::Server> srv;
  std::map<std::string, std::string> key, key_id;  // caller → key; reviewer1 and reviewer2 are two reviewers
};
Env* env = nullptr;

std::string now() { return vault::add_days(vault::utc_now(), env->clock_offset_days.load()); }
std::string day(double offset) { return vault::add_days(now(), offset).substr(0, 10); }

class OversightTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    if (!models_present() || !fs::exists(samples())) return;
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    env = new Env();
    env->dir = env->tmp.path() / "v";
    // config.json's oversight section, written before the vault is opened.
    vault::VaultConfig cfg;
    cfg.authorisation_required = {"investigation"};
    ASSERT_TRUE(vault::Vault::init(env->dir, cfg).is_ok());
    {
      auto svc = open_service(env->dir);
      ASSERT_NE(svc, nullptr);
      auto issue = [&](const std::string& name, service::Role role) {
        auto k = svc->create_api_key(kAdmin, role, kPurposes, "oversight " + name);
        ASSERT_TRUE(k.is_ok()) << k.status().to_string();
        env->key[name] = k->secret;
        env->key_id[name] = k->key.id;
      };
      issue("admin", service::Role::kAdmin);
      issue("enroller", service::Role::kEnroller);
      issue("investigator", service::Role::kInvestigator);
      issue("auditor", service::Role::kAuditor);
      issue("reviewer1", service::Role::kReviewer);
      issue("reviewer2", service::Role::kReviewer);
    }
    server::ServerOptions o;
    o.vault_dir = env->dir;
    o.port = 0;
    o.pipelines = 1;
    o.http_threads = 4;
    o.rate_per_s = 0;
    o.access_log = false;
    o.retention_interval = std::chrono::seconds(0);  // expiry runs only when a test asks
    o.service_options.clock = [] { return now(); };
    auto s = server::Server::create(o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    env->srv = std::move(*s);
    ASSERT_TRUE(env->srv->start().is_ok());
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
  }

 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(samples());
    ASSERT_NE(env, nullptr);
    ASSERT_NE(env->srv, nullptr);
  }

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", env->srv->port());
    c.set_read_timeout(120);
    return c;
  }
  static httplib::Headers auth(const std::string& who) {
    if (who.empty()) return {};
    return {{"Authorization", "Bearer " + env->key.at(who)}};
  }
  static Resp get(const std::string& path, const std::string& who) { return wrap(client().Get(path.c_str(), auth(who))); }
  static Resp post_json(const std::string& path, const std::string& who, const json& body) {
    return wrap(client().Post(path.c_str(), auth(who), body.dump(), "application/json"));
  }
  static Resp post_form(const std::string& path, const std::string& who, const httplib::MultipartFormDataItems& items) {
    return wrap(client().Post(path.c_str(), auth(who), items));
  }
  static httplib::MultipartFormData img(const std::string& name, const fs::path& p) {
    return {name, file_text(p), p.filename().string(), "image/png"};
  }
  static httplib::MultipartFormData text(const std::string& name, const std::string& v) { return {name, v, "", ""}; }

  static ::testing::AssertionResult is_error(const Resp& r, int status) {
    if (r.status != status) return ::testing::AssertionFailure() << "status " << r.status << " != " << status << ": " << r.raw;
    if (!r.body.is_object() || !r.body.contains("error") || r.body["error"].value("status", 0) != status)
      return ::testing::AssertionFailure() << "not the JSON error body: " << r.raw;
    return ::testing::AssertionSuccess();
  }

  // A subject with a basis for both purposes and one photo enrolled; keep_reference as given
  // ("" leaves the form field out: the vault's default, no crop). Its vault id.
  static std::string enrolled(const std::string& ref, const fs::path& p, const std::string& keep_reference) {
    auto b = post_json("/v1/subjects", "enroller",
                       {{"ref", ref}, {"kind", "consent"}, {"reference", "F-" + ref}, {"purposes", kPurposes}});
    EXPECT_EQ(b.status, 201) << b.raw;
    httplib::MultipartFormDataItems items = {img("image", p), text("basis", std::to_string(b.body.value("id", int64_t{0})))};
    if (!keep_reference.empty()) items.push_back(text("keep_reference", keep_reference));
    auto e = post_form("/v1/subjects/" + ref + "/faces", "enroller", items);
    EXPECT_EQ(e.status, 201) << e.raw;
    return e.body.value("subject_id", "");
  }
  static Resp search(const fs::path& p, const std::string& purpose, const std::string& case_ref,
                     const std::string& authorisation = "", const std::string& who = "investigator") {
    httplib::MultipartFormDataItems items = {img("image", p), text("purpose", purpose), text("case", case_ref)};
    if (!authorisation.empty()) items.push_back(text("authorisation", authorisation));
    return post_form("/v1/search", who, items);
  }
  // The candidate of `subject` (its reference) in a rendered case.
  static json candidate(const json& rc, const std::string& subject) {
    for (const auto& c : rc.value("candidates", json::array()))
      if (c.value("subject", "") == subject) return c;
    ADD_FAILURE() << "no candidate " << subject << " in " << rc.dump();
    return json::object();
  }
  static Resp decide(const std::string& case_id, const std::string& who, int64_t cand, const std::string& decision) {
    return post_json("/v1/reviews/" + case_id + "/decisions", who,
                     {{"candidate", cand}, {"decision", decision}, {"reason", "ears and jaw line compared by " + who}});
  }

  // Subjects enrolled once for the binary: amy with a kept reference crop, penny without.
  static void enroll_once() {
    static bool done = false;
    if (done) return;
    done = true;
    amy_uid_ = enrolled("ov-amy", photo("amy", 1), "true");
    penny_uid_ = enrolled("ov-penny", photo("penny", 1), "");
  }
  static inline std::string amy_uid_, penny_uid_;
};

// ------------------------------------------------------------------ review cases

TEST_F(OversightTest, TwoReviewersConfirmIndependentlyAndNeitherTheSearcherNorARepeatCounts) {
  enroll_once();
  auto s = search(photo("amy", 2), "access-control", "C-review");
  ASSERT_EQ(s.status, 200) << s.raw;
  const std::string id = s.body.value("review_case", "");
  ASSERT_EQ(id.rfind("rv_", 0), 0u) << "the search names the case it opened: " << s.raw;
  ASSERT_FALSE(s.body["faces"].empty());
  bool found = false;
  for (const auto& c : s.body["faces"][0]["candidates"]) {
    found |= c["subject"] == "ov-amy";
    EXPECT_EQ(c["confirmed"], false) << "a search's candidate is never confirmed";
  }
  ASSERT_TRUE(found) << s.raw;

  // The first reviewer sees the case; no decision is shown before their own.
  auto r1 = get("/v1/reviews/" + id, "reviewer1");
  ASSERT_EQ(r1.status, 200) << r1.raw;
  EXPECT_EQ(r1.body["id"], id);
  EXPECT_EQ(r1.body["status"], "open");
  EXPECT_EQ(r1.body["purpose"], "access-control");
  EXPECT_EQ(r1.body["case"], "C-review");
  EXPECT_EQ(r1.body["reviewers_required"], 2);
  const json amy = candidate(r1.body, "ov-amy");
  const int64_t cid = amy.value("id", int64_t{0});
  ASSERT_GT(cid, 0);
  EXPECT_EQ(amy["status"], "pending");
  EXPECT_EQ(amy["confirmed"], false);
  EXPECT_EQ(amy["reference_available"], true) << "enrolled with keep_reference=true";

  // The searcher's key may not decide: investigators lack review_decide (403 at the door).
  EXPECT_TRUE(is_error(decide(id, "investigator", cid, "confirm"), 403));

  auto d1 = decide(id, "reviewer1", cid, "confirm");
  ASSERT_EQ(d1.status, 201) << d1.raw;
  EXPECT_EQ(d1.body["candidate"], cid);
  EXPECT_EQ(d1.body["decision"], "confirm");
  EXPECT_EQ(d1.body["reviewer"], "key:" + env->key_id["reviewer1"]);
  EXPECT_EQ(d1.body["reviewer_role"], "reviewer");
  EXPECT_EQ(d1.body["reference_available"], true);
  EXPECT_FALSE(d1.body.value("audit_hash", "").empty());
  // Each reviewer decides once: a second decision by the same key is refused (409).
  EXPECT_TRUE(is_error(decide(id, "reviewer1", cid, "reject"), 409));

  // One confirmation is not a confirmed identification, and the second reviewer cannot read
  // the first decision before recording theirs.
  auto before = get("/v1/reviews/" + id, "reviewer2");
  ASSERT_EQ(before.status, 200) << before.raw;
  const json b = candidate(before.body, "ov-amy");
  EXPECT_EQ(b["decisions_recorded"], 1);
  EXPECT_FALSE(b.contains("decisions")) << "decisions shown before the caller's own: " << b.dump();
  EXPECT_EQ(b["confirmed"], false);
  EXPECT_EQ(b["decided_by_caller"], false);
  EXPECT_EQ(before.raw.find("ears and jaw line compared by reviewer1"), std::string::npos) << "the first reason leaked";

  // The awaiting queue: the case waits for reviewer2, not for reviewer1 any more.
  auto q2 = get("/v1/reviews?status=open&awaiting=1", "reviewer2");
  ASSERT_EQ(q2.status, 200) << q2.raw;
  std::set<std::string> waiting;
  for (const auto& c : q2.body["cases"]) waiting.insert(c.value("id", ""));
  EXPECT_TRUE(waiting.count(id)) << q2.raw;

  auto d2 = decide(id, "reviewer2", cid, "confirm");
  ASSERT_EQ(d2.status, 201) << d2.raw;
  auto after = get("/v1/reviews/" + id, "reviewer2");
  ASSERT_EQ(after.status, 200) << after.raw;
  const json a = candidate(after.body, "ov-amy");
  EXPECT_EQ(a["status"], "confirmed");
  EXPECT_EQ(a["confirmed"], true);
  EXPECT_EQ(a["decided_by_caller"], true);
  ASSERT_TRUE(a.contains("decisions")) << a.dump();
  ASSERT_EQ(a["decisions"].size(), 2u);
  std::set<std::string> reviewers;
  for (const auto& d : a["decisions"]) reviewers.insert(d.value("reviewer", ""));
  EXPECT_EQ(reviewers, (std::set<std::string>{"key:" + env->key_id["reviewer1"], "key:" + env->key_id["reviewer2"]}));

  // Listing: reviewers, auditors and admins; enrollers are refused at the door.
  auto all = get("/v1/reviews?limit=50", "auditor");
  ASSERT_EQ(all.status, 200) << all.raw;
  ASSERT_TRUE(all.body["cases"].is_array());
  EXPECT_TRUE(is_error(get("/v1/reviews", "enroller"), 403));
  EXPECT_TRUE(is_error(get("/v1/reviews?status=maybe", "reviewer1"), 400));
  EXPECT_TRUE(is_error(get("/v1/reviews/rv_doesnotexist", "reviewer1"), 404));
  EXPECT_TRUE(is_error(post_json("/v1/reviews/" + id + "/decisions", "reviewer1", {{"candidate", cid}, {"decision", "maybe"}}), 400));
}

TEST_F(OversightTest, ProbeAndReferenceCropsAreJpegsNotCachedOr404WithoutAKeptReference) {
  enroll_once();
  auto s = search(photo("amy", 3), "access-control", "C-images");
  ASSERT_EQ(s.status, 200) << s.raw;
  const std::string id = s.body.value("review_case", "");
  auto rc = get("/v1/reviews/" + id, "reviewer1");
  ASSERT_EQ(rc.status, 200) << rc.raw;
  ASSERT_FALSE(rc.body["probe_faces"].empty()) << "the case keeps its probe face while open: " << rc.raw;
  const int face = rc.body["probe_faces"][0].get<int>();

  auto probe = wrap(client().Get(("/v1/reviews/" + id + "/probe/" + std::to_string(face) + ".jpg").c_str(), auth("reviewer1")));
  ASSERT_EQ(probe.status, 200) << probe.raw.substr(0, 200);
  EXPECT_EQ(probe.header("Content-Type"), "image/jpeg");
  EXPECT_EQ(probe.header("Cache-Control"), "no-store");
  ASSERT_GT(probe.raw.size(), 100u);
  EXPECT_EQ(static_cast<unsigned char>(probe.raw[0]), 0xFF);
  EXPECT_EQ(static_cast<unsigned char>(probe.raw[1]), 0xD8);
  // Range is ignored: a range past the end (which a streamed crop once answered by spinning
  // forever) and a thousand ranges both get the whole JPEG, once, with 200.
  std::string many = "bytes=0-0";
  for (int i = 0; i < 1000; ++i) many += ",0-0";
  for (const std::string& range : {std::string("bytes=0-99999999"), many}) {
    httplib::Headers h = auth("reviewer1");
    h.emplace("Range", range);
    auto c = client();
    c.set_read_timeout(20);  // a server that never finishes the body fails here, not the suite
    auto ranged = wrap(c.Get(("/v1/reviews/" + id + "/probe/" + std::to_string(face) + ".jpg").c_str(), h));
    EXPECT_EQ(ranged.status, 200) << range.substr(0, 20);
    EXPECT_EQ(ranged.raw, probe.raw) << range.substr(0, 20);
  }
  EXPECT_TRUE(is_error(get("/v1/reviews/" + id + "/probe/" + std::to_string(face + 50) + ".jpg", "reviewer1"), 404));
  EXPECT_TRUE(is_error(get("/v1/reviews/" + id + "/probe/x.jpg", "reviewer1"), 400));
  EXPECT_TRUE(is_error(get("/v1/reviews/" + id + "/probe/0.jpg", "enroller"), 403));

  // amy was enrolled with keep_reference=true: her reference crop is served.
  const int64_t amy = candidate(rc.body, "ov-amy").value("id", int64_t{0});
  auto ref = wrap(client().Get(("/v1/reviews/" + id + "/candidates/" + std::to_string(amy) + "/reference.jpg").c_str(),
                               auth("reviewer1")));
  ASSERT_EQ(ref.status, 200) << ref.raw.substr(0, 200);
  EXPECT_EQ(ref.header("Content-Type"), "image/jpeg");
  EXPECT_EQ(ref.header("Cache-Control"), "no-store");
  EXPECT_EQ(static_cast<unsigned char>(ref.raw[0]), 0xFF);

  // penny was enrolled without: 404 with the usual JSON error, and the case says so.
  auto p = search(photo("penny", 3), "access-control", "C-images-2");
  ASSERT_EQ(p.status, 200) << p.raw;
  const std::string pid = p.body.value("review_case", "");
  auto prc = get("/v1/reviews/" + pid, "reviewer1");
  ASSERT_EQ(prc.status, 200) << prc.raw;
  const json penny = candidate(prc.body, "ov-penny");
  EXPECT_EQ(penny["reference_available"], false);
  auto none = get("/v1/reviews/" + pid + "/candidates/" + std::to_string(penny.value("id", int64_t{0})) + "/reference.jpg",
                  "reviewer1");
  EXPECT_TRUE(is_error(none, 404));
  EXPECT_EQ(none.header("Content-Type"), "application/json");
}

// ------------------------------------------------------------------ authorisations

TEST_F(OversightTest, APurposeThatNeedsAnAuthorisationIsRefusedWithoutAllowedWithAndFlaggedWhenAPendingOneLapses) {
  enroll_once();
  // Without one: refused (422, the code kFailedPrecondition maps to).
  EXPECT_TRUE(is_error(search(photo("amy", 2), "investigation", "C-auth-0"), 422));
  EXPECT_TRUE(is_error(search(photo("amy", 2), "investigation", "C-auth-0", "au_000000000000"), 422)) << "unknown id";

  // Recorded by auditors and admins; investigators may list them (to know which to cite) but not add.
  const json granted_req = {{"authority", "District Court"}, {"reference", "W-17"}, {"purposes", {"investigation"}},
                            {"valid_from", day(-1)}, {"valid_until", day(30)}, {"note", "warrant on file"}};
  EXPECT_TRUE(is_error(post_json("/v1/authorisations", "investigator", granted_req), 403));
  EXPECT_TRUE(is_error(post_json("/v1/authorisations", "reviewer1", granted_req), 403));
  auto granted = post_json("/v1/authorisations", "auditor", granted_req);
  ASSERT_EQ(granted.status, 201) << granted.raw;
  const std::string au = granted.body.value("id", "");
  EXPECT_EQ(au.rfind("au_", 0), 0u);
  EXPECT_EQ(granted.body["status"], "granted");
  EXPECT_EQ(granted.body["authority"], "District Court");
  EXPECT_EQ(granted.body["purposes"], json({"investigation"}));
  EXPECT_TRUE(is_error(post_json("/v1/authorisations", "auditor", {{"authority", "X"}}), 400));

  auto ok = search(photo("amy", 2), "investigation", "C-auth-1", au);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["authorisation"], au);
  EXPECT_EQ(ok.body["authorisation_pending"], false);
  // A photo against an enrolled subject is a search for the policy: the same field.
  auto verify = [](const std::string& authorisation) {
    httplib::MultipartFormDataItems items = {img("a", photo("amy", 2)), text("subject", "ov-amy"),
                                             text("purpose", "investigation"), text("case", "C-auth-v")};
    if (!authorisation.empty()) items.push_back(text("authorisation", authorisation));
    return post_form("/v1/verify", "investigator", items);
  };
  EXPECT_TRUE(is_error(verify(""), 422));
  auto verified = verify(au);
  ASSERT_EQ(verified.status, 200) << verified.raw;
  EXPECT_EQ(verified.body["same"], true) << verified.raw;

  // Pending, due in an hour: searches may cite it meanwhile, flagged as pending.
  auto pending = post_json("/v1/authorisations", "admin",
                           {{"authority", "Prosecutor"}, {"reference", "R-9"}, {"purposes", {"investigation"}},
                            {"valid_from", day(-1)}, {"valid_until", day(30)}, {"pending", true},
                            {"deadline", vault::add_days(now(), 1.0 / 24)}});
  ASSERT_EQ(pending.status, 201) << pending.raw;
  const std::string pau = pending.body.value("id", "");
  EXPECT_EQ(pending.body["status"], "pending");
  EXPECT_FALSE(pending.body["deadline"].is_null());
  auto under_pending = search(photo("amy", 2), "investigation", "C-auth-2", pau);
  ASSERT_EQ(under_pending.status, 200) << under_pending.raw;
  EXPECT_EQ(under_pending.body["authorisation"], pau);
  EXPECT_EQ(under_pending.body["authorisation_pending"], true);
  const std::string flagged_case = under_pending.body.value("review_case", "");
  auto before = get("/v1/reviews/" + flagged_case, "auditor");
  ASSERT_EQ(before.status, 200) << before.raw;
  EXPECT_EQ(before.body["authorisation"], pau);
  EXPECT_TRUE(before.body["unusable"].is_null());

  // Refuse and grant: only a pending one changes; a refused one cannot be granted (422).
  auto other = post_json("/v1/authorisations", "auditor",
                         {{"authority", "Court"}, {"reference", "R-10"}, {"purposes", {"investigation"}},
                          {"valid_from", day(-1)}, {"valid_until", day(30)}, {"pending", true}});
  ASSERT_EQ(other.status, 201) << other.raw;
  const std::string oau = other.body.value("id", "");
  auto refused = post_json("/v1/authorisations/" + oau + "/refuse", "auditor", {{"note", "refused by letter"}});
  ASSERT_EQ(refused.status, 200) << refused.raw;
  EXPECT_EQ(refused.body["status"], "refused");
  EXPECT_TRUE(is_error(post_json("/v1/authorisations/" + oau + "/grant", "auditor", json::object()), 422));
  EXPECT_TRUE(is_error(post_json("/v1/authorisations/au_000000000000/grant", "auditor", json::object()), 404));
  EXPECT_TRUE(is_error(search(photo("amy", 2), "investigation", "C-auth-3", oau), 422)) << "a refused one is not citable";

  // Two hours later the deadline has passed without a grant: the expiry run lapses it and the
  // case that cited it becomes unusable; it can no longer be cited.
  env->clock_offset_days = env->clock_offset_days.load() + 2.0 / 24;
  auto run = post_json("/v1/retention/run", "auditor", json::object());
  ASSERT_EQ(run.status, 200) << run.raw;
  auto after = get("/v1/reviews/" + flagged_case, "auditor");
  ASSERT_EQ(after.status, 200) << after.raw;
  EXPECT_FALSE(after.body["unusable"].is_null()) << "the case of a lapsed authorisation is flagged: " << after.raw;
  EXPECT_TRUE(is_error(search(photo("amy", 2), "investigation", "C-auth-4", pau), 422));

  auto list = get("/v1/authorisations", "investigator");
  ASSERT_EQ(list.status, 200) << list.raw;
  std::map<std::string, std::string> status;
  for (const auto& a : list.body["authorisations"]) status[a.value("id", "")] = a.value("status", "");
  EXPECT_EQ(status[au], "granted");
  EXPECT_EQ(status[pau], "lapsed");
  EXPECT_EQ(status[oau], "refused");
  EXPECT_TRUE(is_error(get("/v1/authorisations", "reviewer1"), 403));
  EXPECT_TRUE(is_error(get("/v1/authorisations", "enroller"), 403));
}

// ------------------------------------------------------------------ the transparency report

TEST_F(OversightTest, ReportAsJsonAndHtmlHoldsCountsAndNoSubject) {
  enroll_once();
  ASSERT_EQ(search(photo("amy", 4), "access-control", "C-report").status, 200);
  const std::string period = "/v1/report?from=" + day(-1) + "&to=" + day(1);

  auto j = get(period, "auditor");
  ASSERT_EQ(j.status, 200) << j.raw;
  EXPECT_EQ(j.header("Content-Type"), "application/json");
  ASSERT_TRUE(j.body.contains("per_purpose")) << j.raw;
  ASSERT_TRUE(j.body.contains("totals")) << j.raw;
  ASSERT_TRUE(j.body["per_purpose"].contains("access-control")) << j.raw;
  EXPECT_GE(j.body["per_purpose"]["access-control"].value("searches", 0), 1);
  EXPECT_GE(j.body["totals"].value("enrolments", 0), 2);
  EXPECT_EQ(get(period + "&format=json", "admin").status, 200);

  auto h = get(period + "&format=html", "auditor");
  ASSERT_EQ(h.status, 200) << h.raw.substr(0, 300);
  EXPECT_EQ(h.header("Content-Type").rfind("text/html", 0), 0u) << h.header("Content-Type");
  EXPECT_NE(h.raw.find("<html"), std::string::npos);
  // The web UI pages' Content-Security-Policy, plus exactly the hash of the page's own <style>
  // (the page is standalone: it must look right when saved, and allow nothing else inline).
  auto page = wrap(client().Get("/"));
  ASSERT_EQ(page.status, 200);
  const std::string ui_csp = page.header("Content-Security-Policy");
  ASSERT_FALSE(ui_csp.empty());
  std::string hashes;
  for (size_t at = h.raw.find("<style>"); at != std::string::npos; at = h.raw.find("<style>", at)) {
    at += 7;
    const size_t end = h.raw.find("</style>", at);
    ASSERT_NE(end, std::string::npos);
    std::vector<uint8_t> style(h.raw.begin() + static_cast<std::ptrdiff_t>(at), h.raw.begin() + static_cast<std::ptrdiff_t>(end));
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, style.data(), style.size());
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    hashes += std::string(" 'sha256-") + b64 + "'";
    at = end;
  }
  std::string want = ui_csp;
  const std::string style_src = "style-src 'self'";
  ASSERT_NE(want.find(style_src), std::string::npos) << ui_csp;
  want.insert(want.find(style_src) + style_src.size(), hashes);
  EXPECT_EQ(h.header("Content-Security-Policy"), want);
  EXPECT_EQ(h.header("Content-Security-Policy").find("unsafe-inline"), std::string::npos);
  EXPECT_NE(h.header("Content-Security-Policy").find("script-src 'self'"), std::string::npos);

  // No subject reference or vault id in either form.
  for (const std::string& personal : {std::string("ov-amy"), std::string("ov-penny"), amy_uid_, penny_uid_}) {
    ASSERT_FALSE(personal.empty());
    EXPECT_EQ(j.raw.find(personal), std::string::npos) << personal << " in the JSON report";
    EXPECT_EQ(h.raw.find(personal), std::string::npos) << personal << " in the HTML report";
  }

  EXPECT_TRUE(is_error(get(period + "&format=pdf", "auditor"), 400));
  EXPECT_TRUE(is_error(get(period, "investigator"), 403));
  EXPECT_TRUE(is_error(get(period, "reviewer1"), 403));
  EXPECT_TRUE(is_error(get("/v1/report?from=" + day(1) + "&to=" + day(-1), "auditor"), 400)) << "an empty period";
}

}  // namespace
}  // namespace fv::test
