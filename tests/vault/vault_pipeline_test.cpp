// The vault with the real face pipeline on the sample photos (8 people × 5 crops): enrollment
// gates, purpose-bound search, erasure of a kept photo proved by byte scan, opt-out, the batch
// manifest with 2 workers. Needs the models and ../shared/data/samples; skips without them.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <random>

#include "image/decode.h"
#include "support/paths.h"
#include "vault_test_util.h"

namespace fv::test {
namespace {

std::filesystem::path samples() { return data_dir() / "samples" / "face-api-js" / "images"; }
std::filesystem::path photo(const std::string& who, int n) { return samples() / who / (who + std::to_string(n) + ".png"); }

face::FacePipeline* shared_pipeline() {
  static std::unique_ptr<face::FacePipeline> p = [] {
    auto r = face::FacePipeline::create(nn::ModelStore());
    return r.is_ok() ? std::move(r).value() : nullptr;
  }();
  return p.get();
}

class VaultPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(samples());
    ASSERT_TRUE(shared_pipeline());
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    dir_ = tmp_.path() / "v";
    ASSERT_TRUE(vault::Vault::init(dir_).is_ok());
    svc_ = open_service(dir_, nullptr, shared_pipeline());
  }
  int64_t basis(const std::string& ref, std::vector<std::string> purposes,
                service::BasisKind kind = service::BasisKind::kConsent) {
    auto r = svc_->add_basis(kAdmin, {ref, kind, "ref-" + ref, purposes, std::nullopt});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->basis_id : 0;
  }
  Result<service::EnrollResult> enroll(const std::string& ref, int64_t b, const std::filesystem::path& img,
                                       bool keep = false, int face = -1) {
    service::EnrollRequest req{ref, b};
    req.keep_image = keep;
    req.face_index = face;
    return svc_->enroll(kAdmin, req, file_bytes(img));
  }
  Result<service::SearchResult> search(const std::filesystem::path& img, const std::string& purpose) {
    return svc_->search(kInvestigator, {purpose, "case-1", 3}, file_bytes(img));
  }
  TempDir tmp_;
  std::filesystem::path dir_;
  std::unique_ptr<service::Service> svc_;
};

TEST_F(VaultPipelineTest, EnrollAndSearchUnderEachPurpose) {
  const int64_t p = basis("penny", {"access-control"});
  const int64_t r = basis("raj", {"investigation"}, service::BasisKind::kLawEnforcement);
  const int64_t h = basis("howard", {"access-control", "investigation"});
  for (int i = 1; i <= 2; ++i) {
    ASSERT_TRUE(enroll("penny", p, photo("penny", i)).is_ok());
    ASSERT_TRUE(enroll("raj", r, photo("raj", i)).is_ok());
    ASSERT_TRUE(enroll("howard", h, photo("howard", i)).is_ok());
  }
  auto s = search(photo("penny", 3), "access-control");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_EQ(s->faces.size(), 1u);
  ASSERT_FALSE(s->faces[0].candidates.empty());
  EXPECT_EQ(s->faces[0].candidates[0].subject_ref, "penny");
  ASSERT_TRUE(s->faces[0].candidates[0].fmr.has_value());
  EXPECT_LT(*s->faces[0].candidates[0].fmr, 1e-3);
  EXPECT_EQ(s->eligible_subjects, 2);

  // Raj is enrolled only for investigations: an access-control search cannot return him.
  auto a = search(photo("raj", 3), "access-control");
  ASSERT_TRUE(a.is_ok());
  for (auto& c : a->faces[0].candidates) EXPECT_NE(c.subject_ref, "raj");
  auto i = search(photo("raj", 3), "investigation");
  ASSERT_TRUE(i.is_ok());
  ASSERT_FALSE(i->faces[0].candidates.empty());
  EXPECT_EQ(i->faces[0].candidates[0].subject_ref, "raj");
  for (auto& c : i->faces[0].candidates) EXPECT_NE(c.subject_ref, "penny");
}

