// Erasure: no byte of an erased subject (template, kept photo, key, their ciphertexts) is left
// in any file of the vault, with and without VACUUM; a committed erasure whose wipe fails keeps
// its receipt and the next open wipes; no external reference or path enters the audit log.
#include "service/render.h"
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::EnrollRequest;

class ErasureTest : public ServiceTest {};

class EraseTest : public ServiceTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    config_.erase_vacuum = GetParam();
    ServiceTest::SetUp();
  }
};

TEST_P(EraseTest, NoByteOfTheErasedSubjectRemainsInAnyFile) {
  auto t1 = random_template(rng_), t2 = near_template(t1, rng_, 0.3f), tb = random_template(rng_);
  std::vector<uint8_t> image(20000);
  for (auto& x : image) x = static_cast<uint8_t>(rng_());
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, t1).is_ok());
  auto kept = enroll_kept_photo(*svc_, actor_, {"alice", a}, image, t2);
  ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  const int64_t b = basis("bob", {"access-control"});
  ASSERT_TRUE(enroll("bob", b, tb).is_ok());

  // The stored forms, as the database holds them.
  auto blobs = [&](const std::string& sql) {
    std::vector<std::vector<uint8_t>> out;
    auto s = raw_db(*svc_).prepare(sql);
    while (*s->step()) out.push_back(s->blob(0));
    return out;
  };
  auto alice_ct = blobs("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
  auto alice_img_ct = blobs("SELECT image FROM source_image WHERE image IS NOT NULL");
  auto alice_key = blobs("SELECT wrapped FROM subject_key WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
  auto bob_ct = blobs("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='bob')");
  ASSERT_EQ(alice_ct.size(), 2u);
  ASSERT_EQ(alice_img_ct.size(), 1u);

  // At rest nothing is in clear; the stored ciphertext is found (so the scan can fail).
  EXPECT_TRUE(files_holding(dir_, float_bytes(t1.values)).empty());
  EXPECT_TRUE(files_holding(dir_, image).empty());
  EXPECT_FALSE(files_holding(dir_, alice_ct[0]).empty());
  EXPECT_FALSE(files_holding(dir_, alice_img_ct[0]).empty());

  ASSERT_TRUE(svc_->search_templates(actor_, {"access-control", "c"}, {t1}).is_ok());  // load the in-memory gallery
  EXPECT_EQ(svc_->gallery_size(), 3u);
  auto receipt = svc_->erase(actor_, "alice");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->faces, 2);
  EXPECT_EQ(receipt->images, 2);
  EXPECT_EQ(receipt->kept_images, 1);
  EXPECT_EQ(receipt->bases, 1);
  EXPECT_TRUE(receipt->key_destroyed);
  EXPECT_TRUE(receipt->wiped);
  EXPECT_EQ(svc_->gallery_size(), 1u) << "removed from the in-memory gallery at once";
  EXPECT_TRUE(svc_->search_templates(actor_, {"access-control", "c"}, {t1})->faces[0].candidates.empty());

  auto check_files = [&](const char* when) {
    SCOPED_TRACE(when);
    for (auto* secret : {&t1.values, &t2.values})
      EXPECT_EQ(files_holding(dir_, float_bytes(*secret)), std::vector<std::string>());
    for (auto& ct : alice_ct) EXPECT_EQ(files_holding(dir_, ct), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, image), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, alice_img_ct[0]), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, alice_key[0]), std::vector<std::string>());
    EXPECT_FALSE(files_holding(dir_, bob_ct[0]).empty()) << "bob must still be there";
  };
  check_files("service open");
  EXPECT_EQ(count("SELECT count(*) FROM subject WHERE ref='alice'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM subject_key"), 1);
  svc_.reset();
  check_files("service closed");

  svc_ = open_service(dir_);
  EXPECT_TRUE(svc_->search_templates(actor_, {"access-control", "c"}, {t1})->faces[0].candidates.empty());
  auto e = audit("erase");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].hash, receipt->audit_hash);
  EXPECT_EQ(e[0].subjects, std::vector<std::string>{receipt->subject_uid});
  EXPECT_EQ(e[0].canonical().find("alice"), std::string::npos) << "no external reference in the log";
  EXPECT_FALSE(svc_->erase(actor_, "alice").is_ok());
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

INSTANTIATE_TEST_SUITE_P(Vacuum, EraseTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "with_vacuum" : "checkpoint_only"; });


