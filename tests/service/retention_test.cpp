// Retention: expire erases the subjects whose basis or retention period has ended, and what an
// expired basis covered when its subject stays under another; a dry run erases nothing, a date
// in the future is refused unless it is a dry run; all of it audited.
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;
using service::SearchRequest;

class RetentionTest : public ServiceTest {};

TEST_F(RetentionTest, ExpireErasesWhatIsDueAndAuditsIt) {
  const std::string t0 = clock_.now;
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  const int64_t b = basis("bob", {"access-control"}, BasisKind::kConsent, vault::add_days(t0, 30));
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  const int64_t c = basis("carol", {"access-control"});
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());
  // Carol comes back after 200 days: her retention is renewed by the new enrollment.
  clock_.now = vault::add_days(t0, 200);
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());

  auto r = svc_->expire(actor_, vault::add_days(t0, 10), false);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->erased.empty());
  auto dry = svc_->expire(actor_, vault::add_days(t0, 31), true);
  ASSERT_EQ(dry->erased.size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 3) << "a dry run erases nothing";
  r = svc_->expire(actor_, vault::add_days(t0, 31), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "bob");
  EXPECT_EQ(r->erased[0].reason, "no lawful basis in force");
  // A date in the future erases nothing: it is refused unless it is a dry run.
  auto ahead = svc_->expire(actor_, vault::add_days(t0, 366), false);
  ASSERT_FALSE(ahead.is_ok());
  EXPECT_NE(ahead.status().message().find("--dry-run"), std::string::npos) << ahead.status().message();
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  dry = svc_->expire(actor_, vault::add_days(t0, 566), true);
  ASSERT_TRUE(dry.is_ok());
  EXPECT_EQ(dry->erased.size(), 2u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  clock_.now = vault::add_days(t0, 366);
  r = svc_->expire(actor_, vault::add_days(t0, 366), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "alice");
  EXPECT_EQ(r->erased[0].reason, "retention period ended");
  clock_.now = vault::add_days(t0, 566);
  r = svc_->expire(actor_, std::nullopt, false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "carol");
  EXPECT_EQ(audit("erase").size(), 3u);
  EXPECT_EQ(audit("expire").size(), 6u);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

TEST_F(RetentionTest, AnExpiredBasisTakesWhatItCoveredWhenTheSubjectStaysUnderAnother) {
  const std::string t0 = clock_.now;
  auto probe = random_template(rng_);
  const int64_t inv = basis("alice", {"investigation"}, BasisKind::kLawEnforcement, vault::add_days(t0, 30));
  const int64_t pay = basis("alice", {"payroll"});
  ASSERT_TRUE(enroll("alice", inv, near_template(probe, rng_, 0.2f)).is_ok());
  ASSERT_TRUE(enroll("alice", inv, near_template(probe, rng_, 0.2f)).is_ok());
  ASSERT_TRUE(enroll("alice", pay, near_template(probe, rng_, 0.2f)).is_ok());
  const std::string of_inv = " WHERE basis_id=" + std::to_string(inv);
  ASSERT_EQ(count("SELECT count(*) FROM face" + of_inv), 2);
  // A reviewer's reference crop of one of its faces (a photo enrollment keeps one; a template
  // enrollment does not, so it is put in by hand).
  ASSERT_TRUE(raw_db(*svc_).exec("INSERT INTO reference_crop(face_id, subject_id, crop) SELECT id, subject_id, x'00' "
                                 "FROM face" + of_inv + " LIMIT 1").is_ok());
  ASSERT_EQ(count("SELECT count(*) FROM reference_crop"), 1);
  const int64_t images_of_inv = count("SELECT count(*) FROM source_image" + of_inv);

  clock_.now = vault::add_days(t0, 10);
  auto early = svc_->expire(actor_, std::nullopt, false);
  ASSERT_TRUE(early.is_ok()) << early.status().to_string();
  EXPECT_TRUE(early->bases_lapsed.empty()) << "the basis is still in force";
  auto dry = svc_->expire(actor_, vault::add_days(t0, 31), true);
  ASSERT_TRUE(dry.is_ok());
  ASSERT_EQ(dry->bases_lapsed.size(), 1u);
  EXPECT_EQ(dry->bases_lapsed[0].basis_id, inv);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 3) << "a dry run erases nothing";

  // A search loads the index, so that the lapse has templates to take out of it.
  EXPECT_EQ(svc_->search_templates(actor_, {"investigation", "c"}, {probe})->faces[0].candidates.size(), 1u);

  clock_.now = vault::add_days(t0, 31);
  auto r = svc_->expire(actor_, std::nullopt, false);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->erased.empty()) << "the subject stays: the payroll basis is in force";
  ASSERT_EQ(r->bases_lapsed.size(), 1u);
  const auto& lapse = r->bases_lapsed[0];
  EXPECT_EQ(lapse.subject_ref, "alice");
  EXPECT_EQ(lapse.basis_id, inv);
  EXPECT_EQ(lapse.faces, 2);
  EXPECT_EQ(lapse.index_removed, 2) << "the expired basis's templates left the search index";
  EXPECT_EQ(lapse.images, images_of_inv);
  EXPECT_FALSE(lapse.key_destroyed);
  EXPECT_TRUE(lapse.wiped);
  EXPECT_EQ(count("SELECT count(*) FROM face" + of_inv) + count("SELECT count(*) FROM source_image" + of_inv), 0);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 1) << "the payroll basis's template stays";
  EXPECT_EQ(count("SELECT count(*) FROM reference_crop"), 0) << "the crop of a face of the expired basis";
  EXPECT_EQ(count("SELECT count(*) FROM subject_key"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM lawful_basis"), 2) << "the expired basis stays on record";
  EXPECT_EQ(count("SELECT count(*) FROM lawful_basis WHERE withdrawn_at IS NOT NULL"), 0) << "expired, not withdrawn";
  EXPECT_EQ(count("SELECT count(*) FROM lapsed_basis_erasure" + of_inv), 1);

  // Audited as a retention erasure of the basis's rows, the subject kept.
  auto erased = audit("erase");
  ASSERT_EQ(erased.size(), 1u);
  EXPECT_EQ(erased[0].details["cause"], "retention");
  EXPECT_EQ(erased[0].details["basis_id"], inv);
  EXPECT_EQ(erased[0].details["templates"], 2);
  EXPECT_EQ(erased[0].details["subject_erased"], false);
  EXPECT_EQ(audit("expire").back().details["bases_lapsed"], 1);
  // The access export says when the rows went.
  auto x = svc_->export_subject(actor_, "alice", false, std::nullopt);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  bool seen = false;
  for (const auto& b : (*x)["lawful_bases"])
    if (b["id"] == inv) {
      seen = true;
      EXPECT_TRUE(b["withdrawn_at"].is_null());
      EXPECT_EQ(b["rows_erased_at"], lapse.erased_at);
    }
  EXPECT_TRUE(seen);
  // Searches: the payroll template still answers, nothing for the lapsed purpose, also in a new process.
  EXPECT_EQ(svc_->search_templates(actor_, {"payroll", "c"}, {probe})->faces[0].candidates.size(), 1u);
  EXPECT_TRUE(svc_->search_templates(actor_, {"investigation", "c"}, {probe})->faces[0].candidates.empty());

  // Once: the next run finds nothing left to erase.
  svc_.reset();
  svc_ = open_service(dir_, &clock_);
  auto again = svc_->expire(actor_, std::nullopt, false);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->bases_lapsed.empty());
  EXPECT_TRUE(again->erased.empty());
  EXPECT_EQ(audit("erase").size(), 1u);
  EXPECT_EQ(svc_->search_templates(actor_, {"payroll", "c"}, {probe})->faces[0].candidates.size(), 1u);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);

  // When the last basis goes too, the subject goes whole (its lapsed basis's record with it).
  ASSERT_TRUE(svc_->withdraw_basis(actor_, pay).is_ok());
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM lawful_basis") +
                count("SELECT count(*) FROM lapsed_basis_erasure"),
            0);
}

TEST_F(RetentionTest, AnExpiredBasisOfASubjectDueWholeIsErasedWithTheSubjectOnly) {
  const std::string t0 = clock_.now;
  const int64_t b = basis("bob", {"payroll"}, BasisKind::kConsent, vault::add_days(t0, 30));
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  // Carol's expired basis never covered anything: there is nothing of it to erase.
  ASSERT_GT(basis("carol", {"payroll"}, BasisKind::kConsent, vault::add_days(t0, 30)), 0);
  ASSERT_GT(basis("carol", {"access-control"}), 0);
  clock_.now = vault::add_days(t0, 31);
  auto r = svc_->expire(actor_, std::nullopt, false);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "bob");
  EXPECT_TRUE(r->bases_lapsed.empty());
  EXPECT_EQ(audit("erase").size(), 1u);
}

}  // namespace
}  // namespace fv::test
