// Access export: everything held about a subject, including the searches that returned it (and
// no other subject's ids), templates only on request; exported photos are private files in a
// private folder.
#include <sys/stat.h>

#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::EnrollRequest;

class ExportTest : public ServiceTest {};

TEST_F(ExportTest, ExportHoldsEverythingIncludingSearchesThatReturnedTheSubject) {
  auto t = random_template(rng_);
  const int64_t a = basis("alice", {"access-control", "investigation"});
  const int64_t b = basis("bob", {"investigation"});
  EnrollRequest req{"alice", a};
  req.provenance = {"hr-desk", "scanner", "badge photo 2026"};
  ASSERT_TRUE(svc_->enroll_template(actor_, req, t).is_ok());
  ASSERT_TRUE(enroll("bob", b, near_template(t, rng_, 0.4f)).is_ok());
  actor_ = kInvestigator;
  ASSERT_TRUE(svc_->search_templates(actor_, {"investigation", "case-42"}, {near_template(t, rng_, 0.3f)}).is_ok());
  ASSERT_TRUE(svc_->search_templates(actor_, {"investigation", "case-43"}, {random_template(rng_)}).is_ok());
  actor_ = kAuditor;
  auto j = svc_->export_subject(actor_, "alice", false, std::nullopt);
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  EXPECT_EQ((*j)["subject"]["reference"], "alice");
  EXPECT_TRUE((*j)["subject"].contains("retention_until"));
  ASSERT_EQ((*j)["lawful_bases"].size(), 1u);
  EXPECT_EQ((*j)["lawful_bases"][0]["purposes"].size(), 2u);
  ASSERT_EQ((*j)["source_images"].size(), 1u);
  EXPECT_EQ((*j)["source_images"][0]["provenance"]["supplied_by"], "hr-desk");
  EXPECT_EQ((*j)["source_images"][0]["provenance"]["source"], "badge photo 2026");
  ASSERT_EQ((*j)["templates"].size(), 1u);
  EXPECT_TRUE((*j)["templates"][0]["template"].is_string()) << "values only on request";
  bool search_seen = false;
  for (auto& e : (*j)["audit"]) {
    if (e["action"] == "search") {
      EXPECT_EQ(e["case"], "case-42");
      EXPECT_EQ(e["details"]["returned_as_candidate"], true);
      EXPECT_EQ(e["subjects"].size(), 1u) << "other subjects' ids are not in alice's export";
      search_seen = true;
    }
  }
  EXPECT_TRUE(search_seen);
  auto with_t = svc_->export_subject(actor_, "alice", true, std::nullopt);
  ASSERT_TRUE(with_t.is_ok());
  EXPECT_NEAR((*with_t)["templates"][0]["template"][0].get<double>(), t.values[0], 1e-7);
  EXPECT_EQ(audit("export").size(), 2u);
}

TEST_F(ExportTest, ExportedPhotosArePrivateFilesInAPrivateFolder) {
  const int64_t a = basis("alice", {"access-control"});
  std::vector<uint8_t> image(3000);
  for (auto& x : image) x = static_cast<uint8_t>(rng_());
  auto kept = enroll_kept_photo(*svc_, actor_, {"alice", a}, image, random_template(rng_));
  ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  const mode_t old_umask = ::umask(022);  // the usual umask: would give 0755 and 0644
  const auto out = tmp_.path() / "exports" / "alice";
  auto j = svc_->export_subject(actor_, "alice", false, out);
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  // An existing file is made private too.
  const std::string file = (*j)["source_images"][0]["file"];
  std::filesystem::permissions(file, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  ASSERT_TRUE(svc_->export_subject(actor_, "alice", false, out).is_ok());
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(file_bytes(file), image);
}

}  // namespace
}  // namespace fv::test
