// The vault's typed catalog on a real vault, without the service: subjects and bases,
// images and faces (sealed), the gallery's rows, eligibility, expiry, erasure and withdrawal,
// opt-outs, generations, the audit chain, API keys and the second connection.
#include "vault/catalog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "vault/testing.h"
#include "vault/vault.h"

namespace fv::vault {
namespace {

namespace fs = std::filesystem;

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fv_catalog_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(Vault::init(dir_).is_ok());
    auto v = Vault::open(dir_);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vault_ = std::move(*v);
  }
  void TearDown() override {
    vault_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Catalog& cat() { return vault_->catalog(); }

  // A subject with its key and one basis covering `purposes`; returns (subject id, basis id).
  std::pair<int64_t, int64_t> subject(const std::string& ref, std::vector<std::string> purposes,
                                      std::optional<std::string> expires = std::nullopt,
                                      const std::string& retention = "2099-01-01T00:00:00.000Z") {
    auto txn = cat().begin();
    EXPECT_TRUE(txn.is_ok());
    auto sid = cat().insert_subject("uid-" + ref, ref, "2025-01-01T00:00:00.000Z", retention);
    EXPECT_TRUE(sid.is_ok()) << sid.status().to_string();
    EXPECT_TRUE(vault_->create_subject_key(*sid).is_ok());
    auto bid = cat().insert_basis({*sid, "consent", "form-1", "2025-01-01T00:00:00.000Z", expires, "tester", purposes});
    EXPECT_TRUE(bid.is_ok()) << bid.status().to_string();
    EXPECT_TRUE(txn->commit().is_ok());
    return {*sid, *bid};
  }

  int64_t face(int64_t sid, int64_t bid, bool keep_image = false) {
    auto txn = cat().begin();
    EXPECT_TRUE(txn.is_ok());
    auto key = vault_->subject_key(sid);
    EXPECT_TRUE(key.is_ok());
    auto img = cat().insert_source_image({sid, bid, std::string(64, 'a'), 1234, "jpeg", "tester", "file", "a.jpg",
                                          "2025-01-02T00:00:00.000Z"});
    EXPECT_TRUE(img.is_ok());
    if (keep_image) {
      EXPECT_TRUE(cat().seal_source_image(*img, seal(*key, as_bytes(std::string("photo")), image_ad(sid, *img))).is_ok());
    }
    auto fid = cat().insert_face({sid, *img, bid, "synthetic", 1, 4, "[1,2,3,4]", "{}", "2025-01-02T00:00:00.000Z"});
    EXPECT_TRUE(fid.is_ok());
    const std::vector<float> t = {0.5f, 0.5f, 0.5f, 0.5f};
    EXPECT_TRUE(cat().seal_face(*fid, seal(*key, as_bytes(t), face_ad(sid, *fid, "synthetic", 1))).is_ok());
    EXPECT_TRUE(txn->commit().is_ok());
    return *fid;
  }

  static AuditEntry init_entry() {
    AuditEntry e;
    e.ts = "2025-01-01T00:00:00.000Z";
    e.actor = "tester";
    e.role = "admin";
    e.action = "init";
    return e;
  }

  fs::path dir_;
  std::unique_ptr<Vault> vault_;
};

TEST_F(CatalogTest, SubjectsAreFoundByReferenceThenByVaultId) {
  auto [sid, bid] = subject("alice", {"access-control"});
  auto by_ref = cat().find_subject("alice");
  ASSERT_TRUE(by_ref.is_ok());
  ASSERT_TRUE(by_ref->has_value());
  EXPECT_EQ((*by_ref)->id, sid);
  auto by_uid = cat().find_subject("uid-alice");
  ASSERT_TRUE(by_uid.is_ok() && by_uid->has_value());
  EXPECT_EQ((*by_uid)->ref, "alice");
  EXPECT_FALSE(cat().find_subject("bob")->has_value());

  auto b = cat().basis_for_enrollment(bid);
  ASSERT_TRUE(b.is_ok() && b->has_value());
  EXPECT_EQ((*b)->subject_id, sid);
  EXPECT_EQ((*b)->kind, "consent");
  EXPECT_FALSE((*b)->withdrawn_at);
  EXPECT_TRUE(*cat().basis_covers(bid, "access-control"));
  EXPECT_FALSE(*cat().basis_covers(bid, "marketing"));
  EXPECT_FALSE(cat().basis_for_enrollment(999)->has_value());
  auto owner = cat().basis_owner(bid);
  ASSERT_TRUE(owner.is_ok() && owner->has_value());
  EXPECT_EQ((*owner)->subject.uid, "uid-alice");
  auto records = cat().bases_of_subject(sid);
  ASSERT_TRUE(records.is_ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].purposes_json, "[\"access-control\"]");
}

