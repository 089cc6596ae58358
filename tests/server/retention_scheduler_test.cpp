// Retention that runs itself (issue 18, item 6): `facevault serve` expires, on its schedule, a
// subject whose retention ended while the server runs, with the same receipts and audit
// entries as `facevault expire` (actor "scheduler:retention"); /metrics and GET
// /v1/retention/last show the last run; interval 0 runs nothing; stop() is prompt with a long
// interval. Real HTTP on 127.0.0.1, synthetic templates, no models. No timing assertions: every
// wait is a poll with a generous bound.
#include <httplib.h>

#include <chrono>
#include <future>
#include <map>
#include <sstream>
#include <mutex>
#include <random>
#include <thread>

#include "server/http_resp.h"
#include "server/server.h"
#include "vault/api_keys.h"
#include "vault/vault_test_util.h"

namespace fv::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A clock the test moves while the server's threads read it.
class SharedClock {
 public:
  SharedClock() : now_(vault::utc_now()) {}
  std::string now() const {
    std::lock_guard<std::mutex> l(mu_);
    return now_;
  }
  void set(std::string t) {
    std::lock_guard<std::mutex> l(mu_);
    now_ = std::move(t);
  }
  std::function<std::string()> fn() { return [this] { return now(); }; }

 private:
  mutable std::mutex mu_;
  std::string now_;
};

class RetentionSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    dir_ = tmp_.path() / "v";
    ASSERT_TRUE(vault::Vault::init(dir_).is_ok());
  }
  void TearDown() override {
    if (srv_) srv_->stop();
  }

  // Through the service, before the server opens the vault: an auditor key, and subjects.
  // `expires`: the end of the subject's only lawful basis (none: the vault's default retention).
  std::map<std::string, std::string> prepare(const std::vector<std::pair<std::string, std::optional<std::string>>>& subjects) {
    service::ServiceOptions so;
    so.clock = clock_.fn();
    auto svc = service::Service::open(dir_, so);
    EXPECT_TRUE(svc.is_ok()) << svc.status().to_string();
    std::map<std::string, std::string> uid;
    if (!svc.is_ok()) return uid;
    auto k = (*svc)->create_api_key(kAdmin, service::Role::kAuditor, {"access-control"}, "retention test");
    EXPECT_TRUE(k.is_ok()) << k.status().to_string();
    if (k.is_ok()) key_ = k->secret;
    for (const auto& [ref, expires] : subjects) {
      auto b = (*svc)->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "form-" + ref, {"access-control"}, expires});
      EXPECT_TRUE(b.is_ok()) << b.status().to_string();
      if (!b.is_ok()) continue;
      uid[ref] = b->subject_uid;
      auto e = (*svc)->enroll_template(kAdmin, service::EnrollRequest(ref, b->basis_id), random_template(rng_));
      EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    }
    return uid;
  }

  void start(std::chrono::seconds interval) {
    server::ServerOptions o;
    o.vault_dir = dir_;
    o.port = 0;
    o.pipelines = 1;
    o.http_threads = 4;
    o.rate_per_s = 0;
    o.access_log = false;
    // No photo reaches this server: no models loaded.
    o.pipeline_factory = [] { return Result<std::unique_ptr<face::FacePipeline>>(std::unique_ptr<face::FacePipeline>()); };
    o.service_options.clock = clock_.fn();
    o.retention_interval = interval;
    auto s = server::Server::create(o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    srv_ = std::move(s).value();
    ASSERT_TRUE(srv_->start().is_ok());
  }

  Resp get(const std::string& path) {
    httplib::Client c("127.0.0.1", srv_->port());
    c.set_read_timeout(30, 0);
    return wrap(c.Get(path.c_str(), httplib::Headers{{"Authorization", "Bearer " + key_}}));
  }

  // The value of an unlabelled sample in /metrics; nullopt when absent.
  std::optional<double> metric(const std::string& name) {
    httplib::Client c("127.0.0.1", srv_->port());
    auto r = c.Get("/metrics");
    if (!r || r->status != 200) return std::nullopt;
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return std::nullopt;
  }

  // Polls GET /v1/retention/last until `done` holds, for at most `bound`.
  json wait_for_last(const std::function<bool(const json&)>& done, std::chrono::seconds bound = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    json last;
    do {
      auto r = get("/v1/retention/last");
      EXPECT_EQ(r.status, 200) << r.raw;
      last = r.body;
      if (r.status == 200 && done(last)) return last;
      std::this_thread::sleep_for(100ms);
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << "not reached within " << bound.count() << " s; last: " << last.dump();
    return last;
  }

  TempDir tmp_;
  fs::path dir_;
  SharedClock clock_;
  std::mt19937 rng_{18};
  std::string key_;
  std::unique_ptr<server::Server> srv_;
};

TEST_F(RetentionSchedulerTest, ExpiresASubjectWhoseRetentionEndsWhileTheServerRuns) {
  const std::string t0 = clock_.now();
  auto uid = prepare({{"rita", vault::add_days(t0, 1)}, {"sam", std::nullopt}});
  ASSERT_EQ(uid.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(start(1s));

  // Runs happen, and erase nothing while nobody is due.
  json last = wait_for_last([](const json& j) { return j["runs"].get<int>() >= 1; });
  EXPECT_TRUE(last["schedule"]["enabled"].get<bool>());
  EXPECT_EQ(last["schedule"]["interval_seconds"], 1);
  EXPECT_EQ(last["schedule"]["actor"], "scheduler:retention");
  ASSERT_TRUE(last["last_report"].is_object()) << last.dump();
  EXPECT_TRUE(last["last_report"]["erased"].empty());
  EXPECT_EQ(get("/v1/subjects/rita/export").status, 200);

  // Rita's only basis ends; the next scheduled run erases her, and only her.
  clock_.set(vault::add_days(t0, 2));
  last = wait_for_last([](const json& j) {
    return j["last_report"].is_object() && !j["last_report"]["erased"].empty();
  });
  ASSERT_EQ(last["last_report"]["erased"].size(), 1u) << last.dump();
  const json& receipt = last["last_report"]["erased"][0];
  EXPECT_EQ(receipt["receipt"], "erasure");
  EXPECT_EQ(receipt["subject"], "rita");
  EXPECT_EQ(receipt["subject_id"], uid["rita"]);
  EXPECT_EQ(receipt["reason"], "no lawful basis in force");
  EXPECT_TRUE(receipt["erased"]["subject_key"].get<bool>());
  EXPECT_FALSE(last["last_report"]["dry_run"].get<bool>());
  EXPECT_TRUE(last["last_run"]["ok"].get<bool>());
  EXPECT_EQ(last["failures"], 0);

  // The subject is gone; the other stays.
  EXPECT_EQ(get("/v1/subjects/rita/export").status, 404);
  EXPECT_EQ(get("/v1/subjects/sam/export").status, 200);

  // The audit log has the receipts, by the scheduler: one erase entry for rita, and the run's
  // expire entry naming her.
  auto erases = get("/v1/audit?actor=scheduler:retention&action=erase");
  ASSERT_EQ(erases.status, 200) << erases.raw;
  ASSERT_EQ(erases.body["entries"].size(), 1u) << erases.raw;
  EXPECT_EQ(erases.body["entries"][0]["role"], "auditor");
  EXPECT_EQ(erases.body["entries"][0]["subjects"], json::array({uid["rita"]}));
  auto expires = get("/v1/audit?actor=scheduler:retention&action=expire&limit=10000");
  ASSERT_EQ(expires.status, 200) << expires.raw;
  int erasing_runs = 0;
  for (const auto& e : expires.body["entries"]) {
    if (e["details"]["erased"].get<int>() == 0) continue;
    ++erasing_runs;
    EXPECT_EQ(e["subjects"], json::array({uid["rita"]}));
    EXPECT_FALSE(e["details"]["dry_run"].get<bool>());
  }
  EXPECT_EQ(erasing_runs, 1);
  EXPECT_EQ(get("/v1/audit?action=erase&subject=" + uid["rita"]).body["entries"].size(), 1u);
  EXPECT_TRUE(get("/v1/audit/verify").body["ok"].get<bool>());

  // /metrics counts the runs (the erasing run's own numbers: MetricsShowTheRunThatErased).
  EXPECT_GE(metric("facevault_retention_runs_total").value_or(0), 2);
  EXPECT_EQ(metric("facevault_retention_failures_total"), 0);
  EXPECT_EQ(metric("facevault_retention_interval_seconds"), 1);
  EXPECT_GT(metric("facevault_retention_last_run_timestamp_seconds").value_or(0), 1.7e9);
  EXPECT_GT(metric("facevault_retention_last_success_timestamp_seconds").value_or(0), 1.7e9);
  ASSERT_TRUE(metric("facevault_retention_last_run_erased").has_value());
}

TEST_F(RetentionSchedulerTest, MetricsShowTheRunThatErased) {
  // With a long interval after the erasing run, /metrics holds that run's numbers: the first
  // run comes one interval after start, so a 3 s interval leaves time to read them.
  const std::string t0 = clock_.now();
  prepare({{"rita", vault::add_days(t0, 1)}});
  clock_.set(vault::add_days(t0, 2));  // due before the server starts; erased by its first run
  ASSERT_NO_FATAL_FAILURE(start(3s));
  EXPECT_EQ(metric("facevault_retention_runs_total"), 0);
  EXPECT_FALSE(metric("facevault_retention_last_run_timestamp_seconds").has_value()) << "no run yet";
  json last = wait_for_last([](const json& j) { return j["runs"].get<int>() >= 1; });
  ASSERT_TRUE(last["last_report"].is_object()) << last.dump();
  ASSERT_EQ(last["last_report"]["erased"].size(), 1u) << "the first run erases rita: " << last.dump();
  // /metrics reflects the erasing run (the first one) until the next, an interval later.
  bool seen = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    seen = metric("facevault_retention_runs_total") == 1 && metric("facevault_retention_last_run_erased") == 1;
    if (!seen) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(seen) << "facevault_retention_last_run_erased never showed the erasing run";
  EXPECT_EQ(get("/v1/subjects/rita/export").status, 404);
}

TEST_F(RetentionSchedulerTest, IntervalZeroRunsNothing) {
  const std::string t0 = clock_.now();
  prepare({{"rita", vault::add_days(t0, 1)}});
  clock_.set(vault::add_days(t0, 2));  // due, but nothing runs
  ASSERT_NO_FATAL_FAILURE(start(0s));
  auto last = get("/v1/retention/last");
  ASSERT_EQ(last.status, 200) << last.raw;
  EXPECT_FALSE(last.body["schedule"]["enabled"].get<bool>());
  EXPECT_TRUE(last.body["last_run"].is_null());
  EXPECT_TRUE(last.body["last_report"].is_null());
  std::this_thread::sleep_for(1500ms);  // longer than any interval a schedule could have taken
  last = get("/v1/retention/last");
  EXPECT_EQ(last.body["runs"], 0);
  EXPECT_EQ(metric("facevault_retention_runs_total"), 0);
  EXPECT_EQ(metric("facevault_retention_interval_seconds"), 0);
  EXPECT_EQ(get("/v1/subjects/rita/export").status, 200) << "interval 0 must not erase";
  EXPECT_TRUE(get("/v1/audit?actor=scheduler:retention").body["entries"].empty());
}

TEST_F(RetentionSchedulerTest, StopIsPromptWithALongInterval) {
  prepare({});
  ASSERT_NO_FATAL_FAILURE(start(std::chrono::hours(24)));
  EXPECT_TRUE(get("/v1/retention/last").body["schedule"]["enabled"].get<bool>());
  // A scheduler sleeping out its interval would hold stop() for a day; the bound is generous.
  auto stopped = std::async(std::launch::async, [this] { srv_->stop(); });
  EXPECT_EQ(stopped.wait_for(30s), std::future_status::ready) << "stop() waits for the retention interval";
  stopped.wait();
  srv_.reset();  // the destructor stops again: idempotent
}

TEST_F(RetentionSchedulerTest, OnlyAdminAndAuditorReadTheLastRun) {
  prepare({});
  std::string investigator;
  {
    auto svc = service::Service::open(dir_, {});
    ASSERT_TRUE(svc.is_ok());
    auto k = (*svc)->create_api_key(kAdmin, service::Role::kInvestigator, {"access-control"}, "not a dpo");
    ASSERT_TRUE(k.is_ok());
    investigator = k->secret;
  }
  ASSERT_NO_FATAL_FAILURE(start(std::chrono::hours(1)));
  httplib::Client c("127.0.0.1", srv_->port());
  EXPECT_EQ(wrap(c.Get("/v1/retention/last")).status, 401);
  EXPECT_EQ(wrap(c.Get("/v1/retention/last", httplib::Headers{{"Authorization", "Bearer " + investigator}})).status, 403);
  EXPECT_EQ(get("/v1/retention/last").status, 200);
}

}  // namespace
}  // namespace fv::test
