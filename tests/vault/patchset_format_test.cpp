// The patchset format read and written byte by byte (vault/patchset_format.h), and what the
// cluster builds on it when a withdrawal takes a message out of a stream while its subject
// stays: the message's rows classified against the withdrawn basis (Catalog::
// withdrawn_basis_message), its updates restated as the rows are now (restate_updates), and a
// restatement applied on a replica (ApplyMode::kRestate).
#include "vault/patchset_format.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <random>

#include "vault/catalog.h"
#include "vault/changeset.h"
#include "vault/testing.h"
#include "vault/vault.h"
#include "vault/vault_test_util.h"

namespace fv::vault {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr const char* kStream = "fv-shard-05";
const std::string kMasterHex(64, '6');
const std::string kSigningHex(64, '9');
const std::string kT0 = "2025-05-01T10:00:00.000Z";

class PatchsetFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv(kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
    a_ = make_vault("a");
    b_ = make_vault("b");
  }

  std::unique_ptr<Vault> make_vault(const std::string& name) {
    const fs::path dir = tmp_.path() / name;
    Status st = Vault::init(dir);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    auto v = Vault::open(dir);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    return v.is_ok() ? std::move(*v) : nullptr;
  }

  // The rows part of a transaction (what a stream message seals under the subject's key; the
  // audit log goes apart), rolled back.
  template <class F>
  std::vector<uint8_t> rows_of(Vault& v, F body) {
    auto txn = v.begin();
    EXPECT_TRUE(txn.is_ok());
    auto cap = ChangeCapture::start(testing::raw_db(v), CaptureScope::kAllButLog);
    EXPECT_TRUE(cap.is_ok()) << cap.status().to_string();
    body();
    auto ps = cap->patchset();
    EXPECT_TRUE(ps.is_ok()) << ps.status().to_string();
    return ps.is_ok() ? *ps : std::vector<uint8_t>{};
  }

  // A transaction on `v`, committed as one vault would, and the same rows applied on b_ as
  // message `seq` of the stream (so both vaults hold the same rows).
  template <class F>
  void on_both(int64_t seq, F body) {
    std::vector<uint8_t> ps = rows_of(*a_, body);
    for (Vault* v : {a_.get(), b_.get()}) {
      auto r = v->apply_replicated(kStream, seq, ps, kT0);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    }
    messages_.emplace_back(seq, std::move(ps));
  }
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> messages_;  // what on_both committed

  std::string retention(Vault& v, int64_t subject) {
    auto s = testing::raw_db(v).prepare("SELECT retention_until FROM subject WHERE id=?");
    s->bind(1, subject);
    EXPECT_TRUE(*s->step());
    return s->text(0);
  }

  // One face of `basis`, as an enrollment writes it: source image, sealed template, reference
  // crop, and the subject's retention renewed to `until`.
  void enroll_face(Vault& v, int64_t subject, int64_t basis, const std::string& until) {
    Catalog& cat = v.catalog();
    auto key = v.subject_key(subject);
    ASSERT_TRUE(key.is_ok()) << key.status().to_string();
    const int64_t img = *cat.insert_source_image({subject, basis, std::string(64, 'd'), 2000, "jpeg", "tester", "file", "p.jpg", kT0});
    const int64_t face = *cat.insert_face({subject, img, basis, "synthetic", 1, 512, "[0,0,8,8]", "{}", kT0});
    std::mt19937 rng(static_cast<uint32_t>(face));
    const auto t = test::random_template(rng);
    ASSERT_TRUE(cat.seal_face(face, seal(*key, test::float_bytes(t.values), face_ad(subject, face, "synthetic", 1))).is_ok());
    ASSERT_TRUE(cat.insert_reference_crop(face, subject, seal(*key, std::vector<uint8_t>(300, 7), reference_ad(subject, face))).is_ok());
    ASSERT_TRUE(cat.set_retention(subject, until).is_ok());
  }

  TempDir tmp_;
  std::unique_ptr<Vault> a_, b_;
  int64_t subject_ = 0, basis_a_ = 0, basis_b_ = 0;

  // A subject with two bases, committed on both vaults (messages 1 and 2).
  void two_bases() {
    on_both(1, [&] {
      subject_ = *a_->catalog().insert_subject("uid-two", "two", kT0, "2026-01-01T00:00:00.000Z");
      ASSERT_TRUE(a_->create_subject_key(subject_).is_ok());
      basis_a_ = *a_->catalog().insert_basis({subject_, "consent", "form-a", kT0, std::nullopt, "tester", {"research"}});
    });
    on_both(2, [&] {
      basis_b_ = *a_->catalog().insert_basis({subject_, "consent", "form-b", kT0, std::nullopt, "tester", {"access-control"}});
    });
  }
};