TEST_F(CatalogTest, FacesStreamToTheGalleryAndBumpTheGeneration) {
  auto [sid, bid] = subject("alice", {"access-control"});
  const int64_t g0 = *cat().generation(Generation::kGallery);
  const int64_t f1 = face(sid, bid), f2 = face(sid, bid, true);
  EXPECT_EQ(*cat().generation(Generation::kGallery), g0 + 2);
  EXPECT_EQ(*cat().count_faces(), 2);
  EXPECT_EQ(*cat().count_subjects(), 1);
  auto models = cat().faces_by_model();
  ASSERT_TRUE(models.is_ok());
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].faces, 2);
  std::vector<int64_t> seen;
  const int64_t basis = bid;  // a structured binding cannot be captured by a lambda in C++20 (clang)
  ASSERT_TRUE(cat().faces_for_gallery([&](const GalleryFaceRow& r) {
    seen.push_back(r.face_id);
    EXPECT_EQ(r.subject_ref, "alice");
    EXPECT_EQ(r.basis_id, basis);
    auto key = vault_->subject_key_from_wrapped(r.subject_id, r.wrapped_key);
    EXPECT_TRUE(key.is_ok());
    EXPECT_TRUE(open_sealed(*key, r.sealed_template, face_ad(r.subject_id, r.face_id, r.model_id, r.model_version)).is_ok());
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{f1, f2}));
  int kept = 0;
  ASSERT_TRUE(cat().for_each_source_image(sid, [&](const SourceImageRow& r) {
    kept += r.sealed_image.has_value();
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(kept, 1);
}

TEST_F(CatalogTest, EligibleBasesCoverThePurposeAndAreInForce) {
  auto [a, ba] = subject("alice", {"access-control"});
  subject("bob", {"marketing"});
  subject("carol", {"access-control"}, "2025-03-01T00:00:00.000Z");
  subject("dave", {"access-control"}, std::nullopt, "2025-02-01T00:00:00.000Z");
  auto rows = cat().eligible_bases("access-control", "2025-06-01T00:00:00.000Z");
  ASSERT_TRUE(rows.is_ok());
  ASSERT_EQ(rows->size(), 1u);  // carol's basis expired, dave's retention ended
  EXPECT_EQ((*rows)[0].subject_id, a);
  EXPECT_EQ((*rows)[0].basis_id, ba);
  auto early = cat().eligible_bases("access-control", "2025-01-15T00:00:00.000Z");
  ASSERT_TRUE(early.is_ok());
  EXPECT_EQ(early->size(), 3u);

  auto due = cat().due_for_expiry("2025-06-01T00:00:00.000Z");
  ASSERT_TRUE(due.is_ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].subject.ref, "carol");
  EXPECT_EQ((*due)[0].reason, "no lawful basis in force");
  EXPECT_EQ((*due)[1].subject.ref, "dave");
  EXPECT_EQ((*due)[1].reason, "retention period ended");

  // Asked again for one subject, as the erasing transaction does: carol alone, until a basis in
  // force committed since makes her no longer due.
  const int64_t carol = (*due)[0].subject.id;
  auto one = cat().due_for_expiry("2025-06-01T00:00:00.000Z", carol);
  ASSERT_TRUE(one.is_ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].subject.ref, "carol");
  EXPECT_TRUE(cat().due_for_expiry("2025-06-01T00:00:00.000Z", a)->empty()) << "alice is not due";
  {
    auto txn = cat().begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(cat().insert_basis({carol, "consent", "form-2", "2025-05-01T00:00:00.000Z", std::nullopt, "tester",
                                    {"access-control"}}).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  EXPECT_TRUE(cat().due_for_expiry("2025-06-01T00:00:00.000Z", carol)->empty());
}

TEST_F(CatalogTest, APendingAuthorisationLapsesOnlyWhileItIsStillPending) {
  auto authorisation = [&](const std::string& uid) {
    AuthorisationRow r;
    r.uid = uid;
    r.authority = "court";
    r.reference = "ref-" + uid;
    r.purposes = {"investigation"};
    r.valid_from = "2025-01-01T00:00:00.000Z";
    r.valid_until = "2026-01-01T00:00:00.000Z";
    r.status = "pending";
    r.requested_at = "2025-01-01T00:00:00.000Z";
    r.deadline = "2025-01-02T00:00:00.000Z";
    r.recorded_by = "tester";
    auto txn = cat().begin();
    EXPECT_TRUE(txn.is_ok());
    auto id = cat().insert_authorisation(r);
    EXPECT_TRUE(id.is_ok()) << id.status().to_string();
    EXPECT_TRUE(txn->commit().is_ok());
    return *id;
  };
  const int64_t first = authorisation("a1"), second = authorisation("a2");
  const std::string later = "2025-02-01T00:00:00.000Z";
  EXPECT_EQ(cat().lapsed_pending(later)->size(), 2u);
  EXPECT_TRUE(cat().lapsed_pending("2025-01-01T12:00:00.000Z")->empty()) << "before the deadline";
  auto one = cat().lapsed_pending(later, second);
  ASSERT_TRUE(one.is_ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].uid, "a2");
  // A refusal committed after the list was read: asked again, as the lapsing transaction does,
  // the first one is no longer pending and does not lapse.
  {
    auto txn = cat().begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(cat().update_authorisation_status(first, "refused", later, "judge", "no").is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  EXPECT_TRUE(cat().lapsed_pending(later, first)->empty());
  EXPECT_EQ(cat().lapsed_pending(later)->size(), 1u);
}

TEST_F(CatalogTest, WithdrawalAndErasureCountWhatTheyRemove) {
  auto [sid, b1] = subject("alice", {"access-control"});
  int64_t b2 = 0;
  {
    auto txn = cat().begin();
    b2 = *cat().insert_basis({sid, "consent", "form-2", "2025-01-01T00:00:00.000Z", std::nullopt, "tester", {"other"}});
    ASSERT_TRUE(txn->commit().is_ok());
  }
  face(sid, b1, true);
  face(sid, b2);
  EXPECT_EQ(*cat().other_bases_in_force(sid, b1, "2025-06-01T00:00:00.000Z"), 1);
  {
    auto txn = cat().begin();
    auto w = cat().withdraw_basis_rows(b1, "2025-06-01T00:00:00.000Z");
    ASSERT_TRUE(w.is_ok());
    EXPECT_EQ(w->faces, 1);
    EXPECT_EQ(w->images, 1);
    EXPECT_EQ(w->kept_images, 1);
    ASSERT_TRUE(txn->commit().is_ok());
  }
  EXPECT_EQ(*(*cat().basis_for_enrollment(b1))->withdrawn_at, "2025-06-01T00:00:00.000Z");
  EXPECT_EQ(*cat().other_bases_in_force(sid, b2, "2025-06-01T00:00:00.000Z"), 0);
  {
    auto txn = cat().begin();
    auto e = cat().erase_subject(sid);
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->faces, 1);
    EXPECT_EQ(e->images, 1);
    EXPECT_EQ(e->kept_images, 0);
    EXPECT_EQ(e->bases, 2);
    EXPECT_EQ(e->keys, 1);
    ASSERT_TRUE(txn->commit().is_ok());
  }
  EXPECT_FALSE(cat().find_subject("alice")->has_value());
  EXPECT_EQ(*cat().count_faces(), 0);
}

TEST_F(CatalogTest, OptoutsAreStoredSealedAndCountedWhenIncomparable) {
  EXPECT_EQ(*cat().optout_count(), 0);
  auto key = vault_->optout_key(true);
  ASSERT_TRUE(key.is_ok());
  const std::vector<float> t = {1, 0, 0, 0};
  ASSERT_TRUE(cat().insert_optout({"o1", "synthetic", 1, seal(*key, as_bytes(t), "ad"), "2025-01-01T00:00:00.000Z"}).is_ok());
  ASSERT_TRUE(cat().insert_optout({"o2", "old-model", 1, seal(*key, as_bytes(t), "ad"), "2025-01-01T00:00:00.000Z"}).is_ok());
  EXPECT_EQ(*cat().optout_count(), 2);
  std::vector<std::string> uids;
  ASSERT_TRUE(cat().for_each_optout([&](const OptoutRow& r) {
    uids.push_back(r.uid);
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(uids, (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(*cat().incomparable_optouts("synthetic"), 1);
  EXPECT_TRUE(*cat().has_optout("o2"));
  EXPECT_FALSE(*cat().has_optout("o3"));
}

// Pages in time order, one after another by (ts, seq): every entry once, in order, both ways,
// also where the chain's times go back (a shard written by another node whose clock is behind)
// or repeat.
TEST_F(CatalogTest, AuditPagesInTimeOrderFollowEachOther) {
  const std::vector<std::string> times = {"2025-01-01T00:00:05.000Z", "2025-01-01T00:00:01.000Z",
                                          "2025-01-01T00:00:03.000Z", "2025-01-01T00:00:03.000Z",
                                          "2025-01-01T00:00:02.000Z", "2025-01-01T00:00:09.000Z",
                                          "2025-01-01T00:00:03.000Z"};
  for (size_t i = 0; i < times.size(); ++i) {
    AuditEntry e = init_entry();
    e.ts = times[i];
    e.action = i % 2 ? "enroll" : "search";
    ASSERT_TRUE(cat().record_audit(e).is_ok());
  }
  for (bool newest_first : {false, true}) {
    // The expected order: by time, then seq (both descending for newest_first).
    std::vector<std::pair<std::string, int64_t>> want;
    for (size_t i = 0; i < times.size(); ++i) want.emplace_back(times[i], static_cast<int64_t>(i + 1));
    std::sort(want.begin(), want.end());
    if (newest_first) std::reverse(want.begin(), want.end());
    AuditQuery q;
    q.by_time = true;
    q.newest_first = newest_first;
    q.limit = 2;
    std::vector<std::pair<std::string, int64_t>> got;
    for (int pages = 0; pages < 10; ++pages) {
      auto page = cat().read_audit(q);
      ASSERT_TRUE(page.is_ok()) << page.status().to_string();
      for (const auto& e : *page) got.emplace_back(e.ts, e.seq);
      if (page->size() < q.limit) break;
      q.after_seq = page->back().seq;
      q.after_ts = page->back().ts;
    }
    EXPECT_EQ(got, want) << (newest_first ? "newest first" : "oldest first");
  }
  // The cursor in seq order, newest first: the entries before it.
  AuditQuery back;
  back.newest_first = true;
  back.after_seq = 4;
  back.action = "search";
  auto older = cat().read_audit(back);
  ASSERT_TRUE(older.is_ok());
  ASSERT_EQ(older->size(), 2u);
  EXPECT_EQ((*older)[0].seq, 3);
  EXPECT_EQ((*older)[1].seq, 1);
  AuditQuery all_searches;
  all_searches.action = "search";
  EXPECT_EQ(*cat().count_audit(all_searches), 4);
}

TEST_F(CatalogTest, AuditChainApiKeysAndTheSecondConnection) {
  AuditEntry e = init_entry();
  auto h = cat().record_audit(e);
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(e.seq, 1);
  auto entries = cat().read_audit({});
  ASSERT_TRUE(entries.is_ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].hash, *h);
  EXPECT_TRUE(cat().verify_audit()->ok);

  auto key = cat().create_api_key("investigator", {"access-control"}, "desk", "tester");
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  auto aux = vault_->open_second_connection();
  ASSERT_TRUE(aux.is_ok()) << aux.status().to_string();
  auto found = (*aux)->authenticate_api_key(key->secret);
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->role, "investigator");
  EXPECT_TRUE((*aux)->ping().is_ok());
  EXPECT_EQ(*(*aux)->count_subjects(), 0);
  ASSERT_TRUE(cat().revoke_api_key(key->key.id, "tester").is_ok());
  EXPECT_FALSE((*aux)->authenticate_api_key(key->secret)->has_value());
  EXPECT_EQ(cat().revoke_api_key("000000000000", "tester").code(), StatusCode::kNotFound);
  EXPECT_EQ(cat().list_api_keys()->size(), 1u);

  // Tests may still reach the raw connection (to tamper with rows) through vault/testing.h.
  EXPECT_FALSE(testing::raw_db(*vault_).exec("DELETE FROM audit WHERE seq=1").is_ok());  // append-only
}

// A cluster replica commits through its own connection while a use case reads: the audit chain
// and its recorded head must come from one state, or a verify between the two reads sees a
// truncated log that is not.
TEST_F(CatalogTest, AReadSnapshotHoldsOneStateWhileAnotherConnectionCommits) {
  AuditEntry e = init_entry();
  ASSERT_TRUE(cat().record_audit(e).is_ok());
  auto writer = Vault::open(dir_);
  ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
  Db& reader = testing::raw_db(*vault_);
  {
    auto snapshot = ReadSnapshot::begin(reader);
    ASSERT_TRUE(snapshot.is_ok()) << snapshot.status().to_string();
    EXPECT_EQ(*reader.query_int("SELECT count(*) FROM audit"), 1);
    AuditEntry more = e;
    ASSERT_TRUE((*writer)->catalog().record_audit(more).is_ok()) << "a deferred snapshot blocks no writer";
    EXPECT_EQ(*reader.query_int("SELECT count(*) FROM audit"), 1) << "the snapshot still sees one entry";
    EXPECT_EQ(*reader.query_text("SELECT value FROM meta WHERE key='audit_head_seq'"), "1");
    {
      auto nested = ReadSnapshot::begin(reader);  // inside a transaction: adds nothing
      ASSERT_TRUE(nested.is_ok());
    }
    EXPECT_EQ(*reader.query_int("SELECT count(*) FROM audit"), 1) << "the inner one did not end the outer";
  }
  EXPECT_EQ(*reader.query_int("SELECT count(*) FROM audit"), 2);
  auto verified = cat().verify_audit();
  ASSERT_TRUE(verified.is_ok()) << verified.status().to_string();
  EXPECT_TRUE(verified->ok) << verified->to_json().dump();
  EXPECT_EQ(verified->entries, 2);
  EXPECT_FALSE(reader.in_transaction()) << "verify ended the snapshot it began";
}

TEST_F(CatalogTest, AReferenceCropCountsForThePurposesOfTheBasisItsFaceWasCollectedUnder) {
  auto [sid, work] = subject("rc", {"employee-access"});
  const int64_t work_face = face(sid, work);
  int64_t police = 0;
  {
    auto txn = cat().begin();
    ASSERT_TRUE(txn.is_ok());
    auto b = cat().insert_basis({sid, "law-enforcement", "warrant-1", "2025-01-01T00:00:00.000Z", std::nullopt, "tester",
                                 {"investigation"}});
    ASSERT_TRUE(b.is_ok());
    police = *b;
    ASSERT_TRUE(txn->commit().is_ok());
  }
  const int64_t police_face = face(sid, police);
  {
    auto txn = cat().begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(cat().insert_reference_crop(work_face, sid, Bytes{1, 2, 3}).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  EXPECT_EQ(*cat().count_reference_crops(sid), 1);
  EXPECT_EQ(*cat().count_reference_crops(sid, std::string("employee-access")), 1);
  EXPECT_EQ(*cat().count_reference_crops(sid, std::string("investigation")), 0)
      << "a reviewer for investigations is not shown the photo collected for employee access";
  {
    auto txn = cat().begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(cat().insert_reference_crop(police_face, sid, Bytes{4, 5, 6}).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  auto crops = cat().reference_crops(sid, std::string("investigation"));
  ASSERT_TRUE(crops.is_ok());
  ASSERT_EQ(crops->size(), 1u);
  EXPECT_EQ((*crops)[0].first, police_face);
  EXPECT_EQ(cat().reference_crops(sid)->size(), 2u);
}

TEST_F(CatalogTest, InitRefusesADirectoryThatHoldsAVault) {
  EXPECT_EQ(Vault::init(dir_).code(), StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace fv::vault
