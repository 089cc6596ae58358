// The service over the vector index: search and the opt-out check go through it, enrollment
// adds to it online, erasure removes from it (physically, before the receipt), the purpose
// filter runs inside it, and the three search modes (threshold, identification by FPIR,
// investigation top-k). Synthetic templates; no models needed.
#include <random>

#include "service/render.h"
#include "vault_test_util.h"

namespace fv::test {
namespace {

using service::EnrollRequest;
using service::SearchRequest;

class VaultIndexTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    dir_ = tmp_.path() / "v";
    config_.index_kind = GetParam();
    ASSERT_TRUE(vault::Vault::init(dir_, config_).is_ok());
    svc_ = open_service(dir_);
    ASSERT_TRUE(svc_);
  }
  // n subjects with `photos` templates each under one purpose; returns their first templates.
  std::vector<face::FaceTemplate> enroll(const std::string& prefix, const std::string& purpose, int n, int photos = 2) {
    std::vector<face::FaceTemplate> firsts;
    for (int i = 0; i < n; ++i) {
      const std::string ref = prefix + std::to_string(i);
      auto b = svc_->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "form", {purpose}, std::nullopt});
      EXPECT_TRUE(b.is_ok()) << b.status().to_string();
      auto base = random_template(rng_);
      firsts.push_back(base);
      for (int p = 0; p < photos; ++p) {
        EnrollRequest req(ref, b->basis_id);
        auto e = svc_->enroll_template(kAdmin, req, p == 0 ? base : near_template(base, rng_, 0.4f));
        EXPECT_TRUE(e.is_ok()) << e.status().to_string();
      }
    }
    return firsts;
  }
  std::vector<std::string> refs(const service::SearchResult& r) {
    std::vector<std::string> out;
    for (auto& c : r.faces.at(0).candidates) out.push_back(c.subject_ref);
    return out;
  }

  TempDir tmp_;
  std::filesystem::path dir_;
  vault::VaultConfig config_;
  std::mt19937 rng_{11};
  std::unique_ptr<service::Service> svc_;
};

