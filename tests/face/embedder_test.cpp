// The composed embedders: FlipAveragedEmbedder (a crop and its mirror, averaged) and the
// fusion+flip registry entry (mirror-averaged MobileFaceNet fused with the dlib ResNet).
// Models are loaded once for the whole binary.
#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "face/pipeline.h"
#include "support/paths.h"

namespace fv {
namespace {

face::FacePipeline* pipeline(const std::string& embedder) {
  static std::map<std::string, std::unique_ptr<face::FacePipeline>> made;
  auto& p = made[embedder];
  if (!p) {
    face::PipelineOptions o;
    o.embedder = embedder;
    auto r = face::FacePipeline::create(nn::ModelStore(), o);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (r.is_ok()) p = std::move(r).value();
  }
  return p.get();
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

double norm(const std::vector<float>& a) { return std::sqrt(cosine(a, a)); }

// An aligned 112×112 crop of the central face of a golden image.
cv::Mat aligned_crop(face::FacePipeline& p) {
  const auto file = test::golden_dir() / "Abel_Pacheco_0001" / "source.jpg";
  cv::Mat bgr = cv::imread(file.string()), rgb;
  if (bgr.empty()) return {};
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  auto faces = p.analyze(rgb, false);
  if (!faces.is_ok() || faces->empty()) return {};
  const int k = face::central_face(*faces, rgb.size());
  return p.embedder().align(rgb, (*faces)[k].landmarks);
}

TEST(FlipAveragedEmbedder, MirrorOfTheCropGivesTheSameTemplate) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(test::golden_dir() / "Abel_Pacheco_0001" / "source.jpg");
  auto* flip = pipeline("faceplugin-mobilefacenet-512+flip");
  auto* plain = pipeline("faceplugin-mobilefacenet-512");
  ASSERT_NE(flip, nullptr);
  ASSERT_NE(plain, nullptr);
  cv::Mat crop = aligned_crop(*flip), mirror;
  ASSERT_FALSE(crop.empty());
  cv::flip(crop, mirror, 1);
  EXPECT_EQ(flip->embedder().model_id(), "faceplugin-mobilefacenet-512+flip");
  EXPECT_EQ(flip->embedder().dim(), 512);

  auto f = flip->embedder().embed({crop, mirror});
  auto p = plain->embedder().embed({crop, mirror});
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  ASSERT_TRUE(p.is_ok());
  ASSERT_EQ(f->size(), 2u);
  EXPECT_NEAR(norm((*f)[0].values), 1.0, 1e-5);
  EXPECT_EQ((*f)[0].model_id, "faceplugin-mobilefacenet-512+flip");
  // Averaging over the mirror makes the template mirror-invariant; the plain network is not.
  const double flip_sym = cosine((*f)[0].values, (*f)[1].values), plain_sym = cosine((*p)[0].values, (*p)[1].values);
  EXPECT_GT(flip_sym, 0.9999);
  EXPECT_LT(plain_sym, 0.999) << "the crop is too symmetric to show anything";
  // The average of the crop's and the mirror's plain templates, normalised.
  std::vector<float> mean((*p)[0].values);
  for (size_t i = 0; i < mean.size(); ++i) mean[i] += (*p)[1].values[i];
  const double n = norm(mean);
  for (auto& v : mean) v = static_cast<float>(v / n);
  EXPECT_GT(cosine((*f)[0].values, mean), 0.9999);
}

TEST(FlipAveragedEmbedder, EmptyBatchAndWrongCropAreErrorsNotCrashes) {
  FV_REQUIRE_MODELS();
  auto* flip = pipeline("faceplugin-mobilefacenet-512+flip");
  ASSERT_NE(flip, nullptr);
  auto none = flip->embedder().embed({});
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto bad = flip->embedder().embed({cv::Mat(50, 50, CV_8UC3, cv::Scalar(1, 2, 3))});
  EXPECT_FALSE(bad.is_ok());
  auto empty = flip->embedder().embed({cv::Mat()});
  EXPECT_FALSE(empty.is_ok());
}

TEST(FusionFlipEmbedder, OneUnitTemplateOfBothNetworks) {
  FV_REQUIRE_MODELS();
  const auto file = test::golden_dir() / "Abel_Pacheco_0001" / "source.jpg";
  FV_REQUIRE_PATH(file);
  auto* fused = pipeline("fusion+flip");
  auto* flip = pipeline("faceplugin-mobilefacenet-512+flip");
  ASSERT_NE(fused, nullptr);
  ASSERT_NE(flip, nullptr);
  cv::Mat bgr = cv::imread(file.string()), rgb;
  ASSERT_FALSE(bgr.empty());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  auto a = fused->analyze(rgb, true);
  auto b = flip->analyze(rgb, true);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_FALSE(a->empty());
  const auto& t = *(*a)[0].face_template;
  EXPECT_EQ(t.model_id, "fusion(faceplugin-mobilefacenet-512+flip+2*faceapi-dlib-resnet-128)");
  ASSERT_EQ(t.values.size(), 640u);
  EXPECT_NEAR(norm(t.values), 1.0, 1e-4);
  // The first 512 values are the flip template scaled by 1/√(1 + w), w = 2.
  const auto& m = *(*b)[0].face_template;
  for (size_t i = 0; i < 512; i += 37) EXPECT_NEAR(t.values[i], m.values[i] / std::sqrt(3.0), 1e-5) << i;
}

// The vault stores the registry name; calibration and opt-out records need the model id.
TEST(Registry, ModelIdFromTheNameMatchesTheBuiltEmbedder) {
  FV_REQUIRE_MODELS();
  for (const auto& [name, factory] : face::builtin_registry().embedders) {
    auto e = factory(nn::ModelStore());
    ASSERT_TRUE(e.is_ok()) << name << ": " << e.status().to_string();
    EXPECT_EQ(face::builtin_embedder_model_id(name), (*e)->model_id()) << name;
  }
}

}  // namespace
}  // namespace fv