TEST_F(PatchsetFormatTest, DecodingAndEncodingAgainGivesTheSameBytes) {
  two_bases();
  // Inserts (integers, text, NULL), an update (key and one column set) and deletes (key only).
  const auto ps = rows_of(*a_, [&] {
    ASSERT_TRUE(a_->catalog().insert_subject("uid-new", "new", kT0, "2027-01-01T00:00:00.000Z").is_ok());
    ASSERT_TRUE(a_->catalog().set_retention(subject_, "2028-02-02T00:00:00.000Z").is_ok());
    ASSERT_TRUE(testing::raw_db(*a_).exec("DELETE FROM basis_purpose WHERE basis_id=" + std::to_string(basis_b_)).is_ok());
  });
  auto changes = decode_patchset(ps);
  ASSERT_TRUE(changes.is_ok()) << changes.status().to_string();
  bool saw_insert = false, saw_update = false, saw_delete = false;
  for (const PatchChange& ch : *changes) {
    ASSERT_EQ(ch.fields.size(), ch.pk.size());
    if (ch.table == "subject" && ch.op == SQLITE_INSERT) {
      saw_insert = true;
      EXPECT_EQ(ch.fields[1].type, PatchField::Type::kText);
      EXPECT_EQ(ch.fields[1].bytes, "uid-new");
    }
    if (ch.table == "subject" && ch.op == SQLITE_UPDATE) {
      saw_update = true;
      EXPECT_EQ(ch.fields[0].type, PatchField::Type::kInteger);
      EXPECT_EQ(ch.fields[0].integer, subject_);
      EXPECT_EQ(ch.fields[1].type, PatchField::Type::kUndefined) << "the uid did not change";
      EXPECT_EQ(ch.fields[4].bytes, "2028-02-02T00:00:00.000Z");
    }
    if (ch.table == "basis_purpose" && ch.op == SQLITE_DELETE) {
      saw_delete = true;
      EXPECT_EQ(ch.fields[0].integer, basis_b_);
      EXPECT_EQ(ch.fields[1].bytes, "access-control");
    }
  }
  EXPECT_TRUE(saw_insert && saw_update && saw_delete);
  auto again = encode_patchset(*changes);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(*again, ps);
}