TEST_P(VaultIndexTest, SearchModesThroughTheIndex) {
  auto access = enroll("acc-", "access-control", 60);
  enroll("oth-", "other", 60);
  auto probe = near_template(access[7], rng_, 0.4f);

  SearchRequest thr("access-control", "case-1", 5);
  auto r = svc_->search_templates(kAdmin, thr, {probe});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto* ix = svc_->search_index("faceplugin-mobilefacenet-512", 1);
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->kind(), GetParam() == "auto" ? "exact" : GetParam());
  EXPECT_EQ(svc_->gallery_size(), 240u);
  EXPECT_EQ(r->mode, "threshold");
  ASSERT_EQ(refs(*r), std::vector<std::string>{"acc-7"}) << "random others are far below FMR 1e-3";
  EXPECT_EQ(r->eligible_templates, 120);

  // Investigation: the top 50 for review whatever the score — all eligible, none of `other`.
  SearchRequest inv("access-control", "case-2");
  inv.mode = "investigation";
  auto ri = svc_->search_templates(kAdmin, inv, {probe});
  ASSERT_TRUE(ri.is_ok());
  auto names = refs(*ri);
  ASSERT_EQ(names.size(), 50u);
  EXPECT_EQ(names[0], "acc-7");
  for (auto& n : names) EXPECT_EQ(n.rfind("acc-", 0), 0u) << n << " leaked from another purpose";
  std::set<std::string> uniq(names.begin(), names.end());
  EXPECT_EQ(uniq.size(), names.size()) << "one candidate per subject";

  // Identification: threshold from FPIR 1 % for 120 eligible templates; candidates carry FPIR.
  SearchRequest idn("access-control", "case-3");
  idn.mode = "identification";
  auto rid = svc_->search_templates(kAdmin, idn, {probe});
  ASSERT_TRUE(rid.is_ok());
  ASSERT_EQ(refs(*rid), std::vector<std::string>{"acc-7"});
  ASSERT_TRUE(rid->faces[0].candidates[0].fpir.has_value());
  EXPECT_LT(*rid->faces[0].candidates[0].fpir, 0.01);
  EXPECT_NEAR(rid->max_fmr, 1 - std::pow(0.99, 1.0 / 120), 1e-9);

  SearchRequest bad("access-control", "case-4");
  bad.mode = "guess";
  EXPECT_EQ(svc_->search_templates(kAdmin, bad, {probe}).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(VaultIndexTest, PurposeFilterHoldsWhenEveryNearestFaceIsIneligible) {
  enroll("acc-", "access-control", 40);
  auto others = enroll("oth-", "other", 40, 3);
  // The probe is another photo of an `other` subject: its nearest faces are all ineligible.
  SearchRequest inv("access-control", "case");
  inv.mode = "investigation";
  inv.top_k = 10;
  auto r = svc_->search_templates(kAdmin, inv, {near_template(others[3], rng_, 0.3f)});
  ASSERT_TRUE(r.is_ok());
  auto names = refs(*r);
  EXPECT_EQ(names.size(), 10u) << "k eligible candidates still come back";
  for (auto& n : names) EXPECT_EQ(n.rfind("acc-", 0), 0u) << n << " leaked";
}

TEST_P(VaultIndexTest, OnlineAddAndPhysicalRemovalOnErase) {
  auto access = enroll("acc-", "access-control", 50);
  SearchRequest inv("access-control", "case");
  inv.mode = "investigation";
  ASSERT_TRUE(svc_->search_templates(kAdmin, inv, {access[0]}).is_ok());  // loads the index
  EXPECT_EQ(svc_->gallery_size(), 100u);

  // Enrollment adds to the loaded index without a reload.
  auto late = enroll("late-", "access-control", 1);
  EXPECT_EQ(svc_->gallery_size(), 102u);
  auto r = svc_->search_templates(kAdmin, {"access-control", "c", 1}, {late[0]});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(refs(*r), std::vector<std::string>{"late-0"});

  // Erasure: out of the index before the receipt; even an investigation search (no
  // threshold) with the subject's own template never returns it.
  auto receipt = svc_->erase(kAdmin, "acc-3");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->index_removed, 2);
  EXPECT_EQ(service::render::erase_receipt(*receipt)["search_index_removed"], 2);
  EXPECT_EQ(svc_->gallery_size(), 100u);
  inv.top_k = 200;
  auto after = svc_->search_templates(kAdmin, inv, {access[3]});
  ASSERT_TRUE(after.is_ok());
  for (auto& n : refs(*after)) EXPECT_NE(n, "acc-3");
  EXPECT_EQ(refs(*after).size(), 50u);

  // Withdrawal of the only basis erases too.
  auto b = svc_->add_basis(kAdmin, {"wd", service::BasisKind::kConsent, "form", {"access-control"}, std::nullopt});
  ASSERT_TRUE(b.is_ok());
  auto t = random_template(rng_);
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("wd", b->basis_id), t).is_ok());
  auto wd = svc_->withdraw_basis(kAdmin, b->basis_id);
  ASSERT_TRUE(wd.is_ok());
  EXPECT_EQ(wd->index_removed, 1);
  auto w = svc_->search_templates(kAdmin, inv, {t});
  ASSERT_TRUE(w.is_ok());
  for (auto& n : refs(*w)) EXPECT_NE(n, "wd");

  // A subject who stays under another basis: the receipt counts only the withdrawn basis's
  // templates, though the subject's others leave the index until its next load.
  auto stay = svc_->add_basis(kAdmin, {"acc-4", service::BasisKind::kConsent, "form2", {"access-control"}, std::nullopt});
  ASSERT_TRUE(stay.is_ok());
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("acc-4", stay->basis_id), random_template(rng_)).is_ok());
  auto stay5 = svc_->add_basis(kAdmin, {"acc-5", service::BasisKind::kConsent, "form2", {"access-control"}, std::nullopt});
  ASSERT_TRUE(stay5.is_ok());
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("acc-5", stay5->basis_id), random_template(rng_)).is_ok());
  ASSERT_TRUE(svc_->search_templates(kAdmin, inv, {access[4]}).is_ok());  // the index is loaded
  auto part = svc_->withdraw_basis(kAdmin, stay->basis_id);
  ASSERT_TRUE(part.is_ok()) << part.status().to_string();
  EXPECT_EQ(part->faces, 1);
  EXPECT_EQ(part->index_removed, 1) << "acc-4's two earlier templates are not the withdrawal's";
  // The withdrawal dropped the index: the next one has nothing to take out of it.
  auto unloaded = svc_->withdraw_basis(kAdmin, stay5->basis_id);
  ASSERT_TRUE(unloaded.is_ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->faces, 1);
  EXPECT_EQ(unloaded->index_removed, 0) << "no index was loaded";
  auto kept = svc_->search_templates(kAdmin, {"access-control", "c", 1}, {access[4]});
  ASSERT_TRUE(kept.is_ok());
  EXPECT_EQ(refs(*kept), std::vector<std::string>{"acc-4"}) << "they come back with the next load";
}