TEST_F(VaultPipelineTest, PhotosWithoutExactlyOneAcceptableFaceAreRefused) {
  const int64_t b = basis("someone", {"access-control"});
  // A group photo is ambiguous unless a face is chosen.
  auto group = enroll("someone", b, samples() / "bbt1.jpg");
  ASSERT_FALSE(group.is_ok());
  EXPECT_NE(group.status().message().find("ambiguous"), std::string::npos) << group.status().message();
  auto chosen = enroll("someone", b, samples() / "bbt1.jpg", false, 0);
  EXPECT_TRUE(chosen.is_ok()) << chosen.status().to_string();
  // No face at all.
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(240, 320, CV_8UC3, cv::Scalar(128, 128, 128)), png);
  auto blank = svc_->enroll(kAdmin, {"someone", b}, std::vector<uint8_t>(png.begin(), png.end()));
  ASSERT_FALSE(blank.is_ok());
  EXPECT_NE(blank.status().message().find("no face"), std::string::npos);
  // Too small to enroll: the quality gate speaks.
  cv::Mat img = cv::imread(photo("penny", 1).string());
  cv::Mat tiny;
  cv::resize(img, tiny, {}, 0.25, 0.25, cv::INTER_AREA);
  cv::Mat canvas(480, 640, CV_8UC3, cv::Scalar(90, 90, 90));
  tiny.copyTo(canvas(cv::Rect(300, 200, tiny.cols, tiny.rows)));
  cv::imencode(".png", canvas, png);
  auto small = svc_->enroll(kAdmin, {"someone", b}, std::vector<uint8_t>(png.begin(), png.end()));
  ASSERT_FALSE(small.is_ok());
  EXPECT_TRUE(small.status().message().find("not good enough") != std::string::npos ||
              small.status().message().find("no face") != std::string::npos)
      << small.status().message();
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM face"), 1);
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM audit WHERE action='enroll' AND outcome='refused'"), 3);
}

TEST_F(VaultPipelineTest, ErasureLeavesNoTraceOfAKeptPhotoOrItsTemplate) {
  const int64_t b = basis("penny", {"access-control"});
  const int64_t o = basis("amy", {"access-control"});
  const auto img = file_bytes(photo("penny", 1));
  ASSERT_TRUE(enroll("penny", b, photo("penny", 1), true).is_ok());
  ASSERT_TRUE(enroll("penny", b, photo("penny", 2)).is_ok());
  ASSERT_TRUE(enroll("amy", o, photo("amy", 1), true).is_ok());
  // The template as the pipeline makes it (deterministic), to look for it on disk.
  auto decoded = image::decode_image(img);
  auto faces = shared_pipeline()->analyze(decoded->rgb, true);
  ASSERT_TRUE(faces.is_ok() && !faces->empty());
  const auto tmpl = faces->at(0).face_template->values;
  auto exported = svc_->export_subject(kAdmin, "penny", true, tmp_.path() / "export");
  ASSERT_TRUE(exported.is_ok());
  EXPECT_NEAR((*exported)["templates"][0]["template"][7].get<double>(), tmpl[7], 1e-6);
  EXPECT_EQ(file_bytes((*exported)["source_images"][0]["file"].get<std::string>()), img) << "kept photo exported intact";
  std::filesystem::remove_all(tmp_.path() / "export");

  std::vector<uint8_t> stored_img;
  {
    auto s = raw_db(*svc_).prepare(
        "SELECT image FROM source_image WHERE image IS NOT NULL AND subject_id=(SELECT id FROM subject WHERE ref='penny')");
    ASSERT_TRUE(*s->step());
    stored_img = s->blob(0);
  }
  EXPECT_TRUE(files_holding(dir_, img).empty()) << "kept photos are encrypted";
  EXPECT_FALSE(files_holding(dir_, stored_img).empty());
  ASSERT_TRUE(search(photo("penny", 3), "access-control").is_ok());
  auto receipt = svc_->erase(kAdmin, "penny");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->faces, 2);
  EXPECT_EQ(receipt->kept_images, 1);
  svc_.reset();
  EXPECT_EQ(files_holding(dir_, img), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, stored_img), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, float_bytes(tmpl)), std::vector<std::string>());
  svc_ = open_service(dir_, nullptr, shared_pipeline());
  auto after = search(photo("penny", 3), "access-control");
  ASSERT_TRUE(after.is_ok());
  for (auto& c : after->faces[0].candidates) EXPECT_NE(c.subject_ref, "penny");
  EXPECT_TRUE(svc_->audit_verify(kAdmin)->ok);
}

TEST_F(VaultPipelineTest, OptOutRefusesAnotherPhotoOfTheSamePerson) {
  auto o = svc_->optout_add(kAuditor, file_bytes(photo("sheldon", 1)));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  const int64_t b = basis("sheldon", {"access-control"});
  auto r = enroll("sheldon", b, photo("sheldon", 2));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("opt-out"), std::string::npos);
  const int64_t l = basis("leonard", {"access-control"});
  for (int i = 1; i <= 5; ++i) EXPECT_TRUE(enroll("leonard", l, photo("leonard", i)).is_ok()) << i;
  auto check = svc_->optout_check(kAdmin);
  ASSERT_TRUE(check.is_ok());
  EXPECT_TRUE(check->matches.empty());
}