TEST_F(PatchsetFormatTest, BlobsAreDecodedWithoutTheirBytesAndMalformedInputIsRefused) {
  two_bases();
  const auto ps = rows_of(*a_, [&] { enroll_face(*a_, subject_, basis_b_, "2026-06-01T00:00:00.000Z"); });
  auto changes = decode_patchset(ps);
  ASSERT_TRUE(changes.is_ok()) << changes.status().to_string();
  int blobs = 0;
  for (const PatchChange& ch : *changes)
    for (const PatchField& f : ch.fields)
      if (f.type == PatchField::Type::kBlob) {
        ++blobs;
        EXPECT_TRUE(f.bytes.empty()) << ch.table << ": a sealed blob's bytes were copied";
      }
  EXPECT_EQ(blobs, 2) << "the sealed template and the sealed reference crop";
  // A truncation of a real patchset is refused, or (cut between two changes) decodes to fewer
  // changes; none is read past its end (the ASan build checks that).
  size_t refused = 0;
  for (size_t n = 1; n < ps.size(); ++n) {
    auto cut = decode_patchset(std::span<const uint8_t>(ps).first(n));
    if (!cut.is_ok()) ++refused;
    else EXPECT_LT(cut->size(), changes->size()) << n;
  }
  EXPECT_GT(refused, ps.size() / 2);
  // What the format cannot hold is refused, not written.
  PatchChange no_key{"subject", SQLITE_UPDATE, {0, 0}, {PatchField{}, PatchField{}}};
  EXPECT_EQ(encode_patchset({no_key}).status().code(), StatusCode::kInvalidArgument);
  PatchChange undefined_key{"subject", SQLITE_DELETE, {1, 0}, {PatchField{}, PatchField{}}};
  EXPECT_EQ(encode_patchset({undefined_key}).status().code(), StatusCode::kInvalidArgument);
  PatchChange short_fields{"subject", SQLITE_INSERT, {1, 0}, {PatchField{PatchField::Type::kInteger, 1, 0, ""}}};
  EXPECT_EQ(encode_patchset({short_fields}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PatchsetFormatTest, AWithdrawnBasisMessageIsTheOneThatInsertedItsRows) {
  two_bases();
  const auto of_b = rows_of(*a_, [&] { enroll_face(*a_, subject_, basis_b_, "2026-06-01T00:00:00.000Z"); });
  // As the stream holds it: applied on both vaults, then the basis is withdrawn on both.
  for (Vault* v : {a_.get(), b_.get()}) ASSERT_TRUE(v->apply_replicated(kStream, 3, of_b, kT0).is_ok());
  on_both(4, [&] { ASSERT_TRUE(a_->catalog().withdraw_basis_rows(basis_b_, kT0).is_ok()); });

  // In a cluster it goes under the basis's key: it is that basis's enrollment.
  auto enrolled = enrollment_basis(testing::raw_db(*a_), of_b);
  ASSERT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();
  EXPECT_EQ(*enrolled, std::optional<int64_t>(basis_b_));
  auto plan = a_->catalog().withdrawn_basis_message(of_b, basis_b_);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_TRUE(plan->holds_basis);
  EXPECT_EQ(plan->also, "");
  // Its one update, the subject's retention, restated as the row is now.
  auto restated = decode_patchset(plan->restatement);
  ASSERT_TRUE(restated.is_ok()) << restated.status().to_string();
  ASSERT_EQ(restated->size(), 1u);
  EXPECT_EQ((*restated)[0].table, "subject");
  EXPECT_EQ((*restated)[0].op, SQLITE_UPDATE);
  EXPECT_EQ((*restated)[0].fields[4].bytes, "2026-06-01T00:00:00.000Z");

  // The same message seen against another basis holds none of its rows.
  auto other = a_->catalog().withdrawn_basis_message(of_b, basis_a_);
  ASSERT_TRUE(other.is_ok());
  EXPECT_FALSE(other->holds_basis);
  EXPECT_TRUE(other->restatement.empty());
  // A message that also inserts another row (here a basis) must stay in the stream.
  const auto mixed = rows_of(*a_, [&] {
    ASSERT_TRUE(a_->catalog().insert_basis({subject_, "consent", "form-c", kT0, std::nullopt, "tester", {"research"}}).is_ok());
    enroll_face(*a_, subject_, basis_a_, "2026-07-01T00:00:00.000Z");
  });
  EXPECT_EQ(*enrollment_basis(testing::raw_db(*a_), mixed), std::nullopt) << "no enrollment of one basis alone";
  auto kept = a_->catalog().withdrawn_basis_message(mixed, basis_a_);
  ASSERT_TRUE(kept.is_ok());
  EXPECT_TRUE(kept->holds_basis);
  EXPECT_NE(kept->also.find("an insert into"), std::string::npos) << kept->also;
}

TEST_F(PatchsetFormatTest, ARestatementCarriesTheRowsAsTheyAreNowAndAppliesOnlyAsOne) {
  two_bases();
  // Message 3, to be erased, renewed the retention to June.
  const auto june = rows_of(*a_, [&] { ASSERT_TRUE(a_->catalog().set_retention(subject_, "2026-06-01T00:00:00.000Z").is_ok()); });
  for (Vault* v : {a_.get(), b_.get()}) ASSERT_TRUE(v->apply_replicated(kStream, 3, june, kT0).is_ok());
  auto restated = restate_updates(testing::raw_db(*a_), *decode_patchset(june));
  ASSERT_TRUE(restated.is_ok()) << restated.status().to_string();
  ASSERT_FALSE(restated->empty());

  // A vault rebuilt from a stream without message 3 holds the subject as message 2 left it;
  // the restatement (message 4) brings it where the others are.
  auto c = make_vault("c");
  for (const auto& [seq, ps] : messages_) ASSERT_TRUE(c->apply_replicated(kStream, seq, ps, kT0).is_ok());
  ASSERT_EQ(retention(*c, subject_), "2026-01-01T00:00:00.000Z");
  for (Vault* v : {a_.get(), b_.get(), c.get()}) {
    auto applied = v->apply_replicated(kStream, 4, *restated, kT0, "uid-two", ApplyMode::kRestate);
    ASSERT_TRUE(applied.is_ok()) << applied.status().to_string();
    EXPECT_EQ(retention(*v, subject_), "2026-06-01T00:00:00.000Z");
  }

  // Read after a later write, the restatement carries that write's value, not the message's.
  on_both(5, [&] { ASSERT_TRUE(a_->catalog().set_retention(subject_, "2026-08-01T00:00:00.000Z").is_ok()); });
  auto later = decode_patchset(*restate_updates(testing::raw_db(*a_), *decode_patchset(june)));
  ASSERT_TRUE(later.is_ok());
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ((*later)[0].fields[4].bytes, "2026-08-01T00:00:00.000Z");

  // A row gone since is left out; a restatement that inserts a row, or updates a row the
  // replica lacks, does not apply.
  auto d = make_vault("d");
  auto gone = restate_updates(testing::raw_db(*d), *decode_patchset(june));
  ASSERT_TRUE(gone.is_ok());
  EXPECT_TRUE(gone->empty()) << "d has no such subject";
  const auto insert = rows_of(*a_, [&] { ASSERT_TRUE(a_->catalog().insert_subject("uid-x", "x", kT0, kT0).is_ok()); });
  EXPECT_EQ(d->apply_replicated(kStream, 1, insert, kT0, "", ApplyMode::kRestate).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d->apply_replicated(kStream, 1, *restated, kT0, "", ApplyMode::kRestate).status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fv::vault