TEST_F(ErasureTest, ErasureWhoseWipeFailsKeepsItsReceiptAndTheNextOpenWipes) {
  auto t = random_template(rng_);
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, t).is_ok());
  const int64_t b = basis("bob", {"access-control"});
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  std::vector<uint8_t> stored;
  {
    auto s = raw_db(*svc_).prepare("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
    ASSERT_TRUE(*s->step());
    stored = s->blob(0);
  }
  svc_->vault_for_testing().wipe_fault_for_testing = [] { return io_error("injected: the disk said no"); };
  auto r = svc_->erase(actor_, "alice");
  ASSERT_TRUE(r.is_ok()) << "the erasure is committed: its receipt must not be lost: " << r.status().to_string();
  EXPECT_FALSE(r->wiped);
  EXPECT_NE(r->wipe_error.find("injected"), std::string::npos);
  EXPECT_TRUE(r->key_destroyed);
  EXPECT_EQ(r->faces, 1);
  ASSERT_FALSE(r->audit_hash.empty());
  EXPECT_EQ(audit("erase").back().hash, r->audit_hash);
  EXPECT_EQ(service::render::erase_receipt(*r)["wipe_pending"], true);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 1);
  // The same for a withdrawal that erases part of a subject.
  const int64_t b2 = basis("bob", {"payroll"});
  ASSERT_TRUE(enroll("bob", b2, random_template(rng_)).is_ok());
  auto w = svc_->withdraw_basis(actor_, b2);
  ASSERT_TRUE(w.is_ok());
  EXPECT_FALSE(w->wiped);
  EXPECT_FALSE(files_holding(dir_, stored).empty()) << "not wiped yet: the old page is still in the WAL";
  svc_.reset();
  // The next open finishes the wipe.
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);
  EXPECT_EQ(files_holding(dir_, stored), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, float_bytes(t.values)), std::vector<std::string>());
  // A wipe that succeeds leaves nothing pending.
  ASSERT_TRUE(svc_->erase(actor_, "bob")->wiped);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

TEST_F(ErasureTest, NoExternalReferenceOrPathEntersTheAuditLog) {
  // The log is append-only and outlives erasure: it must hold vault ids, never the operator's
  // references or file paths.
  const std::string alice = "alice-REF-7731", bob = "bob-REF-8842", ghost = "ghost-REF-9953";
  const int64_t a = basis(alice, {"access-control"});
  const int64_t b = basis(bob, {"access-control"});
  auto t = random_template(rng_);
  EnrollRequest req{alice, a};
  req.provenance = {"desk-3", "file", "/srv/intake/PATH-4410/alice.png"};
  ASSERT_TRUE(svc_->enroll_template(actor_, req, t).is_ok());
  ASSERT_TRUE(enroll(bob, b, random_template(rng_)).is_ok());
  auto unknown = enroll(ghost, a, random_template(rng_));
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound) << unknown.status().to_string();
  EXPECT_NE(unknown.status().message().find(ghost), std::string::npos) << "the caller is told which reference";
  EXPECT_FALSE(enroll(alice, b, random_template(rng_)).is_ok());
  EXPECT_FALSE(enroll(bob, 999, random_template(rng_)).is_ok());
  actor_ = kInvestigator;
  ASSERT_TRUE(svc_->search_templates(actor_, {"access-control", "case-1"}, {t}).is_ok());
  actor_ = kAuditor;
  ASSERT_TRUE(svc_->export_subject(actor_, bob, false, std::nullopt).is_ok());
  auto receipt = svc_->erase(actor_, alice);
  ASSERT_TRUE(receipt.is_ok());
  for (const auto& s : {alice, ghost, std::string("nobody-REF-0")}) {
    service::AuditFilter by_ref;
    by_ref.subject = s;
    auto shown = svc_->audit_show(actor_, by_ref);
    ASSERT_TRUE(shown.is_ok());
    EXPECT_TRUE(shown->entries.empty()) << s;
  }
  service::AuditFilter by_id;
  by_id.subject = receipt->subject_uid;
  auto by_uid = svc_->audit_show(actor_, by_id);
  ASSERT_TRUE(by_uid.is_ok());
  EXPECT_GE(by_uid->entries.size(), 4u) << "the erased subject's history is found by the id on the receipt";
  EXPECT_EQ(audit("audit_show").back().subjects, std::vector<std::string>{receipt->subject_uid});
  EXPECT_EQ(audit("audit_show").front().details["subject"], "unknown subject");

  const std::string log = audit_table_text(raw_db(*svc_));
  ASSERT_FALSE(log.empty());
  for (const char* needle : {"REF-", "PATH-4410", "/srv/intake", "alice", "bob", "ghost", "nobody"})
    EXPECT_EQ(log.find(needle), std::string::npos) << needle << " is in the audit log";
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

}  // namespace
}  // namespace fv::test