TEST_F(VaultPipelineTest, BatchManifestWithTwoWorkersReportsEveryRow) {
  std::vector<std::string> people = {"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"};
  std::ofstream csv(tmp_.path() / "manifest.csv");
  csv << "image,subject,basis,provenance\n";
  std::map<std::string, int64_t> bases;
  for (auto& p : people) bases[p] = basis(p, {"access-control"});
  for (auto& p : people)
    for (int i = 1; i <= 2; ++i) csv << photo(p, i).string() << "," << p << "," << bases[p] << ",\"studio, day 1\"\n";
  csv << "missing-PATH-5521.png,amy," << bases["amy"] << ",\n";
  csv << (samples() / "bbt1.jpg").string() << ",amy," << bases["amy"] << ",group\n";
  csv.close();
  auto rows = service::read_manifest(tmp_.path() / "manifest.csv");
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  ASSERT_EQ(rows->size(), 18u);
  EXPECT_EQ((*rows)[0].provenance, "studio, day 1");
  std::vector<std::pair<int, bool>> seen;
  size_t last_progress = 0;
  auto st = svc_->enroll_batch(kAdmin, 
      *rows, 2, false, "manifest",
      [&](const service::BatchRow& row, const Result<service::EnrollResult>& r) { seen.push_back({row.line, r.is_ok()}); },
      [&](size_t done, size_t) { last_progress = done; });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(seen.size(), 18u);
  EXPECT_EQ(last_progress, 18u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].first, static_cast<int>(i) + 2) << "rows reported in manifest order";
    EXPECT_EQ(seen[i].second, i < 16) << "line " << seen[i].first;
  }
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM face"), 16);
  EXPECT_EQ(**raw_db(*svc_).query_text("SELECT source FROM source_image WHERE id=1"), "studio, day 1");
  EXPECT_EQ(**raw_db(*svc_).query_text("SELECT method FROM source_image WHERE id=1"), "manifest");
  // The refusals are audited without the image paths or the subjects' references.
  const std::string log = audit_table_text(raw_db(*svc_));
  EXPECT_NE(log.find("cannot open the image file"), std::string::npos);
  EXPECT_EQ(log.find("PATH-5521"), std::string::npos);
  EXPECT_EQ(log.find(tmp_.path().string()), std::string::npos);
  EXPECT_EQ(log.find(samples().string()), std::string::npos);
  for (auto& p : people) EXPECT_EQ(log.find("\"" + p + "\""), std::string::npos) << p;
}