// Who a purpose may return is cached per purpose (a search must not re-read every basis);
// the cache must still follow another process's change to a basis (the vault's eligibility
// generation, kept by triggers) and the clock passing a basis's expiry.
TEST_P(VaultIndexTest, EligibilityFollowsOtherProcessesAndTheClock) {
  Clock clock;
  clock.now = "2026-01-01T00:00:00Z";
  svc_ = open_service(dir_, &clock);
  ASSERT_TRUE(svc_);
  auto access = enroll("acc-", "access-control", 20);
  auto b = svc_->add_basis(kAdmin, {"exp", service::BasisKind::kConsent, "form", {"access-control"}, std::string("2026-01-01T12:00:00Z")});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  auto t = random_template(rng_);
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("exp", b->basis_id), t).is_ok());
  SearchRequest inv("access-control", "case");
  inv.mode = "investigation";
  inv.top_k = 1;
  auto top = [&](const face::FaceTemplate& q) {
    auto r = svc_->search_templates(kAdmin, inv, {q});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() && !refs(*r).empty() ? refs(*r)[0] : std::string("(none)");
  };
  EXPECT_EQ(top(t), "exp");
  EXPECT_EQ(top(access[4]), "acc-4");

  // Another process (here: another connection) ends acc-4's basis; no face row changes.
  {
    auto other = vault::Vault::open(dir_);
    ASSERT_TRUE(other.is_ok()) << other.status().to_string();
    ASSERT_TRUE(raw_db(**other).exec("UPDATE lawful_basis SET expires_at='2025-12-31T00:00:00Z' WHERE subject_id="
                                    "(SELECT id FROM subject WHERE ref='acc-4')").is_ok());
  }
  EXPECT_NE(top(access[4]), "acc-4") << "a cached eligibility outlived another process's change";
  EXPECT_EQ(top(t), "exp");

  // The clock passes the expiry of `exp`'s basis: no longer eligible, without any write.
  clock.now = "2026-01-01T12:00:01Z";
  EXPECT_NE(top(t), "exp") << "a cached eligibility outlived its earliest expiry";
  auto r = svc_->search_templates(kAdmin, inv, {access[0]});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->eligible_subjects, 19);
}

// Every enrollment renews its subject's retention. A renewal cannot end anyone's eligibility,
// so it must not throw the cache away (else every search after an enrollment re-reads every
// basis); but a renewal that brings back a subject whose retention had ended must be seen.
TEST_P(VaultIndexTest, RetentionRenewalKeepsTheCacheUnlessItRevivesASubject) {
  auto generation = [&] {
    auto g = raw_db(*svc_).query_int("SELECT CAST(value AS INTEGER) FROM meta WHERE key='eligibility_generation'");
    EXPECT_TRUE(g.is_ok());
    return g.is_ok() ? *g : -1;
  };
  auto access = enroll("acc-", "access-control", 12);  // an IVF needs 16 templates to train
  const int64_t before = generation();
  auto b = raw_db(*svc_).query_int("SELECT id FROM lawful_basis WHERE subject_id=(SELECT id FROM subject WHERE ref='acc-2')");
  ASSERT_TRUE(b.is_ok());
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("acc-2", *b), near_template(access[2], rng_, 0.4f)).is_ok());
  EXPECT_EQ(generation(), before) << "a renewal of a retention far from its end invalidated every cache";

  // In another process's clock-free view: retention ended yesterday; a renewal revives it.
  SearchRequest inv("access-control", "case");
  inv.mode = "investigation";
  inv.top_k = 1;
  ASSERT_TRUE(raw_db(*svc_).exec("UPDATE subject SET retention_until='2000-01-01T00:00:00.000Z' WHERE ref='acc-3'").is_ok());
  auto gone = svc_->search_templates(kAdmin, inv, {access[3]});
  ASSERT_TRUE(gone.is_ok()) << gone.status().to_string();
  ASSERT_FALSE(refs(*gone).empty());
  EXPECT_NE(refs(*gone)[0], "acc-3") << "retention ended: not searchable";
  auto b3 = raw_db(*svc_).query_int("SELECT id FROM lawful_basis WHERE subject_id=(SELECT id FROM subject WHERE ref='acc-3')");
  ASSERT_TRUE(b3.is_ok());
  ASSERT_TRUE(svc_->enroll_template(kAdmin, EnrollRequest("acc-3", *b3), near_template(access[3], rng_, 0.4f)).is_ok());
  auto back = svc_->search_templates(kAdmin, inv, {access[3]});
  ASSERT_TRUE(back.is_ok());
  ASSERT_FALSE(refs(*back).empty());
  EXPECT_EQ(refs(*back)[0], "acc-3") << "a renewed retention did not make the subject searchable again";
}

TEST_P(VaultIndexTest, OptOutChecksUseTheIndex) {
  auto access = enroll("acc-", "access-control", 30);
  enroll("oth-", "other", 30);
  // An opt-out entry for acc-4 (a new photo): counted as an enrolled match, whatever purpose,
  // and listed by the check.
  auto o = svc_->optout_add_template(kAdmin, near_template(access[4], rng_, 0.3f));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->enrolled_match_count, 1);
  auto c = svc_->optout_check(kAdmin);
  ASSERT_TRUE(c.is_ok());
  ASSERT_EQ(c->matches.size(), 1u);
  EXPECT_EQ(c->matches[0].subject_ref, "acc-4");
  ASSERT_TRUE(svc_->erase(kAdmin, "acc-4").is_ok());
  EXPECT_TRUE(svc_->optout_check(kAdmin)->matches.empty());
}

INSTANTIATE_TEST_SUITE_P(Index, VaultIndexTest, ::testing::Values("exact", "ivf", "hnsw"));

}  // namespace
}  // namespace fv::test