// Review crops: a reference crop is kept only on opt-in, sealed, and goes with its subject; a
// probe crop is readable while the case is open (across a master-key rotation) and destroyed
// when it closes. Proven on disk: the sealed blobs' bytes leave every file of the vault.
TEST_F(VaultPipelineTest, ReviewCropsAreKeptSealedAndDestroyed) {
  const service::Actor rita{"rita", service::Role::kReviewer}, ravi{"ravi", service::Role::kReviewer};
  const int64_t p = basis("penny", {"investigation"}, service::BasisKind::kLawEnforcement);
  const int64_t r = basis("raj", {"investigation"}, service::BasisKind::kLawEnforcement);
  service::EnrollRequest with_ref{"penny", p};
  with_ref.keep_reference = true;
  auto penny = svc_->enroll(kAdmin, with_ref, file_bytes(photo("penny", 1)));
  ASSERT_TRUE(penny.is_ok()) << penny.status().to_string();
  EXPECT_TRUE(penny->reference_kept);
  auto raj = enroll("raj", r, photo("raj", 1));  // the vault's default: no reference crop
  ASSERT_TRUE(raj.is_ok());
  EXPECT_FALSE(raj->reference_kept);
  auto sealed_blob = [&](const std::string& sql) {
    auto s = raw_db(*svc_).prepare(sql);
    EXPECT_TRUE(s.is_ok() && *s->step()) << sql;
    return s.is_ok() ? s->blob(0) : std::vector<uint8_t>{};
  };
  const auto sealed_ref = sealed_blob("SELECT crop FROM reference_crop");
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM reference_crop"), 1);

  auto s = search(photo("penny", 3), "investigation");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_FALSE(s->faces[0].candidates.empty());
  EXPECT_EQ(s->faces[0].candidates[0].subject_ref, "penny");
  auto c = svc_->review_show(rita, s->review_case);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->probe_sha256, vault::sha256_hex(file_bytes(photo("penny", 3))));
  ASSERT_EQ(c->probe_faces, std::vector<int>{0});
  EXPECT_TRUE(c->candidates[0].reference_available);
  const auto sealed_probe = sealed_blob("SELECT crop FROM review_probe");

  auto decodes_as_crop = [](const std::vector<uint8_t>& jpeg) {
    cv::Mat m = cv::imdecode(jpeg, cv::IMREAD_COLOR);
    return !m.empty() && m.cols == 160 && m.rows == 160;
  };
  auto ref = svc_->review_reference_image(rita, s->review_case, c->candidates[0].id);
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  EXPECT_TRUE(decodes_as_crop(ref->jpeg));
  auto probe = svc_->review_probe_image(rita, s->review_case, 0);
  ASSERT_TRUE(probe.is_ok()) << probe.status().to_string();
  EXPECT_TRUE(decodes_as_crop(probe->jpeg));
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM audit WHERE action='review_read'"), 2);
  EXPECT_TRUE(files_holding(dir_, probe->jpeg).empty()) << "crops are stored encrypted";
  EXPECT_TRUE(files_holding(dir_, ref->jpeg).empty()) << "crops are stored encrypted";
  EXPECT_FALSE(files_holding(dir_, sealed_probe).empty());

  // A master-key rotation re-wraps the case key: the probe face still opens.
  auto rotated = svc_->rotate_key(kAdmin);
  ASSERT_TRUE(rotated.is_ok()) << rotated.status().to_string();
  auto again = svc_->review_probe_image(rita, s->review_case, 0);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->jpeg, probe->jpeg);

  // Every candidate decided twice: the case closes and its probe crop is destroyed.
  for (const auto& k : c->candidates)
    for (const auto* who : {&rita, &ravi})
      ASSERT_TRUE(svc_->review_decide(*who, s->review_case, {k.id, service::ReviewVerdict::kConfirm, "same face", {}}).is_ok());
  auto closed = svc_->review_show(rita, s->review_case);
  ASSERT_TRUE(closed.is_ok());
  EXPECT_EQ(closed->status, "closed");
  EXPECT_TRUE(closed->probe_faces.empty());
  EXPECT_EQ(svc_->review_probe_image(rita, s->review_case, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM review_case WHERE probe_key IS NOT NULL"), 0);

  // The access export counts the reference crop and writes it out when asked, and lists the
  // decisions about the subject.
  auto exported = svc_->export_subject(kAdmin, "penny", false, tmp_.path() / "export");
  ASSERT_TRUE(exported.is_ok()) << exported.status().to_string();
  EXPECT_EQ((*exported)["reference_crops"]["count"], 1);
  EXPECT_EQ(file_bytes((*exported)["reference_crops"]["crops"][0]["file"].get<std::string>()), ref->jpeg);
  EXPECT_EQ((*exported)["review_cases"][0]["decisions"].size(), 2u);
  std::filesystem::remove_all(tmp_.path() / "export");

  // Erasure takes the reference crop with the subject.
  auto receipt = svc_->erase(kAdmin, "penny");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->reference_crops, 1);
  EXPECT_EQ(*raw_db(*svc_).query_int("SELECT count(*) FROM reference_crop"), 0);
  svc_.reset();
  EXPECT_EQ(files_holding(dir_, sealed_probe), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, sealed_ref), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, ref->jpeg), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, probe->jpeg), std::vector<std::string>());

  // The crops a search takes in memory are zeroed when its photo goes (reported as face crops).
  std::vector<size_t> crop_wipes;
  service::ServiceOptions o;
  o.shared_pipeline = shared_pipeline();
  o.on_wipe = [&](service::WipeKind k, size_t n) {
    if (k == service::WipeKind::kFaceCrops) crop_wipes.push_back(n);
  };
  auto watched = service::Service::open(dir_, o);
  ASSERT_TRUE(watched.is_ok()) << watched.status().to_string();
  ASSERT_TRUE((*watched)->search(kInvestigator, {"investigation", "case-2", 3}, file_bytes(photo("raj", 3))).is_ok());
  ASSERT_EQ(crop_wipes.size(), 1u);
  EXPECT_GT(crop_wipes[0], 0u);
}

}  // namespace
}  // namespace fv::test
